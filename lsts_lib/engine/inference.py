"""Inference speed options shared by `lsts bench` and `lsts detect`.

    --channels-last   weights and frames in torch.channels_last (NHWC) memory layout
    --amp [bf16|fp16] autocast: convolutions and matrix products in 16-bit floats (bf16 by
                      default; on a CPU only where oneDNN has native kernels for it)
    --compile         torch.compile of the backbone parts, the LSTS alignments, low2high, the
                      quality nets and FlowNet (the head, with its data-dependent proposal
                      counts and NMS, stays eager); the first call of each compiles
    --fold-bn         each frozen BatchNorm folded into the convolution before it
                      (`models.backbone.fold_bn`); GroupNorm cannot be folded

The default, none of them, is float32 in NCHW layout ("fp32_nchw"). Options change how the
same weights run, not the model: up to float rounding (bf16 keeps 8 significant bits) the
detections are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from lsts_lib.engine.env import cpu_flags
from lsts_lib.models.backbone import fold_bn
from lsts_lib.models.detector import VideoDetector

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_AMP = "bf16"  # what a bare --amp asks for
DEFAULT_MODE = "fp32_nchw"
# CPU flags of native 16-bit float kernels (oneDNN), used where torch cannot say itself.
_CPU_AMP_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


@dataclass(frozen=True)
class InferenceOptions:
    channels_last: bool = False
    amp: str | None = None  # None (float32) or a key of AMP_DTYPES
    compile: bool = False
    fold_bn: bool = False
    compile_backend: str = "inductor"  # "eager" compiles nothing (tests of the wiring)

    def __post_init__(self) -> None:
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise ValueError(f"--amp {self.amp}: choose one of {', '.join(AMP_DTYPES)}")

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_MODE

    @property
    def name(self) -> str:
        """"fp32_nchw" for the default, else the options joined by "+", e.g.
        "channels_last+amp_bf16"."""
        parts = [p for p, on in (("channels_last", self.channels_last),
                                 (f"amp_{self.amp}", self.amp is not None),
                                 ("compile", self.compile), ("fold_bn", self.fold_bn)) if on]
        return "+".join(parts) or DEFAULT_MODE

    def modes(self) -> list[InferenceOptions]:
        """What a benchmark with these options times besides the default: each option alone
        and, when more than one is on, all of them together."""
        base = InferenceOptions(compile_backend=self.compile_backend)
        singles = [InferenceOptions(**{**asdict(base), field: value})
                   for field, value in (("channels_last", self.channels_last),
                                        ("amp", self.amp), ("compile", self.compile),
                                        ("fold_bn", self.fold_bn)) if value]
        return singles + ([self] if len(singles) > 1 else [])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The autocast context of these options (a no-op without --amp)."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=AMP_DTYPES[self.amp])


def native_amp(device: torch.device, amp: str) -> bool:
    """Whether `device` runs `amp` ("bf16"/"fp16") convolutions natively: CUDA fp16 always,
    bf16 where torch says so; a CPU where oneDNN has kernels for it (AVX512-BF16 or AMX for
    bf16, AVX512-FP16 or AMX-FP16 for fp16). Elsewhere autocast emulates it, slower than
    float32."""
    if device.type == "cuda":
        return amp == "fp16" or torch.cuda.is_bf16_supported()
    probe = getattr(torch.ops.mkldnn, f"_is_mkldnn_{amp}_supported", None)
    if probe is not None:
        try:
            return bool(probe())
        except RuntimeError:
            pass
    return any(f in (cpu_flags() or []) for f in _CPU_AMP_FLAGS[amp])


def amp_unsupported(device: torch.device, amp: str) -> str | None:
    """None where `device` runs `amp` natively, else why not, from the capability probe
    (e.g. "not supported on this CPU (no avx512_bf16/amx_bf16)")."""
    if native_amp(device, amp):
        return None
    if device.type == "cuda":
        return f"not supported on this GPU ({torch.cuda.get_device_name(device)})"
    return f"not supported on this CPU (no {'/'.join(_CPU_AMP_FLAGS[amp])})"


def to_argv(options: InferenceOptions) -> list[str]:
    """The `lsts bench`/`lsts detect` flags that ask for `options` (`from_args`'s inverse)."""
    return [*(["--channels-last"] if options.channels_last else []),
            *(["--amp", options.amp] if options.amp else []),
            *(["--compile"] if options.compile else []),
            *(["--fold-bn"] if options.fold_bn else [])]


def check_options(options: InferenceOptions, device: torch.device) -> None:
    """Refuse, in one line, what this machine cannot run as asked."""
    if options.amp is not None and not native_amp(device, options.amp):
        where = ("this GPU" if device.type == "cuda" else
                 f"this CPU ({torch.backends.cpu.get_cpu_capability()}; needs "
                 f"{' or '.join(_CPU_AMP_FLAGS[options.amp])})")
        raise ValueError(f"--amp {options.amp}: {where} has no native {options.amp} kernels; "
                         "autocast would emulate them, slower than float32")
    if options.compile and options.compile_backend == "inductor":
        if device.type == "cuda":
            from torch.utils._triton import has_triton

            if not has_triton():
                raise ValueError("--compile on CUDA needs Triton (pip install triton)")
        elif not any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "clang++") if c):
            raise ValueError("--compile on CPU needs a C++ compiler (g++ or clang++; or set "
                             "CXX) for torch inductor's kernels")


