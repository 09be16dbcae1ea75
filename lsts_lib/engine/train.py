"""`lsts train`: train a detector from a config; resumable, deterministic, multi-process.

    lsts train --config report --out runs/report/single_frame/seed0 seed=0
    lsts train --config report --out runs/report/lsts/seed0 --variant lsts \
        --init-from runs/report/single_frame/seed0/model.pt
    torchrun --nproc_per_node 8 -m lsts_lib train --config paper --out runs/paper/lsts/seed0

What a run writes into RUN_DIR (rank 0 only; see `rundir` for the names):
  config.yaml   the resolved config (preset + overrides + defaults)
  env.json      seeds, library versions, hardware, git commit, world size, and the absolute
                paths and content hashes of the data and of the --init-from model
  log.csv       one row per step: every loss term, learning rates, step time, offset shift
  last.pt       atomic checkpoint every `train.checkpoint_every` steps (resume point); it
                records the run's inputs, and --resume continues it only for exactly these
  model.pt      the final weights (+ model config, classes); its presence marks a finished run
  summary.json  final losses and the weights' hash
  stamps/train.json  the inputs the run was made from and its outputs' hashes: a finished
                run is reused only for exactly these inputs, and refused for others

Determinism: the data and every random choice of step s are functions of (seed, step, slot)
(see `lsts_lib.engine.data`), torch is reseeded from them before each sample, and
`torch.use_deterministic_algorithms(True, warn_only=True)` is on. A resumed run therefore
replays exactly the steps a killed run lost. A NaN or infinite loss (or gradient) stops the
run with exit status 3 and leaves the last good `last.pt` untouched.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lsts_lib import atomic
from lsts_lib.data.vid import VIDDataset
from lsts_lib.engine import rundir
from lsts_lib.engine.checkpoint import (
    FORMAT,
    load_checkpoint,
    load_model_state,
    remove_orphaned_temps,
    save_atomic,
    state_hash,
)
from lsts_lib.engine.config import (
    RunConfig,
    dump_config,
    load_config,
    parse_overrides,
    run_stage,
)
from lsts_lib.engine.data import TrainStream, build_stream, torch_seed
from lsts_lib.engine.detect import detect_videos
from lsts_lib.engine.distributed import Dist, pick_device, set_threads
from lsts_lib.engine.env import environment
from lsts_lib.engine.flow_pretrain import load_flownet
from lsts_lib.engine.low2high_warmup import LOW2HIGH_PREFIX, warm_up_low2high
from lsts_lib.engine.optim import build_optimizer, lr_factor, total_steps
from lsts_lib.engine.trainlog import CsvLog
from lsts_lib.eval.vid_eval import evaluate_dataset
from lsts_lib.models import MODEL_CODE_VERSION
from lsts_lib.models.config import ModelConfig, stamp_model
from lsts_lib.models.detector import OFFSETS_KEY, VideoDetector, build_detector
from lsts_lib.models.variants import VARIANTS, run_overrides

# Fault injection for the kill-and-resume test: SIGKILL this process right after step N.
KILL_ENV = "LSTS_FAULT_KILL_AT_STEP"
EXIT_NONFINITE = 3


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN/inf; the run stopped before using it."""


# ------------------------------------------------------------------------------- model
def build_model(mcfg: ModelConfig) -> VideoDetector:
    return build_detector(mcfg)


def offsets_shift(model: VideoDetector, init: Mapping[str, torch.Tensor]) -> float:
    """Mean |p_n - p_n(init)| over every offset coordinate, in feature cells (0 if none)."""
    if model.offsets is None or OFFSETS_KEY not in init:
        return 0.0
    diff = (model.offsets.p.detach().cpu() - init[OFFSETS_KEY]).abs()
    return float(diff.sum()) / diff.numel()


