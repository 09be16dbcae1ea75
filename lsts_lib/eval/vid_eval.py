"""ImageNet VID evaluation: the ILSVRC devkit mAP, the FGFA motion split, COCO metrics.

The devkit rule (as FGFA's and DFF's ``imagenet_vid_eval`` apply it):

- Box sizes and IoU use the +1 pixel convention: ``w = xmax - xmin + 1``.
- Each ground-truth (GT) box has its own IoU threshold
  ``thr = min(0.5, w*h / ((w + 10) * (h + 10)))``: small boxes get a looser threshold.
- Matching is per frame: detections in descending score order each take the still unmatched
  GT of the same class with the highest IoU, provided IoU >= that GT's threshold. A detection
  left unmatched (duplicates included) is a false positive.
- AP per class: all detections of the class over the split by descending score, recall
  over the class's GT count, then the area under the monotone (right-to-left maximum)
  precision envelope at every recall change, VOC "use_07_metric=False" style.
- mAP: mean over the classes that have GT. A class without GT has no AP (``None``); the
  plain devkit would average a NaN for it, FGFA's motion evaluator skips it as we do.

The motion split (FGFA's ``imagenet_vid_eval_motion``), for a motion-IoU range [lo, hi]
(both ends inclusive, so a GT at exactly 0.7 counts as fast and as medium):

- A GT whose motion IoU is outside the range is *ignored*: it is removed from the GT count.
- Matching is exactly the plain rule above and does not look at the range; a detection
  matched to an ignored GT counts neither as TP nor as FP.
- An unmatched detection is compared with all GT boxes of its frame, whatever their class
  or match state: if it overlaps an in-range GT more than any ignored GT it is an FP
  (weight 1); if it overlaps an ignored GT more it is ignored (weight 0). On a tie (usually
  no overlap with anything) it is a fractional FP: in a frame without GT the weight is the
  share of the split's GT boxes that are in range; in a frame with GT, FGFA's code uses the
  share of that frame's GT boxes that are *outside* the range (``tie_weight="fgfa"``, the
  default, so that numbers compare with the published slow/medium/fast). That second rule
  looks inverted relative to the first; ``tie_weight="in_range"`` uses the in-range share
  for both cases.
- Precision is tp / (tp + fp) with these fractional FPs; AP and mAP as above.

For the 101-point COCO interpolation (``interpolation="coco101"``) and the plain IoU without
+1 (``MatchRule(plus_one=False, small_object_rule=False)``) the same core reproduces
pycocotools' per-category AP50, which the tests check.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lsts_lib import atomic
from lsts_lib.data.types import ClassList, Video
from lsts_lib.eval.detections_io import (
    Detections,
    frame_locations,
    frame_sizes,
    read_detections,
)

__all__ = [
    "FGFA_MOTION_RANGES",
    "MatchRule",
    "average_precision",
    "box_iou",
    "evaluate_dataset",
    "evaluate_vid",
    "format_results",
    "gt_thresholds",
    "video_weighted_map",
]

# The ranges FGFA evaluates (motion IoU: mean IoU with the same track within +-10 frames).
# lsts_lib.data.motion.MOTION_RANGES holds the same values for the reader; a test checks
# they agree. The evaluator keeps its own copy because the ranges are part of its protocol.
FGFA_MOTION_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1.0),
    "fast": (0.0, 0.7),
    "medium": (0.7, 0.9),
    "slow": (0.9, 1.0),
}

Interpolation = Literal["continuous", "coco101"]


@dataclass(frozen=True)
class MatchRule:
    """When a detection may match a GT box.

    plus_one: box sizes as ``x2 - x1 + 1`` (the devkit) or ``x2 - x1`` (COCO).
    small_object_rule: per-GT threshold ``min(iou_threshold, wh/((w+t)(h+t)))`` with
    ``t = pixel_tolerance``; when False every GT uses ``iou_threshold``.
    """

    plus_one: bool = True
    small_object_rule: bool = True
    iou_threshold: float = 0.5
    pixel_tolerance: float = 10.0


DEVKIT = MatchRule()


def box_iou(a: np.ndarray, b: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of x1 y1 x2 y2 boxes; 0 where boxes do not overlap.

    Hand-written (not torchvision.ops.box_iou) because the devkit's +1 convention is needed.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    e = 1.0 if plus_one else 0.0
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + e
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + e
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[:, 2] - a[:, 0] + e) * (a[:, 3] - a[:, 1] + e)
    area_b = (b[:, 2] - b[:, 0] + e) * (b[:, 3] - b[:, 1] + e)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def gt_thresholds(boxes: np.ndarray, rule: MatchRule = DEVKIT) -> np.ndarray:
    """Per-GT IoU threshold: ``min(0.5, w*h / ((w+10)*(h+10)))`` under the devkit rule."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not rule.small_object_rule:
        return np.full(len(boxes), rule.iou_threshold)
    e = 1.0 if rule.plus_one else 0.0
    w = boxes[:, 2] - boxes[:, 0] + e
    h = boxes[:, 3] - boxes[:, 1] + e
    t = rule.pixel_tolerance
    return np.minimum(rule.iou_threshold, (w * h) / ((w + t) * (h + t)))


