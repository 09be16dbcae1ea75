"""SynthVID's true motion: where the content at a point of one frame is in another frame.

No real video dataset knows this; SynthVID does, because it renders every frame from closed
form trajectories (`lsts_lib.data.synthvid` writes them to `Motion/VID/<snippet>.json`). It
is the ground truth against which feature propagation is measured (LSTS's expected sampling
displacement, a flow network's flow, copy-propagation's zero) and the supervision a flow
network can be pretrained on, as DFF's FlowNet is on Flying Chairs.

Model of the scene, as rendered: the background is a photo panned by `pan` pixels per frame
(a background point moves by -pan per frame in the image); each object is its texture scaled
about its centre, so a point at offset (u, v) from the centre of an object of size (w, h) in
frame a is at offset (u * w_b / w_a, v * h_b / h_a) from its centre in frame b. A point
belongs to the front-most live object whose box contains it (boxes stand in for the masks:
at the stride-16 cells this is used at, the difference is a fraction of a cell).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["VideoMotion", "load_motion", "displacement", "cell_centres", "cell_flow"]


@dataclass(frozen=True)
class VideoMotion:
    """One video's camera and object motion (pixels, frame indices from 0)."""

    width: int
    height: int
    pan: np.ndarray  # (2,) background image motion is -pan per frame
    z_order: tuple[int, ...]  # track ids, back to front
    frames: tuple[dict[int, np.ndarray], ...]  # per frame: track id -> (cx, cy, w, h)

    def __len__(self) -> int:
        return len(self.frames)


def load_motion(root: str | Path, video: str) -> VideoMotion:
    """The true motion of SynthVID video `video` (e.g. 'val/ILSVRC2015_val_00000003')."""
    path = Path(root) / "Motion" / "VID" / f"{video}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no true motion for {video} (only SynthVID datasets written by generator "
            "version 2 or later have Motion/; regenerate with `lsts synth`)")
    raw = json.loads(path.read_text(encoding="utf-8"))
    frames = tuple({int(k): np.asarray(v, dtype=np.float64) for k, v in f.items()}
                   for f in raw["frames"])
    return VideoMotion(int(raw["width"]), int(raw["height"]),
                       np.asarray(raw["pan"], dtype=np.float64),
                       tuple(int(t) for t in raw["z_order"]), frames)


def cell_centres(height: int, width: int, stride: int = 16) -> np.ndarray:
    """(h*w, 2) image (x, y) of the centres of a stride-`stride` feature map's cells, row-major.

    Cell (i, j) covers pixels [stride*j, stride*(j+1)) horizontally, so its centre is at
    stride*j + (stride-1)/2.
    """
    h, w = -(-height // stride), -(-width // stride)
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    c = (stride - 1) / 2
    return np.stack([xs.ravel() * stride + c, ys.ravel() * stride + c], axis=1).astype(np.float64)


def displacement(motion: VideoMotion, src: int, dst: int, points: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Where the content at `points` (P, 2) of frame `src` is in frame `dst`, as a shift.

    Returns (shift (P, 2) in pixels, track (P,) int: the object a point is on, -1 for
    background). A point on an object that is not live in `dst` gets a NaN shift.
    """
    for t in (src, dst):
        if not 0 <= t < len(motion):
            raise ValueError(f"frame {t} outside the video's {len(motion)} frames")
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    shift = np.tile(-motion.pan * (dst - src), (len(pts), 1))
    track = np.full(len(pts), -1, dtype=np.int64)
    a, b = motion.frames[src], motion.frames[dst]
    for tid in motion.z_order:  # back to front: front-most objects overwrite
        if tid not in a:
            continue
        cx, cy, w, h = a[tid]
        inside = (np.abs(pts[:, 0] - cx) <= w / 2) & (np.abs(pts[:, 1] - cy) <= h / 2)
        track[inside] = tid
        if tid in b:
            bx, by, bw, bh = b[tid]
            new = np.stack([bx + (pts[:, 0] - cx) * bw / w, by + (pts[:, 1] - cy) * bh / h], 1)
            shift[inside] = new[inside] - pts[inside]
        else:
            shift[inside] = np.nan
    return shift, track


def cell_flow(motion: VideoMotion, src: int, dst: int, feature_hw: tuple[int, int],
              scale: tuple[float, float] = (1.0, 1.0), stride: int = 16
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true flow of a stride-`stride` feature map from frame `src` to frame `dst`.

    The map covers the image resized by `scale` = (sx, sy) (resized / original size, as the
    detector's transform does) and padded to `feature_hw` cells. Cell (i, j) has its centre at
    resized pixel stride*j + (stride-1)/2, i.e. original pixel (x' + 0.5) / sx - 0.5 (pixel
    centres are preserved by the resize). Returns, each (h, w):
      flow (2, h, w) float32: the displacement of the content at the cell centre from `src` to
        `dst`, in feature cells of the resized image: the `flownet.warp` convention
        F_src(p) = F_dst(p + flow(p)); NaN where it is unknown (object not live in `dst`)
        or the centre lies outside the image (padding);
      track (h, w) int64: the object at the centre (-1 background, -2 outside the image);
      centres (h, w, 2) float64: the centres in original pixels.
    """
    h, w = feature_hw
    sx, sy = scale
    c = (stride - 1) / 2
    xs = (np.arange(w) * stride + c + 0.5) / sx - 0.5
    ys = (np.arange(h) * stride + c + 0.5) / sy - 0.5
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    centres = np.stack([gx, gy], axis=-1)
    shift, track = displacement(motion, src, dst, centres.reshape(-1, 2))
    outside = ((centres[..., 0] < -0.5) | (centres[..., 0] > motion.width - 0.5)
               | (centres[..., 1] < -0.5) | (centres[..., 1] > motion.height - 0.5)).ravel()
    shift[outside] = np.nan
    track[outside] = -2
    flow = (shift * np.array([sx, sy]) / stride).T.reshape(2, h, w).astype(np.float32)
    return flow, track.reshape(h, w), centres
