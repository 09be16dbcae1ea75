"""Checkpoints: atomic writes, a content checksum, and weights_only loading.

A checkpoint is a dict of tensors and plain Python values only (no pickled objects), so it
loads with `torch.load(weights_only=True)`. Writes go to a temporary file in the same folder,
are flushed to disk, then renamed over the target with `os.replace` (atomic on POSIX): a
process killed at any moment leaves either the old or the new file, never half of one; the
temporary files a kill leaves behind are removed by `remove_orphaned_temps` at the next
start. Every checkpoint carries a SHA-256 of its content (`content_hash`), checked on load:
torch's zip reader does not notice a flipped bit inside a tensor, so without it a corrupt
file would resume or detect silently.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lsts_lib import atomic

FORMAT = "lsts-checkpoint-v2"  # v2: carries CHECKSUM_KEY
LEGACY_FORMATS = ("lsts-checkpoint-v1",)  # loaded unverified, with a warning
CHECKSUM_KEY = "checksum"
_TEMP_GLOB = ".*.pt.*.tmp"  # the temporary names atomic.write_via gives checkpoints


def content_hash(obj: Any) -> str:
    """SHA-256 over every tensor's dtype, shape and bytes and every plain value of a nested
    checkpoint dict, in a fixed order (dict keys sorted), as 'sha256:<hex>'."""
    h = hashlib.sha256()
    _feed(h, obj)
    return "sha256:" + h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            h.update(f"K{k!r}".encode())
            _feed(h, obj[k])
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"V{obj!r}".encode())


def save_atomic(obj: Mapping[str, Any], path: Path) -> None:
    """torch.save `obj` plus its content checksum to `path` through `atomic.write_via`, so
    that `path` is always a complete file. A failed write (e.g. a full disk) leaves no
    temporary file and raises an OSError naming `path`."""
    path = Path(path)
    payload = {k: v for k, v in obj.items() if k != CHECKSUM_KEY}
    payload[CHECKSUM_KEY] = content_hash(payload)
    try:
        atomic.write_via(path, lambda fh: torch.save(payload, fh))
    except OSError as exc:
        raise OSError(exc.errno, f"could not write the checkpoint ({exc.strerror or exc})",
                      str(path)) from exc
    except RuntimeError as exc:
        # torch's zip writer reports a full disk as a RuntimeError ("[enforce fail at
        # inline_container.cc...] unexpected pos ..."), not an OSError
        raise OSError(errno.ENOSPC, _write_failure_reason(path.parent), str(path)) from exc
    _fsync_dir(path.parent)


def _write_failure_reason(folder: Path) -> str:
    """Why torch.save failed in `folder`: a full disk if the free space says so."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < 64 * 1024 * 1024:
        return f"could not write the checkpoint (disk full: {free} bytes free)"
    return "could not write the checkpoint (disk full?)"


def remove_orphaned_temps(folder: Path) -> list[Path]:
    """Delete the temporary files of writes that were killed before their rename.

    Call when a run starts, before it saves: no write of this folder is then in flight.
    """
    removed = []
    for tmp in Path(folder).glob(_TEMP_GLOB):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


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
    """Load a checkpoint written by `save_atomic` (weights_only: tensors and plain types)
    and verify its content checksum; the returned dict is without the checksum."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, or one holding arbitrary pickled objects
        raise ValueError(f"{path}: not a loadable weights-only checkpoint ({exc})") from exc
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt not in (FORMAT, *LEGACY_FORMATS) or "model" not in ckpt:
        raise ValueError(f"{path}: not an LSTS checkpoint (expected format '{FORMAT}')")
    stored = ckpt.pop(CHECKSUM_KEY, None)
    if fmt in LEGACY_FORMATS:
        warnings.warn(f"{path}: a {fmt} checkpoint carries no content checksum; loaded "
                      "unverified", stacklevel=2)
    elif stored != content_hash(ckpt):
        raise ValueError(f"{path}: content checksum mismatch: the file changed after it was "
                         "written (disk or copy corruption); retrain or restore it")
    return ckpt


def load_model_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: Path) -> None:
    """`model.load_state_dict(state)`; weights of another architecture are a ValueError
    naming `source` and the first mismatching name (not torch's multi-line RuntimeError)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or reshaped:
        first = (missing + unexpected + reshaped)[0]
        raise ValueError(
            f"{source}: its weights do not fit this model (another architecture?): "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of another "
            f"shape, e.g. {first!r}"
        )
    model.load_state_dict(state)


def state_hash(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names and exact tensor bytes (replica/determinism checks)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
