"""Run directories: their files, who owns a folder, and whether a stage is done for exactly
these inputs.

Every stage that writes artefacts (train, detect, evaluate, data stats, bench) records a
stamp next to them when it finishes: the stage's inputs (resolved config, dataset
fingerprint, hashes of the upstream artefacts it read, settings) and the SHA-256 of each
output. A stage is done only when its stamp's inputs equal the inputs asked for now and every
output still has the recorded hash; so retraining a model makes its detections stale (their
stamp names the old checkpoint's hash), a dataset changed in place makes everything read
from it stale, and a truncated or emptied artefact is never reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lsts_lib import atomic

STAMPS = "stamps"  # folder of a run directory (or of an output folder) holding stage stamps


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_FINGERPRINTS: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def dataset_fingerprint(root: str | Path) -> str:
    """SHA-256 over every file of a dataset folder: relative path and content.

    Hashed once per process for a given listing (paths, sizes, modification times); any
    change in place gives another listing, so another hash.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    listing = tuple((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                    for p in files)
    key = (str(root), listing)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for p, (rel, _, _) in zip(files, listing, strict=True):
            h.update(rel.encode())
            h.update(sha256_file(p).encode())
        _FINGERPRINTS[key] = h.hexdigest()
    return _FINGERPRINTS[key]


def _canonical(inputs: Mapping[str, Any]) -> str:
    return json.dumps(inputs, sort_keys=True, default=str)


@dataclass(frozen=True)
class Stamp:
    """The record that `stage` finished, in `folder/stamps/<stage>.json`."""

    folder: Path
    stage: str

    @property
    def path(self) -> Path:
        return self.folder / STAMPS / f"{self.stage}.json"

    def read(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            stamp = atomic.read_json(self.path)
        except ValueError:
            return None  # a damaged stamp proves nothing: the stage is redone
        return stamp if isinstance(stamp, dict) else None

    def recorded_inputs(self) -> dict[str, Any] | None:
        stamp = self.read()
        return None if stamp is None else stamp.get("inputs")

    def outputs_intact(self) -> bool:
        """Every recorded output still exists with the recorded content."""
        stamp = self.read()
        if stamp is None or not stamp.get("outputs"):
            return False
        for rel, digest in stamp["outputs"].items():
            path = self.folder / rel
            if not path.is_file() or sha256_file(path) != digest:
                return False
        return True

    def done(self, inputs: Mapping[str, Any]) -> bool:
        """The stage finished for exactly `inputs` and its outputs are intact."""
        recorded = self.recorded_inputs()
        return (recorded is not None and _canonical(recorded) == _canonical(inputs)
                and self.outputs_intact())

    def mark(self, inputs: Mapping[str, Any], outputs: Iterable[str | Path]) -> None:
        """Record that the stage finished: its inputs and the hash of each output."""
        hashes = {}
        for out in outputs:
            path = Path(out)
            path = path if path.is_absolute() else self.folder / path
            hashes[str(path.relative_to(self.folder))] = sha256_file(path)
        atomic.write_json(self.path, {"stage": self.stage, "inputs": json.loads(
            _canonical(inputs)), "outputs": hashes})

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- train runs
CONFIG = "config.yaml"
ENV = "env.json"
LOG = "log.csv"
LOW2HIGH_LOG = "low2high.csv"  # the low2high warm-up's curve (train.<stage>.low2high_warmup)
DEV_LOG = "dev.csv"  # the dev-split mAP curve of a run (train.<stage>.dev_every)
LAST = "last.pt"
MODEL = "model.pt"
SUMMARY = "summary.json"
DDP = "ddp.json"
DETECTIONS = "detections"
EVAL = "eval.json"
ALIGNMENT = "alignment.json"  # `lsts alignment` of the run
DETECT_OPTIONS = "detect_options.json"  # of a preset's runs root: each speed option's mAP change
# What `lsts train` itself writes; only these are deleted when a run is redone.
TRAIN_FILES = (LAST, MODEL, LOG, DEV_LOG, LOW2HIGH_LOG, SUMMARY, DDP, ENV, CONFIG)


# runs/<preset>/stage1/seed<k>: the shared stage-1 model of a plan whose variants all start
# from one single-frame model (`plan.shared_stage1`); not a compared run itself.
SHARED_STAGE1 = "stage1"


def run_dir(runs_root: str | Path, variant: str, seed: int) -> Path:
    """runs/<preset>/<variant>/seed<k>: the layout notebooks and `lsts report` read."""
    return Path(runs_root) / variant / f"seed{seed}"


def is_finished(out: str | Path) -> bool:
    return (Path(out) / MODEL).is_file()


_RUN_SECTIONS = ("data", "model", "train", "eval")  # of a resolved config (config.SECTIONS)


def is_run(out: Path) -> bool:
    """Whether `out` is a run of `lsts train`: its config.yaml is a resolved config (a
    mapping of the data/model/train/eval sections) and the run wrote its env.json, stamps or
    last.pt (whose format and checksum a resume checks).
    A user's own config.yaml in a folder of theirs is not enough."""
    try:
        with open(out / CONFIG, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(cfg, dict) or not all(isinstance(cfg.get(k), dict) for k in _RUN_SECTIONS):
        return False
    return (out / ENV).is_file() or (out / STAMPS).is_dir() or (out / LAST).is_file()


def check_owned(out: Path, redo: bool = False) -> None:
    """Refuse to write a run into a folder that holds something else.

    A folder is ours when it is absent, empty, or a run (`is_run`: a config.yaml written by
    this tool, and its env.json, stamps or last.pt); a user's own config.yaml is refused. A finished
    run (model.pt) without its config.yaml cannot be checked against the inputs asked for,
    so it is refused too rather than reused or overwritten.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"{out}: --out exists and is not a folder")
    if not any(out.iterdir()):
        return
    if (out / CONFIG).is_file():
        if is_run(out):
            return
        raise ValueError(f"{out}: not a run of `lsts train`: its {CONFIG} is not a config "
                         f"written by this tool (or it has no {ENV}, {STAMPS}/ or {LAST}); choose "
                         "another --out")
    if is_finished(out) and not redo:
        raise ValueError(f"{out}: holds a model.pt but no {CONFIG}: its config cannot be "
                         "checked; restore config.yaml, or pass --redo to retrain here")
    if not is_finished(out):
        raise ValueError(f"{out}: not empty and not a run of `lsts train` (no {CONFIG}); "
                         "choose another --out")
