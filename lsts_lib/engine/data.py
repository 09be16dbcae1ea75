"""Training samples: the VID+DET mix, deterministic per-step shuffling and frame triplets.

The training set is the concatenation of the VID frames listed in VID_train_15frames.txt
and (with `data.use_det`) the DET still images, as in the FGFA/LSTS protocol. Each epoch is
a fresh permutation drawn from (seed, epoch); step s of a run with P processes and B images
per process uses positions s*P*B ... s*P*B + P*B - 1 of that endless stream, process r the
slice [r*B, (r+1)*B) (a deterministic DistributedSampler). Every random choice of a sample
(its key frames, the flip) comes from a generator seeded by (seed, step, slot), so the data
of step s does not depend on what ran before: a resumed run sees exactly the same samples,
and P processes x B images see the same samples as 1 process x P*B images.

Frame triplets (official code): for the current VID frame t of a snippet with L frames,
the old key is drawn from [t-10, t-5) and the new key from [t-5, t+5); both are clipped to
[0, L-1], so near the start of a snippet the keys collapse onto frame 0 (and near its end
onto frame L-1) exactly as the official loader's `min(max(i, 0), L-1)` does. The loss is on
the current frame only. DET stills (and every sample of the single-frame detector) are one
frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lsts_lib.data.types import ClassList, FrameAnnotation
from lsts_lib.data.vid import DETDataset, VIDDataset, load_frame
from lsts_lib.engine.config import RunConfig, TrainConfig
from lsts_lib.models.variants import get_variant

# numpy SeedSequence spawn keys that separate the uses of (seed, ...) streams.
_PERMUTATION, _SAMPLE = 0, 1


@dataclass
class TrainSample:
    """One training example: frames (old key, new key, current) or (image,), and its target."""

    frames: list[torch.Tensor]
    target: dict[str, torch.Tensor]
    source: str  # "vid:<video>:<frame>" or "det:<index>", for logs and tests
    flipped: bool


def sample_rng(seed: int, step: int, slot: int) -> np.random.Generator:
    """The generator of one sample slot of one step (independent of every other)."""
    return np.random.default_rng([seed, _SAMPLE, step, slot])


def torch_seed(seed: int, step: int, slot: int) -> int:
    """A torch seed for one sample slot (RPN/RoI sampling inside the model)."""
    return int(np.random.SeedSequence([seed, 2, step, slot]).generate_state(1, np.uint64)[0] >> 1)


def clip_index(i: int, length: int) -> int:
    return min(max(i, 0), length - 1)


def draw_triplet(
    t: int,
    length: int,
    rng: np.random.Generator,
    old_range: tuple[int, int] = TrainConfig.old_key_range,
    new_range: tuple[int, int] = TrainConfig.new_key_range,
) -> tuple[int, int, int]:
    """(old key, new key, current) frame indices for current frame t (see module doc)."""
    old = clip_index(t + int(rng.integers(old_range[0], old_range[1])), length)
    new = clip_index(t + int(rng.integers(new_range[0], new_range[1])), length)
    return old, new, t


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Mirror x1 y1 x2 y2 pixel boxes horizontally in an image of `width` pixels."""
    out = boxes.copy()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def target_of(ann: FrameAnnotation, flip: bool) -> dict[str, torch.Tensor]:
    boxes = np.asarray(ann.boxes, dtype=np.float32).reshape(-1, 4)
    if flip:
        boxes = flip_boxes(boxes, ann.width)
    return {
        "boxes": torch.from_numpy(np.ascontiguousarray(boxes)),
        "labels": torch.from_numpy(np.asarray(ann.labels, dtype=np.int64).reshape(-1)),
    }


class TrainStream:
    """The endless, deterministic stream of training samples of one run."""

    def __init__(
        self,
        vid: VIDDataset,
        det: DETDataset | None,
        seed: int,
        temporal: bool,
        flip: bool = TrainConfig.flip,
        old_range: tuple[int, int] = TrainConfig.old_key_range,
        new_range: tuple[int, int] = TrainConfig.new_key_range,
    ) -> None:
        self.vid = vid
        self.det = det
        self.seed = int(seed)
        self.temporal = temporal
        self.flip = flip
        self.old_range = tuple(old_range)
        self.new_range = tuple(new_range)
        # Entries: (kind, a, b): ("vid", video index, frame index) or ("det", image index, -1).
        self.entries: list[tuple[str, int, int]] = [("vid", vi, fi) for vi, fi in vid.samples]
        if det is not None:
            self.entries += [("det", i, -1) for i in range(len(det))]
        if not self.entries:
            raise ValueError(f"{vid.root}: no training samples")
        self._perms: dict[int, np.ndarray] = {}

    @property
    def classes(self) -> ClassList:
        return self.vid.classes

    def __len__(self) -> int:
        return len(self.entries)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.clear()
            rng = np.random.default_rng([self.seed, _PERMUTATION, epoch])
            self._perms[epoch] = rng.permutation(len(self.entries))
        return self._perms[epoch]

    def entry_at(self, position: int) -> tuple[str, int, int]:
        """The dataset entry at a position of the endless shuffled stream."""
        epoch, i = divmod(position, len(self.entries))
        return self.entries[int(self._permutation(epoch)[i])]

    def positions(self, step: int, rank: int, world: int, batch: int) -> list[int]:
        """Stream positions (= slots) that process `rank` trains on at `step`."""
        base = step * world * batch + rank * batch
        return list(range(base, base + batch))

    def sample(self, step: int, position: int) -> TrainSample:
        """Load the sample at `position` with its randomness drawn from (seed, step, position)."""
        kind, a, b = self.entry_at(position)
        rng = sample_rng(self.seed, step, position)
        flip = bool(self.flip and rng.random() < 0.5)
        if kind == "det":
            assert self.det is not None
            ann = self.det[a]
            frames_ann = [ann]
            source = f"det:{a}"
        else:
            video = self.vid.videos[a]
            if self.temporal:
                idx = draw_triplet(b, len(video.frames), rng, self.old_range, self.new_range)
            else:
                idx = (b,)
            frames_ann = [video.frames[i] for i in idx]
            ann = video.frames[b]
            source = f"vid:{video.name}:{b}"
        frames = [load_frame(f) for f in frames_ann]
        if flip:
            frames = [f.flip(-1) for f in frames]
        return TrainSample(frames, target_of(ann, flip), source, flip)


def build_stream(run: RunConfig, progress: bool = True) -> TrainStream:
    """The training stream of a run: the data section says what is read, the train section
    how it is drawn; frame triplets unless the variant's every frame is a key frame.
    progress: a bar while the DET annotations are read (a long real list only)."""
    data, train = run.data, run.train
    root = Path(data.root)
    vid = VIDDataset(root, split=data.train_split, max_videos=data.max_videos)
    det = None
    if data.use_det:
        det_file = root / "ImageSets" / "DET_train_30classes.txt"
        if not det_file.is_file():
            raise FileNotFoundError(
                f"{det_file}: data.use_det is true but the DET split file is missing "
                "(set data.use_det=false to train on VID frames only)"
            )
        det = DETDataset(root, classes=vid.classes, progress=progress)
    return TrainStream(
        vid,
        det,
        seed=train.seed,
        temporal=not get_variant(run.model.variant).every_frame_key,
        flip=train.flip,
        old_range=train.old_key_range,
        new_range=train.new_key_range,
    )
