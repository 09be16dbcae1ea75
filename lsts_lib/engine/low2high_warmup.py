"""The low2high warm-up: before stage 2, DFA's low2high learns to imitate the high-level part.

Why: low2high starts at N(0, 0.01) weights (the official init), so at the start of stage 2 it
outputs almost nothing. DFA then fuses the LSTS-aligned memory with an empty "current" feature,
the non-key frames' features collapse (the report's LSTS runs scored 1.9 % dev mAP at step 0
of stage 2 against 31.8 % for copy-propagation), and the short stage 2 is spent recovering
instead of learning where to focus. The paper trains every module jointly for 4 epochs from
ImageNet weights, which this CPU budget cannot. So, as the analogue of starting from a sensible
low2high, it is first regressed onto the (frozen, stage-1) high-level part's output for the
same frame, which needs no labels and changes nothing else:

    min || low2high(low(x)) - high(low(x)) ||^2 / Var(high(low(x)))       (relative MSE)

over frames x of the run's own training stream. This step is this reproduction's, not the
paper's; `train.<stage>.low2high_warmup` sets its steps (0 = off, the official behaviour).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from lsts_lib.engine.data import TrainStream
from lsts_lib.models.detector import VideoDetector

__all__ = ["LOW2HIGH_PREFIX", "relative_mse", "warm_up_low2high"]

LOW2HIGH_PREFIX = "dfa.low2high."  # its weights' names in the detector's state dict


def relative_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the target's variance: 1.0 for predicting the mean (or ~0)."""
    return F.mse_loss(pred, target) / target.var().clamp_min(1e-12)


def warm_up_low2high(model: VideoDetector, stream: TrainStream, steps: int, lr: float,
                     weight_decay: float, device: torch.device,
                     progress: bool | None = None) -> list[float]:
    """Train `model.dfa.low2high` alone for `steps` steps (one frame each: the sample's
    current frame, AdamW with cosine decay); return the relative-MSE curve. Every other weight
    is left exactly as it was."""
    if model.dfa is None:
        raise ValueError(f"variant {model.variant!r} has no DFA low2high to warm up")
    if steps < 1:
        raise ValueError(f"low2high warm-up needs steps >= 1, got {steps}")
    low2high = model.dfa.low2high
    opt = torch.optim.AdamW(low2high.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    was_training = model.training
    model.eval()  # the frozen parts run as at inference (frozen BatchNorm where present)
    low2high.train()
    curve: list[float] = []
    bar = tqdm(range(steps), desc="low2high warm-up", unit="step", disable=progress is False,
               mininterval=1.0, dynamic_ncols=True, leave=False)
    for i in bar:
        # The stream's own samples (position i, as step i of training would draw it).
        frame = stream.sample(i, i).frames[-1].to(device)
        x, _, _ = model.preprocess([frame])
        with torch.no_grad():
            low = model.extract_low(x)
            target = model.extract_high(low)
        loss = relative_mse(low2high(low), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        curve.append(loss.item())
    model.train(was_training)
    return curve
