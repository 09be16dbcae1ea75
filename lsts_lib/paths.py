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
