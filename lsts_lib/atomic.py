"""Atomic writes of text artefacts (JSON, CSV, YAML, Markdown).

The text goes to a temporary file in the target's folder, is flushed to disk, then renamed
over the target (`os.replace` is atomic on POSIX): a full disk or a kill leaves the old file
or none, never a truncated one that a later run would take for a result.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def write_via(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(file)` on a temporary file next to `path`, then rename it over `path`."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """`exc` as an OSError that names `path` (the target, not the temporary file): the
    CLI prints it as one line, '[Errno 28] No space left on device: <path>'."""
    if exc.errno is None:
        return OSError(errno.EIO, f"could not write ({exc})", str(path))
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def write_text(path: str | Path, text: str) -> Path:
    return write_via(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON artefact; an empty or malformed file is a ValueError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it or redo its stage") from None


def check_json_output(path: str | Path, data: str | Path | None = None,
                      option: str = "--json") -> None:
    """Refuse a results path that would destroy something: inside the dataset folder `data`
    (its classes.txt, synthvid.json, or a new file changing its fingerprint), a folder, or an
    existing file that is not a JSON object (this tool's results are JSON objects; anything
    else there is not one of ours). Checked before any work is done."""
    target = Path(path).resolve()
    if data is not None:
        root = Path(data).resolve()
        if target == root or root in target.parents:
            raise ValueError(f"{option} {path}: is inside the --data folder {data}; write the "
                             "results outside the dataset")
    if not Path(path).exists():
        return
    if Path(path).is_dir():
        raise ValueError(f"{option} {path}: is a folder, not a file")
    try:
        obj = read_json(path)
    except (ValueError, OSError):
        obj = None
    if not isinstance(obj, dict):
        raise ValueError(f"{option} {path}: exists and is not a JSON object written by this "
                         "tool; refusing to overwrite it (delete it or choose another path)")
