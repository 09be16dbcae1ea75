"""Shared test fixtures: tiny datasets written in the ILSVRC2015 VID layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lsts_lib.paths

needs_shared = pytest.mark.skipif(
    not lsts_lib.paths.SHARED_VID.exists(),
    reason="../shared/data (real ImageNet VID files) not present",
)

# (trackid, class id, (xmin, ymin, xmax, ymax)) per object
ObjSpec = tuple[int, str, tuple[float, float, float, float]]


def frame_xml(
    folder: str, filename: str, width: int, height: int, objects: list[ObjSpec]
) -> str:
    """One frame's annotation in the ILSVRC2015 VID XML format."""
    objs = "".join(
        f"<object><trackid>{t}</trackid><name>{c}</name><bndbox><xmax>{b[2]:g}</xmax>"
        f"<xmin>{b[0]:g}</xmin><ymax>{b[3]:g}</ymax><ymin>{b[1]:g}</ymin></bndbox>"
        f"<occluded>0</occluded><generated>0</generated></object>"
        for t, c, b in objects
    )
    return (
        f"<annotation><folder>{folder}</folder><filename>{filename}</filename>"
        f"<source><database>ILSVRC_2015</database></source>"
        f"<size><width>{width}</width><height>{height}</height></size>{objs}</annotation>"
    )


class VidLayout:
    """Writes snippets, DET images and split files under `root` in the real VID layout."""

    def __init__(self, root: Path, width: int = 64, height: int = 48) -> None:
        self.root = root
        self.width, self.height = width, height
        self.rng = np.random.default_rng(0)

    def write_image(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = self.rng.integers(0, 255, (self.height, self.width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format="JPEG")

    def add_snippet(self, name: str, frames: list[list[ObjSpec]]) -> Path:
        """`name` like 'val/ILSVRC2015_val_00000000'; one object list per frame."""
        for fi, objects in enumerate(frames):
            self.write_image(self.root / "Data" / "VID" / name / f"{fi:06d}.JPEG")
            xml = self.root / "Annotations" / "VID" / name / f"{fi:06d}.xml"
            xml.parent.mkdir(parents=True, exist_ok=True)
            xml.write_text(frame_xml(name, f"{fi:06d}", self.width, self.height, objects))
        return self.root / "Annotations" / "VID" / name

    def add_det_image(self, name: str, objects: list[ObjSpec]) -> None:
        self.write_image(self.root / "Data" / "DET" / f"{name}.JPEG")
        xml = self.root / "Annotations" / "DET" / f"{name}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(frame_xml(name.rsplit("/", 1)[0], name, self.width, self.height, objects))

    def write_split(self, filename: str, lines: list[str]) -> Path:
        path = self.root / "ImageSets" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines))
        return path

    def write_classes(self, pairs: list[tuple[str, str]]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "classes.txt").write_text("".join(f"{i} {n}\n" for i, n in pairs))


def moving_track(n: int, step: float, tid: int = 0, cls: str = "c1", size: float = 20.0):
    """Frames of one object moving right by `step` px per frame."""
    return [[(tid, cls, (2 + i * step, 5.0, 2 + i * step + size, 5.0 + size))] for i in range(n)]


@pytest.fixture
def tiny_vid(tmp_path: Path) -> Path:
    """A complete tiny VID-layout dataset with 2 classes, 2 train and 2 val snippets, 2 DET images.

    train/a: 6 frames, class c1 moving 1 px/frame; train/b: 4 frames, c2 static, frame 3 empty.
    val/v0: 5 frames (c1 and c2 objects); val/v1: 3 frames, no objects.
    """
    lay = VidLayout(tmp_path / "ds")
    lay.write_classes([("c1", "circle"), ("c2", "square")])
    lay.add_snippet("train/T_0000/a", moving_track(6, 1.0))
    lay.add_snippet("train/T_0000/b", [[(0, "c2", (10, 10, 30, 30))]] * 3 + [[]])
    lay.write_split(
        "VID_train_15frames.txt",
        ["train/T_0000/a 1 0 6", "train/T_0000/a 1 3 6", "train/T_0000/b 1 2 4"],
    )
    v0 = [
        [(0, "c1", (2 + 3 * i, 5, 22 + 3 * i, 25)), (1, "c2", (30, 20, 60, 46))] for i in range(5)
    ]
    lay.add_snippet("val/v0", v0)
    lay.add_snippet("val/v1", [[], [], []])
    lay.write_split("VID_val_videos.txt", ["val/v0 1 0 5", "val/v1 6 0 3"])
    lay.add_det_image("train/D_0000/d0", [(0, "c1", (1, 1, 20, 20)), (1, "other", (5, 5, 9, 9))])
    lay.add_det_image("train/D_0000/d1", [(0, "other", (1, 1, 20, 20))])
    lay.write_split("DET_train_30classes.txt", ["train/D_0000/d0 1", "train/D_0000/d1 1"])
    return lay.root


@pytest.fixture
def vid_layout(tmp_path: Path) -> VidLayout:
    """An empty layout writer rooted at tmp_path/'ds', for tests that build their own data."""
    return VidLayout(tmp_path / "ds")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke SynthVID: the repo's copy when `make test` made it, else a fresh one."""
    root = lsts_lib.paths.synthvid_root("smoke")
    if (root / "synthvid.json").is_file():
        return root
    from lsts_lib.data.synthvid import generate

    return generate(tmp_path_factory.mktemp("synthvid") / "smoke", "smoke", 0, progress=False)


def per_resample_map(classes, videos, dets, interpolation: str = "continuous"):
    """The reweighted mAP one resample at a time, as `video_weighted_map` computed it before
    it scored resamples together: every detection weighted by its video's count, then
    evaluate_vid's per-class AP. counts (videos,) -> mAP, or None without GT."""
    from lsts_lib.eval.vid_eval import DEVKIT, _class_aps, _match, _mean

    dets = dets.canonical()
    m = _match(videos, dets, DEVKIT)
    frame_video = np.repeat(np.arange(len(videos)), [len(v.frames) for v in videos])
    det_video = frame_video[m.det_frame]
    gt_video = np.repeat(frame_video, np.diff(m.gt_frame_start))
    tp = (m.matched_gt >= 0).astype(np.float64)

    def score(counts: np.ndarray) -> float | None:
        w = np.asarray(counts, dtype=np.float64)[det_video]
        num_gt = np.bincount(m.gt_labels, weights=np.asarray(counts, np.float64)[gt_video],
                             minlength=classes.num_classes + 1)
        return _mean(_class_aps(m, dets, tp * w, (1.0 - tp) * w, num_gt, classes.num_classes,
                                interpolation))

    return score


@pytest.fixture
def one_thread():
    """Tiny tensors: intra-op threads only add overhead (10x on a busy 2-core box)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def stamped_config(data_root: Path, variant: str, key: str, value: object) -> dict:
    """The config part of a smoke run's training inputs (its stamp) with one setting changed:
    what decides whether changing that setting retrains the run."""
    from lsts_lib.engine.config import load_config
    from lsts_lib.engine.train import train_inputs

    cfg = load_config("smoke", {"data.root": str(data_root), "model.variant": variant, key: value})
    return train_inputs(cfg, None)["config"]
