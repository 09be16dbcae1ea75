"""`lsts report`: the whole report, end to end, from nothing.

Stages (each skipped when its stamp says it is done for exactly these inputs, unless --redo;
see `engine.rundir`):
  1. data       SynthVID for the preset (`lsts synth`)
  2. stats      `lsts data-stats` of train, the dev split and the test split
  3. train      the run plan (`engine.plan`, the preset's `plan:` section): for the report,
                one shared stage-1 single-frame detector and the flow variants' FlowNet
                pretrained on SynthVID's true flow (`lsts flow-pretrain`), then every
                compared variant of every seed trained from them
  4. detect     each compared model over the test split (data.test_split), then
                `lsts evaluate`; the first seed's single-frame and LSTS runs again under
                each speed option this CPU runs (`speed_options`) -> detect_options.json
  5. bench      `lsts bench` (every variant, preset and paper size; the speed options
                only for single_frame and lsts at the table's size) and `lsts bench-lsts`
  6. alignment  `lsts alignment` of every seed's propagating runs on the test split:
                their displacement against SynthVID's true motion (one JSON per run, next
                to its model; a run whose model and data are unchanged is not redone)
  7. claims     `lsts claims`: each claim's paired interval (seeds + test videos), verdict
  8. notebooks  01..06 executed in order by papermill into their committed location
  9. html       an HTML edition of the executed notebooks (nbconvert, a table of contents per
                page) in report/, then `lsts check-html` of it when Chromium is here
  10. readme     the README's generated blocks (results, GPU recipe, introduction, related
                work, differences from the paper) regenerated from the run's files

Every stage goes through the same `lsts` commands a user would type, so the report
is exactly as reproducible as those commands.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lsts_lib import atomic, html_edition, paths
from lsts_lib.argtypes import nonnegative_int, positive_int
from lsts_lib.engine import inference, rundir
from lsts_lib.engine.bench import bench_inputs
from lsts_lib.engine.bench_lsts import BENCH_LSTS_VERSION
from lsts_lib.engine.config import RunConfig, load_config, load_plan
from lsts_lib.engine.inference import InferenceOptions
from lsts_lib.engine.plan import Orchestrator, PlannedRun, lsts_child, preset_plan
from lsts_lib.models.variants import get_variant
from lsts_lib.results import MODE_VARIANTS

STAGES = ("data", "stats", "train", "detect", "bench", "alignment", "claims", "notebooks",
          "html", "readme")
# What `Report.commands` names the commands of, and the stage that runs them.
MADE_BY = {"data": "data", "stats": "stats", "train": "train", "flow_pretrain": "train",
           "evaluate": "detect", "detect_options": "detect", "bench": "bench",
           "bench_lsts": "bench", "alignment": "alignment", "claims": "claims"}
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


def speed_options(device: str = "cpu") -> InferenceOptions:
    """The speed options the report measures (in `lsts bench` and on the test mAP): BatchNorm
    folding, channels_last and torch.compile, bf16 autocast only where the device runs it
    natively. Compiling costs minutes, not hours, here (measured on the 2-core AMD EPYC, idle:
    `lsts bench --sizes paper --variants single_frame lsts --compile` took about 4 minutes in
    all; `lsts detect --compile` of LSTS spent 23 s compiling)."""
    amp = inference.DEFAULT_AMP
    amp = amp if inference.amp_unsupported(torch.device(device), amp) is None else None
    return InferenceOptions(channels_last=True, fold_bn=True, compile=True, amp=amp)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="report", choices=["smoke", "report"])
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=None,
                        help="default: the preset's plan.seeds")
    parser.add_argument("--only", nargs="+", choices=STAGES, help="run only these stages")
    parser.add_argument("--redo", nargs="*", choices=STAGES, default=None,
                        help="redo these stages (all when given without names)")
    parser.add_argument("--jobs", type=positive_int, default=2,
                        help="training/detection processes at once (1 thread each)")


def scrub_machine_paths(notebook: Path) -> None:
    """Make an executed notebook machine-independent: file paths in outputs (e.g. a warning's
    source line) become repository-relative, and papermill's absolute input/output paths go."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for key in ("input_path", "output_path"):
        nb.metadata.get("papermill", {}).pop(key, None)
    atomic.write_text(notebook, nbformat.writes(nb).replace(f"{paths.REPO}/", "") + "\n")


