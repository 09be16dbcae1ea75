"""`lsts flow-pretrain`: supervised pretraining of the flow_warp FlowNet on SynthVID's true flow.

    lsts flow-pretrain --data data/synthvid/report --out runs/report/flownet --steps 600
    lsts train --config report --variant flow_warp --out runs/report/flow_warp/seed0 \
        --init-from runs/report/single_frame/seed0/model.pt \
        train.flow_init_from=runs/report/flownet/flownet.pt

DFF's FlowNet is not learned from the detection loss alone: it starts from FlowNet weights
trained on Flying Chairs' ground-truth flow. SynthVID knows its true motion, so the analogue
here is to train `FlowNetSmall` on it: the target of a (current t, key k) pair is the true
displacement from t to k at every stride-16 cell centre (`motion_truth.cell_flow`, in
feature cells, `flownet.warp`'s convention). Pairs are drawn from the train split's videos with
the key offset of training (k - t from train.new_key_range, 0 excluded: there the key path
runs, not the flow), through the detector's own input transform. AdamW, cosine decay, seeded.

The loss (`pretrain_loss`) has two terms, both over the cells whose truth is known (objects
that vanish in k and padding are left out):
  * the end-point error || flow - target || at stride 16, object cells weighted
    `object_weight` (default 3) against 1 for the background: 83 % of the cells are
    background, whose truth is a camera pan of at most ~6 px, and the end-point error of the
    objects is what propagation needs;
  * `match_weight` (default 2) x the cross-entropy of the cost volume's softmax over
    displacements (`FlowNetSmall.flow_and_logits`) against the true stride-8 displacement,
    spread bilinearly over its 4 nearest integer displacements (`match_target`): a direct
    signal for the matching features, which the end-point error reaches only through the
    soft-argmax.
The match's gain (`FlowNetSmall.match_gain`) is held at 1: learned, the end-point error pulls
it toward the zero flow (to 0.57 in 600 steps in a first form of the net). The settings were
chosen on the report data: tuning/report_dev.jsonl, rows "flow_pretrain_*".

OUT receives `flownet.pt` (weights-only checkpoint: the FlowNet state dict + its settings) and
`flow_pretrain.json` (loss curve, wall time, EPE on --eval-split vs the zero flow).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from tqdm.auto import tqdm

from lsts_lib import atomic
from lsts_lib.argtypes import positive_int
from lsts_lib.data.motion_truth import VideoMotion, cell_flow, load_motion
from lsts_lib.data.types import Video
from lsts_lib.data.vid import EVAL_SPLITS, VIDDataset, load_frame
from lsts_lib.engine.alignment import motion_folder
from lsts_lib.engine.checkpoint import FORMAT, load_checkpoint, load_model_state, save_atomic
from lsts_lib.engine.config import RunConfig, load_config
from lsts_lib.eval.alignment import CLASSES, object_cells
from lsts_lib.models.config import ModelConfig
from lsts_lib.models.detector import VideoDetector, build_transform, key_frame_indices
from lsts_lib.models.flownet import FlowNetSmall

CHECKPOINT = "flownet.pt"
# Bumped when the FlowNet or this recipe's code changes what a pretraining makes: `lsts
# report` then pretrains again (engine.plan.Orchestrator.pretrain_flow's stamp). 2: FlowNetSmall
# a small FlowNet-C, the object weight and the cost volume's cross-entropy.
PRETRAIN_VERSION = 2
SUMMARY = "flow_pretrain.json"
KIND = "flownet"  # the checkpoint's "kind"


def preprocess_pairs(transform: GeneralizedRCNNTransform, frames: list[Tensor]
            ) -> tuple[Tensor, tuple[float, float], tuple[int, int]]:
    """(preprocessed batch, (sx, sy) resize scale, stride-16 feature size) of same-size frames."""
    images, _ = transform(frames)
    x = images.tensors
    (h, w), (oh, ow) = images.image_sizes[0], frames[0].shape[-2:]
    stride = FlowNetSmall.stride
    return x, (w / ow, h / oh), (math.ceil(x.shape[-2] / stride), math.ceil(x.shape[-1] / stride))


def flow_target(motion: VideoMotion, t: int, k: int, feature_hw: tuple[int, int],
                scale: tuple[float, float], stride: int = FlowNetSmall.stride
                ) -> tuple[Tensor, Tensor, Tensor]:
    """(target (2, h, w) in stride-`stride` cells with 0 where unknown, known (h, w) bool, on an
    object (h, w) bool) for pair (t, k)."""
    flow, track, _ = cell_flow(motion, t, k, feature_hw, scale, stride)
    known = np.isfinite(flow).all(axis=0)
    return (torch.from_numpy(np.nan_to_num(flow)), torch.from_numpy(known),
            torch.from_numpy(known & (track >= 0)))


def epe_loss(flow: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Weighted mean end-point error (cells); flow, target (B, 2, h, w), weight (B, h, w)
    (bool `known` for the plain mean over the known cells)."""
    err = torch.sqrt(((flow - target) ** 2).sum(dim=1) + 1e-9)
    weight = weight.to(err.dtype)
    return (err * weight).sum() / weight.sum().clamp(min=1)