def init_from_checkpoint(model: VideoDetector, ckpt_path: Path) -> list[str]:
    """Start a model from another run's weights: from a single-frame model (stage 2), its
    backbone and head, the temporal modules staying fresh; from the same variant, everything.
    Returns the keys left at their fresh initialisation."""
    ckpt = load_checkpoint(ckpt_path)
    source = ckpt.get("model_config", {}).get("variant")
    from_single_frame = (source in VARIANTS and VARIANTS[source].every_frame_key
                         and not model.spec.every_frame_key)
    try:
        return model.load_checkpoint_state(ckpt["model"], init_from_single_frame=from_single_frame)
    except ValueError as exc:
        raise ValueError(f"{ckpt_path}: {exc}") from None


# ------------------------------------------------------------------------- run inputs
def _plain(obj: Any) -> Any:
    """Make checkpoint metadata weights_only-safe (tuples -> lists, numpy -> Python)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, torch.Tensor):
        return obj.item()
    return obj


def _comparable(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A config without the keys that may differ between a run and its resumption."""
    c = json.loads(json.dumps(cfg))
    c["train"].pop("threads", None)
    c["train"].pop("device", None)
    # The low2high warm-up acts only at the start of an LSTS variant's own stage (and is
    # absent from configs written before it existed): elsewhere it is not an input.
    spec = VARIANTS.get(c["model"].get("variant", ""))
    own = run_stage(spec.name, c["train"].get("stage", "auto")) if spec is not None else None
    for name in ("stage1", "stage2"):
        section = c["train"].get(name) or {}
        if not section.get("low2high_warmup") or name != own or spec.nonkey != "lsts":
            section.pop("low2high_warmup", None)
        # A stage's own offsets multiplier acts only where offsets learn (and is absent from
        # configs written before it existed).
        if (section.get("offsets_lr_mult") is None or name != own or spec.nonkey != "lsts"
                or not spec.learnable_offsets):
            section.pop("offsets_lr_mult", None)
    if spec is None or spec.nonkey != "flow":
        # A flow-net setting added after runs without a flow net were stamped: not their input.
        c["model"].pop("flownet_max_displacement", None)
    if c["train"].get("flow_init_from", "") is None:
        # Absent from configs written before the key existed: their finished runs stay valid.
        c["train"].pop("flow_init_from")
    c["model"] = stamp_model(c["model"])  # the same for model keys added later (model.cut)
    return c


def train_inputs(cfg: Mapping[str, Any], init_from: Path | None) -> dict[str, Any]:
    """What a finished run is keyed on: config, model code version, data content, starting
    weights' content."""
    root = Path(cfg["data"]["root"])
    inputs = {"config": _comparable(cfg), "model_code": MODEL_CODE_VERSION,
              "data": {"root": str(root), "sha256": rundir.dataset_fingerprint(root)},
              "init_from": None if init_from is None else {
                  "path": str(init_from), "sha256": rundir.sha256_file(init_from)}}
    flow = cfg["train"].get("flow_init_from")
    if flow:  # only when set: the inputs of runs without it are unchanged
        inputs["flow_init_from"] = {"path": flow, "sha256": rundir.sha256_file(flow)}
    return inputs


