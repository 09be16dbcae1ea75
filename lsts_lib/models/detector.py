"""The video detector: LSTS (SRFU + DFA) and its baselines behind one module.

Data flow (one frame):
    GeneralizedRCNNTransform (resize to min_size/max_size, ImageNet mean/std, pad)
    -> backbone.low (up to Conv4_3, its pre-ReLU sum)
    [-> backbone.high (that ReLU, rest of res4, dilated res5, feat_conv)]
    -> temporal path of the variant (see `variants.VARIANTS`)
    -> RFCNHead -> boxes scaled back to the original image size.

Temporal paths, with F_k the high-level feature of a key frame and M the memory: a key
frame goes through `srfu` (when the variant has it; the first key: M <- F_k) and the head runs
on M; a non-key frame gets its feature as the variant says (`Variant.nonkey`): its own
backbone, M as is, M warped by flow, or `dfa(M, low(I_t))`. One `LSTSOffsets` (the global
(N, 2) sampling locations) is shared by SRFU and DFA (see `srfu_dfa`).

Public stages, so a benchmark can time each one (all take/return preprocessed tensors):
    preprocess(frames) -> (x, image_sizes, original_sizes)
    extract_low(x) -> low feature          extract_high(low) -> high feature F
    srfu / dfa / flownet: their own public forwards (and align/fuse steps)
    run_head(feature, image_sizes)         postprocess(dets, image_sizes, original_sizes)
    key_step(x, state) / nonkey_step(x, state): one whole key / non-key frame.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from tqdm.auto import tqdm

from .backbone import ResNetBackbone
from .config import ModelConfig, paper_config
from .flownet import FlowNetSmall, warp
from .head import HeadConfig, RFCNHead
from .lsts import LSTSOffsets, expected_displacement
from .srfu_dfa import DFA, SRFU
from .variants import Variant, get_variant

__all__ = ["VideoDetector", "StreamingSession", "KeyState", "Propagation", "build_detector",
           "build_transform", "feature_map_hw", "input_hw", "paper_feature_hw", "PAPER_INPUT",
           "key_frame_indices", "IMAGENET_MEAN", "IMAGENET_STD", "OFFSETS_KEY"]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
OFFSETS_KEY = "offsets.p"  # the one global LSTSOffsets parameter in a detector's state dict


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


# The input transform pads each batch up to a multiple of this many pixels (torchvision's
# default, stated here so that `input_hw` reads the same number the transform uses).
SIZE_DIVISIBLE = 32
# The paper's frame (height, width): shorter side 600, longer side at most 1000.
PAPER_INPUT = (600, 1000)


def build_transform(cfg: ModelConfig) -> GeneralizedRCNNTransform:
    """The detector's input transform: resize to min_size/max_size, ImageNet mean/std, pad."""
    return GeneralizedRCNNTransform(cfg.min_size, cfg.max_size, IMAGENET_MEAN, IMAGENET_STD,
                                    size_divisible=SIZE_DIVISIBLE)


def input_hw(cfg: ModelConfig, image_hw: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the tensor the backbone gets for a frame of `image_hw` (eval mode): resized
    as `build_transform` does (scale = min(min_size / shorter, max_size / longer), each side
    floor(side * scale)), then zero-padded up to a multiple of SIZE_DIVISIBLE."""
    h, w = image_hw
    scale = min(cfg.min_size / min(h, w), cfg.max_size / max(h, w))

    def padded(n: int) -> int:
        return math.ceil(math.floor(n * scale) / SIZE_DIVISIBLE) * SIZE_DIVISIBLE

    return padded(h), padded(w)


def feature_map_hw(cfg: ModelConfig, image_hw: tuple[int, int]) -> tuple[int, int]:
    """(H, W) cells of the stride-16 feature map (low, high and the memory LSTS aligns) the
    detector computes for a frame of `image_hw`.

    Each of the backbone's four stride-2 layers (conv1 7x7 pad 3, max-pool 3x3 pad 1, the 3x3
    pad 1 / 1x1 convs of res3a and res4a; res5 is dilated, not strided) maps n to ceil(n / 2),
    so the map is ceil(n / 16) of the padded input (`input_hw`). At the paper's 600x1000 the
    transform pads to 608x1024, hence 38x64; the backbone alone on an unpadded 600x1000
    tensor would give 38x63.
    """
    H, W = input_hw(cfg, image_hw)
    return math.ceil(H / VideoDetector.stride), math.ceil(W / VideoDetector.stride)


def paper_feature_hw() -> tuple[int, int]:
    """The feature map of the paper's setting (`paper_config`) at PAPER_INPUT: (38, 64)."""
    return feature_map_hw(paper_config(), PAPER_INPUT)


