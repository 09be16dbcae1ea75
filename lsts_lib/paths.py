"""Where the project keeps things: repository-relative defaults, overridable by env vars.

LSTS_HOME   repository root (default: the folder holding the `lsts_lib` package)
LSTS_SHARED folder with the real ImageNet VID samples (default: <LSTS_HOME>/../shared)
"""

from __future__ import annotations

import os
from pathlib import Path

REPO: Path = Path(os.environ.get("LSTS_HOME", Path(__file__).resolve().parents[1]))
DATA: Path = REPO / "data"
RUNS: Path = REPO / "runs"
FIGURES: Path = REPO / "figures"
NOTEBOOKS: Path = REPO / "notebooks"
CONFIGS: Path = Path(__file__).resolve().parent / "configs"
SHARED: Path = Path(os.environ.get("LSTS_SHARED", REPO.parent / "shared"))
# The real ILSVRC2015 files (split lists + 144 frames of one val snippet) when present.
SHARED_VID: Path = SHARED / "data" / "ILSVRC2015"


def synthvid_root(preset: str) -> Path:
    """Default location of a generated SynthVID dataset for a preset."""
    return DATA / "synthvid" / preset


def figures_dir(preset: str) -> Path:
    """Where a notebook run saves its figures.

    Only the report preset writes the committed `figures/`; other presets (the smoke run
    under nbval in `make test`) write to runs/figures_<preset>/ so a test run never
    rewrites the committed pictures.
    """
    out = FIGURES if preset == "report" else RUNS / f"figures_{preset}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def executed_notebooks_dir(preset: str) -> Path:
    """Where `lsts report` writes the executed notebooks: the committed notebooks/ for the
    report preset, runs/<preset>/notebooks/ for the others (as `figures_dir`)."""
    return NOTEBOOKS if preset == "report" else RUNS / preset / "notebooks"


def html_edition_dir(preset: str) -> Path:
    """Where `lsts report` writes the HTML edition of those notebooks."""
    return REPO / "report" if preset == "report" else RUNS / preset / "html"
