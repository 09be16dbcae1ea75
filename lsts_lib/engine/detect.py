"""`lsts detect`: run a trained detector over every video of a split.

    lsts detect --checkpoint runs/report/lsts/seed0/model.pt --data data/synthvid/report \
        --split val --out runs/report/lsts/seed0/detections [--mode offline --key-interval 10]
        [--channels-last] [--amp [bf16|fp16]] [--compile] [--fold-bn]

Writes into OUT:
  detections.txt   ILSVRC VID devkit lines `<frame id> <class> <score> x1 y1 x2 y2`
                   (global 1-based frame ids: video start index + frame offset)
  detections.json  the same detections as COCO results
  timing.json      frames, seconds (model only and end to end), frames/s, device, settings,
                   the speed options (engine.inference) and what each did
  stamps/detect.json  the inputs (dataset fingerprint, checkpoint hash, split, mode, key
                   interval) and the outputs' hashes
Both detection files are what `lsts evaluate` reads. A finished OUT made from the same data
content, checkpoint content and settings is reused (and says so) unless `redo`.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lsts_lib import atomic
from lsts_lib.argtypes import positive_int
from lsts_lib.data.types import ClassList, Video
from lsts_lib.data.vid import VIDDataset, load_frame
from lsts_lib.engine import inference, rundir
from lsts_lib.engine.checkpoint import load_checkpoint
from lsts_lib.engine.config import MODES, RunConfig
from lsts_lib.engine.inference import InferenceOptions
from lsts_lib.eval.detections_io import Detections, write_coco_results, write_vid_detections
from lsts_lib.models.config import ModelConfig
from lsts_lib.models.detector import VideoDetector, build_detector

OUTPUTS = ("detections.txt", "detections.json", "timing.json")


def load_detector(checkpoint: str | Path, device: str | torch.device = "cpu"
                  ) -> tuple[VideoDetector, dict[str, Any]]:
    """(model in eval mode, checkpoint dict) from a `model.pt` written by `lsts train`."""
    ckpt = load_checkpoint(checkpoint)
    mcfg = ModelConfig.from_dict(dict(ckpt["model_config"], pretrained=False))
    model = build_detector(mcfg)
    try:
        model.load_checkpoint_state(ckpt["model"])
    except ValueError as exc:
        raise ValueError(f"{checkpoint}: {exc}") from None
    return model.to(device).eval(), ckpt


def _device(name: str | torch.device) -> torch.device:
    """`--device` as a torch.device; a device this machine lacks is a one-line error."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: not a device name (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available on this machine")
    return device


def _check_classes(ckpt: dict[str, Any], classes: ClassList, checkpoint: Path, root: Path) -> None:
    ids = ckpt.get("classes", {}).get("ids")
    if ids is not None and tuple(ids) != tuple(classes.ids):
        raise ValueError(f"{checkpoint}: trained on classes {ids[:5]}... but {root} lists "
                         f"{list(classes.ids[:5])}...: class indices would not match")


def _check_out(out: Path, data: Path) -> None:
    """Refuse an --out that is not ours: inside the dataset (writing there changes its
    fingerprint), a file, or a non-empty folder that is not an earlier output of `lsts
    detect` (its stamp or timing.json), whose detections.txt may be a user's own."""
    if out == data or data in out.parents:
        raise ValueError(f"--out {out}: is inside the --data folder {data}; writing there "
                         "would change the dataset; choose an --out outside it")
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if not any(out.iterdir()) or rundir.Stamp(out, "detect").path.is_file() or (
            out / "timing.json").is_file():
        return
    raise ValueError(f"--out {out}: not empty and not an output of `lsts detect` (no "
                     f"{rundir.STAMPS}/detect.json or timing.json); choose another --out")