def average_precision(
    tp: np.ndarray,
    fp: np.ndarray,
    num_gt: float,
    interpolation: Interpolation = "continuous",
) -> float:
    """AP from per-detection tp/fp weights already in descending score order.

    continuous: area under the precision envelope at every recall change (devkit, VOC 2010+).
    coco101: mean of the envelope sampled at recall 0, 0.01, ..., 1 (pycocotools), the
    envelope at recall r being the best precision at any recall >= r (0 if unreachable).
    """
    if num_gt <= 0:
        raise ValueError("average_precision: no ground truth")
    tp_c = np.cumsum(np.asarray(tp, dtype=np.float64))
    fp_c = np.cumsum(np.asarray(fp, dtype=np.float64))
    return float(_ap_from_cumulative(tp_c, fp_c, float(num_gt), interpolation))


def _ap_from_cumulative(
    tp_c: np.ndarray,
    fp_c: np.ndarray,
    num_gt: float | np.ndarray,
    interpolation: Interpolation,
) -> np.ndarray:
    """`average_precision` of each row (last axis: cumulative tp/fp weights in descending
    score order); `num_gt` (> 0) broadcasts against the leading axes."""
    rec = tp_c / np.asarray(num_gt, dtype=np.float64)[..., None]
    prec = tp_c / np.maximum(tp_c + fp_c, np.finfo(np.float64).eps)
    n, lead = rec.shape[-1], rec.shape[:-1]
    if interpolation == "continuous":
        mrec = np.concatenate((np.zeros(lead + (1,)), rec, np.ones(lead + (1,))), axis=-1)
        # The envelope right of each recall step, down to the precision 0 after the last
        # detection; where recall does not change the strip has width 0.
        env = np.concatenate((prec, np.zeros(lead + (1,))), axis=-1)
        env = np.flip(np.maximum.accumulate(np.flip(env, -1), axis=-1), -1)
        return np.sum(np.diff(mrec, axis=-1) * env, axis=-1)
    if interpolation == "coco101":
        if n == 0:
            return np.zeros(lead)
        env = np.flip(np.maximum.accumulate(np.flip(prec, -1), axis=-1), -1)
        rec_thrs = np.linspace(0.0, 1.0, 101)
        idx = np.stack([np.searchsorted(r, rec_thrs, side="left")
                        for r in rec.reshape(-1, n)]).reshape(lead + (len(rec_thrs),))
        q = np.where(idx < n, np.take_along_axis(env, np.minimum(idx, n - 1), -1), 0.0)
        return np.mean(q, axis=-1)
    raise ValueError(f"unknown interpolation {interpolation!r} (continuous or coco101)")


@dataclass
class _Matched:
    """Range-independent matching of the whole split (done once, reused per motion range)."""

    det_order: np.ndarray  # rows of Detections, grouped by frame in split order, score-sorted
    matched_gt: np.ndarray  # (N,) global GT index matched by each ordered detection, or -1
    det_frame: np.ndarray  # (N,) split position of each ordered detection's frame
    unmatched_ious: dict[int, np.ndarray]  # frame pos -> IoU rows (unmatched dets x all GTs)
    unmatched_rows: dict[int, np.ndarray]  # frame pos -> positions (into det_order) of those
    gt_labels: np.ndarray  # (G,) all GT labels, frames in split order
    gt_frame_start: np.ndarray  # (F+1,) offsets of each frame's GTs in the global GT arrays


