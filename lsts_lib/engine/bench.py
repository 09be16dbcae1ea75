"""`lsts bench`: per-stage time, FLOPs and peak memory of LSTS and every baseline.

    lsts bench --config report --device cpu --json runs/report/bench_cpu.json
    lsts bench --config report --sizes paper --variants single_frame lsts --repeats 3

For each size ("preset": the config's model at min_size x max_size; "paper": the paper's model,
ResNet-101 at 600x1000) and each named variant of the config, a synthetic frame (no dataset
needed, random weights: speed does not depend on them) goes through the detector's public
stages one at a time:

  key frame     preprocess, low (conv1..Conv4_3), high (rest of res4, res5, feat_conv),
                srfu_align + srfu_fuse (LSTS variants with SRFU), head (RPN + R-FCN + NMS)
  non-key frame preprocess, then per variant: low + high (single_frame: every frame is a key),
                nothing (copy_prop), flow + warp (flow_warp), low + low2high + dfa_align
                [+ dfa_fuse] (LSTS variants); then head

Speed-only configurations (`SPEED_ONLY`: "flow_warp_flownet_s", DFF's flow warp with a
FlowNet-S-sized flow network on half-resolution frames, `models.flownet.FlowNetS`) are timed
beside the variants; they are never trained, and their results say so (`speed_only`, `label`).

Each stage: one warm-up call, then the median of `repeats` timed calls (`ms`; every call's
time is kept in `ms_repeats`, so a reader can see the spread). Stages shared by every variant
of a size (preprocess, low, high, head) are measured once per size. A whole key and non-key
frame are also timed `repeats` times per variant, after its stages (`ms_measured`, their
median, and `ms_measured_repeats`), as a check of the sums. The amortised per-frame time at
key interval k is (key + (k - 1) * non-key) / k. FLOPs come from
torch.utils.flop_counter.FlopCounterMode (convolutions and matrix products; torchvision's
RoI/NMS ops and grid sampling are not counted). Peak memory is the peak of live tensor bytes
created during the frame (a dispatch-level tracker on CPU, torch.cuda.max_memory_allocated on
CUDA), weights excluded.

Speed options (`--channels-last`, `--amp`, `--compile`, `--fold-bn`; engine.inference) are
timed as modes beside the default float32 NCHW run, in the same run: each option alone and,
when several are given, all together (`--mode-sizes`, `--mode-variants`: only at these sizes
and for these variants). Each mode's results have the default's layout plus its
speed-up over the default; under --compile the first call of each stage (the warm-up)
compiles and is not timed, and peak memory is not measured (compiled kernels allocate outside
the tracker).

The backbone is also timed block by block at each size (`blocks`: conv1, res2, res3, each res4
block by its paper name res4a, res4b1, ..., res5, feat_conv; `ResNetBackbone.blocks`), each
block timed like a stage (median of `repeats` after one warm-up call, here the call that
counts its FLOPs) on the output of the block before it, with its part ("low" up to the
configured cut, "high" after it), output shape, receptive field and stride. The FLOPs of
a part's blocks add up exactly to that part's stage; their times add up to about the stage's
(each is a separate median). From them `results.cut_cost` costs cutting the backbone at any
other res4 block without rebuilding it.

The machine's own peak is measured in the same run with the same threads (`machine_peak`: a
large GEMM and the 3x3 convolutions of ResNet-101's bottlenecks at the paper's input), and
every stage and frame reports its achieved GFLOP/s (counted FLOPs / median time) and that
rate's fraction of the peak. Counted FLOPs leave out RoI/NMS/grid sampling and elementwise
work, so a fraction is a lower bound on how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lsts_lib.argtypes import positive_int
from lsts_lib.data.vid import VID_CLASSES
from lsts_lib.engine import inference
from lsts_lib.engine.config import RunConfig, load_config
from lsts_lib.engine.env import cpu_capability, cpu_flags, cpu_model
from lsts_lib.engine.inference import AMP_DTYPES, InferenceOptions
from lsts_lib.engine.measure import (
    counted,
    flops_of,
    machine_peak,
    peak_mb,
    sync,
    time_samples,
    timing,
)
from lsts_lib.models.backbone import stage_receptive_fields
from lsts_lib.models.config import ModelConfig, stamp_model
from lsts_lib.models.detector import PAPER_INPUT, build_detector
from lsts_lib.models.flownet import FlowNetS, warp
from lsts_lib.models.variants import STAGE1, VARIANTS, get_variant

# Stage -> the category of the table (low-level backbone, high-level backbone, LSTS
# alignment, fusion, head; everything else is "other").
CATEGORY = {
    "preprocess": "other", "low": "low_backbone", "high": "high_backbone",
    "srfu_align": "lsts_alignment", "dfa_align": "lsts_alignment",
    "srfu_fuse": "fusion", "dfa_fuse": "fusion", "low2high": "fusion",
    "flow": "other", "warp": "other", "head": "head",
}
CATEGORIES = ("low_backbone", "high_backbone", "lsts_alignment", "fusion", "head", "other")
# Bumped when what a benchmark measures or records changes (2: machine peak, rates, provenance;
# 3: per-block backbone cost; 5: flow_warp's FlowNet became a small FlowNet-C; 6: every timed
# call kept (`ms_repeats`), whole frames timed `repeats` times instead of once): part of a
# stamp's inputs, so `lsts report` remeasures instead of reusing an older JSON.
BENCH_CODE_VERSION = 6
SPEEDUP = f"speedup_vs_{inference.DEFAULT_MODE}"  # a mode's key: its speed-up over the default


@dataclass(frozen=True)
class SpeedOnly:
    """A configuration timed here but never trained (random weights; no accuracy): the
    catalogue variant it runs as, with another flow network swapped in."""

    base: str
    label: str
    flownet: Callable[[], nn.Module]


# DFF's own flow network beside the trained flow_warp's small one: its share of ResNet-101's
# cost is what a DFF speed-up is made of.
SPEED_ONLY = {"flow_warp_flownet_s": SpeedOnly("flow_warp", "DFF flow warp (FlowNet-S size)",
                                               FlowNetS)}


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "cpu": cpu_model(), "cpu_flags": cpu_flags(),
                            "cpu_capability": cpu_capability(), "cpu_cores": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    info["name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else info["cpu"]
    return info


def backbone_conv_shapes(hw: tuple[int, int] = PAPER_INPUT
                         ) -> dict[str, tuple[int, int, int, int]]:
    """(channels, height, width, dilation) of the 3x3 convolution of each ResNet-101 stage's
    bottlenecks at input `hw`: res2..res4 at strides 4, 8, 16, res5 dilated at stride 16."""
    def at(stride: int) -> tuple[int, int]:
        return -(-hw[0] // stride), -(-hw[1] // stride)
    return {"res2": (64, *at(4), 1), "res3": (128, *at(8), 1), "res4": (256, *at(16), 1),
            "res5": (512, *at(16), 2)}


def add_rates(entry: dict[str, Any], peak_gflop_per_s: float) -> None:
    """Add `gflop_per_s` and `fraction_of_peak` to a timed entry ({"ms", "flops", ...}) in
    place; both None where no FLOPs are counted (preprocess, warp: nothing to rate)."""
    if not entry["flops"] or entry["ms"] <= 0:
        entry["gflop_per_s"] = entry["fraction_of_peak"] = None
        return
    rate = entry["flops"] / entry["ms"] / 1e6
    entry["gflop_per_s"] = round(rate, 2)
    entry["fraction_of_peak"] = round(rate / peak_gflop_per_s, 4)


def rate_results(results: dict[str, Any], peak_gflop_per_s: float) -> None:
    """`add_rates` to every stage and to the key and non-key frame of every variant."""
    for res in results.values():
        for kind in ("key", "nonkey"):
            for stage in res[kind]["stages"].values():
                add_rates(stage, peak_gflop_per_s)
            add_rates(res[kind], peak_gflop_per_s)


def size_model(run: RunConfig, size: str) -> tuple[ModelConfig, tuple[int, int]]:
    """The model (before a variant is applied) and input (height, width) a size benchmarks:
    "preset" the run config's model at its min_size x max_size, "paper" the paper preset's
    model at 600x1000. No dataset here: the class count is ImageNet VID's."""
    if size == "preset":
        model = run.model
        hw = (model.min_size, model.max_size)
    elif size == "paper":
        model = RunConfig.from_dict(load_config("paper")).model
        hw = PAPER_INPUT
    else:
        raise ValueError(f"unknown size {size!r}: use preset or paper")
    # Speed does not depend on the weights: never download them here.
    return model.with_classes(VID_CLASSES.num_classes).replace(pretrained=False), hw