def compile_targets(model: VideoDetector) -> dict[str, nn.Module]:
    """The modules `--compile` compiles (their forward, in place), by name."""
    out = {"backbone.low": model.backbone.low, "backbone.high": model.backbone.high}
    for part in ("srfu", "dfa"):
        mod = getattr(model, part)
        for child in ("align", "low2high", "quality"):
            if mod is not None and getattr(mod, child, None) is not None:
                out[f"{part}.{child}"] = getattr(mod, child)
    if model.flownet is not None:
        out["flownet"] = model.flownet
    return out


def prepare(model: VideoDetector, options: InferenceOptions
            ) -> tuple[VideoDetector, dict[str, str]]:
    """(the model to run with `options`, a note per option on what it did). With --fold-bn
    the model is a folded copy; the other options change `model` in place."""
    notes: dict[str, str] = {}
    if options.fold_bn:
        model, count = fold_bn(model)
        groupnorms = sum(isinstance(m, nn.GroupNorm) for m in model.modules())
        notes["fold_bn"] = f"{count} BatchNorm layers folded into their convolutions"
        if groupnorms:
            notes["fold_bn"] += (f"; {groupnorms} GroupNorm layers left (normalised by each "
                                 "input's statistics: cannot be folded)")
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
        model.input_memory_format = torch.channels_last
        notes["channels_last"] = "weights and preprocessed frames in channels_last"
    if options.amp is not None:
        notes["amp"] = f"autocast {AMP_DTYPES[options.amp]}"
    if options.compile:
        targets = compile_targets(model)
        for module in targets.values():
            module.compile(backend=options.compile_backend)
        notes["compile"] = (f"torch.compile ({options.compile_backend}): "
                            f"{', '.join(targets)}; the head stays eager")
    return model, notes


def add_arguments(parser: argparse.ArgumentParser, description: str) -> None:
    """--channels-last, --amp, --compile, --fold-bn (the module docstring says what each
    does); `description` says how the command uses them."""
    group = parser.add_argument_group("inference speed options", description)
    group.add_argument("--channels-last", action="store_true",
                       help="model and frames in torch.channels_last layout")
    group.add_argument("--amp", nargs="?", const=DEFAULT_AMP, default=None, choices=list(AMP_DTYPES),
                       help="autocast to bf16 (the default) or fp16; refused where the device "
                            "has no native kernels for it")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the backbone, LSTS and fusion modules (compiling "
                            "takes minutes; timings exclude it)")
    group.add_argument("--fold-bn", action="store_true",
                       help="fold frozen BatchNorm into the convolutions (GroupNorm is left)")


def from_args(args: argparse.Namespace) -> InferenceOptions:
    return InferenceOptions(channels_last=args.channels_last, amp=args.amp,
                            compile=args.compile, fold_bn=args.fold_bn)