def _flatten_gt(videos: Sequence[Video]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    boxes, labels = [], []
    for v in videos:
        for fr in v.frames:
            boxes.append(np.asarray(fr.boxes, dtype=np.float64).reshape(-1, 4))
            labels.append(np.asarray(fr.labels, dtype=np.int64).reshape(-1))
    return boxes, labels


def _match(videos: Sequence[Video], dets: Detections, rule: MatchRule) -> _Matched:
    locs = frame_locations(videos)
    gt_boxes, gt_labels = _flatten_gt(videos)
    frame_pos = {fid: i for i, fid in enumerate(locs)}  # dict keeps split order
    sizes = np.array([len(x) for x in gt_labels], dtype=np.int64)
    gt_start = np.concatenate(([0], np.cumsum(sizes)))

    groups = dets.by_frame()
    unknown = [fid for fid in groups if fid not in frame_pos]
    if unknown:
        raise ValueError(
            f"{len(unknown)} detection frame ids are not frames of the split, e.g. {unknown[0]}"
        )
    order_parts, matched_parts, frame_parts = [], [], []
    unmatched_ious: dict[int, np.ndarray] = {}
    unmatched_rows: dict[int, np.ndarray] = {}
    offset = 0
    for fid in sorted(groups, key=frame_pos.__getitem__):
        pos = frame_pos[fid]
        rows = groups[fid]
        # Stable: equal scores keep the canonical row order (the devkit leaves it undefined).
        rows = rows[np.argsort(-dets.scores[rows], kind="stable")]
        g_boxes, g_labels = gt_boxes[pos], gt_labels[pos]
        ious = box_iou(dets.boxes[rows], g_boxes, rule.plus_one)
        thr = gt_thresholds(g_boxes, rule)
        ok = (ious >= thr[None, :]) & (dets.labels[rows][:, None] == g_labels[None, :])
        matched = np.full(len(rows), -1, dtype=np.int64)
        taken = np.zeros(len(g_labels), dtype=bool)
        for j in np.flatnonzero(ok.any(axis=1)):
            cand = ok[j] & ~taken
            if cand.any():
                k = int(np.argmax(np.where(cand, ious[j], -1.0)))  # first GT among equal IoUs
                taken[k] = True
                matched[j] = gt_start[pos] + k
        un = np.flatnonzero(matched < 0)
        if len(un):
            unmatched_ious[pos] = ious[un]
            unmatched_rows[pos] = offset + un
        order_parts.append(rows)
        matched_parts.append(matched)
        frame_parts.append(np.full(len(rows), pos, dtype=np.int64))
        offset += len(rows)

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    return _Matched(
        det_order=cat(order_parts),
        matched_gt=cat(matched_parts),
        det_frame=cat(frame_parts),
        unmatched_ious=unmatched_ious,
        unmatched_rows=unmatched_rows,
        gt_labels=cat(gt_labels),
        gt_frame_start=gt_start,
    )


def _ap_order(m: _Matched, dets: Detections) -> np.ndarray:
    """Positions into ``m.det_order`` in the order AP reads them: descending score, ties in
    split/frame order (stable)."""
    return np.argsort(-dets.scores[m.det_order], kind="stable")


def _num_gt(gt_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """GT count per label (index 0 unused: labels are 1..num_classes)."""
    num_gt = np.bincount(gt_labels, minlength=num_classes + 1)
    if len(num_gt) > num_classes + 1:
        raise ValueError(f"ground truth has label {len(num_gt) - 1} > {num_classes} classes")
    return num_gt


def _class_aps(
    m: _Matched,
    dets: Detections,
    tp: np.ndarray,
    fp: np.ndarray,
    num_gt: np.ndarray,
    num_classes: int,
    interpolation: Interpolation,
) -> list[float | None]:
    """Per-class AP (None without GT) from tp/fp weights aligned with ``m.det_order``."""
    order = _ap_order(m, dets)
    labels, tp, fp = dets.labels[m.det_order][order], tp[order], fp[order]
    aps: list[float | None] = []
    for c in range(1, num_classes + 1):
        if num_gt[c] <= 0:
            aps.append(None)
            continue
        sel = labels == c
        aps.append(average_precision(tp[sel], fp[sel], float(num_gt[c]), interpolation))
    return aps


def _mean(aps: Sequence[float | None]) -> float | None:
    vals = [a for a in aps if a is not None]
    return float(np.mean(vals)) if vals else None


def _motion_ious(videos: Sequence[Video]) -> np.ndarray | None:
    """All GTs' motion IoU in split order, or None if any annotated frame lacks it."""
    parts = []
    for v in videos:
        for fr in v.frames:
            k = len(fr.labels)
            if k == 0:
                continue
            if fr.motion_iou is None or len(fr.motion_iou) != k:
                return None
            parts.append(np.asarray(fr.motion_iou))
    # Keep the stored dtype (float32 from the reader) so that range ends compare exactly.
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _range_weights(
    m: _Matched,
    in_range: np.ndarray,
    tie_weight: Literal["fgfa", "in_range"],
) -> tuple[np.ndarray, np.ndarray]:
    """tp/fp weights (aligned with ``m.det_order``) for one motion range."""
    n = len(m.det_order)
    tp = np.zeros(n)
    fp = np.zeros(n)
    hit = m.matched_gt >= 0
    tp[hit] = in_range[m.matched_gt[hit]]  # matched to an ignored GT: neither TP nor FP
    empty_weight = float(in_range.mean()) if len(in_range) else 1.0
    for pos, ious in m.unmatched_ious.items():
        rows = m.unmatched_rows[pos]
        a, b = m.gt_frame_start[pos], m.gt_frame_start[pos + 1]
        keep = in_range[a:b]
        if b == a:
            fp[rows] = empty_weight
            continue
        # Best overlap with in-range and with ignored GTs (-1 when the group is empty).
        ov_in = np.max(np.where(keep, ious, -1.0), axis=1)
        ov_out = np.max(np.where(~keep, ious, -1.0), axis=1)
        share_out = float((~keep).mean())
        tie = share_out if tie_weight == "fgfa" else 1.0 - share_out
        fp[rows] = np.where(ov_in > ov_out, 1.0, np.where(ov_out > ov_in, 0.0, tie))
    return tp, fp


def evaluate_vid(
    classes: ClassList,
    videos: Sequence[Video],
    dets: Detections,
    *,
    rule: MatchRule = DEVKIT,
    interpolation: Interpolation = "continuous",
    motion_ranges: Mapping[str, tuple[float, float]] | None = FGFA_MOTION_RANGES,
    tie_weight: Literal["fgfa", "in_range"] = "fgfa",
    coco: bool = False,
) -> dict[str, Any]:
    """Evaluate detections of a split against its videos' ground truth.

    Returns a dict with stable keys: ``mAP``, ``per_class`` {name: AP or None},
    ``num_gt`` {name: count}, ``num_detections``, ``num_frames``, ``classes_with_gt``,
    ``motion`` {slow, medium, fast: mAP or None}, ``motion_all`` (the FGFA "all" range),
    ``motion_per_class`` {range: {name: AP or None}}, ``motion_num_gt`` {range: count},
    ``motion_available`` (False when the videos carry no motion IoU), ``coco`` (see
    ``lsts_lib.eval.coco.coco_metrics``; None unless ``coco=True``), ``protocol``.
    """
    num_classes = classes.num_classes
    dets.validate(num_classes, None, source="detections", frame_sizes=frame_sizes(videos))
    dets = dets.canonical()
    m = _match(videos, dets, rule)
    num_gt = _num_gt(m.gt_labels, num_classes)

    tp = (m.matched_gt >= 0).astype(np.float64)
    fp = 1.0 - tp
    aps = _class_aps(m, dets, tp, fp, num_gt, num_classes, interpolation)

    names = list(classes.names)
    result: dict[str, Any] = {
        "mAP": _mean(aps),
        "per_class": dict(zip(names, aps, strict=True)),
        "num_gt": {n: int(num_gt[c + 1]) for c, n in enumerate(names)},
        "classes_with_gt": int(sum(a is not None for a in aps)),
        "num_detections": len(dets),
        "num_frames": len(m.gt_frame_start) - 1,
        "protocol": {
            "plus_one": rule.plus_one,
            "small_object_rule": rule.small_object_rule,
            "iou_threshold": rule.iou_threshold,
            "interpolation": interpolation,
            "tie_weight": tie_weight,
        },
    }

    motion = {k: None for k in ("slow", "medium", "fast")}
    motion_per_class: dict[str, dict[str, float | None]] = {}
    motion_num_gt: dict[str, int] = {}
    motion_all = None
    mious = _motion_ious(videos) if motion_ranges else None
    if mious is not None:
        for name, (lo, hi) in motion_ranges.items():
            lo_, hi_ = np.asarray(lo, mious.dtype), np.asarray(hi, mious.dtype)
            in_range = (mious >= lo_) & (mious <= hi_)
            r_tp, r_fp = _range_weights(m, in_range, tie_weight)
            r_num_gt = np.bincount(m.gt_labels[in_range], minlength=num_classes + 1)
            r_aps = _class_aps(m, dets, r_tp, r_fp, r_num_gt, num_classes, interpolation)
            motion_per_class[name] = dict(zip(names, r_aps, strict=True))
            motion_num_gt[name] = int(in_range.sum())
            if name == "all":
                motion_all = _mean(r_aps)
            else:
                motion[name] = _mean(r_aps)
    result.update(
        motion=motion,
        motion_all=motion_all,
        motion_per_class=motion_per_class,
        motion_num_gt=motion_num_gt,
        motion_available=mious is not None,
    )
    result["coco"] = None
    if coco:
        from lsts_lib.eval.coco import coco_metrics

        result["coco"] = coco_metrics(classes, videos, dets)
    return result


def evaluate_dataset(dataset: Any, dets: Detections, **kwargs: Any) -> dict[str, Any]:
    """`evaluate_vid` on a ``lsts_lib.data.vid.VIDDataset`` (uses its classes and videos)."""
    if hasattr(dataset, "load_all"):  # lazy datasets parse their snippets on demand
        dataset.load_all()
    return evaluate_vid(dataset.classes, list(dataset.videos), dets, **kwargs)


def video_weighted_map(
    classes: ClassList,
    videos: Sequence[Video],
    dets: Detections,
    *,
    rule: MatchRule = DEVKIT,
    interpolation: Interpolation = "continuous",
    chunk_elements: int = 1 << 21,
) -> Callable[[np.ndarray], np.ndarray]:
    """mAP as a function of how often each video counts, for many reweightings at once.

    ``score(counts)``: counts of shape (..., len(videos)), video i counted counts[..., i]
    times, give the mAPs, shape (...), NaN where no class has ground truth; all ones is
    ``evaluate_vid``'s mAP. Matching is per frame, so it is done once; a reweighting (a
    bootstrap resample of the test videos, ``lsts_lib.eval.stats``) scales each video's
    detections and ground truth, the same as evaluating a split that holds video i
    counts[i] times, except that a video's copies act as one (tied scores of two copies
    do not interleave).

    Per class, recall changes only at a true positive (TP) and the envelope's maximum right
    of a TP is reached at a TP (a false positive only lowers precision), so AP needs the
    cumulative TP and FP weights at the TPs alone; for every reweighting these are the
    integer products counts @ (each video's cumulative TP and FP counts at each TP), exact
    in float64. Memory: about ``chunk_elements`` floats per temporary.
    """
    num_classes, n_videos = classes.num_classes, len(videos)
    dets.validate(num_classes, None, source="detections", frame_sizes=frame_sizes(videos))
    dets = dets.canonical()  # the same tie order as evaluate_vid
    m = _match(videos, dets, rule)
    frame_video = np.repeat(np.arange(n_videos), [len(v.frames) for v in videos])
    gt_video = np.repeat(frame_video, np.diff(m.gt_frame_start))
    gt_per_video = np.stack([_num_gt(m.gt_labels[gt_video == i], num_classes)
                             for i in range(n_videos)]).astype(np.float64)
    order = _ap_order(m, dets)
    labels = dets.labels[m.det_order][order]
    hit = (m.matched_gt >= 0)[order]
    det_video = frame_video[m.det_frame][order]
    # class -> (videos, TPs) cumulative TP and FP counts of each video at each of its TPs
    at_tps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in 1 + np.flatnonzero(gt_per_video[:, 1:].sum(axis=0) > 0):  # others: no AP
        sel = labels == c
        h, v = hit[sel], det_video[sel]
        last = np.flatnonzero(h)[-1] + 1 if h.any() else 0  # later FPs change no AP
        one = np.zeros((n_videos, last))
        one[v[:last], np.arange(last)] = 1.0
        tps = h[:last]
        at_tps[int(c)] = (np.cumsum(one * tps, axis=1)[:, tps],
                          np.cumsum(one * ~tps, axis=1)[:, tps])
    widest = max([tp.shape[1] for tp, _ in at_tps.values()] + [1])
    rows = max(1, chunk_elements // widest)

    def score_rows(counts: np.ndarray) -> np.ndarray:
        num_gt = counts @ gt_per_video
        total, n = np.zeros(len(counts)), np.zeros(len(counts))
        for c, (tp_at, fp_at) in at_tps.items():
            has = num_gt[:, c] > 0
            ap = _ap_from_cumulative(counts @ tp_at, counts @ fp_at,
                                     np.where(has, num_gt[:, c], 1.0), interpolation)
            total += np.where(has, ap, 0.0)
            n += has
        with np.errstate(invalid="ignore"):
            return total / n

    def score(counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim == 0 or counts.shape[-1] != n_videos:
            raise ValueError(f"counts must have one entry per video ({n_videos}) on their "
                             f"last axis, got shape {counts.shape}")
        flat = counts.reshape(-1, n_videos)
        out = np.concatenate([score_rows(flat[a:a + rows]) for a in range(0, len(flat), rows)]
                             + [np.zeros(0)])
        return out.reshape(counts.shape[:-1])

    return score


def _fmt(x: float | None, scale: float = 100.0) -> str:
    return "   n/a" if x is None else f"{x * scale:6.2f}"


def format_results(result: Mapping[str, Any]) -> str:
    """A readable table: mAP, motion split, per-class AP, COCO line (percentages)."""
    lines = [
        f"VID devkit mAP: {_fmt(result['mAP'])}  "
        f"({result['classes_with_gt']} classes with GT, {result['num_detections']} detections, "
        f"{result['num_frames']} frames)"
    ]
    mo = result["motion"]
    if result.get("motion_available"):
        lines.append(
            f"motion split mAP: slow {_fmt(mo['slow'])}  medium {_fmt(mo['medium'])}  "
            f"fast {_fmt(mo['fast'])}"
        )
    else:
        lines.append("motion split: not available (the ground truth carries no motion IoU)")
    width = max([len(n) for n in result["per_class"]] + [5])
    lines.append(f"{'class':<{width}}  {'AP':>6}  {'#GT':>7}")
    for name, ap in result["per_class"].items():
        note = "  (no ground truth)" if ap is None else ""
        lines.append(f"{name:<{width}}  {_fmt(ap)}  {result['num_gt'][name]:7d}{note}")
    c = result.get("coco")
    if c:
        lines.append(
            "COCO: AP {} AP50 {} AP75 {} APs {} APm {} APl {} AR1 {} AR10 {} AR100 {}".format(
                *(_fmt(c[k]).strip() for k in COCO_LINE_KEYS)
            )
        )
    return "\n".join(lines)


COCO_LINE_KEYS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100")


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="dataset root (ILSVRC2015 layout)")
    parser.add_argument(
        "--split", default="val", help="split to evaluate (val, or SynthVID's test: the splits "
        "with devkit frame ids)"
    )
    parser.add_argument(
        "--detections",
        required=True,
        type=Path,
        help="detections: devkit lines '<frame> <class> <score> x1 y1 x2 y2', or COCO .json",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results JSON here")
    parser.add_argument("--no-coco", action="store_true", help="skip the pycocotools metrics")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (other spellings, symbolic and hard links included)."""
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and a.samefile(b)


def main(args: argparse.Namespace) -> int:
    from lsts_lib.data.vid import EVAL_SPLITS, VIDDataset
    if args.split not in EVAL_SPLITS:
        # Devkit frame ids come from the val-format split files; train snippets have none.
        raise ValueError(f"--split {args.split}: the devkit evaluates "
                         f"{' or '.join(EVAL_SPLITS)} only")
    if args.json is not None and _same_file(args.json, args.detections):
        raise ValueError(f"--json {args.json}: is the detections file; the results would "
                         "overwrite the input")
    if args.json is not None:
        atomic.check_json_output(args.json, args.data)
    dataset = VIDDataset(args.data, split=args.split)
    # Iterating the videos parses a lazy dataset's snippets: every frame's size is needed.
    dets = read_detections(
        args.detections, dataset.classes.num_classes, frame_sizes=frame_sizes(list(dataset.videos))
    )
    result = evaluate_dataset(dataset, dets, coco=not args.no_coco)
    result["detections_file"] = str(args.detections)
    result["split"] = args.split
    print(format_results(result))
    if args.json is not None:
        atomic.write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
