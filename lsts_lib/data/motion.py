"""FGFA's motion IoU: how fast a ground-truth object moves, from its own track.

An object's motion IoU is the mean IoU between its box and the boxes of the same track id
in the frames within +-`window` of it (itself excluded). Objects are then split into
fast (< 0.7), medium (0.7-0.9) and slow (> 0.9), and the evaluator computes an mAP per range.

Choices, one recipe for reader, generator and evaluator:
- Boxes are inclusive pixel coordinates as in the XML (the devkit's "+1" convention), so
  1 is added to xmax/ymax before `torchvision.ops.box_iou`.
- "Within +-window" counts frame indices, not appearances: a track that skips frames has
  fewer neighbours.
- An object with no neighbour in the window (seen in one frame only) gets 0.0, i.e. it is
  counted as fast. FGFA ships its motion IoUs precomputed (a .mat file) and its evaluator
  turns an empty per-object entry into 0; we follow that.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torchvision.ops import box_iou

from lsts_lib.data.types import Video

# FGFA's evaluation ranges (both ends inclusive in its evaluator).
MOTION_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1.0),
    "fast": (0.0, 0.7),
    "medium": (0.7, 0.9),
    "slow": (0.9, 1.0),
}
NO_NEIGHBOUR_IOU = 0.0


def motion_category(iou: float) -> str:
    """'fast' below 0.7, 'medium' for 0.7..0.9, 'slow' above 0.9 (one label per object)."""
    if not np.isfinite(iou):
        raise ValueError(f"motion IoU must be finite, got {iou}")
    if iou < MOTION_RANGES["fast"][1]:
        return "fast"
    if iou <= MOTION_RANGES["medium"][1]:
        return "medium"
    return "slow"


def compute_motion_iou(videos: list[Video], window: int = 10) -> None:
    """Fill `frame.motion_iou` (K,) float32 for every frame of every video, in place."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    for video in videos:
        # track id -> list of (frame index, object index)
        tracks: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for fi, frame in enumerate(video.frames):
            frame.motion_iou = np.full(len(frame.labels), NO_NEIGHBOUR_IOU, dtype=np.float32)
            for k, tid in enumerate(frame.track_ids.tolist()):
                tracks[tid].append((fi, k))
        for members in tracks.values():
            if len(members) < 2:
                continue
            fidx = torch.tensor([m[0] for m in members])
            boxes = torch.from_numpy(
                np.stack([video.frames[f].boxes[k] for f, k in members]).astype(np.float64)
            )
            boxes[:, 2:] += 1.0  # inclusive pixel coordinates -> area with the +1 convention
            iou = box_iou(boxes, boxes)
            gap = (fidx[:, None] - fidx[None, :]).abs()
            near = (gap <= window) & (gap > 0)
            count = near.sum(1)
            mean = torch.where(near, iou, torch.zeros_like(iou)).sum(1) / count.clamp(min=1)
            mean = torch.where(count > 0, mean, torch.full_like(mean, NO_NEIGHBOUR_IOU))
            for (f, k), value in zip(members, mean.tolist(), strict=True):
                video.frames[f].motion_iou[k] = value