def match_target(target: Tensor, max_displacement: int) -> Tensor:
    """(B, (2d+1)^2, h, w): a displacement `target` (B, 2, h, w) in stride-8 cells spread
    bilinearly over its 4 nearest integer displacements of `flownet.correlation`'s window
    (row-major (dy, dx)); a target outside the window is clamped to its border."""
    d = max_displacement
    k = 2 * d + 1
    t = target.clamp(-d, d) + d
    x0, y0 = t[:, 0].floor().clamp(max=k - 2), t[:, 1].floor().clamp(max=k - 2)
    fx, fy = t[:, 0] - x0, t[:, 1] - y0
    out = target.new_zeros(target.shape[0], k * k, *target.shape[-2:])
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            index = ((y0 + dy) * k + x0 + dx).long().unsqueeze(1)
            out.scatter_add_(1, index, (wy * wx).unsqueeze(1))
    return out


def match_loss(logits: Tensor, target: Tensor, known: Tensor, max_displacement: int) -> Tensor:
    """Cross-entropy of the softmax over displacements `logits` (B, D, h, w) against
    `match_target(target)`, averaged over the `known` (B, h, w) cells."""
    nll = -(match_target(target, max_displacement) * torch.log_softmax(logits, dim=1)).sum(1)
    return (nll * known).sum() / known.sum().clamp(min=1)


@dataclass(frozen=True)
class PairBatch:
    """Preprocessed (current, key) images and their truth at stride 16 and at the cost
    volume's stride 8."""

    current: Tensor
    key: Tensor
    scale: tuple[float, float]  # (sx, sy) resize scale
    feature_hw: tuple[int, int]  # stride-16 map
    target: Tensor  # (B, 2, h, w) stride-16 cells
    known: Tensor
    on_object: Tensor
    match_target: Tensor  # (B, 2, H8, W8) stride-8 cells
    match_known: Tensor


def pair_batch(transform: GeneralizedRCNNTransform, videos: list[Video],
               motions: list[VideoMotion], pairs: list[tuple[int, int, int]]) -> PairBatch:
    """The batch of (video, current t, key k) `pairs`."""
    cur = [load_frame(videos[v].frames[t]) for v, t, _ in pairs]
    key = [load_frame(videos[v].frames[k]) for v, _, k in pairs]
    x, scale, hw = preprocess_pairs(transform, cur + key)
    s = FlowNetSmall.corr_stride
    hw8 = (math.ceil(x.shape[-2] / s), math.ceil(x.shape[-1] / s))
    coarse = [flow_target(motions[v], t, k, hw, scale) for v, t, k in pairs]
    fine = [flow_target(motions[v], t, k, hw8, scale, s) for v, t, k in pairs]
    n = len(pairs)

    def stack(parts: list[tuple[Tensor, ...]], i: int) -> Tensor:
        return torch.stack([p[i] for p in parts])

    return PairBatch(x[:n], x[n:], scale, hw, stack(coarse, 0), stack(coarse, 1),
                     stack(coarse, 2), stack(fine, 0), stack(fine, 1))


def pretrain_loss(net: FlowNetSmall, batch: PairBatch, object_weight: float = 3.0,
                  match_weight: float = 2.0) -> tuple[Tensor, Tensor]:
    """(the training loss of `batch`, its plain mean end-point error in stride-16 cells)."""
    flow, logits = net.flow_and_logits(batch.current, batch.key)
    flow = flow[..., : batch.feature_hw[0], : batch.feature_hw[1]]
    weight = batch.known.float() + (object_weight - 1) * batch.on_object.float()
    loss = epe_loss(flow, batch.target, weight)
    if match_weight:
        loss = loss + match_weight * match_loss(logits, batch.match_target, batch.match_known,
                                                net.max_displacement)
    return loss, epe_loss(flow.detach(), batch.target, batch.known)


