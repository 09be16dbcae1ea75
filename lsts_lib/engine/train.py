"""`lsts train`: train a detector from a config; resumable, deterministic, multi-process.

    lsts train --config report --out runs/report/single_frame/seed0 seed=0
    lsts train --config report --out runs/report/lsts/seed0 model.variant=lsts \
        --init-from runs/report/single_frame/seed0/model.pt
    torchrun --nproc_per_node 8 -m lsts_lib train --config paper --out runs/paper/lsts/seed0

What a run writes into RUN_DIR (rank 0 only):
  config.yaml   the resolved config (preset + overrides + defaults)
  env.json      seeds, library versions, hardware, git commit, world size
  log.csv       one row per step: every loss term, learning rates, step time, offset shift
  last.pt       atomic checkpoint every `train.checkpoint_every` steps (resume point)
  model.pt      the final weights (+ model config, classes); its presence marks a finished run
  summary.json  final losses and the weights' hash

Determinism: the data and every random choice of step s are functions of (seed, step, slot)
(see `lsts_lib.engine.data`), torch is reseeded from them before each sample, and
`torch.use_deterministic_algorithms(True, warn_only=True)` is on. A resumed run therefore
replays exactly the steps a killed run lost. A NaN or infinite loss (or gradient) stops the
run with exit status 3 and leaves the last good `last.pt` untouched.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch import nn

from lsts_lib import paths
from lsts_lib.engine.checkpoint import (
    FORMAT,
    load_checkpoint,
    load_model_state,
    remove_orphaned_temps,
    save_atomic,
    state_hash,
)
from lsts_lib.engine.config import (
    LR_SCHEDULES,
    OPTIMIZERS,
    dump_config,
    load_config,
    stage_of,
)
from lsts_lib.engine.data import TrainStream, build_stream, torch_seed

# Fault injection for the kill-and-resume test: SIGKILL this process right after step N.
KILL_ENV = "LSTS_FAULT_KILL_AT_STEP"
EXIT_NONFINITE = 3


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN/inf; the run stopped before using it."""


# ----------------------------------------------------------------------------- helpers
def resolve_path(p: str | Path) -> Path:
    """Relative config paths are relative to the repository root."""
    p = Path(p)
    return p if p.is_absolute() else paths.REPO / p


