"""The run plan and its orchestrator: which runs a comparison needs, in which order, and
which of their stages are still to do.

A plan is one run per (variant, seed), in one of three protocols (`plan.shared_stage1`,
`plan.one_stage`):
* per-seed stage 1: the single-frame run of seed s is the stage-1 model, and every other
  variant of seed s starts from it;
* shared stage 1 (the report's): one single-frame model is trained once (stage 1, the
  analogue of the paper's shared ImageNet initialisation), and every variant of every seed,
  single_frame included, trains stage 2 from it: the same start and the same budget for all,
  paired by seed;
* one stage (the official protocol, the paper preset's): no run starts from another; every
  run trains from the model's own initial weights (ImageNet) with its variant's schedule.
The orchestrator trains, detects and evaluates the runs of a plan; `lsts report`, notebook
04 and the tests all go through it.
Whether a stage is done is decided by its stamp alone (`rundir.Stamp`): a run whose inputs
changed (config, data content, the stage-1 weights it starts from) is redone, and so is
everything downstream of it, since their stamps name the hashes of what they read.

Two ways to execute the same decisions: in this process (`jobs=None`: notebooks, tests), or
as `lsts` child processes, `jobs` at a time with one torch thread each (`lsts report`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from lsts_lib import atomic
from lsts_lib.engine import inference, rundir
from lsts_lib.engine.alignment import alignment
from lsts_lib.engine.checkpoint import load_checkpoint
from lsts_lib.engine.config import PlanConfig, RunConfig, load_config, load_plan
from lsts_lib.engine.detect import detect
from lsts_lib.engine.flow_pretrain import CHECKPOINT as FLOWNET_CHECKPOINT
from lsts_lib.engine.flow_pretrain import PRETRAIN_VERSION, pretrain
from lsts_lib.engine.flow_pretrain import SUMMARY as FLOWNET_SUMMARY
from lsts_lib.engine.inference import InferenceOptions
from lsts_lib.engine.train import resumable, train, train_inputs
from lsts_lib.eval import vid_eval
from lsts_lib.eval.detections_io import read_vid_detections
from lsts_lib.models.variants import STAGE1, VARIANTS, get_variant, run_overrides

T = TypeVar("T")
FLOWNET_DIR = "flownet"


def mode_paths(run_dir: Path, options: InferenceOptions) -> tuple[Path, Path, str]:
    """(detections folder, eval JSON, suffix) of a run detected under speed `options`: the
    default's detections/ and eval.json, else detections_<mode>/ and eval_<mode>.json."""
    tag = "" if options.is_default else f"_{options.name}"
    return (run_dir / f"{rundir.DETECTIONS}{tag}",
            run_dir / f"{Path(rundir.EVAL).stem}{tag}.json", tag)


@dataclass(frozen=True)
class PlannedRun:
    variant: str
    seed: int
    dir: Path
    init_from: Path | None  # the stage-1 model a stage-2 run starts from
    stage: str = "auto"  # train.stage of the run ("auto": decided by its variant)
    compared: bool = True  # detected, evaluated and tabled (False: a shared stage-1 model)
    flow_init: Path | None = None  # a flow run's pretrained FlowNet (`plan.flow_pretrain`)

    @property
    def model(self) -> Path:
        return self.dir / rundir.MODEL


