"""`lsts report`: the whole report, end to end, from nothing.

Stages (each skipped when its outputs exist, unless --redo):
  1. data       SynthVID for the preset (`lsts synth`)
  2. stats      `lsts data-stats` of train and val
  3. train      stage 1 single-frame detector per seed, then every temporal variant from it
  4. detect     each trained model over the val split, then `lsts evaluate`
  5. bench      `lsts bench` (every variant, preset and paper size) and `lsts bench-lsts`
  6. notebooks  01..06 executed in order by papermill into their committed location
  7. html       an HTML edition of the executed notebooks (nbconvert) in report/
  8. readme     the README's results table regenerated from the run's JSON

Every stage goes through the same `lsts` commands a user would type, so the report
is exactly as reproducible as those commands.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsts_lib import paths

STAGES = ("data", "stats", "train", "detect", "bench", "notebooks", "html", "readme")
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
# Variant runs of the report: (run name, config overrides). Stage 1 is `single_frame`;
# every other run starts from its weights (same seed).
TEMPORAL_RUNS: dict[str, list[str]] = {
    "copy_prop": ["model.variant=copy_prop"],
    "flow_warp": ["model.variant=flow_warp"],
    "lsts_fixed": ["model.variant=lsts_fixed"],
    "lsts": ["model.variant=lsts", "model.offsets_init=uniform"],
    "lsts_gaussian": ["model.variant=lsts", "model.offsets_init=gaussian"],
    "lsts_no_srfu": ["model.variant=lsts_no_srfu"],
    "lsts_no_dfa": ["model.variant=lsts_no_dfa"],
}
SEEDS = (0, 1, 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="report", choices=["smoke", "report"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--only", nargs="+", choices=STAGES, help="run only these stages")
    parser.add_argument("--redo", nargs="*", choices=STAGES, default=None,
                        help="redo these stages (all when given without names)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="training/detection processes at once (1 thread each)")


def _lsts(*argv: str, threads: int | None = None) -> None:
    """Run an `lsts` subcommand in a child process, failing loudly."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   LSTS_THREADS=str(threads))
    cmd = [sys.executable, "-m", "lsts_lib", *argv]
    print("$ lsts " + " ".join(argv), flush=True)
    subprocess.run(cmd, check=True, env=env)


def _parallel(jobs: int, tasks: list[Callable[[], None]]) -> None:
    """Run independent child-process tasks, `jobs` at a time; re-raise the first failure."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(t) for t in tasks]:
            future.result()


def scrub_machine_paths(notebook: Path) -> None:
    """Make an executed notebook machine-independent: file paths in outputs (e.g. a warning's
    source line) become repository-relative, and papermill's absolute input/output paths go."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for key in ("input_path", "output_path"):
        nb.metadata.get("papermill", {}).pop(key, None)
    notebook.write_text(nbformat.writes(nb).replace(f"{paths.REPO}/", "") + "\n")


