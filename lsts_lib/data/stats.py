"""`lsts data-stats`: what a VID-layout split holds (videos, frames, classes, box sizes, motion).

Statistics cover every annotated frame of the split's snippets (for train, not only the
15 sampled frames per snippet). Box areas use the devkit's inclusive pixel convention,
(x2 - x1 + 1) * (y2 - y1 + 1); small / medium / large are COCO's area bounds 32^2 and 96^2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lsts_lib import atomic
from lsts_lib.argtypes import positive_int
from lsts_lib.data.motion import motion_category
from lsts_lib.data.vid import VIDDataset

COCO_AREAS = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, np.inf)}
PERCENTILES = (5, 25, 50, 75, 95)
MOTION_NAMES = ("fast", "medium", "slow")


def _fractions(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, 4) if total else 0.0 for k, v in counts.items()}


def dataset_stats(ds: VIDDataset) -> dict:
    """Summary of a loaded split as a JSON-ready dict with stable keys."""
    ds.load_all()
    names = list(ds.classes.names)
    per_class = dict.fromkeys(names, 0)
    areas, motion, empty, frames = [], [], 0, 0
    for video in ds.videos:
        for f in video.frames:
            frames += 1
            if len(f.labels) == 0:
                empty += 1
                continue
            for label in f.labels.tolist():
                per_class[names[label - 1]] += 1
            b = f.boxes.astype(np.float64)
            areas.append((b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1))
            motion.append(f.motion_iou)
    area = np.concatenate(areas) if areas else np.zeros(0)
    miou = np.concatenate(motion).astype(np.float64) if motion else np.zeros(0)
    size_counts = {k: int(((area >= lo) & (area < hi)).sum()) for k, (lo, hi) in COCO_AREAS.items()}
    motion_counts = dict.fromkeys(MOTION_NAMES, 0)
    for value in miou.tolist():
        motion_counts[motion_category(value)] += 1
    pct = np.percentile(area, PERCENTILES) if len(area) else [0.0] * len(PERCENTILES)
    return {
        "root": str(ds.root),
        "split": ds.split,
        "classes": names,
        "videos": len(ds.videos),
        "frames": frames,
        "samples": len(ds.samples),
        "objects": int(len(area)),
        "frames_without_objects": empty,
        "objects_per_frame": round(len(area) / frames, 4) if frames else 0.0,
        "objects_per_class": per_class,
        "class_fraction": _fractions(per_class),
        "box_area_percentiles": {f"p{p}": round(float(v), 1) for p, v in zip(PERCENTILES, pct, strict=True)},
        "box_size_counts": size_counts,
        "box_size_mix": _fractions(size_counts),
        "motion_counts": motion_counts,
        "motion_mix": _fractions(motion_counts),
        "motion_iou_mean": round(float(miou.mean()), 4) if len(miou) else 0.0,
        "issues": dict(sorted(ds.issues.items())),
    }


def format_stats(s: dict) -> str:
    """A few human-readable lines of `dataset_stats` output."""
    mix = s["motion_mix"]
    sizes = s["box_size_mix"]
    pct = s["box_area_percentiles"]
    lines = [
        f"{s['root']} [{s['split']}]: {s['videos']} videos, {s['frames']} frames, "
        f"{s['samples']} samples, {s['objects']} objects, "
        f"{s['frames_without_objects']} frames without objects",
        "motion mix: " + ", ".join(f"{k} {100 * mix[k]:.1f}%" for k in MOTION_NAMES)
        + f" (mean motion IoU {s['motion_iou_mean']:.3f})",
        "box sizes: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in sizes.items())
        + "; area px^2 " + " ".join(f"{k}={v:g}" for k, v in pct.items()),
        "objects per class: "
        + ", ".join(f"{k} {v} ({100 * s['class_fraction'][k]:.1f}%)" for k, v in s["objects_per_class"].items()),
    ]
    if s["issues"]:
        lines.append("tolerated issues: " + ", ".join(f"{v} {k}" for k, v in s["issues"].items()))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="dataset root (VID layout)")
    parser.add_argument("--split", choices=("train", "val", "test"), default="val")
    parser.add_argument("--json", type=Path, default=None, help="also write the stats here")
    parser.add_argument("--max-videos", type=positive_int, default=None,
                        help="only the first N snippets")


def main(args: argparse.Namespace) -> int:
    if args.json is not None:
        atomic.check_json_output(args.json, args.data)
    ds = VIDDataset(args.data, args.split, max_videos=args.max_videos)
    stats = dataset_stats(ds)
    print(format_stats(stats))
    if args.json is not None:
        atomic.write_json(args.json, stats)
        print(f"wrote {args.json}")
    return 0
