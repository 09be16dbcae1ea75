"""How the benchmarks measure: median wall time, FLOPs and peak memory of a callable, and the
machine's own peak rate (a large GEMM and 3x3 convolutions) to compare them with."""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensors created while active and still alive (CPU memory measure)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}
        self.current = 0
        self.peak = 0

    def _release(self, ptr: int) -> None:
        entry = self.live.get(ptr)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                ptr = st.data_ptr()
                if ptr == 0:
                    continue
                if ptr in self.live:
                    self.live[ptr][1] += 1
                else:
                    self.live[ptr] = [st.nbytes(), 1]
                    self.current += st.nbytes()
                    self.peak = max(self.peak, self.current)
                weakref.finalize(t, self._release, ptr)
        return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_samples(fn: Callable[[], Any], repeats: int, device: torch.device,
                 warmup: bool = True) -> list[float]:
    """Wall time of each of `repeats` calls of `fn` in ms, in call order, after one warm-up
    call (not returned)."""
    if warmup:
        fn()
        sync(device)
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(1000 * (time.perf_counter() - t))
    return times


def time_ms(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: bool = True
            ) -> float:
    """Median wall time of `fn` in ms over `repeats` calls after one warm-up call."""
    return statistics.median(time_samples(fn, repeats, device, warmup))


def timing(samples: list[float], nd: int = 3) -> dict[str, Any]:
    """A timed entry's fields from its samples: `ms` (their median, what every table and
    ratio reads) and `ms_repeats` (each call, rounded, for the spread)."""
    return {"ms": round(statistics.median(samples), nd),
            "ms_repeats": [round(t, nd) for t in samples]}


def counted(fn: Callable[[], Any]) -> tuple[int, Any]:
    """(FLOPs of one call of `fn`, its output)."""
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return int(counter.get_total_flops()), out


def flops_of(fn: Callable[[], Any]) -> int:
    return counted(fn)[0]


def peak_mb(fn: Callable[[], Any], device: torch.device) -> float:
    """Peak memory (MiB) of tensors created by `fn` above what was allocated before."""
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    with LiveTensorBytes() as tracker:
        out = fn()
        del out
    return tracker.peak / 2**20


def kernel_rate(fn: Callable[[], Any], repeats: int, device: torch.device) -> dict[str, float]:
    """GFLOPs of one call (counted as everywhere else, by `flops_of`), its median ms and the
    achieved GFLOP/s. The counting call is the warm-up."""
    flops = flops_of(fn)
    sync(device)
    ms = time_ms(fn, repeats, device, warmup=False)
    return {"gflops": round(flops / 1e9, 4), "ms": round(ms, 3),
            "gflop_per_s": round(flops / ms / 1e6, 2)}


def machine_peak(device: torch.device, conv_shapes: dict[str, tuple[int, int, int, int]],
                 dtype: torch.dtype = torch.float32, gemm_n: int | None = None,
                 repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """The rate this machine reaches, with the current thread count, on dense kernels.

    An n x n GEMM (n = 2048 on CPU: a second or so per call on one core; 4096 on CUDA) and one
    3x3 convolution per entry of `conv_shapes` (name -> (channels in = out, height, width,
    dilation), batch 1, NCHW). Each kernel: one warm-up, median of `repeats`. `gflop_per_s` is
    the best of them: the peak the benchmark's stages are a fraction of.
    """
    n = gemm_n or (4096 if device.type == "cuda" else 2048)
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    kernels: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        gemm = partial(torch.matmul, rand(n, n), rand(n, n))
        kernels[f"gemm_{n}"] = kernel_rate(gemm, repeats, device)
        del gemm
        for name, (c, h, w, d) in conv_shapes.items():
            conv = partial(F.conv2d, rand(1, c, h, w), rand(c, c, 3, 3), padding=d, dilation=d)
            kernels[f"conv3x3_{name}"] = kernel_rate(conv, repeats, device)
    return {"dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
            "repeats": repeats, "statistic": "median",
            "gflop_per_s": max(k["gflop_per_s"] for k in kernels.values()), "kernels": kernels}
