"""Checkpoints: atomic writes and weights_only loading.

A checkpoint is a dict of tensors and plain Python values only (no pickled objects), so it
loads with `torch.load(weights_only=True)`. Writes go to a temporary file in the same folder,
are flushed to disk, then renamed over the target with `os.replace` (atomic on POSIX): a
process killed at any moment leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lsts_lib import atomic

FORMAT = "lsts-checkpoint-v1"


def save_atomic(obj: Mapping[str, Any], path: Path) -> None:
    """torch.save `obj` to `path` so that `path` is always a complete file."""
    path = atomic.write_via(path, lambda fh: torch.save(dict(obj), fh))
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (best effort; not every filesystem supports it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_atomic` (weights_only: tensors and plain types)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, or one holding arbitrary pickled objects
        raise ValueError(f"{path}: not a loadable weights-only checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise ValueError(f"{path}: not an LSTS checkpoint (expected format '{FORMAT}')")
    return ckpt


def state_hash(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names and exact tensor bytes (replica/determinism checks)."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
