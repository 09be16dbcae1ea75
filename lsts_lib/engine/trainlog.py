"""log.csv of a training run: one row per step (losses, learning rates, times, offsets)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lsts_lib import atomic
from lsts_lib.engine.rundir import LOG, run_dir


class CsvLog:
    """log.csv with a fixed header; on resume, rows after the checkpoint's step are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] | None = None

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        with open(self.path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            return
        header, keep = rows[0], [rows[0]]
        for r in rows[1:]:
            # A killed writer can leave a short last line: drop it with the later steps.
            if len(r) == len(header) and int(r[0]) <= step:
                keep.append(r)
        out = io.StringIO()
        csv.writer(out).writerows(keep)
        atomic.write_text(self.path, out.getvalue())
        self.fields = header

    def write(self, row: Mapping[str, Any]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        if self.fields is None:
            if not new:
                with open(self.path, newline="") as fh:
                    self.fields = next(csv.reader(fh))
            else:
                self.fields = list(row)
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(v: Any) -> Any:
    return repr(float(v)) if isinstance(v, float) else v


def read_log(path: Path) -> list[dict[str, float]]:
    """log.csv as a list of rows of floats (notebooks use pandas; this is for tests/tools)."""
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def load_logs(runs_root: str | Path, variants: Iterable[str], seeds: Iterable[int],
              name: str = LOG):
    """All `name` files (log.csv, or dev.csv for the dev-split curves) of a runs folder as one
    pandas DataFrame (+ variant, seed columns)."""
    import pandas as pd

    frames = []
    for v in variants:
        for s in seeds:
            path = run_dir(runs_root, v, s) / name
            if path.is_file():
                df = pd.read_csv(path)
                df.insert(0, "seed", s)
                df.insert(0, "variant", v)
                frames.append(df)
    if not frames:
        raise FileNotFoundError(f"{runs_root}: no {name} under <variant>/seed<k>/")
    return pd.concat(frames, ignore_index=True)
