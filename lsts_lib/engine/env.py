"""What a run or a benchmark records about the machine and the code it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy
import torch
import torchvision

from lsts_lib import paths


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The instruction-set extensions that decide CPU speed (vector width, FMA, low-precision
# matrix units), as Linux names them in /proc/cpuinfo ("flags" on x86, "Features" on Arm).
SPEED_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
               "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
               "amx_fp16", "asimd", "sve", "sve2", "bf16", "i8mm")


def cpu_flags() -> list[str] | None:
    """The SPEED_FLAGS this CPU has, from /proc/cpuinfo; None where that file is absent
    (macOS, Windows: `cpu_capability` from torch is then the only record)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in ("flags", "Features"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in SPEED_FLAGS if f in have]
    return None


def cpu_capability() -> str:
    """The widest vector kernels torch dispatches to here (e.g. AVX2, AVX512)."""
    return torch.backends.cpu.get_cpu_capability()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(seed: int, world_size: int, backend: str, device: torch.device, threads: int
                ) -> dict[str, Any]:
    return {
        "seed": seed,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": threads,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "world_size": world_size,
        "backend": backend,
        "git_commit": git_commit(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
