"""Feature alignment measured against SynthVID's true motion, per motion class.

A non-key frame t gets its feature from the key frame k's memory; each method implies where
the content of a cell of t is in k, a displacement in feature cells (`Propagation` in the
detector): zero for copy-propagation, the predicted flow for the flow warp, the S-weighted
mean offset sum_n S_n(p0) p_n for LSTS. `data.motion_truth.cell_flow` says where it truly is.
Here both are compared at the cells of t whose centre lies on a ground-truth object (the
front-most object of the motion truth, which must also be annotated in t, with the centre
inside its box), grouped by the object's motion class (FGFA motion IoU: slow / medium /
fast) and over all:

  end-point error (EPE): || d_method - d_true || in original image pixels (mean, median);
  feature error: || F_prop - F_t ||^2 per cell, F_prop the propagated memory and F_t the
    frame's own high-level feature (backbone on t): the mean over cells and channels (MSE)
    and the relative L2 sqrt(sum ||F_prop - F_t||^2 / sum ||F_t||^2);
  focus (LSTS only): how peaked the weights S_n(p0) are at those cells, their entropy
    -sum_n S_n log S_n in nats (log N when uniform, 0 when one-hot) and their largest weight.

The model-running loop is `lsts_lib.engine.alignment`; this module only scores arrays.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from lsts_lib.data.motion import motion_category
from lsts_lib.data.types import FrameAnnotation

__all__ = ["CLASSES", "object_cells", "endpoint_errors", "feature_errors", "focus_stats",
           "AlignmentStats"]

CLASSES = ("all", "slow", "medium", "fast")


def object_cells(truth: np.ndarray, track: np.ndarray, centres: np.ndarray,
                 ann: FrameAnnotation) -> tuple[np.ndarray, np.ndarray]:
    """(mask (h, w) bool, class (h, w) str) of the cells measured in one frame.

    truth (2, h, w), track (h, w) and centres (h, w, 2) as `cell_flow` returns them. A cell
    counts when the motion truth puts it on an object with a known displacement, that object
    is annotated in the frame and the centre is inside its (inclusive-pixel) box; the class is
    that object's motion class from its motion IoU.
    """
    if ann.motion_iou is None:
        raise ValueError(f"{ann.image}: no motion IoU (read the video with VIDDataset)")
    mask = np.zeros(track.shape, dtype=bool)
    cls = np.full(track.shape, "", dtype=object)
    known = np.isfinite(truth).all(axis=0)
    x, y = centres[..., 0], centres[..., 1]
    for (x1, y1, x2, y2), tid, iou in zip(ann.boxes, ann.track_ids, ann.motion_iou, strict=True):
        on = ((track == tid) & known & (x >= x1 - 0.5) & (x <= x2 + 0.5)
              & (y >= y1 - 0.5) & (y <= y2 + 0.5))
        mask |= on
        cls[on] = motion_category(float(iou))
    return mask, cls


def endpoint_errors(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray,
                    scale: tuple[float, float], stride: int = 16) -> np.ndarray:
    """|| pred - truth || at the masked cells, in original pixels: (P,).

    pred, truth: (2, h, w) displacements in feature cells of the image resized by `scale`
    = (sx, sy); one cell is stride / s original pixels along each axis.
    """
    if pred.shape != truth.shape or pred.shape[0] != 2 or pred.shape[1:] != mask.shape:
        raise ValueError(f"pred {pred.shape}, truth {truth.shape} and mask {mask.shape} must "
                         "be (2, h, w), (2, h, w) and (h, w)")
    px = np.array([stride / scale[0], stride / scale[1]])[:, None]
    diff = (pred[:, mask] - truth[:, mask]) * px
    return np.sqrt((diff ** 2).sum(axis=0))


def feature_errors(propagated: np.ndarray, own: np.ndarray, mask: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(|| F_prop - F_t ||^2, || F_t ||^2) summed over channels at the masked cells: (P,) each.

    propagated, own: (C, h, w)."""
    if propagated.shape != own.shape or own.shape[1:] != mask.shape:
        raise ValueError(f"features {propagated.shape}, {own.shape} and mask {mask.shape} "
                         "must be (C, h, w), (C, h, w) and (h, w)")
    p, o = propagated[:, mask].astype(np.float64), own[:, mask].astype(np.float64)
    return ((p - o) ** 2).sum(axis=0), (o ** 2).sum(axis=0)


def focus_stats(S: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entropy in nats, largest weight) of the weights S (N, h, w) at the masked cells: (P,) each."""
    if S.ndim != 3 or S.shape[1:] != mask.shape:
        raise ValueError(f"S {S.shape} and mask {mask.shape} must be (N, h, w) and (h, w)")
    w = S[:, mask].astype(np.float64)
    ent = -(w * np.log(np.where(w > 0, w, 1.0))).sum(axis=0)
    return ent, w.max(axis=0)


class AlignmentStats:
    """Per-method, per-class accumulator of end-point and feature errors."""

    def __init__(self) -> None:
        self._epe: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        self._sq: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        self._ref: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        self._focus: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        self._channels: int | None = None
        self._points: int | None = None

    def add(self, method: str, classes: np.ndarray, epe: np.ndarray,
            sq_err: np.ndarray | None = None, own_sq: np.ndarray | None = None,
            channels: int | None = None,
            focus: tuple[np.ndarray, np.ndarray, int] | None = None) -> None:
        """One frame's cells of one method: their class (P,), EPE (P,) and optionally the
        feature errors of `feature_errors` with the channel count C (for the MSE) and the
        (entropy, largest weight) of `focus_stats` with the number of points N."""
        if not len(classes) == len(epe):
            raise ValueError(f"{len(classes)} classes for {len(epe)} errors")
        if focus is not None:
            self._points = int(focus[2])
        for name in CLASSES:
            sel = np.ones(len(classes), bool) if name == "all" else classes == name
            self._epe[method][name].append(epe[sel])
            if sq_err is not None and own_sq is not None:
                self._sq[method][name].append(sq_err[sel])
                self._ref[method][name].append(own_sq[sel])
            if focus is not None:
                self._focus[method][name].append(np.stack([focus[0][sel], focus[1][sel]]))
        if channels is not None:
            self._channels = int(channels)

    def summary(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{method: {class: {cells, epe_mean_px, epe_median_px[, feature_mse,
        feature_rel_l2][, s_entropy_nats, s_uniform_entropy_nats, s_max]}}}; None for a class
        without cells."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for method, per_class in self._epe.items():
            out[method] = {}
            for name in CLASSES:
                epe = np.concatenate(per_class.get(name, [np.zeros(0)]))
                row: dict[str, Any] = {
                    "cells": int(len(epe)),
                    "epe_mean_px": float(epe.mean()) if len(epe) else None,
                    "epe_median_px": float(np.median(epe)) if len(epe) else None}
                if self._sq[method].get(name):
                    sq = np.concatenate(self._sq[method][name])
                    ref = np.concatenate(self._ref[method][name])
                    has = len(sq) > 0 and self._channels
                    row["feature_mse"] = float(sq.mean() / self._channels) if has else None
                    row["feature_rel_l2"] = (float(np.sqrt(sq.sum() / ref.sum()))
                                             if len(sq) and ref.sum() > 0 else None)
                if self._focus[method].get(name):
                    f = np.concatenate(self._focus[method][name], axis=1)
                    row["s_entropy_nats"] = float(f[0].mean()) if f.shape[1] else None
                    row["s_uniform_entropy_nats"] = float(np.log(self._points or 1))
                    row["s_max"] = float(f[1].mean()) if f.shape[1] else None
                out[method][name] = row
        return out
