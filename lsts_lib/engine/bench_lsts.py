"""`lsts bench-lsts`: the LSTS alignment at the paper's size, efficient vs naive form.

Measures, in one run and on one device: the median forward time (every call kept in
``*_ms_repeats``) of ``LSTSAlign`` (1x1
embeddings f and g, similarities, softmax over N, aggregation) in its efficient form and in
the naive form that materialises all N sampled copies, their peak memory, and the median
time of a ResNet-101 key frame (a 600 x 1000 frame as the detector's transform pads it,
608 x 1024; conv1 .. res4 then dilated res5 and feat_conv, i.e. the whole key-frame feature
path) to express LSTS as a share of it. LSTS runs on that frame's feature map, 38 x 64 cells
(`models.detector.paper_feature_hw`), the map `lsts bench` times it on inside the detector.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above the memory held before the
call. On CPU the torch allocator keeps no statistics, so each form runs once in a fresh
Python process and the figure is that process's peak resident set size (``ru_maxrss``)
minus its resident size just before the forward (inputs and weights already allocated):
every byte the forward touched at its peak, allocator and library buffers included.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lsts_lib import atomic
from lsts_lib.argtypes import positive_int
from lsts_lib.engine.measure import peak_mb, time_samples
from lsts_lib.models.backbone import build_backbone
from lsts_lib.models.config import paper_config
from lsts_lib.models.detector import PAPER_INPUT, input_hw, paper_feature_hw
from lsts_lib.models.lsts import (
    LSTSAlign,
    LSTSOffsets,
    grid_sample_offsets,
    lsts_aggregate_naive,
)

# Bumped when what the benchmark measures changes (part of `lsts report`'s stamp, so the
# report remeasures): 2: LSTS on the 38 x 64 map the detector computes (was 38 x 63), the key
# frame on the padded 608 x 1024 input; 3: every timed call kept (`*_ms_repeats`).
BENCH_LSTS_VERSION = 3


def paper_shape() -> dict[str, Any]:
    """The paper's size (`paper_config`): the stride-16 map its detector computes for a
    600 x 1000 frame (`paper_feature_hw`: the transform pads it to 608 x 1024, so 38 x 64)."""
    cfg = paper_config()
    H, W = paper_feature_hw()
    return {"batch": 1, "channels": cfg.feat_channels, "embed": cfg.embed_channels,
            "height": H, "width": W, "grid_size": cfg.grid_size, "grid_range": cfg.grid_range}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed runs per form (median)")
    parser.add_argument("--keyframe-repeats", type=positive_int, default=3,
                        help="timed runs of the ResNet-101 key frame (median)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--no-keyframe", action="store_true",
                        help="skip the ResNet-101 key frame (share_of_keyframe is then null)")
    parser.add_argument("--memory-child", choices=("naive", "efficient"), default=None,
                        help=argparse.SUPPRESS)  # internal: one peak-memory measurement


def _times_ms(fn, repeats: int, device: torch.device) -> list[float]:
    """Each of `repeats` timed calls (ms) after a warm-up call, without autograd."""
    with torch.no_grad():
        return time_samples(fn, repeats, device)


def build_inputs(device: torch.device, seed: int = 0) -> tuple[LSTSAlign, torch.Tensor,
                                                               torch.Tensor]:
    """The paper-size LSTSAlign (uniform 9x9 offsets) and a pair of random feature maps."""
    torch.manual_seed(seed)
    paper = paper_shape()
    offsets = LSTSOffsets("uniform", paper["grid_size"], paper["grid_range"])
    # Move the offsets off the integers, as after training: every tap is then non-zero.
    with torch.no_grad():
        offsets.p.add_(torch.rand(offsets.p.shape) * 0.8 + 0.1)
    align = LSTSAlign(offsets, paper["channels"], paper["embed"]).to(device).eval()
    shape = (paper["batch"], paper["channels"], paper["height"], paper["width"])
    F_ref = torch.randn(shape, device=device)
    F_target = torch.randn(shape, device=device)
    return align, F_ref, F_target


def build_keyframe_net() -> nn.Module:
    """ResNet-101 key-frame feature path, random weights (timing only)."""
    return build_backbone("resnet101", pretrained=False)


def _status_kib(field: str) -> int:
    """VmRSS / VmHWM of this process from /proc (Linux). VmHWM, unlike getrusage's
    ru_maxrss, starts afresh at exec, so it does not inherit the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise ValueError(f"/proc/self/status has no {field} (peak memory needs Linux)")


def _memory_child(impl: str) -> dict:
    """Run one forward in this (fresh) process; report peak RSS growth in MB."""
    device = torch.device("cpu")
    align, F_ref, F_target = build_inputs(device)
    align.impl = impl
    base = _status_kib("VmRSS")
    with torch.no_grad():
        out = align(F_ref, F_target)
    peak = _status_kib("VmHWM")
    del out
    return {"impl": impl, "peak_mb": max(0, peak - base) / 1024}


