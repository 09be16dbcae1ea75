"""Plain containers for ImageNet VID style annotations, shared by reader, evaluator and trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ClassList:
    """The dataset's object classes in label order; label 0 is background.

    `ids` are the strings written in the XML `<name>` field (WordNet synsets for VID).
    """

    names: tuple[str, ...]
    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.ids):
            raise ValueError("ClassList: names and ids differ in length")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("ClassList: duplicate class ids")

    @property
    def num_classes(self) -> int:
        """Number of object classes, background excluded."""
        return len(self.names)

    def label_of(self, class_id: str) -> int:
        """1-based label of a class id string; KeyError if unknown."""
        return self.ids.index(class_id) + 1


@dataclass
class FrameAnnotation:
    """One frame: its image file and ground-truth objects (boxes in pixels, x1 y1 x2 y2)."""

    image: Path
    width: int
    height: int
    boxes: np.ndarray  # (K, 4) float32, xmin ymin xmax ymax as written in the XML
    labels: np.ndarray  # (K,) int64, 1..num_classes
    track_ids: np.ndarray  # (K,) int64
    occluded: np.ndarray  # (K,) bool
    generated: np.ndarray  # (K,) bool
    motion_iou: np.ndarray | None = None  # (K,) float32, filled by the reader (FGFA recipe)


@dataclass
class Video:
    """An ordered snippet of frames. `name` is relative to Data/VID, e.g. 'val/ILSVRC2015_val_00000000'."""

    name: str
    frames: list[FrameAnnotation] = field(default_factory=list)
    # Global 1-based id of frame 0 (frame ids: start_index + offset): for val the second
    # column of VID_val_videos.txt (the devkit's ids); for train the reader numbers the
    # snippets' frames consecutively in split-file order.
    start_index: int = 1

    def __len__(self) -> int:
        return len(self.frames)