class Dist:
    """This process's place in a torchrun job (world 1 without torchrun)."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        self.enabled = self.world > 1
        self.backend = "none"

    @property
    def main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            self.backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(self.backend)

    def all_mean(self, values: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            values = values.clone()
            dist.all_reduce(values)
            values /= self.world
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but no CUDA device is available")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def set_threads(requested: int, d: Dist) -> int:
    """torch threads per process: config, else $LSTS_THREADS, else cores / local processes."""
    n = int(requested or 0) or int(os.environ.get("LSTS_THREADS", "0") or 0)
    if n <= 0:
        n = max(1, (os.cpu_count() or 1) // max(1, d.local_world))
    torch.set_num_threads(n)
    return n


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(seed: int, d: Dist, device: torch.device, threads: int) -> dict[str, Any]:
    import numpy
    import torchvision

    return {
        "seed": seed,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": threads,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "world_size": d.world,
        "backend": d.backend,
        "git_commit": git_commit(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


# ------------------------------------------------------------------------------- model
def model_config_of(cfg: Mapping[str, Any], num_classes: int):
    """The ModelConfig a resolved config describes (num_classes 0 -> the dataset's)."""
    from lsts_lib.models.config import ModelConfig

    m = dict(cfg["model"])
    if not m.get("num_classes"):
        m["num_classes"] = num_classes
    elif m["num_classes"] != num_classes:
        raise ValueError(
            f"config model.num_classes={m['num_classes']} but the dataset lists {num_classes} classes"
        )
    return ModelConfig.from_dict(m)


def build_model(mcfg) -> nn.Module:
    from lsts_lib.models.detector import build_detector

    return build_detector(mcfg)


def offsets_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The LSTS sampling offsets p_n (LSTSOffsets.p) of a model, by name."""
    try:
        from lsts_lib.models.lsts import LSTSOffsets
    except ImportError:
        return []
    out = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, LSTSOffsets):
            for pname, p in mod.named_parameters(recurse=False):
                out.append((f"{mod_name}.{pname}" if mod_name else pname, p))
    return out


def offsets_shift(model: nn.Module, init: Mapping[str, torch.Tensor]) -> float:
    """Mean |p_n - p_n(init)| over every offset coordinate, in feature cells (0 if none)."""
    total, count = 0.0, 0
    for name, p in offsets_params(model):
        if name in init:
            diff = (p.detach().cpu() - init[name]).abs()
            total += float(diff.sum())
            count += diff.numel()
    return total / count if count else 0.0


def init_from_checkpoint(model: nn.Module, ckpt_path: Path) -> dict[str, Any]:
    """Start a model from another run's weights (stage 2 from the stage 1 single-frame model).

    Parameters present in both with equal shapes are copied (backbone + head); the temporal
    modules that the single-frame model lacks stay freshly initialised. A checkpoint of a
    different architecture (no shared weights, or shared names with other shapes) is an error.
    """
    ckpt = load_checkpoint(ckpt_path)
    source_variant = ckpt.get("model_config", {}).get("variant")
    own_variant = getattr(getattr(model, "cfg", None), "variant", None)
    try:
        # Stage 2 from a single-frame model: backbone + head only, temporal modules fresh.
        # From a model of the same variant: everything, exactly.
        model.load_checkpoint_state(
            ckpt["model"],
            init_from_single_frame=source_variant == "single_frame" and own_variant != "single_frame")
    except ValueError as exc:
        raise ValueError(f"{ckpt_path}: {exc}") from None
    return ckpt


def apply_lr_mult(model: nn.Module, lr_mult: Mapping[str, float] | None) -> dict[str, list]:
    """Split parameters by `train.stage<k>.lr_mult` ({module prefix: multiplier}).

    A multiplier of 0 freezes the module (requires_grad False, so no backward through it).
    Returns {prefix: [params]} for the prefixes with a non-zero multiplier.
    """
    groups: dict[str, list] = {}
    for prefix, mult in (lr_mult or {}).items():
        params = [p for n, p in model.named_parameters() if n.startswith(prefix + ".")]
        if not params:
            raise ValueError(f"lr_mult: the model has no module {prefix!r}")
        if float(mult) == 0.0:
            for p in params:
                p.requires_grad_(False)
        else:
            groups[prefix] = [p for p in params if p.requires_grad]
    return groups


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any], lr: float,
                    lr_mult: Mapping[str, float] | None = None) -> torch.optim.Optimizer:
    """`train.optimizer` (sgd | adamw) with the offsets p_n in their own group at
    `offsets_lr_mult` x lr, and modules named in `lr_mult` at their own multiple of lr.

    SGD with momentum is the paper's; AdamW is what the from-scratch CPU presets use (see
    lsts_lib/configs/report.yaml for the measurement behind it). The offsets are positions,
    not weights: no weight decay pulls them towards the centre.
    """
    train = cfg["train"]
    name = train.get("optimizer", "sgd")
    if name not in OPTIMIZERS:
        raise ValueError(f"train.optimizer={name!r}: choose one of {', '.join(OPTIMIZERS)}")
    scaled = apply_lr_mult(model, lr_mult)
    offset_ids = {id(p) for _, p in offsets_params(model)}
    special = offset_ids | {id(p) for ps in scaled.values() for p in ps}
    base = [p for p in model.parameters() if p.requires_grad and id(p) not in special]
    offsets = [p for _, p in offsets_params(model) if p.requires_grad]
    wd = float(train["weight_decay"])
    groups = [{"params": base, "lr": lr, "weight_decay": wd, "name": "base"}]
    groups += [{"params": ps, "lr": lr * float(lr_mult[k]), "weight_decay": wd, "name": k}
               for k, ps in scaled.items()]
    if offsets:
        groups.append({"params": offsets, "lr": lr * float(train["offsets_lr_mult"]),
                       "weight_decay": 0.0, "name": "offsets"})
    if name == "adamw":
        betas = tuple(float(b) for b in train.get("betas") or (0.9, 0.999))
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    return torch.optim.SGD(groups, lr=lr, momentum=float(train["momentum"]))


def lr_factor(step: int, total: int, sched: Mapping[str, Any]) -> float:
    """Linear warm-up, then either x lr_factor at each fraction in lr_steps of the run
    (`lr_schedule: step`, the paper's) or a cosine decay to 0 over the run (`cosine`)."""
    kind = sched.get("lr_schedule") or "step"
    if kind not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={kind!r}: choose one of {', '.join(LR_SCHEDULES)}")
    f = 1.0
    if kind == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    else:
        for frac in sched.get("lr_steps") or []:
            if step >= int(round(float(frac) * total)):
                f *= float(sched.get("lr_factor", 0.1))
    warm = int(sched.get("warmup_steps") or 0)
    if warm and step < warm:
        f *= 0.1 + 0.9 * step / warm
    return f


def total_steps(cfg: Mapping[str, Any], sched: Mapping[str, Any], n_samples: int, world: int) -> int:
    train = cfg["train"]
    if train.get("steps"):
        return int(train["steps"])
    if sched.get("steps"):
        return int(sched["steps"])
    if sched.get("epochs"):
        per_step = world * int(train.get("batch_size", 1))
        return int(math.ceil(float(sched["epochs"]) * n_samples / per_step))
    raise ValueError("config: the stage needs `steps` or `epochs`")


# ------------------------------------------------------------------------------- log
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
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(keep)
        os.replace(tmp, self.path)
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


# ----------------------------------------------------------------------------- train
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
    return c


def is_finished(out: Path) -> bool:
    return (Path(out) / "model.pt").is_file()


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

    A finished run (model.pt present) is returned as is unless `redo`. An unfinished one
    (last.pt present) needs `resume=True` (continue) or `redo=True` (start over).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    cfg = load_config(config, overrides)
    d = Dist()
    if d.main:
        remove_orphaned_temps(out)  # of checkpoint writes killed in an earlier start
    if is_finished(out) and not redo:
        done = yaml.safe_load((out / "config.yaml").read_text()) if (out / "config.yaml").is_file() else None
        if done is not None and _comparable(done) != _comparable(cfg):
            raise ValueError(f"{out}: holds a finished run made with another config; pass "
                             "--redo to retrain it with this one")
        if d.main and progress is not False:
            print(f"{out}: finished run found (model.pt); skipping (pass redo to retrain)")
        return out / "model.pt"
    if (out / "last.pt").exists() and not resume and not redo:
        raise ValueError(f"{out}: holds an unfinished run (last.pt); pass --resume to continue "
                         "it or --redo to start over")

    train_cfg = cfg["train"]
    device = pick_device(train_cfg.get("device", "auto"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    d.init(device)
    if redo and d.main:
        for name in ("last.pt", "model.pt", "log.csv", "summary.json", "ddp.json"):
            (out / name).unlink(missing_ok=True)
    d.barrier()
    threads = set_threads(int(train_cfg.get("threads") or 0), d)
    torch.use_deterministic_algorithms(True, warn_only=True)
    seed = int(train_cfg["seed"])
    torch.manual_seed(seed)

    stage = stage_of(cfg)
    sched = cfg["train"][stage]
    root = resolve_path(cfg["data"]["root"])
    stream: TrainStream = build_stream(cfg, root, temporal=cfg["model"]["variant"] != "single_frame")
    mcfg = model_config_of(cfg, stream.classes.num_classes)
    steps = total_steps(cfg, sched, len(stream), d.world)
    batch = int(train_cfg.get("batch_size", 1))
    base_lr = float(sched["lr"])

    torch.manual_seed(seed)  # the model's initial weights depend on the seed only
    model = build_model(mcfg).to(device)
    init_path = init_from or sched.get("init_from")
    start_step = 0
    last_path = out / "last.pt"
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path, map_location="cpu")
        if _comparable(ckpt["config"]) != _comparable(cfg):
            raise ValueError(f"{last_path}: was written with another config; resume needs the "
                             "same config and overrides (or pass --redo)")
        load_model_state(model, ckpt["model"], last_path)
        start_step = int(ckpt["step"])
        offsets_init = dict(ckpt.get("offsets_init", {}))
    else:
        ckpt = None
        if init_path:
            init_from_checkpoint(model, resolve_path(init_path))
        offsets_init = {n: p.detach().cpu().clone() for n, p in offsets_params(model)}
    init_path = str(init_path) if init_path else None

    optimizer = build_optimizer(model, cfg, base_lr, sched.get("lr_mult"))
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

    log = CsvLog(out / "log.csv")
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
        env = environment(seed, d, device, threads)
        env.update(stage=stage, steps=steps, init_from=init_path, resumed_at=start_step,
                   train_samples=len(stream))
        (out / "env.json").write_text(json.dumps(env, indent=2))
        if start_step:
            log.truncate_after(start_step)
        elif (out / "log.csv").exists():
            (out / "log.csv").unlink()

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
            "rng": rng, "offsets_init": offsets_init,
        }, last_path)

    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    every = max(1, int(train_cfg.get("checkpoint_every", 50)))
    clip = train_cfg.get("grad_clip")
    sources: list[str] = []
    loss_keys: list[str] | None = None
    recent: list[dict[str, float]] = []
    bar = tqdm(total=steps, initial=start_step, desc=f"train {cfg['model']['variant']}",
               disable=(not d.main) if progress is None else (not progress or not d.main),
               mininterval=1.0, dynamic_ncols=True)
    wall0 = time.perf_counter()
    model.train()
    for step in range(start_step, steps):
        t0, c0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        positions = stream.positions(step, d.rank, d.world, batch)
        for j, pos in enumerate(positions):
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
                        + f"); stopped; the last good checkpoint is {last_path} "
                        "(lower the learning rate or check the data)")
                if not loss.requires_grad:
                    raise ValueError(
                        f"step {step + 1}: the loss of sample {sample.source} reaches no "
                        "trainable parameter (train.stage*.lr_mult froze every module it uses)")
                (loss / batch).backward()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / batch
        if clip:
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip)))
        else:
            gnorm = float(torch.linalg.vector_norm(torch.stack([
                p.grad.detach().norm() for p in model.parameters() if p.grad is not None])))
        if not math.isfinite(gnorm):
            raise NonFiniteLossError(f"non-finite gradient norm at step {step + 1}; stopped; the "
                                     f"last good checkpoint is {last_path}")
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
        optimizer.step()
        scheduler.step()

        if loss_keys is None:
            loss_keys = sorted(sums, key=lambda k: (k != "loss", k))
        values = d.all_mean(torch.tensor([sums.get(k, float("nan")) for k in loss_keys],
                                         dtype=torch.float64, device=device)).tolist()
        row: dict[str, Any] = {"step": step + 1}
        row.update(dict(zip(loss_keys, values, strict=True)))
        row["lr"] = lrs.get("base", base_lr)
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
        if (step + 1) % every == 0 and step + 1 < steps:
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
        final = {
            "format": FORMAT, "kind": "model", "step": steps, "config": _plain(cfg),
            "model_config": _plain(mcfg.to_dict()), "model": model.state_dict(),
            "classes": {"names": list(stream.classes.names), "ids": list(stream.classes.ids)},
            "offsets_init": offsets_init, "init_from": init_path,
        }
        checkpoint(steps)
        save_atomic(final, out / "model.pt")
        summary = {
            "variant": cfg["model"]["variant"], "stage": stage, "seed": seed, "steps": steps,
            "world_size": d.world, "weights_sha256": hashes[0],
            "final_losses": {k: sum(r[k] for r in recent) / len(recent) for k in loss_keys or []},
            "offsets_shift": offsets_shift(model, offsets_init),
            "train_seconds_this_process": round(wall, 2), "resumed_at": start_step,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        if d.enabled:
            (out / "ddp.json").write_text(json.dumps(
                {"world_size": d.world, "backend": d.backend, "weights_sha256": hashes,
                 "samples": all_sources}, indent=1))
    d.barrier()
    return out / "model.pt"


# ------------------------------------------------------------------------ run layout
def run_dir(runs_root: str | Path, variant: str, seed: int) -> Path:
    """runs/<preset>/<variant>/seed<k>: the layout notebooks and `lsts report` read."""
    return Path(runs_root) / variant / f"seed{seed}"


def train_variant(
    config: str | Path | Mapping[str, Any],
    variant: str,
    seed: int,
    runs_root: str | Path,
    data_root: str | Path | None = None,
    extra: Mapping[str, Any] | None = None,
    resume: bool = True,
    redo: bool = False,
    progress: bool | None = None,
) -> Path:
    """Train one named variant of a config (stage 1 first when a temporal variant needs it).

    Temporal variants start from `run_dir(runs_root, "single_frame", seed)/model.pt`, which
    is trained here when missing. Finished runs are reused; a killed one is resumed.
    """
    cfg = load_config(config)
    from lsts_lib.engine.config import variant_overrides

    ov: dict[str, Any] = dict(variant_overrides(cfg, variant))
    ov["train.seed"] = int(seed)
    if data_root is not None:
        ov["data.root"] = str(data_root)
    ov.update(extra or {})
    out = run_dir(runs_root, variant, seed)
    init = None
    if not redo and is_finished(out):
        return out / "model.pt"
    if load_config(cfg, ov)["model"]["variant"] != "single_frame":
        init = train_variant(cfg, "single_frame", seed, runs_root, data_root, extra,
                             resume=resume, redo=False, progress=progress)
    resume = resume and (out / "last.pt").exists() and not redo
    return train(cfg, out, ov, resume=resume, init_from=init, redo=redo, progress=progress)


def load_logs(runs_root: str | Path, variants: Iterable[str], seeds: Iterable[int]):
    """All log.csv of a runs folder as one pandas DataFrame (+ variant, seed columns)."""
    import pandas as pd

    frames = []
    for v in variants:
        for s in seeds:
            path = run_dir(runs_root, v, s) / "log.csv"
            if path.is_file():
                df = pd.read_csv(path)
                df.insert(0, "seed", s)
                df.insert(0, "variant", v)
                frames.append(df)
    if not frames:
        raise FileNotFoundError(f"{runs_root}: no log.csv under <variant>/seed<k>/")
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="preset name (smoke, report, paper) or YAML path")
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    parser.add_argument("--redo", action="store_true", help="discard RUN_DIR's run and start over")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from another run's model.pt (e.g. the single-frame stage)")
    parser.add_argument("--variant", default=None,
                        help="apply the config's named variant overrides (e.g. lsts_gaussian)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. train.steps=10 seed=1")


def main(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.variant:
        from lsts_lib.engine.config import parse_overrides, variant_overrides

        overrides.update(variant_overrides(load_config(args.config), args.variant))
        overrides.update(parse_overrides(args.overrides))
    else:
        from lsts_lib.engine.config import parse_overrides

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
    from lsts_lib.cli import main as cli_main

    raise SystemExit(cli_main(["train", *sys.argv[1:]]))