def detect(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    split: str = "val",
    mode: str | None = None,
    key_interval: int | None = None,
    device: str = "cpu",
    max_videos: int | None = None,
    redo: bool = False,
    progress: bool | None = None,
    options: InferenceOptions | None = None,
) -> dict[str, Any]:
    """Detect every frame of `split`; write OUT/detections.{txt,json} + timing.json; return timing.

    mode and key_interval default to the run's eval settings; `options` (default float32
    NCHW) are the speed options of engine.inference. Relative paths are taken from the
    current directory.
    """
    checkpoint, data, out = Path(checkpoint).resolve(), Path(data).resolve(), Path(out).resolve()
    _check_out(out, data)
    options = options or InferenceOptions()
    dev = _device(device)
    inference.check_options(options, dev)
    device = str(dev)
    model, ckpt = load_detector(checkpoint, device)
    ev = RunConfig.from_dict(ckpt["config"]).eval
    mode = mode or ev.mode
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    k = ev.key_interval if key_interval is None else int(key_interval)
    if k < 1:
        raise ValueError(f"--key-interval {k}: must be >= 1")
    settings = {"checkpoint": str(checkpoint), "checkpoint_sha256": rundir.sha256_file(checkpoint),
                "data": str(data), "data_sha256": rundir.dataset_fingerprint(data),
                "split": split, "mode": mode, "key_interval": k, "max_videos": max_videos}
    if not options.is_default:  # only then: the stamps of default runs stay as they were
        settings["options"] = options.name
    timing_path = out / "timing.json"
    stamp = rundir.Stamp(out, "detect")
    if not redo and stamp.done(settings):
        print(f"{out}: reused (same data, checkpoint and settings)")
        return atomic.read_json(timing_path)

    ds = VIDDataset(data, split=split, max_videos=max_videos)
    _check_classes(ckpt, ds.classes, checkpoint, data)
    model, notes = inference.prepare(model, options)
    total = sum(len(v.frames) for v in ds.videos)
    bar = tqdm(total=total, desc=f"detect {model.variant} ({mode}, k={k})", unit="frame",
               disable=progress is False, mininterval=1.0, dynamic_ncols=True)
    decode = 0.0

    def frames_of(video) -> Iterator[torch.Tensor]:
        nonlocal decode
        for f in video.frames:
            t = time.perf_counter()
            img = load_frame(f).to(device)
            decode += time.perf_counter() - t
            bar.update(1)
            yield img

    warmup = 0.0
    if options.compile and ds.videos:
        # Compile outside the timing: one segment of the first video runs the key and the
        # non-key path once (its detections are made again below).
        t = time.perf_counter()
        with options.autocast(dev):
            model.detect_video([load_frame(f).to(device) for f in ds.videos[0].frames[:k]],
                               mode=mode, key_interval=k)
        warmup = time.perf_counter() - t
    start = time.perf_counter()
    with options.autocast(dev):
        result = detect_videos(model, ds.videos, mode, k, frames_of)
    wall = time.perf_counter() - start
    bar.close()

    write_vid_detections(out / "detections.txt", result)
    write_coco_results(out / "detections.json", result)
    model_s = max(wall - decode, 1e-9)
    timing = {
        "variant": model.variant, "frames": total, "videos": len(ds.videos),
        "detections": len(result), "seconds_total": round(wall, 3),
        "seconds_model": round(model_s, 3), "seconds_decode": round(decode, 3),
        "fps_model": round(total / model_s, 3), "fps_total": round(total / max(wall, 1e-9), 3),
        "ms_per_frame_model": round(1000 * model_s / max(total, 1), 3),
        "seconds_compile_warmup": round(warmup, 3),
        "device": str(device), "torch_threads": torch.get_num_threads(), "settings": settings,
        "options": options.to_dict(), "option_notes": notes,
    }
    atomic.write_json(timing_path, timing)
    stamp.mark(settings, OUTPUTS)
    return timing


def detect_videos(model: VideoDetector, videos: Sequence[Video], mode: str, k: int,
                  frames_of: Callable[[Video], Iterator[torch.Tensor]] | None = None
                  ) -> Detections:
    """Detections of every frame of `videos` (frames read by `frames_of`, default from disk)."""
    read = frames_of or (lambda v: (load_frame(f).to(next(model.parameters()).device)
                                    for f in v.frames))
    per_frame: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for video in videos:
        dets = model.detect_video(read(video), mode=mode, key_interval=k)
        if len(dets) != len(video.frames):
            raise RuntimeError(f"{video.name}: {len(dets)} detections for {len(video.frames)} frames")
        for i, d in enumerate(dets):
            # float(): under --amp the head's outputs may be 16-bit, which numpy lacks.
            per_frame[video.start_index + i] = (d["boxes"].float().cpu().numpy(),
                                                d["scores"].float().cpu().numpy(),
                                                d["labels"].cpu().numpy())
    return Detections.from_frames(per_frame)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="model.pt of `lsts train`")
    parser.add_argument("--data", required=True, type=Path, help="VID-layout dataset root")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--mode", choices=["offline", "online"], default=None,
                        help="offline: key in the middle of each segment (official); "
                             "online: keys 0, k, 2k, ... (default: the run's eval.mode)")
    parser.add_argument("--key-interval", type=positive_int, default=None,
                        help="frames per key frame (default: the run's eval.key_interval)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--max-videos", type=positive_int, default=None,
                        help="only the first N videos")
    parser.add_argument("--redo", action="store_true", help="recompute even if OUT is up to date")
    inference.add_arguments(parser, "applied together to the whole run (default: fp32 NCHW)")


def main(args: argparse.Namespace) -> int:
    threads = int(os.environ.get("LSTS_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    t = detect(args.checkpoint, args.data, args.out, split=args.split, mode=args.mode,
               key_interval=args.key_interval, device=args.device, max_videos=args.max_videos,
               redo=args.redo, options=inference.from_args(args))
    for option, note in t.get("option_notes", {}).items():
        print(f"--{option.replace('_', '-')}: {note}")
    print(f"{t['frames']} frames, {t['detections']} detections, {t['fps_model']:.2f} frames/s "
          f"(model), {t['ms_per_frame_model']:.1f} ms/frame -> {args.out}")
    return 0
