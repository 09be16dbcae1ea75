"""Model configuration: one flat dataclass a reader can follow (variants: `variants.py`).

`ModelConfig` holds plain values (no nested objects) so a YAML file maps onto it one key per
line. `paper_config()` is the paper's setting (ResNet-101, 1024-channel features, 600/1000
resize); `cpu_small_config()` is the setting the CPU presets train from scratch.

Normalisation choice for training from random init (`freeze_bn`, `norm`):
the paper freezes BatchNorm because ImageNet statistics come with the pretrained weights. With
no pretrained weights (this machine has no internet) a FrozenBatchNorm2d holds mean 0 / var 1 /
scale 1 / shift 0, i.e. the network has no normalisation at all. Measured at random init on a
3x128x224 input in [0, 1] (std of the res5 output): ResNet-101 frozen BN ~1e4 (the 23+3 residual
sums blow up), GroupNorm ~1.2; ResNet-18 frozen BN ~0.9, GroupNorm ~1.0. So ResNet-101 cannot be
trained from scratch with frozen BN; ResNet-18 keeps a sane scale but has no normalisation to
ease optimisation, and BatchNorm with one image per batch normalises by a single frame's
statistics (train/eval mismatch). The CPU presets therefore use `freeze_bn=False, norm="gn"`
(GroupNorm, batch-size independent, trained); the paper preset keeps the official frozen BN,
which is only meaningful with the ImageNet weights loaded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .backbone import low_split_index
from .variants import VARIANTS, architectures

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
# Fields added after runs were stamped, with the value those runs had without naming it:
# a stamp leaves such a field out while it holds that value (`stamp_model`), so the runs
# made before it existed stay valid.
LATER_FIELDS: dict[str, Any] = {"cut": None}


def stamp_model(model: Mapping[str, Any]) -> dict[str, Any]:
    """A model config dict as a stamp's inputs hold it: without the `LATER_FIELDS` that
    hold their old value."""
    return {k: v for k, v in model.items()
            if not (k in LATER_FIELDS and v == LATER_FIELDS[k])}


# head_extra fields that count something (proposals, RoIs, bins, samples): >= 1
_COUNT_SUFFIXES = ("_top_n_train", "_top_n_test", "_batch_size_per_image", "_pool_size",
                   "_sampling_ratio", "ohem_rois", "detections_per_img")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _bad(key: str, value: Any, need: str) -> None:
    raise ValueError(f"config: model.{key}={value!r}: {need}")


@dataclass
class ModelConfig:
    """Everything that defines the detector's architecture (not the training schedule)."""

    variant: str = "lsts"
    # Foreground classes; labels are 1..num_classes, 0 = background. 0 in a run config: the
    # dataset's class list decides (a detector needs the count).
    num_classes: int = 30
    # --- backbone ---
    backbone: str = "resnet101"
    pretrained: bool = True  # try torchvision ImageNet weights; fall back to random init
    freeze_bn: bool = True  # FrozenBatchNorm2d (the paper); False -> `norm` below, trained
    norm: str = "gn"  # used when freeze_bn is False: "gn" (GroupNorm, 32 groups) or "bn"
    freeze_stem: bool = True  # conv1 + res2 (layer1) frozen, as the paper
    feat_channels: int = 1024  # feat_conv output = the head's and the memory's channels
    # The res4 block the low part (a non-key frame's backbone) ends at, e.g. "res4b1";
    # None = the paper's rule (ResNet-101: res4b3; ResNet-18: res4a). See backbone.
    cut: str | None = None
    # --- LSTS ---
    embed_channels: int = 256  # f/g embedding channels of each alignment
    offsets_init: str = "uniform"  # "uniform" (grid_size^2 grid) or "gaussian" (num_points)
    grid_size: int = 9
    grid_range: float = 4.0  # uniform grid spans [-grid_range, grid_range] feature cells
    num_points: int = 40  # gaussian init: number of sampled offsets
    lsts_impl: str = "efficient"  # LSTSAlign implementation ("efficient" or "naive")
    # --- fusion ---
    quality_hidden: int = 256  # quality net: 1x1 conv to this many channels
    quality_mid: int = 16  # quality net: then 3x3 conv to this many, then 3x3 conv to 1
    low2high_hidden: int = 256  # low2high: 1x1 -> hidden -> 3x3 hidden -> 3x3 feat_channels
    # None = the quality net weighs memory vs. new feature per pixel (official code).
    # A float r in [0, 1] instead fixes the SRFU update: memory = r * aligned + (1 - r) * new.
    memory_update_ratio: float | None = None
    # --- flow_warp baseline (models.flownet.FlowNetSmall) ---
    # Widths of its three stride-2 tower convs and of its predictor.
    flownet_channels: tuple[int, ...] = (32, 64, 128, 128)
    # Reach of its cost volume in stride-8 cells (+-32 px at stride 8 for 4): (2d+1)^2
    # displacements. Only flow variants record it (engine.train._comparable).
    flownet_max_displacement: int = 4
    # --- input transform (torchvision GeneralizedRCNNTransform) ---
    min_size: int = 600
    max_size: int = 1000
    # --- head (passed to lsts_lib.models.head.HeadConfig) ---
    anchor_sizes: tuple[int, ...] = (128, 256, 512)  # = scales (8, 16, 32) x stride 16
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    ohem_rois: int = 128
    test_nms_thresh: float = 0.3
    detections_per_img: int = 300
    # Any other HeadConfig field (e.g. RPN pre/post NMS counts) by name.
    head_extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad field."""
        if self.variant not in architectures():
            runs = {n: v.base for n, v in VARIANTS.items() if v.base}
            raise ValueError(f"unknown model variant {self.variant!r}; choose one of "
                             f"{architectures()} (runs of one of them, {runs}, are chosen "
                             "with --variant)")
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.cut is not None:
            try:
                low_split_index(self.backbone, self.cut)
            except ValueError as exc:
                raise ValueError(f"config: model.cut={self.cut!r}: {exc}") from None
        if self.norm not in ("gn", "bn"):
            raise ValueError(f"norm must be 'gn' or 'bn', got {self.norm!r}")
        if self.offsets_init not in ("uniform", "gaussian"):
            raise ValueError(f"offsets_init must be 'uniform' or 'gaussian', got {self.offsets_init!r}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 1 (0: the dataset decides), got "
                             f"{self.num_classes}")
        if self.memory_update_ratio is not None and not 0.0 <= self.memory_update_ratio <= 1.0:
            raise ValueError(f"memory_update_ratio must be in [0, 1] or None, got {self.memory_update_ratio}")
        for name in ("feat_channels", "embed_channels", "quality_hidden", "quality_mid",
                     "low2high_hidden", "min_size", "max_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.min_size > self.max_size:
            _bad("min_size", self.min_size, f"must be <= model.max_size ({self.max_size})")
        for name in ("grid_size", "num_points", "ohem_rois", "detections_per_img",
                     "flownet_max_displacement"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                _bad(name, getattr(self, name), "must be an integer >= 1")
        if not _is_num(self.grid_range) or self.grid_range <= 0:
            _bad("grid_range", self.grid_range, "must be a number > 0 (feature cells)")
        if not _is_num(self.test_nms_thresh) or not 0 < self.test_nms_thresh <= 1:
            _bad("test_nms_thresh", self.test_nms_thresh, "must be a number in (0, 1]")
        for name in ("anchor_sizes", "aspect_ratios"):
            values = getattr(self, name)
            if not values or not all(_is_num(v) and v > 0 for v in values):
                _bad(name, list(values), "must be a non-empty list of numbers > 0")
        for key, value in self.head_extra.items():
            if key.endswith(_COUNT_SUFFIXES) and (not _is_int(value) or value < 1):
                _bad(f"head_extra.{key}", value, "must be an integer >= 1")
            if key.endswith("_thresh") and (not _is_num(value) or not 0 <= value <= 1):
                _bad(f"head_extra.{key}", value, "must be a number in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists) ready for YAML/JSON."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a dict (e.g. a YAML `model:` section); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig key(s) {unknown}; valid keys: {sorted(names)}"
            )
        kw = dict(d)
        for k in ("anchor_sizes", "aspect_ratios", "flownet_channels"):
            if k in kw and kw[k] is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def with_classes(self, dataset_classes: int) -> ModelConfig:
        """This config for a dataset of `dataset_classes` classes: num_classes 0 (a run
        config's "the dataset decides") takes the dataset's count; another count than the
        dataset's is an error."""
        if self.num_classes and self.num_classes != dataset_classes:
            raise ValueError(f"config model.num_classes={self.num_classes} but the dataset "
                             f"lists {dataset_classes} classes")
        return self.replace(num_classes=dataset_classes)


def paper_config(variant: str = "lsts", **overrides: Any) -> ModelConfig:
    """The paper's setting: ResNet-101, frozen BN, 1024-ch features, 600/1000, 30 VID classes."""
    return ModelConfig(variant=variant, **overrides)


def cpu_small_config(variant: str = "lsts", **overrides: Any) -> ModelConfig:
    """A from-scratch CPU setting: ResNet-18, GroupNorm, 256-ch features, ~180p frames."""
    base: dict[str, Any] = dict(
        variant=variant,
        backbone="resnet18",
        pretrained=False,
        freeze_bn=False,
        norm="gn",
        freeze_stem=False,  # frozen random conv1/res2 would never learn
        feat_channels=256,
        embed_channels=64,
        quality_hidden=64,
        quality_mid=16,
        low2high_hidden=128,
        flownet_channels=(16, 32, 64, 64),
        min_size=180,
        max_size=320,
        anchor_sizes=(32, 64, 128),
        ohem_rois=64,
        detections_per_img=100,
    )
    base.update(overrides)
    return ModelConfig(**base)


def tiny_config(variant: str = "lsts", **overrides: Any) -> ModelConfig:
    """Smallest setting for unit tests (inputs ~128x224)."""
    base: dict[str, Any] = dict(
        feat_channels=64,
        embed_channels=16,
        quality_hidden=16,
        quality_mid=8,
        low2high_hidden=32,
        flownet_channels=(8, 16, 16, 16),
        grid_size=3,
        grid_range=1.0,
        num_points=5,
        min_size=128,
        max_size=224,
        anchor_sizes=(32, 64, 128),
        ohem_rois=32,
        detections_per_img=50,
        num_classes=3,
    )
    base.update(overrides)
    return cpu_small_config(variant, **base)