def run_plan(runs_root: str | Path, seeds: Iterable[int],
             variants: Iterable[str] | None = None, shared_stage1: bool = False,
             stage1_seed: int = 0, flow_pretrain: bool = False,
             one_stage: bool = False) -> list[PlannedRun]:
    """Stage-1 runs first, then the other runs (catalogue order within a seed).
    flow_pretrain: every flow run starts from the FlowNet pretrained into `flownet_dir`."""
    if one_stage and shared_stage1:
        raise ValueError("one_stage and shared_stage1 are two protocols: choose one")
    names = list(VARIANTS) if variants is None else list(variants)
    for name in names:
        get_variant(name)
    seeds = list(seeds)
    root = Path(runs_root).resolve()
    flownet = flownet_dir(root) / FLOWNET_CHECKPOINT if flow_pretrain else None

    def flow(name: str) -> Path | None:
        return flownet if get_variant(name).nonkey == "flow" else None

    if shared_stage1:
        stage1 = PlannedRun(STAGE1, stage1_seed,
                            rundir.run_dir(root, rundir.SHARED_STAGE1, stage1_seed), None,
                            stage="stage1", compared=False)
        return [stage1] + [PlannedRun(n, s, rundir.run_dir(root, n, s), stage1.model,
                                      stage="stage2", flow_init=flow(n))
                           for s in seeds for n in names]
    if one_stage:
        return [PlannedRun(n, s, rundir.run_dir(root, n, s), None, flow_init=flow(n))
                for s in seeds for n in names]
    temporal = [n for n in names if n != STAGE1]
    plan = [PlannedRun(STAGE1, s, rundir.run_dir(root, STAGE1, s), None)
            for s in seeds if STAGE1 in names or temporal]
    plan += [PlannedRun(n, s, rundir.run_dir(root, n, s),
                        rundir.run_dir(root, STAGE1, s) / rundir.MODEL, flow_init=flow(n))
             for s in seeds for n in temporal]
    return plan


def flownet_dir(runs_root: str | Path) -> Path:
    """runs/<preset>/flownet: the FlowNet pretrained once per report (`plan.flow_pretrain`)."""
    return Path(runs_root) / FLOWNET_DIR