class Report:
    def __init__(self, preset: str, seeds: list[int], redo: set[str], jobs: int) -> None:
        self.preset = preset
        self.seeds = seeds
        self.redo = redo
        self.jobs = jobs
        self.data = paths.synthvid_root(preset)
        self.runs = paths.RUNS / preset

    def fresh(self, stage: str, output: Path) -> bool:
        """True when `output` must be (re)made for `stage`."""
        return stage in self.redo or not output.exists()

    # 1 ------------------------------------------------------------------------------
    def stage_data(self) -> None:
        # `lsts synth` itself returns at once when a complete dataset of this preset exists.
        args = ["synth", "--out", str(self.data), "--preset", self.preset, "--seed", "0"]
        if "data" in self.redo:
            args.append("--overwrite")
        _lsts(*args)

    # 2 ------------------------------------------------------------------------------
    def stage_stats(self) -> None:
        for split in ("train", "val"):
            out = self.runs / f"data_stats_{split}.json"
            if self.fresh("stats", out):
                out.parent.mkdir(parents=True, exist_ok=True)
                _lsts("data-stats", "--data", str(self.data), "--split", split,
                      "--json", str(out))

    # 3 ------------------------------------------------------------------------------
    def run_dir(self, name: str, seed: int) -> Path:
        return self.runs / name / f"seed{seed}"

    def _train(self, name: str, seed: int, overrides: list[str]) -> Callable[[], None]:
        out = self.run_dir(name, seed)

        def task() -> None:
            if not self.fresh("train", out / "model.pt"):
                return
            args = ["train", "--config", self.preset, "--out", str(out)]
            if name != "single_frame":
                args += ["--init-from", str(self.run_dir("single_frame", seed) / "model.pt")]
            redo = "train" in self.redo
            resume = (out / "last.pt").exists() and not redo
            flags = ["--redo"] if redo else ["--resume"] if resume else []
            _lsts(*args, *flags, f"seed={seed}",
                  f"data.root={self.data}", *overrides, threads=1)

        return task

    def stage_train(self) -> None:
        # One queue: every stage-1 run first, then the temporal runs, each of which waits
        # for its own seed's stage 1 only -- so no core idles while the last seed's
        # single-frame model trains. Stage-1 runs are queued first, so waiting can't deadlock.
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            stage1 = {s: pool.submit(self._train("single_frame", s, ["model.variant=single_frame"]))
                      for s in self.seeds}

            def after_stage1(seed: int, task: Callable[[], None]) -> None:
                stage1[seed].result()
                task()

            stage2 = [pool.submit(after_stage1, s, self._train(name, s, ov))
                      for s in self.seeds for name, ov in TEMPORAL_RUNS.items()]
            for future in [*stage1.values(), *stage2]:
                future.result()

    # 4 ------------------------------------------------------------------------------
    def _detect(self, name: str, seed: int) -> Callable[[], None]:
        run = self.run_dir(name, seed)

        def task() -> None:
            out = run / "eval.json"
            if not self.fresh("detect", out):
                return
            _lsts("detect", "--checkpoint", str(run / "model.pt"), "--data", str(self.data),
                  "--split", "val", "--out", str(run / "detections"), threads=1)
            _lsts("evaluate", "--data", str(self.data), "--split", "val", "--detections",
                  str(run / "detections" / "detections.txt"), "--json", str(out), threads=1)

        return task

    def stage_detect(self) -> None:
        names = ["single_frame", *TEMPORAL_RUNS]
        _parallel(self.jobs, [self._detect(n, s) for s in self.seeds for n in names])

    # 5 ------------------------------------------------------------------------------
    def stage_bench(self) -> None:
        # The smoke preset (CI) skips the paper-size runs: ResNet-101 at 600x1000 costs
        # seconds per forward on a CPU. The report preset measures both sizes.
        smoke = self.preset == "smoke"
        out = self.runs / "bench_cpu.json"
        if self.fresh("bench", out):
            _lsts("bench", "--config", self.preset, "--device", "cpu", "--json", str(out),
                  "--sizes", "preset" if smoke else "preset,paper")
        out = self.runs / "bench_lsts_cpu.json"
        if self.fresh("bench", out):
            _lsts("bench-lsts", "--json", str(out),
                  *(["--no-keyframe", "--repeats", "1"] if smoke else []))

    # 6 ------------------------------------------------------------------------------
    def stage_notebooks(self) -> None:
        import papermill as pm

        # Only the report preset writes the committed notebooks; others go to runs/<preset>/.
        out_dir = paths.NOTEBOOKS if self.preset == "report" else self.runs / "notebooks"
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

    # 7 ------------------------------------------------------------------------------
    def stage_html(self) -> None:
        out_dir = paths.REPO / "report" if self.preset == "report" else self.runs / "html"
        out_dir.mkdir(parents=True, exist_ok=True)
        src = paths.NOTEBOOKS if self.preset == "report" else self.runs / "notebooks"
        notebooks = sorted(src.glob(NOTEBOOK_GLOB))
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                        "--output-dir", str(out_dir), *map(str, notebooks)], check=True)
        print(f"HTML edition in {out_dir}")

    # 8 ------------------------------------------------------------------------------
    def stage_readme(self) -> None:
        from lsts_lib.results import update_readme

        if self.preset != "report":
            print("README table comes from the report preset only; skipped")
            return

        update_readme(paths.REPO / "README.md", self.runs)

    def run(self, only: list[str] | None) -> None:
        start = time.perf_counter()
        for stage in STAGES:
            if only and stage not in only:
                continue
            t0 = time.perf_counter()
            print(f"\n=== {stage} ===", flush=True)
            getattr(self, f"stage_{stage}")()
            print(f"=== {stage}: {time.perf_counter() - t0:.0f} s", flush=True)
        summary = {"preset": self.preset, "seeds": self.seeds,
                   "wall_s": round(time.perf_counter() - start, 1)}
        self.runs.mkdir(parents=True, exist_ok=True)
        (self.runs / "report_run.json").write_text(json.dumps(summary, indent=2))
        print(f"\nreport finished in {summary['wall_s'] / 60:.1f} min")


def main(args: argparse.Namespace) -> int:
    redo = set(STAGES) if args.redo == [] else set(args.redo or [])
    Report(args.preset, args.seeds, redo, args.jobs).run(args.only)
    return 0
