"""The variant catalogue: every configuration the project compares, one frozen entry each.

A variant says how a non-key frame gets its high-level feature (`nonkey`), whether key
frames go through SRFU (key-to-key alignment + fusion into the memory), whether non-key
frames go through DFA fusion, and whether the LSTS offsets p_n learn. The detector, the
benchmark, the report, the results tables and the notebooks all read this table; adding a
variant is one entry here.

Some entries are runs of another architecture with other model settings (`lsts_gaussian` is
`lsts` with the gaussian N=40 initialisation): their `base` names the architecture the
detector builds and `model` the ModelConfig values they set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .config import ModelConfig

__all__ = ["Variant", "VARIANTS", "STAGE1", "OWN_ABLATION", "architectures", "check_entry",
           "get_variant", "run_overrides", "label", "flow_training"]

NonKey = Literal["key", "copy", "flow", "lsts"]
# The fields the detector builds from: an entry with a `base` is built as its base, so these
# must equal the base's (see `check_entry`).
ARCHITECTURE_FLAGS = ("nonkey", "srfu", "dfa_fusion", "learnable_offsets")


@dataclass(frozen=True)
class Variant:
    name: str
    label: str  # the name tables and figures show
    summary: str
    # How a non-key frame gets its feature: "key" (every frame is a key frame), "copy" (the key's
    # feature as is), "flow" (warped by a predicted flow), "lsts" (LSTS-aligned memory).
    nonkey: NonKey
    srfu: bool = False  # key frames: memory <- quality-fused [LSTS(memory -> F_k), F_k]
    dfa_fusion: bool = False  # non-key frames: quality-fused [LSTS(memory -> L), L]
    learnable_offsets: bool = True  # p_n trained (False: frozen at their initialisation)
    base: str | None = None  # the architecture this run builds (None: itself)
    model: Mapping[str, Any] = field(default_factory=dict)  # ModelConfig values it sets

    @property
    def architecture(self) -> str:
        return self.base or self.name

    @property
    def uses_lsts(self) -> bool:
        return self.nonkey == "lsts"

    @property
    def every_frame_key(self) -> bool:
        """Key interval 1 whatever the config says: a single-frame detector."""
        return self.nonkey == "key"

    def key_interval(self, k: int) -> int:
        """The key interval this variant runs at when `k` is asked for."""
        return 1 if self.every_frame_key else k

    def model_values(self) -> dict[str, Any]:
        """The ModelConfig values this variant sets: its architecture and its own settings."""
        return {"variant": self.architecture, **self.model}

    def configure(self, model: ModelConfig) -> ModelConfig:
        """`model` (any size) as this variant's model configuration."""
        return model.replace(**self.model_values())


# The ablations below are this reproduction's own definitions (PAPER_NOTES: the official code
# trains every variant in one stage and has no switches for them); their summaries say so.
OWN_ABLATION = "This project's ablation: the official code has no such switch."
_OURS = " " + OWN_ABLATION

_LSTS = Variant(
    "lsts", "LSTS (uniform, N=81)",
    "Full LSTS: SRFU at key frames + DFA at non-key frames, learnable offsets.",
    nonkey="lsts", srfu=True, dfa_fusion=True)

# In the order tables list them. The first is the stage-1 model every other run starts from
# in the SynthVID presets' two-stage protocol; the paper preset trains each from ImageNet.
VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("single_frame", "Single-frame R-FCN",
            "R-FCN on every frame: every frame is a key frame, no temporal modules.",
            nonkey="key"),
    Variant("copy_prop", "Copy-propagation",
            "Non-key frames reuse the key frame's high-level feature as is (no alignment).",
            nonkey="copy"),
    Variant("flow_warp", "DFF flow warp",
            "DFF-style: a small FlowNet-style network predicts flow from the current frame to "
            "the key frame (images in, stride-16 flow out) and the key feature is bilinearly "
            "warped (grid_sample); the FlowNet trains with the detector by the detection "
            "loss.",
            nonkey="flow"),
    dataclasses.replace(
        _LSTS, name="lsts_fixed", label="LSTS, frozen offsets", learnable_offsets=False,
        summary="LSTS (SRFU + DFA) with the sampling offsets frozen at their initialisation."
                + _OURS),
    dataclasses.replace(_LSTS, model={"offsets_init": "uniform"}),
    dataclasses.replace(
        _LSTS, name="lsts_gaussian", label="LSTS (gaussian, N=40)", base="lsts",
        model={"offsets_init": "gaussian"},
        summary="Full LSTS with the gaussian initialisation of the offsets (N draws)."),
    dataclasses.replace(
        _LSTS, name="lsts_no_srfu", label="LSTS without SRFU", srfu=False,
        summary="LSTS without the recursive memory: at a key frame the memory is the new "
                "key's high-level feature only (no key-to-key alignment or fusion)." + _OURS),
    dataclasses.replace(
        _LSTS, name="lsts_no_dfa", label="LSTS without DFA fusion", dfa_fusion=False,
        summary="LSTS without dense aggregation: a non-key frame's feature is the "
                "LSTS-aligned memory alone (the current frame's low2high feature only guides "
                "the similarity, it is not fused)." + _OURS),
)}
STAGE1 = "single_frame"


def flow_training(flow_init_from: str | None) -> str:
    """How a flow variant's FlowNet was trained, from its run's train.flow_init_from."""
    if flow_init_from:
        return ("Its FlowNet starts from weights pretrained on SynthVID's true flow "
                "(train.flow_init_from).")
    return "Its FlowNet starts from scratch: no flow supervision."


def check_entry(v: Variant, catalogue: Mapping[str, Variant]) -> None:
    """Raise ValueError when an entry with a `base` is not a run of that architecture: the
    base must be a catalogue entry of its own architecture, and every architecture flag
    equal to the base's (the detector builds the base's entry, so another flag would be
    silently ignored)."""
    if v.base is None:
        return
    base = catalogue.get(v.base)
    if base is None or base.base is not None:
        raise ValueError(f"variant {v.name!r}: base {v.base!r} is not an architecture of the "
                         f"catalogue (one of {[n for n, b in catalogue.items() if b.base is None]})")
    differ = [f"{f}={getattr(v, f)!r} (base: {getattr(base, f)!r})"
              for f in ARCHITECTURE_FLAGS if getattr(v, f) != getattr(base, f)]
    if differ:
        raise ValueError(f"variant {v.name!r}: the detector builds its base {v.base!r}, so "
                         f"its own {', '.join(differ)} would be ignored; give it the base's "
                         "flags, or make it an architecture of its own (no base)")


for _v in VARIANTS.values():
    check_entry(_v, VARIANTS)


def architectures() -> list[str]:
    """The names `model.variant` accepts: the entries that are their own architecture."""
    return [n for n, v in VARIANTS.items() if v.base is None]


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {list(VARIANTS)}")
    check_entry(VARIANTS[name], VARIANTS)  # also an entry added after import
    return VARIANTS[name]


def run_overrides(name: str) -> dict[str, Any]:
    """The dotted config overrides that turn a preset into the run of variant `name`."""
    return {f"model.{k}": x for k, x in get_variant(name).model_values().items()}


def label(name: str) -> str:
    """Reader-facing name of a run (the name itself for a run outside the catalogue)."""
    return VARIANTS[name].label if name in VARIANTS else name