@dataclass
class KeyState:
    """What a key frame leaves for the following frames."""

    memory: Tensor  # M: the task feature of the last key frame (after SRFU)
    image: Tensor | None = None  # the key's preprocessed image (flow_warp needs it)


@dataclass
class Propagation:
    """How a non-key frame's feature is taken from the key's memory, before any fusion.

    displacement (B, 2, h, w) is (dx, dy) in feature cells from the current frame to the key
    frame, in `flownet.warp`'s convention F_cur(p) ~ M(p + displacement(p)): zero for
    copy-propagation, the predicted flow for flow_warp, sum_n S_n(p) p_n for LSTS.
    """

    feature: Tensor  # (B, C, h, w): the memory propagated to the current frame
    displacement: Tensor
    weights: Tensor | None = None  # LSTS: S_n(p0), (B, N, h, w)
    offsets: Tensor | None = None  # LSTS: p_n, (N, 2) as (dx, dy) cells


class VideoDetector(nn.Module):
    """LSTS video object detector and its baselines (variant chosen by `cfg.variant`)."""

    stride = 16

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        if cfg.num_classes < 1:
            raise ValueError("a detector needs num_classes >= 1 (0 is for run configs: the "
                             "dataset's class list decides)")
        self.cfg = cfg
        self.variant = cfg.variant
        # Layout of the preprocessed frames: torch.channels_last when the weights are too
        # (engine.inference), so the first convolution reads them without a reorder.
        self.input_memory_format = torch.contiguous_format
        self.transform = build_transform(cfg)
        self.backbone = ResNetBackbone(cfg.backbone, cfg.feat_channels, cfg.pretrained,
                                       cfg.freeze_bn, cfg.norm, cfg.freeze_stem, cfg.cut)
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

        self.spec: Variant = get_variant(cfg.variant)
        # Built in this order (offsets, SRFU, DFA): the random initialisation of a seed
        # depends on it.
        self.offsets: LSTSOffsets | None = None
        self.srfu: SRFU | None = None
        self.dfa: DFA | None = None
        self.flownet: FlowNetSmall | None = None
        if self.spec.uses_lsts:
            self.offsets = LSTSOffsets(init=cfg.offsets_init, grid_size=cfg.grid_size,
                                       grid_range=cfg.grid_range, num_points=cfg.num_points,
                                       learnable=self.spec.learnable_offsets)
            if self.spec.srfu:
                self.srfu = SRFU(self.offsets, C, cfg.embed_channels, cfg.lsts_impl,
                                 cfg.quality_hidden, cfg.quality_mid, cfg.memory_update_ratio)
            self.dfa = DFA(self.offsets, self.backbone.low_channels, C, cfg.embed_channels,
                           cfg.lsts_impl, cfg.low2high_hidden, cfg.quality_hidden,
                           cfg.quality_mid, fusion=self.spec.dfa_fusion)
        elif self.spec.nonkey == "flow":
            self.flownet = FlowNetSmall(tuple(cfg.flownet_channels),
                                        cfg.flownet_max_displacement)

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
        x = images.tensors.contiguous(memory_format=self.input_memory_format)
        return x, [tuple(s) for s in images.image_sizes], original

    def extract_low(self, x: Tensor) -> Tensor:
        """Low-level part (conv1 .. Conv4_3): the only backbone cost of a non-key frame."""
        return self.backbone.low(x)

    def extract_high(self, low: Tensor) -> Tensor:
        """High-level part (rest of res4, res5, feat_conv): key frames only."""
        return self.backbone.high(low)

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
        if self.srfu is not None and state is not None:
            memory = self.srfu(state.memory, high)
        return memory, KeyState(memory=memory, image=x if self.flownet is not None else None)

    def nonkey_step(self, x: Tensor, state: KeyState) -> Tensor:
        """A non-key frame: its task feature from its own low-level feature and the memory."""
        nonkey = self.spec.nonkey
        if nonkey == "key":
            return self.extract_high(self.extract_low(x))
        if nonkey in ("copy", "flow"):
            return self.propagate(x, state).feature
        assert self.dfa is not None
        return self.dfa(state.memory, self.extract_low(x))

    def propagate(self, x: Tensor, state: KeyState) -> Propagation:
        """The key memory propagated to non-key frame `x` (preprocessed) and the displacement
        this implies; for LSTS the aligned memory before DFA's fusion, with S and p_n of the
        key-to-current alignment (the same pass as inference's)."""
        nonkey = self.spec.nonkey
        memory = state.memory
        if nonkey == "copy":
            b, _, h, w = memory.shape
            return Propagation(memory, memory.new_zeros(b, 2, h, w))
        if nonkey == "flow":
            assert self.flownet is not None and state.image is not None
            flow = self.flownet(x, state.image, tuple(memory.shape[-2:]))
            return Propagation(warp(memory, flow), flow)
        if nonkey == "lsts":
            assert self.dfa is not None
            current = self.dfa.low2high(self.extract_low(x))
            aligned, S = self.dfa.align.align_and_weights(memory, current)
            p = self.dfa.align.offsets()
            return Propagation(aligned, expected_displacement(S, p), S, p)
        raise ValueError(f"variant {self.variant!r} propagates no feature: every frame is a key")

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
        single = len(frames) == 1 or self.spec.every_frame_key
        # Only the frames the variant reads are preprocessed: [current], [new, current] or all.
        used = ([frames[-1]] if single else list(frames) if self.srfu is not None
                else list(frames[1:]))
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
            if self.srfu is not None:  # old + new key share one backbone pass
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
    def detect_video(self, frames: Sequence[Tensor] | Iterable[Tensor], mode: str = "offline",
                     *, key_interval: int, progress: bool = False
                     ) -> list[dict[str, Tensor]]:
        """Per-frame detections ({"boxes", "scores", "labels"}, original pixels) of a video.

        offline: segments of k frames, each led by its middle frame as key (a frame before the
        key uses the future key's memory); frames are buffered one segment at a time.
        online: frames in order, keys at 0, k, 2k, ... (same as pushing to `stream`).
        single_frame treats every frame as a key frame. Runs in eval mode, without gradients.
        """
        k = self.effective_key_interval(key_interval)
        if mode not in ("offline", "online"):
            raise ValueError(f"mode must be 'offline' or 'online', got {mode!r}")
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
                            out.append(self.detect_features(feat, sizes[0], orig[0]))
                            bar.update(1)
                bar.close()
        finally:
            self.train(was_training)
        return out

    def effective_key_interval(self, requested: int) -> int:
        """Frames per key frame when `requested` is asked for (1 for a variant whose every
        frame is a key frame)."""
        if int(requested) < 1:
            raise ValueError(f"key_interval must be >= 1, got {requested}")
        return self.spec.key_interval(int(requested))

    def stream(self, key_interval: int) -> StreamingSession:
        """Online session: push frames one at a time (puts the detector in eval mode)."""
        return StreamingSession(self, key_interval)

    def detect_features(self, feature: Tensor, size: tuple[int, int], orig: tuple[int, int]
                        ) -> dict[str, Tensor]:
        """Head + rescaling of one frame's task feature: its detections in original pixels."""
        dets, _ = self.run_head(feature, [size])
        return self.postprocess(dets, [size], [orig])[0]

    # ------------------------------------------------------------------ introspection
    def sampling_offsets(self) -> Tensor:
        """The current LSTS sampling locations p_n, (N, 2) as (dx, dy) feature cells."""
        if self.offsets is None:
            raise ValueError(f"variant {self.variant!r} has no LSTS sampling locations")
        return self.offsets.p.detach().clone()

    def dfa_focus(self, key_frame: Tensor, targets: Sequence[Tensor]) -> Tensor:
        """S_n(p0) of DFA's alignment for each target frame, the key frame's high-level feature
        being the memory (as at inference): (T, N, h, w)."""
        if self.dfa is None:
            raise ValueError(f"variant {self.variant!r} has no LSTS alignment")
        with torch.no_grad():
            x, _, _ = self.preprocess([key_frame, *targets])
            memory = self.extract_high(self.extract_low(x[:1]))
            return torch.stack([
                self.dfa.align.weights(memory, self.dfa.low2high(self.extract_low(x[i:i + 1])))[0]
                for i in range(1, len(x))])

    # ------------------------------------------------------------------ parameters / checkpoints
    def offset_parameters(self) -> list[nn.Parameter]:
        """The learnable LSTS offsets (empty when absent or frozen): they train at 2.5x lr."""
        if self.offsets is None:
            return []
        return [p for p in self.offsets.parameters() if p.requires_grad]

    def param_groups(self, lr: float, weight_decay: float, offsets_lr_mult: float,
                     lr_mult: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
        """Optimizer parameter groups: the base group; one per module prefix named in `lr_mult`
        at its multiple of lr (a multiplier of 0 freezes the module: requires_grad False, no
        backward through it); the offsets p_n at `offsets_lr_mult` x lr without weight decay
        (they are positions, not weights: no decay pulls them to the centre)."""
        scaled: dict[str, list[nn.Parameter]] = {}
        for prefix, mult in (lr_mult or {}).items():
            params = [p for n, p in self.named_parameters() if n.startswith(prefix + ".")]
            if not params:
                raise ValueError(f"lr_mult: the model has no module {prefix!r}")
            if float(mult) == 0.0:
                for p in params:
                    p.requires_grad_(False)
            else:
                scaled[prefix] = [p for p in params if p.requires_grad]
        offsets = self.offset_parameters()
        special = {id(p) for p in offsets} | {id(p) for ps in scaled.values() for p in ps}
        base = [p for p in self.parameters() if p.requires_grad and id(p) not in special]
        groups = [{"params": base, "lr": lr, "weight_decay": weight_decay, "name": "base"}]
        groups += [{"params": ps, "lr": lr * float(lr_mult[k]), "weight_decay": weight_decay,
                    "name": k} for k, ps in scaled.items()]
        if offsets:
            groups.append({"params": offsets, "lr": lr * offsets_lr_mult, "weight_decay": 0.0,
                           "name": "offsets"})
        return groups

    def load_checkpoint_state(self, state_dict: dict[str, Tensor],
                              init_from_single_frame: bool = False) -> list[str]:
        """Load weights; returns the keys left at their fresh initialisation.

        Default: the checkpoint must match this architecture exactly, else ValueError listing
        missing, unexpected and shape-mismatched keys. init_from_single_frame=True (stage-2
        training): only backbone.* and head.* are loaded, and they must match exactly; every
        temporal module (offsets, alignments, quality nets, low2high, flownet) stays fresh and
        any temporal key in the checkpoint is ignored.
        Backbone weights saved at another cut load too (`ResNetBackbone.resplit_state`).
        """
        state_dict = self.backbone.resplit_state(state_dict, prefix="backbone.")
        own = self.state_dict()
        if init_from_single_frame:
            wanted = [k for k in own if k.startswith(("backbone.", "head."))]
            missing = [k for k in wanted if k not in state_dict]
            # A deeper backbone's extra blocks: another architecture, not weights to drop.
            unexpected = [k for k in state_dict
                          if k.startswith(("backbone.", "head.")) and k not in own]
            shape = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model "
                     f"{tuple(own[k].shape)}" for k in wanted
                     if k in state_dict and state_dict[k].shape != own[k].shape]
            if missing or unexpected or shape:
                raise ValueError(self._mismatch_message(missing, unexpected, shape,
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
        self.detector = detector
        self.key_interval = detector.effective_key_interval(key_interval)
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
        if det.spec.every_frame_key:
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
            out = det.detect_features(feat, sizes[0], orig[0])
        self._shape = tuple(frame.shape)
        self.index += 1
        return out


def build_detector(cfg: ModelConfig) -> VideoDetector:
    """The detector of `cfg` (see `variants.VARIANTS` for the variants)."""
    return VideoDetector(cfg)