def _differences(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    if old is None:
        return "its inputs were not recorded"
    parts = [k for k in new if json.dumps(old.get(k), sort_keys=True)
             != json.dumps(new[k], sort_keys=True)]
    return "another " + ", ".join(parts) if parts else "outputs changed since"


def _reusable(out: Path, stamp: rundir.Stamp, inputs: Mapping[str, Any], resume: bool,
              redo: bool) -> bool:
    """True for a finished run made from `inputs`; refuses a folder that is not a run, a
    finished run made from other inputs and an unfinished one, unless told what to do."""
    rundir.check_owned(out, redo)
    if rundir.is_finished(out) and not redo:
        if not stamp.done(inputs):
            raise ValueError(f"{out}: holds a finished run made from other inputs "
                             f"({_differences(stamp.recorded_inputs(), inputs)}); pass --redo "
                             "to retrain it with these")
        return True
    if (out / rundir.LAST).exists() and not resume and not redo:
        raise ValueError(f"{out}: holds an unfinished run (last.pt); pass --resume to continue "
                         "it or --redo to start over")
    return False


def resume_inputs(last_path: Path) -> dict[str, Any] | None:
    """The inputs (`train_inputs`) a resume checkpoint was made from; None for one that does
    not record them (written before they were recorded)."""
    return load_checkpoint(last_path, map_location="cpu").get("inputs")


def resumable(last_path: Path, inputs: Mapping[str, Any]) -> bool:
    """True when `last_path` exists and was made from exactly `inputs` (config, data
    content, starting weights' content): resuming it continues the same run."""
    if not last_path.exists():
        return False
    try:
        recorded = resume_inputs(last_path)
    except ValueError:
        return False  # a damaged resume point proves nothing: the run is redone
    return recorded is not None and _same(recorded, inputs)


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _start_weights(model: VideoDetector, inputs: Mapping[str, Any], last_path: Path,
                   resume: bool, init_path: Path | None
                   ) -> tuple[dict[str, Any] | None, int, dict[str, torch.Tensor], list[str]]:
    """(resume checkpoint or None, first step, initial offsets, keys `init_path` left fresh):
    the weights a run starts from -- its own last.pt when resuming (only when made from
    exactly `inputs`), else `init_path`'s, else the seed's."""
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path, map_location="cpu")
        recorded = ckpt.get("inputs")
        if recorded is None or not _same(recorded, inputs):
            raise ValueError(f"{last_path}: was made from other inputs "
                             f"({_differences(recorded, inputs)}); resume needs the same "
                             "config, data and --init-from weights (or pass --redo)")
        load_model_state(model, ckpt["model"], last_path)
        return ckpt, int(ckpt["step"]), dict(ckpt.get("offsets_init", {})), []
    fresh = init_from_checkpoint(model, init_path) if init_path else []
    offsets = {} if model.offsets is None else {OFFSETS_KEY: model.sampling_offsets().cpu()}
    return None, 0, offsets, fresh


def _backward(net: nn.Module, stream: TrainStream, step: int, d: Dist, batch: int,
              device: torch.device, seed: int, sources: list[str], last_path: Path
              ) -> dict[str, float]:
    """Forward and backward of this process's `batch` samples of `step`; their mean losses.
    Gradients are averaged (DDP synchronises them at the last sample)."""
    sums: dict[str, float] = {}
    for j, pos in enumerate(stream.positions(step, d.rank, d.world, batch)):
        sample = stream.sample(step, pos)
        if len(sources) < 10_000:
            sources.append(sample.source)
        frames = [f.to(device) for f in sample.frames]
        target = {k: v.to(device) for k, v in sample.target.items()}
        torch.manual_seed(torch_seed(seed, step, pos))
        sync = net.no_sync() if d.enabled and j < batch - 1 else nullcontext()
        with sync:
            losses = net(frames, target)
            loss = losses["loss"]
            if d.any(not bool(torch.isfinite(loss.detach()).all()), device):
                raise NonFiniteLossError(
                    f"non-finite loss at step {step + 1} (sample {sample.source}: "
                    + ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
                    + f"); stopped; {_last_good(last_path)} (lower the learning rate, or "
                    "check the data and the model config)")
            if not loss.requires_grad:
                raise ValueError(
                    f"step {step + 1}: the loss of sample {sample.source} reaches no "
                    "trainable parameter (train.stage*.lr_mult froze every module it uses)")
            (loss / batch).backward()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / batch
    return sums


