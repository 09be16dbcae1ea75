"""The video detector: LSTS (SRFU + DFA) and its baselines behind one module.

Data flow (one frame):
    GeneralizedRCNNTransform (resize to min_size/max_size, ImageNet mean/std, pad)
    -> backbone.low (up to Conv4_3) [-> backbone.high (rest of res4, dilated res5, feat_conv)]
    -> temporal path of the variant (see `config.VARIANTS`)
    -> RFCNHead -> boxes scaled back to the original image size.

Temporal paths, with F_k the high-level feature of a key frame and M the memory:
* key frame (SRFU):  M <- Q_key([LSTS_key2key(M -> F_k), F_k])   (the first key: M <- F_k);
  the head runs on M.
* non-key frame (DFA): L = low2high(low(I_t)); the head runs on
  Q_cur([LSTS_key2cur(M -> L), L]).
One `LSTSOffsets` (the global (N, 2) sampling locations) is shared by both alignments; each
alignment has its own f/g embeddings, each fusion its own quality net (official code).

Public stages, so a benchmark can time each one (all take/return preprocessed tensors):
    preprocess(frames) -> (x, image_sizes, original_sizes)
    extract_low(x) -> low feature          extract_high(low) -> high feature F
    align(memory, target, kind)            low_to_high(low) -> L
    fuse(candidates, kind)                 flow(x_cur, x_key) / warp(feature, flow)
    run_head(feature, image_sizes)         postprocess(dets, image_sizes, original_sizes)
    key_step(x, state) / nonkey_step(x, state): one whole key / non-key frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from tqdm.auto import tqdm

from .backbone import ResNetBackbone
from .config import ModelConfig
from .flownet import FlowNetSmall, warp
from .fusion import Low2High, QualityNet
from .head import HeadConfig, RFCNHead
from .lsts import LSTSAlign, LSTSOffsets

__all__ = ["VideoDetector", "StreamingSession", "KeyState", "build_detector",
           "key_frame_indices", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def key_frame_indices(num_frames: int, key_interval: int, mode: str = "offline") -> list[int]:
    """Indices of the key frames of a video.

    offline (official default): frames are cut into segments of `key_interval`; the key of a
    segment is its middle frame, start + (k - 1) // 2 (4, 14, ... for k = 10), clipped to the
    last frame of a short final segment. online: 0, k, 2k, ... (only past frames are known).
    """
    if key_interval < 1:
        raise ValueError(f"key_interval must be >= 1, got {key_interval}")
    if mode == "online":
        return list(range(0, num_frames, key_interval))
    if mode == "offline":
        return [min(s + (key_interval - 1) // 2, num_frames - 1)
                for s in range(0, num_frames, key_interval)]
    raise ValueError(f"mode must be 'offline' or 'online', got {mode!r}")


@dataclass
class KeyState:
    """What a key frame leaves for the following frames."""

    memory: Tensor  # M: the task feature of the last key frame (after SRFU)
    image: Tensor | None = None  # the key's preprocessed image (flow_warp needs it)


class VideoDetector(nn.Module):
    """LSTS video object detector and its baselines (variant chosen by `cfg.variant`)."""

    stride = 16

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.variant = cfg.variant
        self.transform = GeneralizedRCNNTransform(cfg.min_size, cfg.max_size,
                                                  IMAGENET_MEAN, IMAGENET_STD)
        self.backbone = ResNetBackbone(cfg.backbone, cfg.feat_channels, cfg.pretrained,
                                       cfg.freeze_bn, cfg.norm, cfg.freeze_stem)
        C = cfg.feat_channels
        head_fields = {f.name for f in dataclasses.fields(HeadConfig)}
        bad = sorted(set(cfg.head_extra) - head_fields)
        if bad:
            raise ValueError(f"head_extra has unknown HeadConfig field(s) {bad}")
        self.head = RFCNHead(HeadConfig(
            num_classes=cfg.num_classes, in_channels=C, anchor_sizes=tuple(cfg.anchor_sizes),
            aspect_ratios=tuple(cfg.aspect_ratios), ohem_rois=cfg.ohem_rois,
            test_nms_thresh=cfg.test_nms_thresh, detections_per_img=cfg.detections_per_img,
            stride=self.stride, **cfg.head_extra))

        v = cfg.variant
        self.uses_srfu = v in ("lsts", "lsts_fixed", "lsts_no_dfa")
        self.uses_dfa_fusion = v in ("lsts", "lsts_fixed", "lsts_no_srfu")
        if cfg.is_lsts:
            self.offsets = LSTSOffsets(init=cfg.offsets_init, grid_size=cfg.grid_size,
                                       grid_range=cfg.grid_range, num_points=cfg.num_points,
                                       learnable=v != "lsts_fixed")
            if self.uses_srfu:
                self.align_key2key = LSTSAlign(self.offsets, C, cfg.embed_channels,
                                               impl=cfg.lsts_impl)
                if cfg.memory_update_ratio is None:
                    self.quality_key = QualityNet(C, cfg.quality_hidden, cfg.quality_mid)
            self.align_key2cur = LSTSAlign(self.offsets, C, cfg.embed_channels,
                                           impl=cfg.lsts_impl)
            self.low2high = Low2High(self.backbone.low_channels, C, cfg.low2high_hidden)
            if self.uses_dfa_fusion:
                self.quality_cur = QualityNet(C, cfg.quality_hidden, cfg.quality_mid)
        elif v == "flow_warp":
            self.flownet = FlowNetSmall(tuple(cfg.flownet_channels))

    # ------------------------------------------------------------------ input checks
    @staticmethod
    def check_frames(frames: Sequence[Tensor], allowed_lengths: tuple[int, ...] | None = None
                     ) -> None:
        """Each frame (3, H, W) float in [0, 1]; all the same size."""
        if isinstance(frames, Tensor):
            raise ValueError("frames must be a list of (3, H, W) tensors, not one tensor")
        if allowed_lengths is not None and len(frames) not in allowed_lengths:
            raise ValueError(
                f"expected {' or '.join(map(str, allowed_lengths))} frames "
                f"([image] or [old_key, new_key, current]), got {len(frames)}")
        for i, f in enumerate(frames):
            if not isinstance(f, Tensor) or f.ndim != 3 or f.shape[0] != 3:
                shape = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
                raise ValueError(f"frame {i} must be a (3, H, W) tensor, got {shape}")
            if not f.is_floating_point():
                raise ValueError(f"frame {i} has dtype {f.dtype}; expected float in [0, 1] "
                                 "(divide uint8 images by 255)")
            if f.shape != frames[0].shape:
                raise ValueError(f"frames differ in size: frame 0 is {tuple(frames[0].shape)}, "
                                 f"frame {i} is {tuple(f.shape)}")

    # ------------------------------------------------------------------ stages
    def preprocess(self, frames: Sequence[Tensor]
                   ) -> tuple[Tensor, list[tuple[int, int]], list[tuple[int, int]]]:
        """Resize + normalise + pad: (B, 3, H', W'), resized sizes, original sizes."""
        self.check_frames(frames)
        original = [(int(f.shape[-2]), int(f.shape[-1])) for f in frames]
        images, _ = self.transform(list(frames))
        return images.tensors, [tuple(s) for s in images.image_sizes], original

    def extract_low(self, x: Tensor) -> Tensor:
        """Low-level part (conv1 .. Conv4_3): the only backbone cost of a non-key frame."""
        return self.backbone.low(x)

    def extract_high(self, low: Tensor) -> Tensor:
        """High-level part (rest of res4, res5, feat_conv): key frames only."""
        return self.backbone.high(low)

    def low_to_high(self, low: Tensor) -> Tensor:
        """low2high: the non-key frame's Conv4_3 feature mapped to the high-level space."""
        return self.low2high(low)

    def align(self, memory: Tensor, target: Tensor, kind: str) -> Tensor:
        """LSTS alignment of `memory` to `target`; kind 'key2key' (SRFU) or 'key2cur' (DFA)."""
        if kind == "key2key":
            return self.align_key2key(memory, target)
        if kind == "key2cur":
            return self.align_key2cur(memory, target)
        raise ValueError(f"kind must be 'key2key' or 'key2cur', got {kind!r}")

    def fuse(self, candidates: list[Tensor], kind: str) -> Tensor:
        """Quality-net fusion; kind 'key' (SRFU: [aligned memory, F_k]) or 'cur' (DFA)."""
        if kind == "key":
            r = self.cfg.memory_update_ratio
            if r is not None:
                return r * candidates[0] + (1.0 - r) * candidates[1]
            return self.quality_key(candidates)
        if kind == "cur":
            return self.quality_cur(candidates)
        raise ValueError(f"kind must be 'key' or 'cur', got {kind!r}")

    def flow(self, x_cur: Tensor, x_key: Tensor, out_size: tuple[int, int]) -> Tensor:
        """flow_warp baseline: flow (current -> key) at stride 16, in feature cells."""
        return self.flownet(x_cur, x_key, out_size)

    @staticmethod
    def warp(feature: Tensor, flow: Tensor) -> Tensor:
        return warp(feature, flow)

    def run_head(self, feature: Tensor, image_sizes: list[tuple[int, int]],
                 targets: list[dict[str, Tensor]] | None = None
                 ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """RPN + R-FCN on the task feature (boxes in resized-image pixels)."""
        return self.head(feature, image_sizes, targets)

    def postprocess(self, detections: list[dict[str, Tensor]],
                    image_sizes: list[tuple[int, int]],
                    original_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """Scale boxes back to the original image size."""
        return self.transform.postprocess(detections, image_sizes, original_sizes)

    # ------------------------------------------------------------------ frame paths
    def key_step(self, x: Tensor, state: KeyState | None = None,
                 low: Tensor | None = None, high: Tensor | None = None
                 ) -> tuple[Tensor, KeyState]:
        """A key frame: (task feature for its own detections, new state).

        `low`/`high` may be passed when already computed (training batches both keys).
        """
        if high is None:
            high = self.extract_high(self.extract_low(x) if low is None else low)
        memory = high
        if self.uses_srfu and state is not None:
            aligned = self.align(state.memory, high, "key2key")
            memory = self.fuse([aligned, high], "key")
        return memory, KeyState(memory=memory, image=x if self.variant == "flow_warp" else None)

    def nonkey_step(self, x: Tensor, state: KeyState) -> Tensor:
        """A non-key frame: its task feature from its own low-level feature and the memory."""
        v = self.variant
        if v == "single_frame":
            return self.extract_high(self.extract_low(x))
        if v == "copy_prop":
            return state.memory
        if v == "flow_warp":
            assert state.image is not None
            fl = self.flow(x, state.image, tuple(state.memory.shape[-2:]))
            return self.warp(state.memory, fl)
        low2high = self.low_to_high(self.extract_low(x))
        if low2high.shape != state.memory.shape:
            raise ValueError(f"memory {tuple(state.memory.shape)} and current feature "
                             f"{tuple(low2high.shape)} differ: frames must share one size")
        aligned = self.align(state.memory, low2high, "key2cur")
        if not self.uses_dfa_fusion:  # lsts_no_dfa: the aligned memory alone
            return aligned
        return self.fuse([aligned, low2high], "cur")

    # ------------------------------------------------------------------ training
    def forward(self, frames: Sequence[Tensor], target: dict[str, Tensor]) -> dict[str, Tensor]:
        """One training sample -> loss dict (4 head terms + "loss", their sum).

        frames: [image] (DET still image, or any single frame) or [old_key, new_key, current],
        each (3, H, W) float in [0, 1], same size. target: boxes (K, 4) in original pixels and
        labels (K,) in 1..num_classes, of the LAST frame. The loss is on that frame only.
        If `current` is the new key itself (same tensor or equal values), the key path is used.
        """
        self.check_frames(frames, (1, 3))
        if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
            raise ValueError("target must be a dict with 'boxes' (K, 4) and 'labels' (K,)")
        single = len(frames) == 1 or self.variant == "single_frame"
        # Only the frames the variant reads are preprocessed: [current], [new, current] or all.
        used = [frames[-1]] if single else list(frames) if self.uses_srfu else list(frames[1:])
        x, sizes, orig = self.preprocess(used)
        boxes = target["boxes"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"target['boxes'] must be (K, 4), got {tuple(boxes.shape)}")
        boxes = resize_boxes(boxes.to(x.dtype), orig[-1], sizes[-1])
        targets = [{"boxes": boxes, "labels": target["labels"]}]

        if single:
            feature = self.extract_high(self.extract_low(x))
        else:
            cur_is_key = frames[2] is frames[1] or torch.equal(frames[2], frames[1])
            x_new, x_cur = x[-2:-1], x[-1:]
            if self.uses_srfu:  # old + new key share one backbone pass
                high = self.extract_high(self.extract_low(x[0:2]))
                _, state = self.key_step(x[0:1], None, high=high[0:1])
                feature, state = self.key_step(x_new, state, high=high[1:2])
            else:
                feature, state = self.key_step(x_new, None)
            if not cur_is_key:
                feature = self.nonkey_step(x_cur, state)
        _, losses = self.run_head(feature, [sizes[-1]], targets)
        losses = dict(losses)
        losses["loss"] = sum(losses.values())
        return losses

    # ------------------------------------------------------------------ inference
    def _detect(self, feature: Tensor, size: tuple[int, int], orig: tuple[int, int]
                ) -> dict[str, Tensor]:
        dets, _ = self.run_head(feature, [size])
        return self.postprocess(dets, [size], [orig])[0]

    def detect_video(self, frames: Sequence[Tensor] | Iterable[Tensor], mode: str = "offline",
                     key_interval: int | None = None, progress: bool = False
                     ) -> list[dict[str, Tensor]]:
        """Per-frame detections ({"boxes", "scores", "labels"}, original pixels) of a video.

        offline: segments of k frames, each led by its middle frame as key (a frame before the
        key uses the future key's memory); frames are buffered one segment at a time.
        online: frames in order, keys at 0, k, 2k, ... (same as pushing to `stream`).
        single_frame treats every frame as a key frame. Runs in eval mode, without gradients.
        """
        k = self.cfg.key_interval if key_interval is None else int(key_interval)
        if k < 1:
            raise ValueError(f"key_interval must be >= 1, got {k}")
        if mode not in ("offline", "online"):
            raise ValueError(f"mode must be 'offline' or 'online', got {mode!r}")
        if self.variant == "single_frame":
            k = 1
        was_training = self.training
        self.eval()
        out: list[dict[str, Tensor]] = []
        try:
            with torch.inference_mode():
                bar = tqdm(desc=f"detect ({mode})", unit="frame", disable=not progress)
                if mode == "online":
                    session = StreamingSession(self, k)
                    for f in frames:
                        out.append(session.push(f))
                        bar.update(1)
                else:
                    state: KeyState | None = None
                    first_shape: tuple[int, ...] | None = None
                    for segment in _segments(iter(frames), k):
                        self.check_frames(segment)
                        if out and segment[0].shape != first_shape:
                            raise ValueError(f"frames differ in size: frame 0 is {first_shape}, "
                                             f"frame {len(out)} is {tuple(segment[0].shape)}")
                        first_shape = tuple(segment[0].shape)
                        ki = min((k - 1) // 2, len(segment) - 1)
                        x_key, sizes, orig = self.preprocess([segment[ki]])
                        feat_key, state = self.key_step(x_key, state)
                        for i, f in enumerate(segment):
                            if i == ki:
                                feat = feat_key
                            else:
                                x, sizes, orig = self.preprocess([f])
                                feat = self.nonkey_step(x, state)
                            out.append(self._detect(feat, sizes[0], orig[0]))
                            bar.update(1)
                bar.close()
        finally:
            self.train(was_training)
        return out

    def stream(self, key_interval: int | None = None) -> StreamingSession:
        """Online session: push frames one at a time (puts the detector in eval mode)."""
        k = self.cfg.key_interval if key_interval is None else int(key_interval)
        return StreamingSession(self, k)

    # ------------------------------------------------------------------ parameters / checkpoints
    def offset_parameters(self) -> list[nn.Parameter]:
        """The learnable LSTS offsets (empty when absent or frozen): they train at 2.5x lr."""
        if not hasattr(self, "offsets"):
            return []
        return [p for p in self.offsets.parameters() if p.requires_grad]

    def load_checkpoint_state(self, state_dict: dict[str, Tensor],
                              init_from_single_frame: bool = False) -> list[str]:
        """Load weights; returns the keys left at their fresh initialisation.

        Default: the checkpoint must match this architecture exactly, else ValueError listing
        missing, unexpected and shape-mismatched keys. init_from_single_frame=True (stage-2
        training): only backbone.* and head.* are loaded, and they must all be present with
        matching shapes; every temporal module (offsets, alignments, quality nets, low2high,
        flownet) stays fresh and any temporal key in the checkpoint is ignored.
        """
        own = self.state_dict()
        if init_from_single_frame:
            wanted = [k for k in own if k.startswith(("backbone.", "head."))]
            missing = [k for k in wanted if k not in state_dict]
            shape = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model "
                     f"{tuple(own[k].shape)}" for k in wanted
                     if k in state_dict and state_dict[k].shape != own[k].shape]
            if missing or shape:
                raise ValueError(self._mismatch_message(missing, [], shape,
                                                        "backbone/head of a single-frame "))
            self.load_state_dict({k: state_dict[k] for k in wanted}, strict=False)
            return [k for k in own if k not in wanted]
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        shape = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
        if missing or unexpected or shape:
            raise ValueError(self._mismatch_message(missing, unexpected, shape, ""))
        self.load_state_dict(state_dict, strict=True)
        return []

    def _mismatch_message(self, missing: list[str], unexpected: list[str], shape: list[str],
                          what: str) -> str:
        def show(items: list[str]) -> str:
            more = f" ... (+{len(items) - 8} more)" if len(items) > 8 else ""
            return ", ".join(items[:8]) + more
        parts = [f"checkpoint does not fit the {what}detector (variant={self.variant!r}, "
                 f"backbone={self.cfg.backbone!r}, feat_channels={self.cfg.feat_channels}); "
                 "was it saved from another architecture or variant?"]
        if missing:
            parts.append(f"{len(missing)} missing key(s): {show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {show(unexpected)}")
        if shape:
            parts.append(f"{len(shape)} shape mismatch(es): {show(shape)}")
        return "; ".join(parts)


def _segments(it: Iterator[Tensor], k: int) -> Iterator[list[Tensor]]:
    seg: list[Tensor] = []
    for f in it:
        seg.append(f)
        if len(seg) == k:
            yield seg
            seg = []
    if seg:
        yield seg


class StreamingSession:
    """Online detection: frames pushed one at a time, memory carried between key frames.

    Key frames are 0, k, 2k, ... unless `push(..., is_key=...)` says otherwise; the first
    frame (after construction or `reset()`) must be a key frame.
    """

    def __init__(self, detector: VideoDetector, key_interval: int) -> None:
        if key_interval < 1:
            raise ValueError(f"key_interval must be >= 1, got {key_interval}")
        self.detector = detector
        self.key_interval = 1 if detector.variant == "single_frame" else key_interval
        self.reset()

    def reset(self) -> None:
        """Forget the memory and restart frame counting (next frame must be a key)."""
        self.index = 0
        self.state: KeyState | None = None
        self._shape: tuple[int, ...] | None = None

    def push(self, frame: Tensor, is_key: bool | None = None) -> dict[str, Tensor]:
        """Detections for `frame` ({"boxes", "scores", "labels"}, original pixels)."""
        det = self.detector
        det.check_frames([frame])
        if self._shape is not None and tuple(frame.shape) != self._shape:
            raise ValueError(f"frames differ in size: frame {self.index} is "
                             f"{tuple(frame.shape)}, the stream's frames are {self._shape}; "
                             "call reset() for a new video")
        if is_key is None:
            is_key = self.index % self.key_interval == 0
        if det.variant == "single_frame":
            is_key = True
        if not is_key and self.state is None:
            raise ValueError("the stream starts with a non-key frame: the first frame after "
                             "construction or reset() must be a key frame (is_key=True)")
        det.eval()
        with torch.inference_mode():
            x, sizes, orig = det.preprocess([frame])
            if is_key:
                feat, self.state = det.key_step(x, self.state)
            else:
                assert self.state is not None
                feat = det.nonkey_step(x, self.state)
            out = det._detect(feat, sizes[0], orig[0])
        self._shape = tuple(frame.shape)
        self.index += 1
        return out


def build_detector(cfg: ModelConfig) -> VideoDetector:
    """The detector of `cfg` (see `config.VARIANTS` for the variants)."""
    return VideoDetector(cfg)
