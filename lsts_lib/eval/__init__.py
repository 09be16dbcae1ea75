"""Evaluation: ILSVRC VID devkit mAP with the FGFA motion split, COCO metrics, file formats."""

from lsts_lib.eval.coco import COCO_KEYS, coco_eval, coco_gt, coco_metrics
from lsts_lib.eval.detections_io import (
    Detections,
    frame_ids,
    frame_locations,
    frame_sizes,
    read_coco_results,
    read_detections,
    read_vid_detections,
    to_coco_results,
    write_coco_results,
    write_vid_detections,
)
from lsts_lib.eval.vid_eval import (
    FGFA_MOTION_RANGES,
    MatchRule,
    average_precision,
    box_iou,
    evaluate_dataset,
    evaluate_vid,
    format_results,
    gt_thresholds,
    video_weighted_map,
)

__all__ = [
    "COCO_KEYS",
    "FGFA_MOTION_RANGES",
    "Detections",
    "MatchRule",
    "average_precision",
    "box_iou",
    "coco_eval",
    "coco_gt",
    "coco_metrics",
    "evaluate_dataset",
    "evaluate_vid",
    "format_results",
    "frame_ids",
    "frame_locations",
    "frame_sizes",
    "gt_thresholds",
    "read_coco_results",
    "read_detections",
    "read_vid_detections",
    "to_coco_results",
    "video_weighted_map",
    "write_coco_results",
    "write_vid_detections",
]