def preset_plan(runs_root: str | Path, config: str | Path,
                seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """The plan a preset's `plan:` section describes (`seeds` overrides its seeds)."""
    spec = load_plan(config)
    return run_plan(runs_root, spec.seeds if seeds is None else seeds, spec.variants,
                    spec.shared_stage1, spec.stage1_seed, spec.flow_pretrain is not None,
                    spec.one_stage)


def lsts_child(*argv: str, threads: int | None = None) -> None:
    """Run an `lsts` subcommand in a child process, failing loudly; `threads` torch threads
    (default: the child's own choice)."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   LSTS_THREADS=str(threads))
    print("$ lsts " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "lsts_lib", *argv], check=True, env=env)


class Orchestrator:
    """Trains, detects and evaluates the runs of a plan; each stage only when not done.

    config: a preset name or YAML path (a dict is accepted in-process only); redo: stages
    ("train", "detect") to redo even when their stamps say done; flow_pretrain: the
    `lsts flow-pretrain` settings of the plan's flow runs' FlowNet (default: the preset's
    `plan.flow_pretrain`), trained with seed `flow_seed` (default: `plan.stage1_seed`).
    """

    def __init__(self, config: str | Path | Mapping[str, Any], data_root: str | Path,
                 jobs: int | None = None, redo: Iterable[str] = (),
                 overrides: Mapping[str, Any] | None = None,
                 progress: bool | None = None,
                 flow_pretrain: Mapping[str, Any] | None = None,
                 flow_seed: int | None = None) -> None:
        if jobs is not None and not isinstance(config, str | Path):
            raise ValueError("child processes need a config preset name or YAML path")
        if jobs is not None and jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.config = config
        self.data_root = Path(data_root).resolve()
        self.jobs = jobs
        self.redo = set(redo)
        self.overrides = dict(overrides or {})
        self.progress = progress
        # The split every run is detected and evaluated on (data.test_split).
        run = RunConfig.from_dict(load_config(config, {"data.root": str(self.data_root),
                                                       **self.overrides}))
        self.eval_split = run.data.test_split
        spec = load_plan(config) if isinstance(config, str | Path) else PlanConfig()
        self.flow_pretrain = dict(spec.flow_pretrain or {} if flow_pretrain is None
                                  else flow_pretrain)
        self.flow_seed = spec.stage1_seed if flow_seed is None else flow_seed
        self._run = run

    # ------------------------------------------------------------------------- train
    def run_overrides(self, run: PlannedRun) -> dict[str, Any]:
        """The overrides that make the config this run's (its variant, seed and data)."""
        flow = {"train.flow_init_from": str(run.flow_init)} if run.flow_init else {}
        return {**run_overrides(run.variant), "train.seed": run.seed,
                "train.stage": run.stage, "data.root": str(self.data_root), **flow,
                **self.overrides}

    def train_one(self, run: PlannedRun, threads: int = 1) -> None:
        overrides = self.run_overrides(run)
        stamp = rundir.Stamp(run.dir, "train")
        inputs = train_inputs(load_config(self.config, overrides), run.init_from)
        if "train" not in self.redo and rundir.is_finished(run.dir) and stamp.done(inputs):
            return
        # An unfinished run is resumed only when its last.pt was made from exactly these
        # inputs; a finished or unfinished run made from other inputs (e.g. a retrained
        # stage-1 model, a regenerated dataset) is redone.
        resume = ("train" not in self.redo and not rundir.is_finished(run.dir)
                  and resumable(run.dir / rundir.LAST, inputs))
        redo = not resume and ("train" in self.redo or rundir.is_finished(run.dir)
                               or (run.dir / rundir.LAST).exists())
        if self.jobs is None:
            train(self.config, run.dir, overrides, resume=resume, init_from=run.init_from,
                  redo=redo, progress=self.progress)
            return
        lsts_child(*self.train_argv(run, resume=resume, redo=redo), threads=threads)

    # The argv of each `lsts` command the orchestrator runs as a child process: one place,
    # read both to run it and to name it beside the numbers it makes (results.made_by).
    def train_argv(self, run: PlannedRun, resume: bool = False, redo: bool = False
                   ) -> list[str]:
        args = ["train", "--config", str(self.config), "--out", str(run.dir)]
        if run.init_from is not None:
            args += ["--init-from", str(run.init_from)]
        args += ["--redo"] if redo else ["--resume"] if resume else []
        return args + [f"{k}={v}" for k, v in self.run_overrides(run).items()]

    def detect_argv(self, run: PlannedRun, options: InferenceOptions | None = None,
                    redo: bool = False) -> list[str]:
        options = options or InferenceOptions()
        return ["detect", "--checkpoint", str(run.model), "--data", str(self.data_root),
                "--split", self.eval_split, "--out", str(mode_paths(run.dir, options)[0]),
                *inference.to_argv(options), *(["--redo"] if redo else [])]

    def evaluate_argv(self, run: PlannedRun, options: InferenceOptions | None = None
                      ) -> list[str]:
        det_dir, out, _ = mode_paths(run.dir, options or InferenceOptions())
        return ["evaluate", "--data", str(self.data_root), "--split", self.eval_split,
                "--detections", str(det_dir / "detections.txt"), "--json", str(out)]

    def align_argv(self, run: PlannedRun) -> list[str]:
        return ["alignment", "--run", str(run.dir), "--data", str(self.data_root),
                "--split", self.eval_split, "--json", str(run.dir / rundir.ALIGNMENT)]

    def flow_pretrain_argv(self, checkpoint: Path) -> list[str]:
        settings = {k: v for k, v in self.flow_pretrain.items() if k != "steps"}
        return ["flow-pretrain", "--data", str(self.data_root), "--out",
                str(checkpoint.parent), "--steps", str(self.flow_pretrain["steps"]),
                "--seed", str(self.flow_seed), "--config", str(self.config),
                "--eval-split", self.eval_split,
                *(a for k, v in settings.items() for a in (f"--{k.replace('_', '-')}", str(v)))]

    def pretrain_flow(self, checkpoint: Path) -> None:
        """`lsts flow-pretrain` into checkpoint's folder (its EPE measured on the evaluated
        split), unless its stamp says it is done for exactly these inputs."""
        if not self.flow_pretrain:
            raise ValueError(f"{checkpoint}: the plan's flow runs start from a pretrained "
                             "FlowNet, but no plan.flow_pretrain settings were given")
        out = checkpoint.parent
        model, train_cfg = self._run.model, self._run.train
        inputs = {"settings": self.flow_pretrain, "seed": self.flow_seed,
                  "split": self.eval_split, "version": PRETRAIN_VERSION,
                  "data_sha256": rundir.dataset_fingerprint(self.data_root),
                  "model": {"flownet_channels": list(model.flownet_channels),
                            "flownet_max_displacement": model.flownet_max_displacement,
                            "min_size": model.min_size, "max_size": model.max_size},
                  "new_key_range": list(train_cfg.new_key_range)}
        stamp = rundir.Stamp(out, "flow_pretrain")
        if "train" not in self.redo and checkpoint.is_file() and stamp.done(inputs):
            return
        settings = {k: v for k, v in self.flow_pretrain.items() if k != "steps"}
        if self.jobs is None:
            pretrain(self.data_root, out, self.flow_pretrain["steps"], self.flow_seed,
                     self.config, self.eval_split, progress=self.progress, **settings)
        else:
            lsts_child(*self.flow_pretrain_argv(checkpoint), threads=1)
        stamp.mark(inputs, [FLOWNET_CHECKPOINT, FLOWNET_SUMMARY])

    def train(self, plan: list[PlannedRun]) -> list[Path]:
        """Every run of the plan; a run waits only for the stage-1 model and the pretrained
        FlowNet it starts from."""
        starts = {r.init_from for r in plan if r.init_from is not None}
        stage1 = {r.model: r for r in plan if r.model in starts}
        flownets = sorted({r.flow_init for r in plan if r.flow_init is not None})
        if self.jobs is None:
            for checkpoint in flownets:
                self.pretrain_flow(checkpoint)
            for run in plan:
                self.train_one(run)
            return [r.model for r in plan]
        if len(stage1) == 1 and len(plan) > 1:
            # One shared stage-1 model: nothing else can start before it, so it gets every
            # core (threads scale ~1.5x on 2 cores; the runs after it run `jobs` at a time).
            (first,) = stage1.values()
            self.train_one(first, threads=self.jobs)
            stage1 = {}
            plan = [r for r in plan if r is not first]

        def after_starts(futures: dict[Path, Future], run: PlannedRun) -> None:
            for start in (run.init_from, run.flow_init):
                if start in futures:
                    futures[start].result()
            self.train_one(run)

        # Stage-1 runs and the FlowNet are queued first, so waiting for them cannot deadlock
        # the pool.
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = {m: pool.submit(self.train_one, r) for m, r in stage1.items()}
            futures.update({c: pool.submit(self.pretrain_flow, c) for c in flownets})
            rest = [pool.submit(after_starts, futures, r) for r in plan
                    if r.model not in futures]
            for f in [*futures.values(), *rest]:
                f.result()
        return [r.model for r in plan]

    # ------------------------------------------------------------------ detect + evaluate
    def detect_one(self, run: PlannedRun, options: InferenceOptions | None = None) -> Path:
        """Detections over the test split, then eval.json; returns the eval.json path. With
        speed `options` other than the default, into detections_<mode>/ and eval_<mode>.json."""
        options = options or InferenceOptions()
        det_dir, out, tag = mode_paths(run.dir, options)
        redo = "detect" in self.redo
        split = self.eval_split
        if self.jobs is None:
            detect(run.model, self.data_root, det_dir, split=split, redo=redo,
                   progress=self.progress, options=options)
        else:
            lsts_child(*self.detect_argv(run, options, redo), threads=1)
        detections = det_dir / "detections.txt"
        inputs = {"detections_sha256": rundir.sha256_file(detections),
                  "data_sha256": rundir.dataset_fingerprint(self.data_root),
                  "split": split}
        stamp = rundir.Stamp(run.dir, f"evaluate{tag}")
        if redo or not stamp.done(inputs):
            if self.jobs is None:
                evaluate(self.data_root, split, detections, out)
            else:
                lsts_child(*self.evaluate_argv(run, options), threads=1)
            stamp.mark(inputs, [out.name])
        return out

    def detect_options(self, plan: list[PlannedRun], modes: Sequence[InferenceOptions],
                       variants: Sequence[str], seed: int) -> dict[str, Any]:
        """Each speed mode's effect on accuracy: the runs of `variants` and `seed` detected
        and evaluated under each of `modes` as under the default (`detect_one`), one row per
        (run, mode) with its mAP, the change from the default's, the largest score change
        of a detection (None where the detections differ in number or classes) and what
        each option did to the model (`lsts detect`'s notes: e.g. how many BatchNorm layers
        --fold-bn found)."""
        runs = [r for r in plan if r.compared and r.variant in variants and r.seed == seed]
        pairs = [(r, m) for r in runs for m in [InferenceOptions(), *modes]]
        evals = self._map(lambda rm: self.detect_one(*rm), pairs)
        rows = []
        for (run, mode), path in zip(pairs, evals, strict=True):
            default_path = run.dir / rundir.EVAL
            base = atomic.read_json(default_path)["mAP"]
            mAP = atomic.read_json(path)["mAP"]
            det_dir = mode_paths(run.dir, mode)[0]
            rows.append({"variant": run.variant, "seed": run.seed, "mode": mode.name,
                         "mAP": mAP, "mAP_change": mAP - base,
                         "max_abs_score_change": score_change(
                             run, run.dir / rundir.DETECTIONS, det_dir)
                         if not mode.is_default else 0.0,
                         "notes": atomic.read_json(det_dir / "timing.json").get(
                             "option_notes", {})})
        return {"split": self.eval_split, "seed": seed, "rows": rows}

    def align_one(self, run: PlannedRun) -> Path:
        """`lsts alignment` of a propagating run on the evaluated split; returns its JSON."""
        out = run.dir / rundir.ALIGNMENT
        inputs = {"model_sha256": rundir.sha256_file(run.model), "split": self.eval_split,
                  "data_sha256": rundir.dataset_fingerprint(self.data_root)}
        stamp = rundir.Stamp(run.dir, "alignment")
        if "alignment" in self.redo or not stamp.done(inputs):
            if self.jobs is None:
                atomic.write_json(out, alignment(run.dir, self.data_root, self.eval_split))
            else:
                lsts_child(*self.align_argv(run), threads=1)
            stamp.mark(inputs, [rundir.ALIGNMENT])
        return out

    def align(self, plan: list[PlannedRun]) -> list[Path]:
        """Alignment of the compared runs that propagate features (not single-frame ones)."""
        return self._map(self.align_one, [r for r in plan if r.compared
                                          and not get_variant(r.variant).every_frame_key])

    def detect(self, plan: list[PlannedRun]) -> list[Path]:
        """Detect and evaluate the compared runs of the plan (not a shared stage-1 model)."""
        return self._map(self.detect_one, [r for r in plan if r.compared])

    def _map(self, fn: Callable[[T], Path], items: list[T]) -> list[Path]:
        if self.jobs is None:
            return [fn(r) for r in items]
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            return [f.result() for f in [pool.submit(fn, r) for r in items]]


def score_change(run: PlannedRun, default_dir: Path, mode_dir: Path) -> float | None:
    """The largest |score change| between the same detection of two detections.txt files
    of `run` (rows matched in (frame, class, score) order); None when they differ in the
    number of detections of some frame and class (then rows cannot be matched)."""
    classes = len(load_checkpoint(run.model)["classes"]["ids"])
    a, b = (read_vid_detections(d / "detections.txt", classes) for d in (default_dir, mode_dir))
    if len(a) != len(b):
        return None
    ia, ib = (np.lexsort((-d.scores, d.labels, d.frame_ids)) for d in (a, b))
    if not (np.array_equal(a.frame_ids[ia], b.frame_ids[ib])
            and np.array_equal(a.labels[ia], b.labels[ib])):
        return None
    return float(np.abs(a.scores[ia] - b.scores[ib]).max(initial=0.0))


def evaluate(data_root: Path, split: str, detections: Path, out: Path) -> None:
    """`lsts evaluate` in this process: the devkit and COCO metrics of one detections file."""
    vid_eval.main(argparse.Namespace(data=data_root, split=split, detections=detections,
                                     json=out, no_coco=False))