def draw_pair(rng: np.random.Generator, lengths: list[int], new_range: tuple[int, int]
              ) -> tuple[int, int, int]:
    """(video, current t, key k): t uniform over every frame, k - t from new_range without 0,
    clipped to the video (as training clips it)."""
    video = int(rng.choice(len(lengths), p=np.asarray(lengths) / sum(lengths)))
    n = lengths[video]
    t = int(rng.integers(0, n))
    offsets = [d for d in range(*new_range) if d != 0]
    k = min(max(t + int(rng.choice(offsets)), 0), n - 1)
    return video, t, k


def pretrain(data: str | Path, out: str | Path, steps: int, seed: int = 0,
             config: str | Path = "report", eval_split: str | None = "val",
             batch_size: int = 4, lr: float = 2e-3, weight_decay: float = 1e-4,
             object_weight: float = 3.0, match_weight: float = 2.0,
             max_videos: int | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train a FlowNetSmall of `config`'s model settings on `data`'s train split; write
    OUT/flownet.pt and OUT/flow_pretrain.json; return the summary."""
    data, out = Path(data).resolve(), Path(out).resolve()
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps ({steps}) and batch size ({batch_size}) must be >= 1")
    if object_weight <= 0 or match_weight < 0:
        raise ValueError(f"object weight ({object_weight}) must be > 0 and match weight "
                         f"({match_weight}) >= 0")
    motion_folder(data, "train")
    run = RunConfig.from_dict(load_config(config, {"data.root": str(data)}))
    mcfg = run.model
    transform = build_transform(mcfg)
    torch.manual_seed(seed)
    net = FlowNetSmall(tuple(mcfg.flownet_channels), mcfg.flownet_max_displacement,
                       identity_init=False)
    # The match's gain stays 1 (see above).
    net.match_gain.requires_grad_(False)
    ds = VIDDataset(data, split="train", max_videos=max_videos)
    videos = list(ds.videos)
    motions = [load_motion(data, v.name) for v in videos]
    lengths = [len(v.frames) for v in videos]
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    curve: list[float] = []
    start = time.perf_counter()
    net.train()
    for step in tqdm(range(steps), desc="flow-pretrain", unit="step", disable=progress is False,
                     mininterval=1.0, dynamic_ncols=True):
        rng = np.random.default_rng([seed, step])
        pairs = [draw_pair(rng, lengths, run.train.new_key_range) for _ in range(batch_size)]
        batch = pair_batch(transform, videos, motions, pairs)
        loss, epe = pretrain_loss(net, batch, object_weight, match_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        # Cells -> original pixels along x (the transform keeps the aspect ratio).
        curve.append(epe.item() * FlowNetSmall.stride / batch.scale[0])
    wall = time.perf_counter() - start
    net.eval()
    out.mkdir(parents=True, exist_ok=True)
    settings = {"flownet_channels": list(mcfg.flownet_channels),
                "flownet_max_displacement": mcfg.flownet_max_displacement,
                "min_size": mcfg.min_size, "max_size": mcfg.max_size}
    save_atomic({"format": FORMAT, "kind": KIND, "model": net.state_dict(), "settings": settings,
                 "steps": steps, "seed": seed, "data": str(data)}, out / CHECKPOINT)
    summary: dict[str, Any] = {
        "data": str(data), "config": str(config), "steps": steps, "seed": seed,
        "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "object_weight": object_weight, "match_weight": match_weight,
        "train_seconds": round(wall, 2), "torch_threads": torch.get_num_threads(),
        "key_offsets": list(run.train.new_key_range), "loss_epe_px": curve,
        "checkpoint": str(out / CHECKPOINT)}
    if eval_split:
        summary["eval"] = flow_epe(net, data, eval_split, mcfg, run.eval.key_interval,
                                   run.eval.mode, progress=progress)
    atomic.write_json(out / SUMMARY, summary)
    return summary


def flow_epe(model: nn.Module, data_root: str | Path, split: str = "val",
             model_cfg: ModelConfig | None = None, key_interval: int = 10,
             mode: str = "offline", max_videos: int | None = None,
             progress: bool | None = None) -> dict[str, Any]:
    """End-point error (original pixels) of `model`'s flow on every non-key frame of `split`
    (detection's key schedule), and of the zero flow (copy-propagation) on the same cells:
    over every known cell ("cells"), on the background, and on object cells per motion class.
    `model_cfg` gives the input transform (default: the report preset's)."""
    data_root = Path(data_root)
    motion_folder(data_root, split)
    if model_cfg is None:
        model_cfg = RunConfig.from_dict(load_config("report")).model
    transform = build_transform(model_cfg)
    ds = VIDDataset(data_root, split=split, max_videos=max_videos)
    groups = ("cells", "background", *CLASSES)
    errs: dict[str, dict[str, list[np.ndarray]]] = {m: {g: [] for g in groups}
                                                    for m in ("flow", "zero")}
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for video in tqdm(ds.videos, desc=f"flow EPE ({split})", unit="video",
                          disable=progress is False):
            motion = load_motion(data_root, video.name)
            n = len(video.frames)
            for s, k in enumerate(key_frame_indices(n, key_interval, mode)):
                ts = [t for t in range(s * key_interval, min((s + 1) * key_interval, n))
                      if t != k]
                if not ts:
                    continue
                frames = [load_frame(video.frames[t]) for t in (*ts, k)]
                x, scale, hw = preprocess_pairs(transform, frames)
                pred = model(x[:-1], x[-1:].expand(len(ts), -1, -1, -1), hw).numpy()
                px = np.array([FlowNetSmall.stride / scale[0], FlowNetSmall.stride / scale[1]])
                for i, t in enumerate(ts):
                    truth, track, centres = cell_flow(motion, t, k, hw, scale)
                    known = np.isfinite(truth).all(axis=0)
                    on_obj, cls = object_cells(truth, track, centres, video.frames[t])
                    masks = {"cells": known, "background": known & (track == -1), "all": on_obj}
                    masks.update({c: on_obj & (cls == c) for c in CLASSES if c != "all"})
                    for method, flow in (("flow", pred[i]), ("zero", np.zeros_like(truth))):
                        e = np.sqrt(((np.nan_to_num(flow - truth) * px[:, None, None]) ** 2
                                     ).sum(axis=0))
                        for g, m in masks.items():
                            errs[method][g].append(e[m])
    model.train(was_training)

    def mean(parts: list[np.ndarray]) -> float | None:
        v = np.concatenate(parts) if parts else np.zeros(0)
        return float(v.mean()) if len(v) else None

    return {"split": split, "videos": len(ds.videos), "key_interval": key_interval,
            "mode": mode,
            "cells": {g: int(sum(len(a) for a in errs["flow"][g])) for g in groups},
            "epe_px": {g: mean(errs["flow"][g]) for g in groups},
            "zero_flow_epe_px": {g: mean(errs["zero"][g]) for g in groups}}


def load_flownet(model: VideoDetector, path: str | Path) -> None:
    """Load a `flow-pretrain` checkpoint into a flow_warp detector's FlowNet."""
    path = Path(path)
    if model.flownet is None:
        raise ValueError(f"{path}: variant {model.variant!r} has no flow network to load into")
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != KIND:
        raise ValueError(f"{path}: not a FlowNet checkpoint of `lsts flow-pretrain` (kind "
                         f"{ckpt.get('kind')!r})")
    load_model_state(model.flownet, ckpt["model"], path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help="SynthVID dataset root (with Motion/)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--steps", required=True, type=positive_int, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default="report",
                        help="preset or YAML whose model settings (FlowNet widths, input "
                             "size) and key offsets are used (default: report)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="pairs per step")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    parser.add_argument("--object-weight", type=float, default=3.0,
                        help="end-point error weight of object cells (background 1)")
    parser.add_argument("--match-weight", type=float, default=2.0,
                        help="weight of the cost volume's cross-entropy (0: end-point error "
                             "only)")
    parser.add_argument("--eval-split", default="val", choices=["train", *EVAL_SPLITS],
                        help="split the final EPE is measured on (the report: its test split)")
    parser.add_argument("--max-videos", type=positive_int, default=None,
                        help="only the first N train videos")


def main(args: argparse.Namespace) -> int:
    s = pretrain(args.data, args.out, args.steps, args.seed, args.config, args.eval_split,
                 args.batch_size, args.lr, args.weight_decay, args.object_weight,
                 args.match_weight, max_videos=args.max_videos)
    ev = s["eval"]
    print(f"{args.steps} steps in {s['train_seconds']:.0f} s; EPE on {args.eval_split}: "
          f"{ev['epe_px']['cells']:.2f} px (zero flow {ev['zero_flow_epe_px']['cells']:.2f} px) "
          f"-> {Path(args.out) / CHECKPOINT}")
    print("object cells: " + ", ".join(
        f"{c} {ev['epe_px'][c]:.2f} px (zero {ev['zero_flow_epe_px'][c]:.2f})"
        for c in CLASSES if ev["epe_px"][c] is not None))
    return 0
