#!/usr/bin/env python
"""Generate SynthVID, the project's embedded video detection dataset (ILSVRC2015 VID layout).

Usage (from the repository root, after `make install` or any `make` target):

    .venv/bin/python data_prep/make_synthvid.py --preset smoke            # CI-sized, seconds
    .venv/bin/python data_prep/make_synthvid.py --preset report --seed 0  # what the report uses
    .venv/bin/python data_prep/make_synthvid.py --out /some/dir --preset report --overwrite

Same as `lsts synth ...`. Without --out the dataset goes to data/synthvid/<preset>. A
complete dataset of the same preset and seed is reused, not rewritten; --overwrite replaces
a SynthVID dataset of another preset or seed; a non-empty folder that is not a SynthVID
dataset is always refused. Presets and their sizes: `lsts_lib.data.synthvid.PRESETS`.
"""

from __future__ import annotations

import argparse
import sys

from lsts_lib.data import synthvid


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    synthvid.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return synthvid.main(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"make_synthvid: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(run())
