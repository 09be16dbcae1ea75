"""`lsts alignment`: how well a trained run's feature propagation follows the true motion.

    lsts alignment --run runs/report/lsts/seed0 --data data/synthvid/report --split val \
        --json runs/report/lsts/seed0/alignment.json [--max-videos 4]

Runs the detector over a SynthVID split with the key schedule of detection (the run's
eval.mode and eval.key_interval: offline puts the key in the middle of each segment), and at
every non-key frame compares the displacement its propagation implies (see
`VideoDetector.propagate`) with the true one (`data.motion_truth.cell_flow`) at the cells on
objects, per motion class (scoring: `lsts_lib.eval.alignment`). Besides the run's own method
it always scores `zero_motion` (copy-propagation: no displacement, the memory as is) on the
same cells, as the reference every alignment must beat.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lsts_lib import atomic
from lsts_lib.argtypes import positive_int
from lsts_lib.data.motion_truth import VideoMotion, cell_flow, load_motion
from lsts_lib.data.types import FrameAnnotation
from lsts_lib.data.vid import VIDDataset, load_frame
from lsts_lib.engine import rundir
from lsts_lib.engine.config import MODES, RunConfig
from lsts_lib.engine.detect import load_detector
from lsts_lib.eval.alignment import (
    AlignmentStats,
    endpoint_errors,
    feature_errors,
    focus_stats,
    object_cells,
)
from lsts_lib.models.detector import KeyState, VideoDetector, key_frame_indices

ZERO = "zero_motion"
METHOD = {"copy": "copy_prop", "flow": "flow_warp", "lsts": "lsts"}


def motion_folder(data: Path, split: str) -> Path:
    """DATA/Motion/VID/<split>, or a FileNotFoundError saying how to get one."""
    folder = Path(data) / "Motion" / "VID" / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no true motion for split {split!r} (only SynthVID datasets of generator "
            "version 2 or later have Motion/; regenerate with `lsts synth`)")
    return folder


def measure_alignment(model: VideoDetector, data: str | Path, split: str = "val",
                      mode: str = "offline", key_interval: int = 10,
                      max_videos: int | None = None, progress: bool | None = None
                      ) -> dict[str, Any]:
    """Score `model`'s propagation on every non-key frame of `split` (see module doc)."""
    data = Path(data)
    motion_folder(data, split)
    if model.spec.every_frame_key:
        raise ValueError(f"variant {model.variant!r}: every frame is a key frame, no feature "
                         "is propagated")
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    k = model.effective_key_interval(key_interval)
    method = METHOD[model.spec.nonkey]
    ds = VIDDataset(data, split=split, max_videos=max_videos)
    device = next(model.parameters()).device
    stats = AlignmentStats()
    total = sum(len(v.frames) for v in ds.videos)
    bar = tqdm(total=total, desc=f"alignment {model.variant}", unit="frame",
               disable=progress is False, mininterval=1.0, dynamic_ncols=True)
    measured = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for video in ds.videos:
                motion = load_motion(data, video.name)
                n = len(video.frames)
                if len(motion) != n:
                    raise ValueError(f"{video.name}: motion truth has {len(motion)} frames, the "
                                     f"annotations {n}")
                keys = key_frame_indices(n, k, mode)
                state: KeyState | None = None
                for s, key in enumerate(keys):
                    x, _, _ = model.preprocess([load_frame(video.frames[key]).to(device)])
                    _, state = model.key_step(x, state)
                    for t in range(s * k, min((s + 1) * k, n)):
                        bar.update(1)
                        if t == key:
                            continue
                        measured += _measure_frame(model, stats, method, video.frames[t],
                                                   motion, t, key, state, device)
    finally:
        model.train(was_training)
        bar.close()
    return {"variant": model.variant, "method": method, "data": str(data), "split": split,
            "mode": mode, "key_interval": k, "videos": len(ds.videos), "frames": measured,
            "stride": model.stride, "methods": stats.summary()}


def _measure_frame(model: VideoDetector, stats: AlignmentStats, method: str,
                   ann: FrameAnnotation, motion: VideoMotion,
                   t: int, key: int, state: KeyState, device: torch.device) -> int:
    """Score one non-key frame t (key `key`); returns 1 when it had object cells, else 0."""
    x, sizes, orig = model.preprocess([load_frame(ann).to(device)])
    prop = model.propagate(x, state)
    h, w = prop.displacement.shape[-2:]
    scale = (sizes[0][1] / orig[0][1], sizes[0][0] / orig[0][0])
    truth, track, centres = cell_flow(motion, t, key, (h, w), scale, model.stride)
    mask, cls = object_cells(truth, track, centres, ann)
    if not mask.any():
        return 0
    own = model.extract_high(model.extract_low(x))[0].float().cpu().numpy()
    classes = cls[mask]
    channels = own.shape[0]
    focus = None
    if prop.weights is not None:
        S = prop.weights
        focus = (*focus_stats(S[0].float().cpu().numpy(), mask), S.shape[1])
    for name, disp, feat, foc in ((method, prop.displacement, prop.feature, focus),
                                  (ZERO, torch.zeros_like(prop.displacement), state.memory, None)):
        epe = endpoint_errors(disp[0].float().cpu().numpy(), truth, mask, scale, model.stride)
        sq, ref = feature_errors(feat[0].float().cpu().numpy(), own, mask)
        stats.add(name, classes, epe, sq, ref, channels, foc)
    return 1


def alignment(run: str | Path, data: str | Path, split: str = "val",
              max_videos: int | None = None, device: str = "cpu",
              progress: bool | None = None) -> dict[str, Any]:
    """`measure_alignment` of a finished run directory (its model.pt and eval settings)."""
    run, data = Path(run).resolve(), Path(data).resolve()
    checkpoint = run / rundir.MODEL
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: not a finished run (no {rundir.MODEL}); train it "
                                f"with `lsts train ... --out {run}`")
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: dataset folder not found")
    motion_folder(data, split)
    model, ckpt = load_detector(checkpoint, device)
    ev = RunConfig.from_dict(ckpt["config"]).eval
    result = measure_alignment(model, data, split, ev.mode, ev.key_interval, max_videos,
                               progress)
    return {"run": str(run), **result}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, type=Path, help="run directory (its model.pt)")
    parser.add_argument("--data", required=True, type=Path,
                        help="SynthVID dataset root (with Motion/)")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--json", required=True, type=Path, help="output JSON file")
    parser.add_argument("--max-videos", type=positive_int, default=None,
                        help="only the first N videos")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")


def main(args: argparse.Namespace) -> int:
    result = alignment(args.run, args.data, args.split, args.max_videos, args.device)
    atomic.write_json(args.json, result)
    for name, per_class in result["methods"].items():
        cells = " ".join(f"{c}: {r['epe_mean_px']:.2f}px ({r['cells']})"
                         for c, r in per_class.items() if r["epe_mean_px"] is not None)
        print(f"{name}: EPE {cells}")
    print(f"-> {args.json}")
    return 0