class Report:
    def __init__(self, preset: str, seeds: list[int] | None, redo: set[str], jobs: int) -> None:
        self.preset = preset
        self.seeds = list(load_plan(preset).seeds) if seeds is None else seeds
        self.redo = redo
        self.jobs = jobs
        # The SynthVID data the preset trains on: where (data.root), which SynthVID preset
        # and seed generate it (data.preset, data.synth_seed).
        self.config = RunConfig.from_dict(load_config(preset))
        if not self.config.data.preset:
            raise ValueError(f"config {preset}: data.preset is null, but `lsts report` "
                             "generates its SynthVID data (set data.preset)")
        self.data = Path(self.config.data.root)
        self.runs = paths.RUNS / preset
        self.plan = preset_plan(self.runs, preset, self.seeds)
        self.orchestrator = Orchestrator(preset, self.data, jobs=jobs, redo=redo)

    def _stamped(self, stage: str, name: str, inputs: dict, outputs: list[Path],
                 make: Callable[[], None]) -> None:
        """Make `outputs` unless the stamp `name` says they are done for `inputs`."""
        stamp = rundir.Stamp(self.runs, name)
        if stage in self.redo or not stamp.done(inputs):
            make()
            stamp.mark(inputs, outputs)

    # The argv of each `lsts` command a stage runs itself (the plan's per-run commands are
    # the Orchestrator's): one place, read both to run it and to name it in the report.
    def synth_argv(self) -> list[str]:
        data = self.config.data
        return ["synth", "--out", str(self.data), "--preset", str(data.preset),
                "--seed", str(data.synth_seed)]

    def stats_argv(self, split: str) -> list[str]:
        return ["data-stats", "--data", str(self.data), "--split", split,
                "--json", str(self.runs / f"data_stats_{split}.json")]

    def bench_argv(self) -> list[str]:
        # The smoke preset (CI) skips the paper-size runs: ResNet-101 at 600x1000 costs
        # seconds per forward on a CPU. The report preset measures both sizes.
        sizes = self.bench_sizes()
        return ["bench", "--config", self.preset, "--device", "cpu",
                "--json", str(self.runs / "bench_cpu.json"), "--sizes", ",".join(sizes),
                *inference.to_argv(speed_options()), "--mode-sizes", sizes[-1],
                "--mode-variants", *MODE_VARIANTS]

    def bench_sizes(self) -> tuple[str, ...]:
        return ("preset",) if self.preset == "smoke" else ("preset", "paper")

    def bench_lsts_argv(self) -> list[str]:
        return ["bench-lsts", "--json", str(self.runs / "bench_lsts_cpu.json"),
                *(["--no-keyframe", "--repeats", "1"] if self.preset == "smoke" else [])]

    def claims_argv(self) -> list[str]:
        return ["claims", "--runs", str(self.runs), "--data", str(self.data),
                "--split", self.config.data.test_split,
                "--json", str(self.runs / "claims.json")]

    def runs_of(self, output: str, variant: str | None = None) -> list[PlannedRun] | None:
        """The plan's runs a per-run output of MADE_BY is made for, in the order the stages
        run them, only `variant`'s when given (None: an output made once)."""
        compared = [r for r in self.plan if r.compared and variant in (None, r.variant)]
        first_seed = [r for r in compared if r.seed == self.seeds[0]]
        return {"train": compared, "evaluate": compared,
                "detect_options": [r for r in first_seed if r.variant in MODE_VARIANTS],
                "alignment": [r for r in compared
                              if not get_variant(r.variant).every_frame_key]}.get(output)

    def commands(self, output: str, variant: str | None = None) -> list[list[str]]:
        """The argv of the `lsts` commands this report runs to make `output`, one of
        MADE_BY; for a per-run output (`runs_of`), those of its first run (of `variant`, when
        given); [] when this preset does not make it."""
        runs, orch = self.runs_of(output, variant), self.orchestrator
        if runs == []:
            return []
        if output == "data":
            return [self.synth_argv()]
        if output == "stats":
            splits = dict.fromkeys(("train", self.config.data.val_split,
                                    self.config.data.test_split))
            return [self.stats_argv(s) for s in splits]
        if output == "train":
            return [orch.train_argv(runs[0])]
        if output == "evaluate":
            return [orch.detect_argv(runs[0]), orch.evaluate_argv(runs[0])]
        if output == "alignment":
            return [orch.align_argv(runs[0])]
        if output == "flow_pretrain":  # none unless the plan sets plan.flow_pretrain
            return [orch.flow_pretrain_argv(c)
                    for c in sorted({r.flow_init for r in self.plan if r.flow_init})]
        if output == "detect_options":
            mode = speed_options().modes()[0]
            return [orch.detect_argv(runs[0], mode), orch.evaluate_argv(runs[0], mode)]
        if output == "bench":
            return [self.bench_argv()]
        if output == "bench_lsts":
            return [self.bench_lsts_argv()]
        if output == "claims":
            return [self.claims_argv()]
        raise ValueError(f"unknown report output {output!r}; choose one of {MADE_BY}")

    # 1 ------------------------------------------------------------------------------
    def stage_data(self) -> None:
        # `lsts synth` itself returns at once when a complete dataset of this preset exists.
        lsts_child(*self.synth_argv(), *(["--overwrite"] if "data" in self.redo else []))

    # 2 ------------------------------------------------------------------------------
    def stage_stats(self) -> None:
        splits = dict.fromkeys(("train", self.config.data.val_split,
                                self.config.data.test_split))
        for split in splits:
            out = self.runs / f"data_stats_{split}.json"
            inputs = {"data_sha256": rundir.dataset_fingerprint(self.data), "split": split}
            self._stamped("stats", f"stats_{split}", inputs, [out],
                          lambda split=split: lsts_child(*self.stats_argv(split)))

    # 3 ------------------------------------------------------------------------------
    def stage_train(self) -> None:
        self.orchestrator.train(self.plan)

    # 4 ------------------------------------------------------------------------------
    def stage_detect(self) -> None:
        self.orchestrator.detect(self.plan)
        # Each speed option's mAP change: the first seed of the mode table's runs.
        out = self.runs / rundir.DETECT_OPTIONS
        modes = speed_options().modes()
        runs = self.runs_of("detect_options")
        inputs = {"models": {str(r.model): rundir.sha256_file(r.model) for r in runs},
                  "data_sha256": rundir.dataset_fingerprint(self.data),
                  "split": self.config.data.test_split, "modes": [m.name for m in modes]}
        self._stamped("detect", "detect_options", inputs, [out], lambda: atomic.write_json(
            out, self.orchestrator.detect_options(self.plan, modes, MODE_VARIANTS,
                                                  self.seeds[0])))

    # 5 ------------------------------------------------------------------------------
    def stage_bench(self) -> None:
        args = self.bench_argv()
        # The resolved models and eval settings it times: a changed preset (this one's, or
        # paper.yaml's model) makes the old timings stale.
        inputs = {"argv": args, "configs": bench_inputs(self.preset, self.bench_sizes())}
        self._stamped("bench", "bench", inputs, [self.runs / "bench_cpu.json"],
                      lambda: lsts_child(*args))
        args_lsts = self.bench_lsts_argv()
        self._stamped("bench", "bench_lsts", {"argv": args_lsts, "code": BENCH_LSTS_VERSION},
                      [self.runs / "bench_lsts_cpu.json"], lambda: lsts_child(*args_lsts))

    # 6 ------------------------------------------------------------------------------
    def stage_alignment(self) -> None:
        # Every seed: the alignment tables give each method's error as mean ± std over the
        # seeds, as the accuracy tables do. Each run's stamp (`Orchestrator.align_one`) keeps
        # the JSONs already measured for the same model and data.
        self.orchestrator.align(self.runs_of("alignment"))

    # 7 ------------------------------------------------------------------------------
    def stage_claims(self) -> None:
        out = self.runs / "claims.json"
        split = self.config.data.test_split
        bench = self.runs / "bench_cpu.json"
        evals = sorted(str(r.dir / rundir.EVAL) for r in self.plan if r.compared)
        inputs = {"split": split, "evals": {e: rundir.sha256_file(e) for e in evals},
                  "bench": rundir.sha256_file(bench) if bench.is_file() else None}
        self._stamped("claims", "claims", inputs, [out],
                      lambda: lsts_child(*self.claims_argv()))

    # 8 ------------------------------------------------------------------------------
    def stage_notebooks(self) -> None:
        import papermill as pm

        # Only the report preset writes the committed notebooks; others go to runs/<preset>/.
        out_dir = paths.executed_notebooks_dir(self.preset)
        out_dir.mkdir(parents=True, exist_ok=True)
        for nb in sorted(paths.NOTEBOOKS.glob(NOTEBOOK_GLOB)):
            print(f"executing {nb.name} (PRESET={self.preset}) -> {out_dir / nb.name}", flush=True)
            start = time.perf_counter()
            # The preset reaches the parameters cell through LSTS_PRESET, not an injected
            # papermill cell: an injected `PRESET = "report"` would be committed with the
            # notebook and override CI's LSTS_PRESET=smoke under nbval.
            os.environ["LSTS_PRESET"] = self.preset
            pm.execute_notebook(str(nb), str(out_dir / nb.name), cwd=str(paths.NOTEBOOKS),
                                kernel_name="python3", progress_bar=False)
            scrub_machine_paths(out_dir / nb.name)
            print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)

    # 9 ------------------------------------------------------------------------------
    def stage_html(self) -> None:
        out_dir = paths.html_edition_dir(self.preset)
        src = paths.executed_notebooks_dir(self.preset)
        html_edition.build(sorted(src.glob(NOTEBOOK_GLOB)), out_dir)
        print(f"HTML edition in {out_dir}")
        why = html_edition.unavailable()
        if why:
            print(f"HTML check skipped: {why}")
            return
        results = html_edition.check_html(out_dir, src)
        print("\n".join(html_edition.report_lines(results)))
        failed = [r["page"] for r in results if not r["ok"]]
        if failed:
            raise ValueError(f"the HTML edition fails its check on {failed} "
                             f"(see {out_dir / html_edition.CHECK_DIR / 'check.json'})")

    # 10 -----------------------------------------------------------------------------
    def stage_readme(self) -> None:
        from lsts_lib.results import update_readme, update_readme_paper, update_readme_prose

        if self.preset != "report":
            print("README table comes from the report preset only; skipped")
            return

        update_readme(paths.REPO / "README.md", self.runs)
        update_readme_paper(paths.REPO / "README.md")
        update_readme_prose(paths.REPO / "README.md", self.runs)

    def run(self, only: list[str] | None) -> None:
        start = time.perf_counter()
        seconds: dict[str, float] = {}  # per stage of this invocation (cached work is skipped)
        for stage in STAGES:
            if only and stage not in only:
                continue
            t0 = time.perf_counter()
            print(f"\n=== {stage} ===", flush=True)
            getattr(self, f"stage_{stage}")()
            seconds[stage] = round(time.perf_counter() - t0, 1)
            print(f"=== {stage}: {seconds[stage]:.0f} s", flush=True)
        summary = {"preset": self.preset, "seeds": self.seeds,
                   "wall_s": round(time.perf_counter() - start, 1), "stage_s": seconds}
        atomic.write_json(self.runs / "report_run.json", summary)
        print(f"\nreport finished in {summary['wall_s'] / 60:.1f} min")


def main(args: argparse.Namespace) -> int:
    redo = set(STAGES) if args.redo == [] else set(args.redo or [])
    Report(args.preset, args.seeds, redo, args.jobs).run(args.only)
    return 0