def _grad_norm(model: nn.Module, clip: float | None, step: int, last_path: Path) -> float:
    """The gradient's norm, after clipping it to `clip` when set; a non-finite one stops."""
    if clip:
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
    else:
        gnorm = float(torch.linalg.vector_norm(torch.stack([
            p.grad.detach().norm() for p in model.parameters() if p.grad is not None])))
    if not math.isfinite(gnorm):
        raise NonFiniteLossError(f"non-finite gradient norm at step {step + 1}; stopped; "
                                 f"{_last_good(last_path)}")
    return gnorm


class DevCurve:
    """VID mAP on the dev split (data.val_split) during training, every
    train.<stage>.dev_every steps, at the end, and at step 0 of a run that starts from other
    weights: the curve that says whether a stage has plateaued (the loss cannot: OHEM keeps
    the hardest RoIs). Detection uses the run's eval settings; rows go to dev.csv."""

    def __init__(self, run: RunConfig, every: int, max_videos: int | None, path: Path,
                 from_weights: bool) -> None:
        self.every = every
        self.from_weights = from_weights
        self.ds = VIDDataset(Path(run.data.root), split=run.data.val_split, max_videos=max_videos)
        self.mode, self.k = run.eval.mode, run.eval.key_interval
        self.log = CsvLog(path)

    def due(self, step: int, steps: int) -> bool:
        if step == 0:
            return self.from_weights
        return step % self.every == 0 or step == steps

    def measure(self, model: VideoDetector, step: int) -> dict[str, Any]:
        t = time.perf_counter()
        res = evaluate_dataset(self.ds, detect_videos(model, self.ds.videos, self.mode, self.k))
        nan = float("nan")
        row = {"step": step, "mAP": nan if res["mAP"] is None else res["mAP"],
               **{m: nan if v is None else v for m, v in res["motion"].items()},
               "frames": sum(len(v.frames) for v in self.ds.videos),
               "seconds": time.perf_counter() - t}
        self.log.write(row)
        return row


def _last_good(last_path: Path) -> str:
    """Where a stopped run can be resumed from, naming last.pt only when it exists."""
    if last_path.is_file():
        return f"the last good checkpoint is {last_path}"
    return "no checkpoint was written before it"