def peak_memory_mb(impl: str, device: torch.device, threads: int | None) -> float:
    if device.type == "cuda":
        align, F_ref, F_target = build_inputs(device)
        align.impl = impl
        with torch.no_grad():
            return peak_mb(lambda: align(F_ref, F_target), device)
    cmd = [sys.executable, "-m", "lsts_lib", "bench-lsts", "--memory-child", impl]
    if threads:
        cmd += ["--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"])


def _naive_grid_sample(align: LSTSAlign, F_ref: torch.Tensor, F_target: torch.Tensor):
    """The naive form with the library sampler (one grid_sample call for all N copies)."""
    e_ref, e_target, p = align.embed(F_ref, F_target)
    return lsts_aggregate_naive(F_ref, e_ref, e_target, p, sampler=grid_sample_offsets)[0]


def run(repeats: int = 5, device: str = "cpu", threads: int | None = None,
        keyframe: bool = True, keyframe_repeats: int = 3) -> dict:
    if repeats < 1 or keyframe_repeats < 1:
        raise ValueError("--repeats and --keyframe-repeats must be >= 1")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here")
    if threads:
        torch.set_num_threads(threads)
    align, F_ref, F_target = build_inputs(dev)

    def forward(impl: str):
        align.impl = impl
        return lambda: align(F_ref, F_target)

    # Same answer from both forms before timing them (float32 at 1024 channels).
    with torch.no_grad():
        diff = (forward("naive")() - forward("efficient")()).abs().max().item()
    naive = _times_ms(forward("naive"), repeats, dev)
    naive_gs = _times_ms(lambda: _naive_grid_sample(align, F_ref, F_target), repeats, dev)
    efficient = _times_ms(forward("efficient"), repeats, dev)
    naive_ms, naive_gs_ms, efficient_ms = map(statistics.median, (naive, naive_gs, efficient))
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": paper_shape() | {"N": align.offsets.N},
        "repeats": repeats,
        "naive_ms": naive_ms,
        "efficient_ms": efficient_ms,
        "naive_ms_repeats": naive,
        "efficient_ms_repeats": efficient,
        "speedup": naive_ms / efficient_ms,
        # The same materialise-everything maths with F.grid_sample as the sampler.
        "naive_grid_sample_ms": naive_gs_ms,
        "speedup_vs_naive_grid_sample": naive_gs_ms / efficient_ms,
        "max_abs_diff": diff,
        "naive_peak_mb": peak_memory_mb("naive", dev, threads),
        "efficient_peak_mb": peak_memory_mb("efficient", dev, threads),
        "memory_measure": ("cuda max_memory_allocated above baseline" if dev.type == "cuda"
                           else "peak RSS growth of a fresh process during one forward"),
        "keyframe_ms": None,
        "share_of_keyframe": None,
    }
    if keyframe:
        net = build_keyframe_net().to(dev).eval()
        # The tensor the detector's backbone gets for the frame: resized and padded.
        padded = input_hw(paper_config(), PAPER_INPUT)
        image = torch.randn(1, 3, *padded, device=dev)
        result["keyframe_ms"] = statistics.median(
            _times_ms(lambda: net(image), keyframe_repeats, dev))
        result["keyframe_input"] = list(PAPER_INPUT)
        result["keyframe_padded_input"] = list(padded)
        result["share_of_keyframe"] = efficient_ms / result["keyframe_ms"]
    return result


def format_table(r: dict) -> str:
    s = r["shape"]
    lines = [
        f"LSTS alignment, N={s['N']}, C={s['channels']}, E={s['embed']}, "
        f"{s['height']}x{s['width']}, batch {s['batch']}, float32 -- {r['device']}, "
        f"{r['threads']} threads, torch {r['torch']}",
        f"{'form':<20}{'median ms':>12}{'peak MB':>12}",
        f"{'naive':<20}{r['naive_ms']:>12.1f}{r['naive_peak_mb']:>12.1f}",
        f"{'naive (grid_sample)':<20}{r['naive_grid_sample_ms']:>12.1f}{'':>12}",
        f"{'efficient':<20}{r['efficient_ms']:>12.1f}{r['efficient_peak_mb']:>12.1f}",
        f"speedup {r['speedup']:.1f}x vs naive, {r['speedup_vs_naive_grid_sample']:.1f}x vs "
        f"naive with grid_sample (goal >= 10x); max |naive - efficient| = "
        f"{r['max_abs_diff']:.2e}",
    ]
    if r["keyframe_ms"] is not None:
        pad = r.get("keyframe_padded_input")
        pad = f" (padded to {pad[0]}x{pad[1]})" if pad else ""
        lines.append(f"ResNet-101 key frame {r['keyframe_input'][0]}x{r['keyframe_input'][1]}{pad}: "
                     f"{r['keyframe_ms']:.1f} ms; LSTS = {100 * r['share_of_keyframe']:.1f}% "
                     "of it (goal <= 5%)")
    lines.append(f"peak memory: {r['memory_measure']}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.memory_child:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(_memory_child(args.memory_child)))
        return 0
    result = run(args.repeats, args.device, args.threads, not args.no_keyframe,
                 args.keyframe_repeats)
    print(format_table(result))
    if args.json:
        atomic.write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