def bench_inputs(config: str | Path | Mapping[str, Any], sizes: Iterable[str]
                 ) -> dict[str, Any]:
    """What a benchmark of `config` at `sizes` reads besides its arguments (a stamp's
    inputs): the benchmark code's version, the eval settings it defaults to and the resolved
    model of each size."""
    run = RunConfig.from_dict(load_config(config))
    return {"bench_code": BENCH_CODE_VERSION,
            "eval": {"key_interval": run.eval.key_interval,
                     "bench_repeats": run.eval.bench_repeats},
            "models": {size: stamp_model(size_model(run, size)[0].to_dict()) for size in sizes}}


def synthetic_image(hw: tuple[int, int], seed: int, device: torch.device) -> torch.Tensor:
    """The benchmark's frame: uniform noise of size `hw` (speed does not depend on content)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(3, *hw, generator=gen).to(device)


def bench_blocks(model_cfg: ModelConfig, hw: tuple[int, int], repeats: int,
                 device: torch.device, seed: int = 0, progress: bool | None = None
                 ) -> list[dict[str, Any]]:
    """Per-block cost of `model_cfg`'s backbone on the frame `bench_size` uses: one entry per
    block of `ResNetBackbone.blocks` in order, {name, part (low | high), ms, ms_repeats, flops,
    channels, out_hw, receptive_field, stride}. Each block runs on the previous block's
    output, timed like every stage (`ms`: median of `repeats`, each call in `ms_repeats`);
    the call that counts its FLOPs and makes the next block's input is its warm-up (as in
    `measure.kernel_rate`), which keeps the paper size at 1 + `repeats` backbone passes."""
    torch.manual_seed(seed)
    model = build_detector(get_variant(STAGE1).configure(model_cfg)).to(device).eval()
    backbone = model.backbone
    blocks = backbone.blocks()
    rf = stage_receptive_fields(backbone, blocks)
    n_low = list(blocks).index(backbone.cut) + 1
    out = []
    with torch.no_grad():
        y = model.preprocess([synthetic_image(hw, seed, device)])[0]
        bar = tqdm(list(blocks.items()), desc=f"blocks {hw[0]}x{hw[1]}",
                   disable=progress is False)
        for i, (name, block) in enumerate(bar):
            fn = partial(block, y)
            flops, y = counted(fn)
            sync(device)
            out.append({"name": name, "part": "low" if i < n_low else "high",
                        **timing(time_samples(fn, repeats, device, warmup=False)),
                        "flops": flops, "channels": y.shape[1], "out_hw": list(y.shape[-2:]),
                        "receptive_field": rf[name][0], "stride": rf[name][1]})
    return out


class FrameBench:
    """Stage closures of one detector on one synthetic frame."""

    def __init__(self, model, image: torch.Tensor) -> None:
        self.m = model
        with torch.no_grad():
            self.x, self.sizes, self.orig = model.preprocess([image])
            self.low = model.extract_low(self.x)
            self.high = model.extract_high(self.low)
            _, self.state = model.key_step(self.x, None, high=self.high)
            self.l2h = model.dfa.low2high(self.low) if model.dfa is not None else None
        self.image = image

    def key_stages(self, shared: bool) -> dict[str, Callable[[], Any]]:
        m, s = self.m, {}
        if shared:
            s["preprocess"] = lambda: m.preprocess([self.image])
            s["low"] = lambda: m.extract_low(self.x)
            s["high"] = lambda: m.extract_high(self.low)
            s["head"] = lambda: m.postprocess(m.run_head(self.high, self.sizes)[0], self.sizes,
                                              self.orig)
        srfu, memory = m.srfu, self.state.memory
        if srfu is not None:
            aligned = srfu.align(memory, self.high)
            s["srfu_align"] = lambda: srfu.align(memory, self.high)
            s["srfu_fuse"] = lambda: srfu.fuse(aligned, self.high)
        return s

    def nonkey_stages(self) -> dict[str, Callable[[], Any]]:
        m, s = self.m, {}
        flownet, dfa, memory = m.flownet, m.dfa, self.state.memory
        if flownet is not None:
            size = tuple(memory.shape[-2:])
            fl = flownet(self.x, self.state.image, size)
            s["flow"] = lambda: flownet(self.x, self.state.image, size)
            s["warp"] = lambda: warp(memory, fl)
        elif dfa is not None:
            aligned = dfa.align(memory, self.l2h)
            s["low2high"] = lambda: dfa.low2high(self.low)
            s["dfa_align"] = lambda: dfa.align(memory, self.l2h)
            if dfa.quality is not None:
                s["dfa_fuse"] = lambda: dfa.fuse(aligned, self.l2h)
        return s

    def whole_key(self) -> Any:
        m = self.m
        x, sizes, orig = m.preprocess([self.image])
        feat, _ = m.key_step(x, self.state)
        return m.postprocess(m.run_head(feat, sizes)[0], sizes, orig)

    def whole_nonkey(self) -> Any:
        m = self.m
        x, sizes, orig = m.preprocess([self.image])
        feat = m.nonkey_step(x, self.state)
        return m.postprocess(m.run_head(feat, sizes)[0], sizes, orig)


def _measure(stages: dict[str, Callable[[], Any]], repeats: int, device: torch.device,
             memory: bool = True) -> dict[str, dict[str, Any]]:
    out = {}
    for name, fn in stages.items():
        out[name] = {**timing(time_samples(fn, repeats, device)), "flops": flops_of(fn),
                     "peak_mb": round(peak_mb(fn, device), 3) if memory else None}
    return out


def bench_size(model_cfg: ModelConfig, variants: list[str],
               hw: tuple[int, int], key_interval: int, repeats: int, device: torch.device,
               seed: int = 0, progress: bool | None = None,
               options: InferenceOptions | None = None) -> dict[str, Any]:
    """Benchmark every variant of `model_cfg` at one input size, run with `options` (default:
    float32 NCHW); returns {variant: results}, each with the notes of `inference.prepare`."""
    options = options or InferenceOptions()
    image = synthetic_image(hw, seed, device)
    results: dict[str, Any] = {}
    shared: dict[str, dict[str, float]] | None = None
    bar = tqdm(list(variants), desc=f"bench {hw[0]}x{hw[1]} {options.name}",
               disable=progress is False)
    memory = not options.compile
    for name in bar:
        bar.set_postfix_str(name)
        torch.manual_seed(seed)
        only = SPEED_ONLY.get(name)
        mcfg = get_variant(only.base if only else name).configure(model_cfg)
        detector = build_detector(mcfg)
        if only:
            detector.flownet = only.flownet()
        model, notes = inference.prepare(detector.to(device).eval(), options)
        with torch.no_grad(), options.autocast(device):  # inputs made as the stages run
            fb = FrameBench(model, image)
            if shared is None:  # preprocess/low/high/head: the same modules in every variant
                shared = _measure(fb.key_stages(shared=True), repeats, device, memory)
            own_key = _measure(fb.key_stages(shared=False), repeats, device, memory)
            own_nonkey = _measure(fb.nonkey_stages(), repeats, device, memory)
            # Whole frames, as a check of the stage sums (every stage is warm now).
            whole_key = timing(time_samples(fb.whole_key, repeats, device, warmup=False))
            whole_nonkey = timing(time_samples(fb.whole_nonkey, repeats, device, warmup=False))
            mem_key = peak_mb(fb.whole_key, device) if memory else None
            mem_nonkey = peak_mb(fb.whole_nonkey, device) if memory else None
        key = {n: shared[n] for n in ("preprocess", "low", "high")} | own_key
        key["head"] = shared["head"]
        spec = model.spec
        if spec.every_frame_key:
            nonkey = dict(key)
        else:
            nonkey = {"preprocess": shared["preprocess"]}
            if spec.uses_lsts:
                nonkey["low"] = shared["low"]
            nonkey |= own_nonkey
            nonkey["head"] = shared["head"]
        k = spec.key_interval(key_interval)
        offsets = None if model.offsets is None else model.offsets.N
        res: dict[str, Any] = {"variant": mcfg.variant, "offsets": offsets}
        if only:
            res |= {"label": only.label, "speed_only": True}
        if not options.is_default:
            res["notes"] = notes
        for kind, stages in (("key", key), ("nonkey", nonkey)):
            res[kind] = {
                "stages": stages,
                "ms": round(sum(s["ms"] for s in stages.values()), 3),
                "flops": sum(s["flops"] for s in stages.values()),
                "by_category_ms": {c: round(sum(s["ms"] for n, s in stages.items()
                                                if CATEGORY[n] == c), 3) for c in CATEGORIES},
            }
        for kind, whole in (("key", whole_key), ("nonkey", whole_nonkey)):
            res[kind]["ms_measured"] = whole["ms"]
            res[kind]["ms_measured_repeats"] = whole["ms_repeats"]
        res["key"]["peak_mb"] = _round(mem_key)
        res["nonkey"]["peak_mb"] = _round(mem_nonkey)
        res["key_interval"] = k
        res["amortised_ms"] = round((res["key"]["ms"] + (k - 1) * res["nonkey"]["ms"]) / k, 3)
        res["amortised_ms_measured"] = round(
            (res["key"]["ms_measured"] + (k - 1) * res["nonkey"]["ms_measured"]) / k, 3)
        res["amortised_gflops"] = round(
            (res["key"]["flops"] + (k - 1) * res["nonkey"]["flops"]) / k / 1e9, 4)
        res["peak_mb"] = None if mem_key is None else round(max(mem_key, mem_nonkey), 3)
        results[name] = res
        del model, detector, fb
    base = results.get(STAGE1)
    if base:
        for res in results.values():
            res["speedup_vs_single_frame"] = round(base["amortised_ms"] / res["amortised_ms"], 3)
    return results


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def add_speedups(mode: dict[str, Any], default: dict[str, Any]) -> None:
    """`speedup_vs_fp32_nchw` of each variant of a mode (amortised, key and non-key frame)
    over the same variant in the default run, in place."""
    for name, res in mode.items():
        base = default[name]
        res[SPEEDUP] = round(base["amortised_ms"] / res["amortised_ms"], 3)
        for kind in ("key", "nonkey"):
            res[kind][SPEEDUP] = round(base[kind]["ms"] / res[kind]["ms"], 3)


def bench(
    config: str | Path | dict = "report",
    device: str = "cpu",
    sizes: tuple[str, ...] = ("preset", "paper"),
    variants: list[str] | None = None,
    repeats: int | None = None,
    key_interval: int | None = None,
    json_out: str | Path | None = None,
    progress: bool | None = None,
    options: InferenceOptions | None = None,
    mode_sizes: Iterable[str] | None = None,
    mode_variants: list[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark; return (and optionally write) its JSON-ready dict. `options` adds
    its modes (`InferenceOptions.modes`) beside the default float32 NCHW run, timed at
    `mode_sizes` (default: every size) for `mode_variants` (default: every picked one)."""
    cfg = load_config(config)
    run = RunConfig.from_dict(cfg)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is available")
    picked = [*VARIANTS, *SPEED_ONLY] if not variants else variants
    for name in picked:
        if name not in SPEED_ONLY:
            get_variant(name)
    repeats = run.eval.bench_repeats if repeats is None else repeats
    k = run.eval.key_interval if key_interval is None else key_interval
    if repeats < 1 or k < 1:
        raise ValueError(f"bench: repeats ({repeats}) and key interval ({k}) must be >= 1")
    mode_sizes = list(sizes) if mode_sizes is None else list(mode_sizes)
    mode_variants = picked if not mode_variants else list(mode_variants)
    if not set(mode_sizes) <= set(sizes) or not set(mode_variants) <= set(picked):
        raise ValueError(f"bench: modes at sizes {mode_sizes} for {mode_variants} must be among "
                         f"the benchmarked sizes {list(sizes)} and variants {picked}")
    options = options or InferenceOptions()
    inference.check_options(options, dev)  # before minutes of measuring
    modes = options.modes()
    # The peak of each precision a mode runs in (its stages' fractions are of that peak).
    peak = {dtype: machine_peak(dev, backbone_conv_shapes(), AMP_DTYPES.get(dtype, torch.float32))
            for dtype in ["fp32", *dict.fromkeys(m.amp for m in modes if m.amp)]}
    report: dict[str, Any] = {
        "schema": "lsts-bench-v1", "config": run.name,
        "device": device_info(dev), "machine_peak": peak, "key_interval": k,
        "repeats": repeats, "warmup": 1, "statistic": "median", "sizes": {}, "results": {},
        "blocks": {},
        "modes": {m.name: {"options": m.to_dict(), "peak": m.amp or "fp32", "results": {}}
                  for m in modes},
        # Why a mode that is not here may be missing: None where the device runs it natively.
        "amp_support": {amp: inference.amp_unsupported(dev, amp) for amp in AMP_DTYPES},
    }
    for size in sizes:
        model_cfg, hw = size_model(run, size)
        report["sizes"][size] = {"input_hw": list(hw), "backbone": model_cfg.backbone,
                                 "feat_channels": model_cfg.feat_channels}
        results = bench_size(model_cfg, picked, hw, k, repeats, dev, progress=progress)
        rate_results(results, peak["fp32"]["gflop_per_s"])
        report["results"][size] = results
        blocks = bench_blocks(model_cfg, hw, repeats, dev, progress=progress)
        for entry in blocks:
            add_rates(entry, peak["fp32"]["gflop_per_s"])
        report["blocks"][size] = blocks
        for m in modes if size in mode_sizes else ():
            entry = report["modes"][m.name]
            mode_results = bench_size(model_cfg, mode_variants, hw, k, repeats, dev,
                                      progress=progress, options=m)
            rate_results(mode_results, peak[entry["peak"]]["gflop_per_s"])
            add_speedups(mode_results, results)
            entry["results"][size] = mode_results
    paper = report["results"].get("paper", {})
    if "lsts" in paper and STAGE1 in paper:
        report["paper_lsts_speedup"] = paper["lsts"]["speedup_vs_single_frame"]
        report["paper_speedup_goal"] = 3.0
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=1))
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    dev = report["device"]
    lines = [f"device: {dev['name']} ({dev['torch_threads']} threads, "
             f"{' '.join(dev.get('cpu_flags') or [dev.get('cpu_capability', '?')])}), "
             f"torch {dev['torch']}, key interval {report['key_interval']}, median of "
             f"{report['repeats']}"]
    for dtype, p in report.get("machine_peak", {}).items():
        lines.append(f"machine peak ({dtype}): {p['gflop_per_s']:.0f} GFLOP/s ("
                     + ", ".join(f"{n} {k['gflop_per_s']:.0f}" for n, k in p["kernels"].items())
                     + ")")
    for size, res in report["results"].items():
        hw = report["sizes"][size]["input_hw"]
        lines.append(f"{size} ({hw[0]}x{hw[1]}, {report['sizes'][size]['backbone']}):")
        lines.append(f"  {'variant':16s} {'key ms':>9s} {'nonkey ms':>9s} {'amort ms':>9s} "
                     f"{'GFLOPs':>8s} {'peak MB':>8s} {'speedup':>7s} {'key %pk':>7s} "
                     f"{'nonkey %pk':>10s}")
        for name, r in res.items():
            lines.append(f"  {name:16s} {r['key']['ms']:9.1f} {r['nonkey']['ms']:9.1f} "
                         f"{r['amortised_ms']:9.1f} {r['amortised_gflops']:8.2f} "
                         f"{r['peak_mb'] or math.nan:8.1f} "
                         f"{r.get('speedup_vs_single_frame', 1):6.2f}x "
                         f"{_percent(r['key'].get('fraction_of_peak')):>7s} "
                         f"{_percent(r['nonkey'].get('fraction_of_peak')):>10s}")
    for size, blocks in report.get("blocks", {}).items():
        parts = {p: [b for b in blocks if b["part"] == p] for p in ("low", "high")}
        lines.append(f"{size} backbone by block: " + "; ".join(
            f"{p} {bs[0]['name']}..{bs[-1]['name']} {sum(b['ms'] for b in bs):.1f} ms "
            f"{sum(b['flops'] for b in bs) / 1e9:.2f} GFLOPs" for p, bs in parts.items()))
    for mode, entry in report.get("modes", {}).items():
        for size, res in entry["results"].items():
            notes = dict.fromkeys(n for r in res.values() for n in r.get("notes", {}).values())
            lines.append(f"{mode} at {size} (speed-up vs {inference.DEFAULT_MODE}; "
                         f"{'; '.join(notes)}):")
            lines.append(f"  {'variant':16s} {'amort ms':>9s} {inference.DEFAULT_MODE:>9s} "
                         f"{'speedup':>7s} {'key':>6s} {'nonkey':>6s}")
            for name, r in res.items():
                base = report["results"][size][name]
                lines.append(f"  {name:16s} {r['amortised_ms']:9.1f} {base['amortised_ms']:9.1f} "
                             f"{r[SPEEDUP]:6.2f}x {r['key'][SPEEDUP]:5.2f}x "
                             f"{r['nonkey'][SPEEDUP]:5.2f}x")
    return lines


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.0f}%"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="report", help="preset name or YAML path")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--sizes", default="preset,paper",
                        help="comma-separated: preset (the config's size), paper (600x1000)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="named variants of the config and speed-only configurations "
                             f"({', '.join(SPEED_ONLY)}) (default: all)")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed calls per stage (default: eval.bench_repeats)")
    parser.add_argument("--key-interval", type=positive_int, default=None,
                        help="frames per key frame (default: eval.key_interval)")
    parser.add_argument("--mode-sizes", default=None,
                        help="comma-separated sizes the speed options are timed at (default: "
                             "every --sizes)")
    parser.add_argument("--mode-variants", nargs="+", default=None,
                        help="variants the speed options are timed for (default: every one)")
    inference.add_arguments(parser, "each given option is timed alone and, with several, all "
                            "together, beside the fp32 NCHW default of the same run")


def main(args: argparse.Namespace) -> int:
    threads = int(os.environ.get("LSTS_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    sizes = tuple(s.strip() for s in args.sizes.split(",") if s.strip())
    mode_sizes = (None if args.mode_sizes is None else
                  [s.strip() for s in args.mode_sizes.split(",") if s.strip()])
    report = bench(args.config, args.device, sizes, args.variants, args.repeats,
                   args.key_interval, args.json, options=inference.from_args(args),
                   mode_sizes=mode_sizes, mode_variants=args.mode_variants)
    print("\n".join(summary_lines(report)))
    if "paper_lsts_speedup" in report:
        print(f"LSTS vs single-frame at the paper size: {report['paper_lsts_speedup']:.2f}x "
              f"(goal >= {report['paper_speedup_goal']:.0f}x)")
    return 0
