"""The optimizer and learning-rate schedule of a training stage."""

from __future__ import annotations

import math

import torch

from lsts_lib.engine.config import StageConfig, TrainConfig
from lsts_lib.models.detector import VideoDetector


def build_optimizer(model: VideoDetector, train: TrainConfig, sched: StageConfig
                    ) -> torch.optim.Optimizer:
    """`train.optimizer` over the model's parameter groups (see `VideoDetector.param_groups`).

    SGD with momentum is the paper's; AdamW is what the from-scratch CPU presets use (see
    lsts_lib/configs/report.yaml for the measurement behind it).
    """
    groups = model.param_groups(sched.lr, train.weight_decay, sched.offsets_mult(train),
                                sched.lr_mult)
    # One fused kernel over all parameters instead of a Python loop of ~10 ops per tensor:
    # the loop took 45 of 348 ms of a CPU training step, fused 15 (report preset, batch 1,
    # 2 threads, AMD EPYC).
    if train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=sched.lr, betas=train.betas, fused=True)
    return torch.optim.SGD(groups, lr=sched.lr, momentum=train.momentum, fused=True)


def lr_factor(step: int, total: int, sched: StageConfig) -> float:
    """Linear warm-up, then either x lr_factor at each fraction in lr_steps of the run
    (`lr_schedule: step`, the paper's) or a cosine decay to 0 over the run (`cosine`)."""
    f = 1.0
    if sched.lr_schedule == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    else:
        for frac in sched.lr_steps:
            if step >= int(round(frac * total)):
                f *= sched.lr_factor
    warm = sched.warmup_steps
    if warm and step < warm:
        f *= 0.1 + 0.9 * step / warm
    return f


def total_steps(train: TrainConfig, sched: StageConfig, n_samples: int, world: int) -> int:
    """train.steps, else the stage's steps, else its epochs over `n_samples`."""
    if train.steps is not None:
        return train.steps
    if sched.steps is not None:
        return sched.steps
    assert sched.epochs is not None  # StageConfig.validate: steps or epochs
    return int(math.ceil(sched.epochs * n_samples / (world * train.batch_size)))
