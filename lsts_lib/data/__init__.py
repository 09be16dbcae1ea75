"""Datasets in the ILSVRC2015 VID layout (real ImageNet VID and SynthVID) and their statistics."""

from lsts_lib.data.motion import MOTION_RANGES, compute_motion_iou, motion_category
from lsts_lib.data.types import ClassList, FrameAnnotation, Video
from lsts_lib.data.vid import (
    VID_CLASSES,
    DatasetError,
    DETDataset,
    VIDDataset,
    load_class_list,
    load_frame,
    load_image,
    parse_annotation,
    read_split_file,
)

__all__ = [
    "MOTION_RANGES",
    "VID_CLASSES",
    "ClassList",
    "DETDataset",
    "DatasetError",
    "FrameAnnotation",
    "VIDDataset",
    "Video",
    "compute_motion_iou",
    "load_class_list",
    "load_frame",
    "load_image",
    "motion_category",
    "parse_annotation",
    "read_split_file",
]