# ------------------------------------------------------------------------------- train
def train(
    config: str | Path | Mapping[str, Any],
    out: str | Path,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    redo: bool = False,
    progress: bool | None = None,
) -> Path:
    """Train one run into `out` and return the path of its final `model.pt`.

    A finished run made from exactly these inputs is reused; one made from other inputs is
    refused unless `redo`. An unfinished one (last.pt) needs `resume` or `redo`.
    Relative paths (out, init_from, data.root overrides) are taken from the current directory.
    """
    out = Path(out).resolve()
    cfg = load_config(config, overrides)
    run = RunConfig.from_dict(cfg)
    sched = run.schedule
    init_path = init_from or sched.init_from
    init_path = Path(init_path).resolve() if init_path else None
    if init_path is not None and not init_path.is_file():
        option = "--init-from" if init_from else f"train.{run.stage}.init_from"
        raise FileNotFoundError(f"{option} {init_path}: no such checkpoint file")
    flow_init = run.train.flow_init_from
    if flow_init and not Path(flow_init).is_file():
        raise FileNotFoundError(f"train.flow_init_from {flow_init}: no such checkpoint file")
    d = Dist()
    if d.main:
        remove_orphaned_temps(out)  # of checkpoint writes killed in an earlier start
    stamp = rundir.Stamp(out, "train")
    inputs = train_inputs(cfg, init_path)
    if _reusable(out, stamp, inputs, resume, redo):
        if d.main and progress is not False:
            print(f"{out}: finished run reused (same config, data and init-from)")
        return out / rundir.MODEL
    last_path = out / rundir.LAST

    device = pick_device(run.train.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    d.init(device)
    if redo and d.main:
        for name in rundir.TRAIN_FILES:
            (out / name).unlink(missing_ok=True)
        stamp.clear()
    d.barrier()
    threads = set_threads(run.train.threads, d)
    torch.use_deterministic_algorithms(True, warn_only=True)
    seed = run.train.seed
    torch.manual_seed(seed)

    stream = build_stream(run)
    mcfg = run.model.with_classes(stream.classes.num_classes)
    steps = total_steps(run.train, sched, len(stream), d.world)
    batch = run.train.batch_size

    torch.manual_seed(seed)  # the model's initial weights depend on the seed only
    model = build_model(mcfg).to(device)
    ckpt, start_step, offsets_init, fresh = _start_weights(model, inputs, last_path, resume,
                                                             init_path)
    if ckpt is None and flow_init:  # a resumed run has them in its last.pt already
        load_flownet(model, flow_init)
    warmup_curve: list[float] = []
    if sched.low2high_warmup and any(k.startswith(LOW2HIGH_PREFIX) for k in fresh):
        # Before the optimizer exists: the warm-up has its own and leaves no state behind.
        warmup_curve = warm_up_low2high(model, stream, sched.low2high_warmup, sched.lr,
                                        run.train.weight_decay, device,
                                        progress=progress if d.main else False)

    optimizer = build_optimizer(model, run.train, sched)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps, sched))
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])

    net: nn.Module = model
    if d.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)

    log = CsvLog(out / rundir.LOG)
    dev = (DevCurve(run, sched.dev_every, sched.dev_max_videos, out / rundir.DEV_LOG,
                    from_weights=init_path is not None) if sched.dev_every and d.main else None)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / rundir.CONFIG)
        env = environment(seed, d.world, d.backend, device, threads)
        env.update(stage=run.stage, steps=steps, resumed_at=start_step,
                   train_samples=len(stream), **{k: inputs[k] for k in ("data", "init_from")})
        atomic.write_json(out / rundir.ENV, env)
        for name, csv_log in ((rundir.LOG, log), (rundir.DEV_LOG, dev and dev.log)):
            if start_step and csv_log:
                csv_log.truncate_after(start_step)
            elif not start_step and (out / name).exists():
                (out / name).unlink()
        if not start_step:
            (out / rundir.LOW2HIGH_LOG).unlink(missing_ok=True)
            warmup_log = CsvLog(out / rundir.LOW2HIGH_LOG)
            for i, value in enumerate(warmup_curve):
                warmup_log.write({"step": i + 1, "rel_mse": value})

    def checkpoint(step: int) -> None:
        if not d.main:
            return
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        save_atomic({
            "format": FORMAT, "kind": "resume", "step": step, "config": _plain(cfg),
            "model_config": _plain(mcfg.to_dict()), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng, "offsets_init": offsets_init, "inputs": _plain(inputs),
        }, last_path)

    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    clip = run.train.grad_clip
    sources: list[str] = []
    loss_keys: list[str] | None = None
    recent: list[dict[str, float]] = []
    bar = tqdm(total=steps, initial=start_step, desc=f"train {run.model.variant}",
               disable=(not d.main) if progress is None else (not progress or not d.main),
               mininterval=1.0, dynamic_ncols=True)
    wall0 = time.perf_counter()
    if dev and start_step == 0 and dev.due(0, steps):
        dev.measure(model, 0)
    model.train()
    for step in range(start_step, steps):
        t0, c0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        sums = _backward(net, stream, step, d, batch, device, seed, sources, last_path)
        gnorm = _grad_norm(model, clip, step, last_path)
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
        optimizer.step()
        scheduler.step()

        if loss_keys is None:
            loss_keys = sorted(sums, key=lambda k: (k != "loss", k))
        values = d.all_mean(torch.tensor([sums.get(k, float("nan")) for k in loss_keys],
                                         dtype=torch.float64, device=device)).tolist()
        row: dict[str, Any] = {"step": step + 1}
        row.update(dict(zip(loss_keys, values, strict=True)))
        row["lr"] = lrs.get("base", sched.lr)
        row["lr_offsets"] = lrs.get("offsets", float("nan"))
        row["grad_norm"] = gnorm
        row["offsets_shift"] = offsets_shift(model, offsets_init)
        row["step_time"] = time.perf_counter() - t0
        row["step_cpu_time"] = time.process_time() - c0  # all threads of this process
        recent.append({k: row[k] for k in loss_keys})
        recent = recent[-max(1, steps // 10):]
        if d.main:
            log.write(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2g}", refresh=False)
            bar.update(1)
        if dev and dev.due(step + 1, steps):
            dev_row = dev.measure(model, step + 1)
            bar.write(f"step {step + 1}: dev mAP {100 * dev_row['mAP']:.1f} % "
                      f"({dev_row['frames']} {run.data.val_split} frames)")
        if (step + 1) % run.train.checkpoint_every == 0 and step + 1 < steps:
            checkpoint(step + 1)
        if kill_at and step + 1 == kill_at:
            bar.close()
            os.kill(os.getpid(), signal.SIGKILL)
    bar.close()
    wall = time.perf_counter() - wall0

    # Replicas must agree bit for bit; a divergence means a bug in the distributed setup.
    hashes = d.gather(state_hash(model.state_dict()))
    all_sources = d.gather(sources)
    if len(set(hashes)) != 1:
        raise RuntimeError(f"DDP replicas diverged: parameter hashes {hashes}")
    if d.main:
        init_str = str(init_path) if init_path else None
        final = {
            "format": FORMAT, "kind": "model", "step": steps, "config": _plain(cfg),
            "model_config": _plain(mcfg.to_dict()), "model": model.state_dict(),
            "classes": {"names": list(stream.classes.names), "ids": list(stream.classes.ids)},
            "offsets_init": offsets_init, "init_from": init_str,
        }
        checkpoint(steps)
        save_atomic(final, out / rundir.MODEL)
        summary = {
            "variant": run.model.variant, "stage": run.stage, "seed": seed, "steps": steps,
            "world_size": d.world, "weights_sha256": hashes[0],
            "final_losses": {k: sum(r[k] for r in recent) / len(recent) for k in loss_keys or []},
            "offsets_shift": offsets_shift(model, offsets_init),
            "train_seconds_this_process": round(wall, 2), "resumed_at": start_step,
        }
        atomic.write_json(out / rundir.SUMMARY, summary)
        if d.enabled:
            atomic.write_json(out / rundir.DDP, {
                "world_size": d.world, "backend": d.backend, "weights_sha256": hashes,
                "samples": all_sources}, indent=1)
        stamp.mark(inputs, [rundir.MODEL, rundir.SUMMARY, rundir.CONFIG])
    d.barrier()
    return out / rundir.MODEL


# --------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="preset name (smoke, report, paper) or YAML path")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    parser.add_argument("--redo", action="store_true", help="discard RUN_DIR's run and start over")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from another run's model.pt (e.g. the single-frame stage)")
    parser.add_argument("--variant", default=None,
                        help="a variant of lsts_lib/models/variants.py (e.g. lsts_gaussian)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. train.steps=10 seed=1")


def main(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = run_overrides(args.variant) if args.variant else {}
    overrides.update(parse_overrides(args.overrides))
    try:
        path = train(args.config, args.out, overrides, resume=args.resume,
                     init_from=args.init_from, redo=args.redo)
    except NonFiniteLossError as exc:
        print(f"lsts train: stopped: {exc}", file=sys.stderr)
        return EXIT_NONFINITE
    finally:
        Dist().close()
    if Dist().main:
        print(f"model: {path}")
    return 0


if __name__ == "__main__":  # `python -m lsts_lib.engine.train` (torchrun -m also works)
    _parser = argparse.ArgumentParser(prog="lsts train")
    add_arguments(_parser)
    raise SystemExit(main(_parser.parse_args()))
