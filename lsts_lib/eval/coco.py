"""COCO box metrics of VID-style ground truth and detections, through pycocotools.

The ground truth is built in memory: one COCO image per frame (``id`` = the global devkit
frame id), one annotation per GT box with ``bbox = [x1, y1, x2 - x1, y2 - y1]`` and
``area = w * h`` (COCO has no +1 pixel convention, so a box stored as 0..9 in the XML is 9
pixels wide here and 10 under the devkit rule), ``iscrowd = 0``; categories are the
dataset's classes with ids 1..C. Detections become COCO results the same way.

pycocotools' 101-point AP is not the devkit's continuous AP: the two numbers differ.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lsts_lib.data.types import ClassList, Video
from lsts_lib.eval.detections_io import Detections, frame_ids, to_coco_results

__all__ = ["COCO_KEYS", "coco_eval", "coco_gt", "coco_metrics", "coco_results_object"]

# Names of COCOeval.stats, in its order.
COCO_KEYS = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def _quiet(verbose: bool) -> contextlib.AbstractContextManager:
    """Swallow pycocotools' prints unless verbose."""
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def _coco_from_dict(dataset: dict, verbose: bool) -> COCO:
    obj = COCO()
    obj.dataset = dataset
    with _quiet(verbose):
        obj.createIndex()
    return obj


def coco_gt(classes: ClassList, videos: Sequence[Video], verbose: bool = False) -> COCO:
    """The videos' ground truth as an in-memory pycocotools COCO object."""
    images, annotations = [], []
    fids = iter(frame_ids(videos))
    for v in videos:
        for fr in v.frames:
            fid = next(fids)
            images.append(
                {
                    "id": fid,
                    "width": int(fr.width),
                    "height": int(fr.height),
                    "file_name": str(fr.image),
                }
            )
            for box, label in zip(np.asarray(fr.boxes).reshape(-1, 4), fr.labels, strict=True):
                x1, y1, x2, y2 = (float(c) for c in box)
                w, h = x2 - x1, y2 - y1
                # ids start at 1: pycocotools treats a match id of 0 as "unmatched".
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": fid,
                        "category_id": int(label),
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
    categories = [
        {"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(classes.names)
    ]
    return _coco_from_dict(
        {"images": images, "annotations": annotations, "categories": categories}, verbose
    )


def coco_results_object(gt: COCO, dets: Detections, verbose: bool = False) -> COCO:
    """Detections as a COCO object over gt's images (what COCO.loadRes builds, also when empty)."""
    anns = to_coco_results(dets)
    for i, a in enumerate(anns, start=1):
        a["id"] = i
        a["area"] = a["bbox"][2] * a["bbox"][3]
        a["iscrowd"] = 0
    dataset = {
        "images": gt.dataset["images"],
        "categories": gt.dataset["categories"],
        "annotations": anns,
    }
    return _coco_from_dict(dataset, verbose)


def coco_eval(
    classes: ClassList, videos: Sequence[Video], dets: Detections, verbose: bool = False
) -> COCOeval:
    """Run COCOeval (bbox) and return it evaluated and accumulated (summarize() not called)."""
    gt = coco_gt(classes, videos, verbose)
    dt = coco_results_object(gt, dets.canonical(), verbose)
    ev = COCOeval(gt, dt, iouType="bbox")
    with _quiet(verbose):
        ev.evaluate()
        ev.accumulate()
    return ev


def coco_metrics(
    classes: ClassList, videos: Sequence[Video], dets: Detections, verbose: bool = False
) -> dict[str, Any]:
    """AP, AP50, AP75, AP_small/medium/large, AR1/10/100, AR_small/medium/large (0..1).

    A value pycocotools cannot define (no GT in that size range: its -1) is None.
    ``per_class_AP50`` gives each class's 101-point AP at IoU 0.5 (None without GT).
    """
    ev = coco_eval(classes, videos, dets, verbose)
    with _quiet(verbose):
        ev.summarize()
    out: dict[str, Any] = {
        k: (None if v < 0 else float(v)) for k, v in zip(COCO_KEYS, ev.stats, strict=True)
    }
    # precision[T, R, K, A, M]: IoU 0.5, all recall points, each class, area "all", 100 dets.
    prec = ev.eval["precision"][0, :, :, 0, -1]
    per_class = {}
    for k, name in enumerate(classes.names):
        p = prec[:, k]
        per_class[name] = None if (p < 0).all() else float(np.mean(p[p > -1]))
    out["per_class_AP50"] = per_class
    return out
