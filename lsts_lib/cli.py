"""`lsts` command line: one subcommand per stage of the pipeline.

Each subcommand lives in its own module, which provides `add_arguments(parser)` and
`main(args) -> int | None`. Modules are imported only when their command runs, so
`lsts --help` stays fast and a broken optional stage cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help), in pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("lsts_lib.data.synthvid", "generate a SynthVID dataset in the ImageNet VID layout"),
    "data-stats": ("lsts_lib.data.stats", "statistics of a VID-layout dataset split"),
    "train": ("lsts_lib.engine.train", "train a detector from a config"),
    "detect": ("lsts_lib.engine.detect", "run a trained detector over a split"),
    "evaluate": ("lsts_lib.eval.vid_eval", "VID devkit mAP, motion split and COCO metrics"),
    "bench": ("lsts_lib.engine.bench", "per-stage time, FLOPs and memory of every variant"),
    "alignment": ("lsts_lib.engine.alignment",
                  "propagation vs SynthVID's true motion: end-point and feature error"),
    "flow-pretrain": ("lsts_lib.engine.flow_pretrain",
                      "pretrain the flow_warp FlowNet on SynthVID's true flow"),
    "bench-lsts": ("lsts_lib.engine.bench_lsts", "LSTS alignment: efficient vs naive form"),
    "claims": ("lsts_lib.claims", "the paper's claims: paired intervals over seeds and test videos"),
    "report": ("lsts_lib.report", "the whole report: data, training, evaluation, notebooks"),
    "check-html": ("lsts_lib.html_edition",
                   "open the report's HTML edition in headless Chromium: figures, contents"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsts", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Arguments are defined by the module itself; import lazily only the chosen one.
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass finds the command; the second parses with that module's arguments.
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help or the error and exits
        return 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    sub_parser = argparse.ArgumentParser(prog=f"lsts {name}", description=COMMANDS[name][1])
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    try:
        return int(module.main(args) or 0)
    except (OSError, ValueError) as exc:
        # Bad input and a failing disk (full, read-only) are reported in one line naming
        # the file; tracebacks are for bugs.
        print(f"lsts {name}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
