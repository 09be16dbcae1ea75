"""Detection files: the ILSVRC VID devkit line format and COCO results JSON.

Devkit line format (what FGFA/DFF write and the devkit reads), one detection per line::

    <frame index> <class index> <score> <x1> <y1> <x2> <y2>

- frame index: the global 1-based frame id of the split, i.e. ``video.start_index + offset``
  where ``start_index`` is the second column of ``VID_val_videos.txt`` (train frames, which
  have no devkit ids, are numbered consecutively by the reader);
- class index: 1..C in the dataset's label order (0 is background and is not allowed);
- box: pixel corners in the coordinates of the annotation XML (xmin ymin xmax ymax); given
  the frames' sizes, a box may pass the image [0, W] x [0, H] by at most
  ``BOUNDS_TOLERANCE_PX`` (further out it was made for another image size).

COCO results JSON: a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
with ``image_id`` = the same global frame id, ``category_id`` = the same 1..C label and
``w = x2 - x1``, ``h = y2 - y1`` (no +1: the COCO convention, see ``lsts_lib.eval.coco``).

Readers are strict: anything that would silently change the metric raises ``ValueError``
naming the file and the line (or JSON entry).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lsts_lib import atomic
from lsts_lib.data.text import numbered_lines, parse_float, parse_int, quote
from lsts_lib.data.types import Video

__all__ = [
    "Detections",
    "frame_ids",
    "frame_locations",
    "frame_sizes",
    "read_coco_results",
    "read_detections",
    "read_vid_detections",
    "to_coco_results",
    "write_coco_results",
    "write_vid_detections",
]


# Detectors clip boxes to [0, W] x [0, H]; rounding when boxes are scaled back to the
# annotation's size may pass that by a hair, never by a pixel.
BOUNDS_TOLERANCE_PX = 1.0


def frame_ids(videos: Sequence[Video]) -> list[int]:
    """Global 1-based devkit frame ids of every frame, in split order."""
    return [v.start_index + i for v in videos for i in range(len(v.frames))]


def frame_locations(videos: Sequence[Video]) -> dict[int, tuple[int, int]]:
    """Map global frame id -> (video position, frame position); rejects overlapping ids."""
    out: dict[int, tuple[int, int]] = {}
    for vi, v in enumerate(videos):
        for fi in range(len(v.frames)):
            fid = v.start_index + fi
            if fid in out:
                raise ValueError(
                    f"frame id {fid} of video {v.name!r} overlaps another video "
                    "(start indices of the split are inconsistent)"
                )
            out[fid] = (vi, fi)
    return out


def frame_sizes(videos: Sequence[Video]) -> dict[int, tuple[int, int]]:
    """Map global frame id -> (width, height) of its annotation."""
    return {
        fid: (videos[vi].frames[fi].width, videos[vi].frames[fi].height)
        for fid, (vi, fi) in frame_locations(videos).items()
    }


@dataclass
class Detections:
    """Column-wise detections of a whole split (one row per box).

    frame_ids (N,) int64 global frame ids, labels (N,) int64 in 1..C, scores (N,) float64,
    boxes (N, 4) float64 as x1 y1 x2 y2 in pixels.
    """

    frame_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    def __post_init__(self) -> None:
        self.frame_ids = np.asarray(self.frame_ids, dtype=np.int64).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        n = len(self.frame_ids)
        if not (len(self.labels) == len(self.scores) == len(self.boxes) == n):
            raise ValueError(
                "Detections: frame_ids, labels, scores and boxes differ in length "
                f"({n}, {len(self.labels)}, {len(self.scores)}, {len(self.boxes)})"
            )

    def __len__(self) -> int:
        return len(self.frame_ids)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 4)))

    @classmethod
    def concatenate(cls, parts: Iterable[Detections]) -> Detections:
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.frame_ids for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.boxes for p in parts]),
        )

    @classmethod
    def from_frames(
        cls, per_frame: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> Detections:
        """Build from {frame_id: (boxes (K,4), scores (K,), labels (K,))}, e.g. a detector's output."""
        parts = []
        for fid in sorted(per_frame):
            boxes, scores, labels = (np.asarray(a) for a in per_frame[fid])
            k = len(scores)
            parts.append(cls(np.full(k, fid), labels, scores, boxes))
        return cls.concatenate(parts)

    def select(self, mask: np.ndarray) -> Detections:
        return Detections(
            self.frame_ids[mask], self.labels[mask], self.scores[mask], self.boxes[mask]
        )

    def by_frame(self) -> dict[int, np.ndarray]:
        """Map frame id -> row indices of that frame, in row order."""
        order = np.argsort(self.frame_ids, kind="stable")
        cuts = np.flatnonzero(np.diff(self.frame_ids[order])) + 1
        # g holds row indices, so its frame id is read from the unsorted column.
        return {int(self.frame_ids[g[0]]): g for g in np.split(order, cuts) if len(g)}

    def canonical(self) -> Detections:
        """The rows sorted by frame id, score (descending), class, then box.

        The devkit rule and pycocotools break score ties by row order; evaluating the
        canonical order makes every metric a function of the set of rows, whatever the
        order of the file's lines.
        """
        x1, y1, x2, y2 = self.boxes.T
        return self.select(np.lexsort((y2, x2, y1, x1, self.labels, -self.scores, self.frame_ids)))

    def validate(
        self,
        num_classes: int,
        valid_frame_ids: Iterable[int] | None = None,
        source: str = "",
        frame_sizes: Mapping[int, tuple[int, int]] | None = None,
    ) -> None:
        """Raise ValueError on the first row that the evaluator would misread.

        With `frame_sizes` ({frame id: (width, height)}) a box outside its frame's image
        (beyond BOUNDS_TOLERANCE_PX) is refused too.
        """
        where = f"{source}: " if source else ""
        # Vectorised screen, then the row-wise check of the first suspect for its message.
        suspect = (
            ~np.isfinite(self.scores)
            | ~np.isfinite(self.boxes).all(axis=1)
            | (self.boxes[:, 2] < self.boxes[:, 0])
            | (self.boxes[:, 3] < self.boxes[:, 1])
            | (self.labels < 1)
            | (self.labels > num_classes)
        )
        valid = None
        if valid_frame_ids is not None:
            valid = set(int(f) for f in valid_frame_ids)
            suspect |= ~np.isin(self.frame_ids, np.fromiter(valid, np.int64, len(valid)))
        if frame_sizes:
            known = np.array(sorted(frame_sizes), dtype=np.int64)
            wh = np.array([frame_sizes[int(f)] for f in known], dtype=np.float64)
            pos = np.minimum(np.searchsorted(known, self.frame_ids), len(known) - 1)
            w, h, t = wh[pos, 0], wh[pos, 1], BOUNDS_TOLERANCE_PX
            b = self.boxes
            outside = (b[:, 0] < -t) | (b[:, 1] < -t) | (b[:, 2] > w + t) | (b[:, 3] > h + t)
            suspect |= (known[pos] == self.frame_ids) & outside
        for i in np.flatnonzero(suspect)[:1]:
            problem = _row_problem(
                int(self.frame_ids[i]),
                int(self.labels[i]),
                float(self.scores[i]),
                self.boxes[i],
                num_classes,
                valid,
                frame_sizes,
            )
            raise ValueError(f"{where}detection {i}: {problem}")


def _row_problem(
    fid: int,
    label: int,
    score: float,
    box: Sequence[float],
    num_classes: int,
    valid: set[int] | None,
    sizes: Mapping[int, tuple[int, int]] | None = None,
) -> str | None:
    """Why one detection is invalid, or None."""
    if valid is not None and fid not in valid:
        return f"frame index {fid} is not a frame of the split"
    if not 1 <= label <= num_classes:
        return f"class index {label} is outside 1..{num_classes}"
    if not math.isfinite(score):
        return f"score {score} is not a finite number"
    if not all(math.isfinite(c) for c in box):
        return f"box {list(box)} has a non-finite coordinate"
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        return f"box has x2 < x1 or y2 < y1 ({x1} {y1} {x2} {y2})"
    if sizes is not None and fid in sizes:
        w, h = sizes[fid]
        t = BOUNDS_TOLERANCE_PX
        if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
            return (
                f"box ({x1} {y1} {x2} {y2}) lies outside the {w}x{h} image of frame {fid} "
                f"(tolerance {t:g} px): detections made on images of another size?"
            )
    return None


def _valid_ids(
    valid_frame_ids: Iterable[int] | None, frame_sizes: Mapping[int, tuple[int, int]] | None
) -> set[int] | None:
    if valid_frame_ids is not None:
        return set(int(f) for f in valid_frame_ids)
    return None if frame_sizes is None else set(frame_sizes)


def _check_writable(dets: Detections, path: str | Path) -> None:
    bad = (
        ~np.isfinite(dets.scores)
        | ~np.isfinite(dets.boxes).all(axis=1)
        | (dets.boxes[:, 2] < dets.boxes[:, 0])
        | (dets.boxes[:, 3] < dets.boxes[:, 1])
        | (dets.labels < 1)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: refusing to write {int(bad.sum())} invalid detections, first: "
            f"frame {dets.frame_ids[i]} class {dets.labels[i]} score {dets.scores[i]} "
            f"box {dets.boxes[i].tolist()}"
        )


def write_vid_detections(
    path: str | Path, dets: Detections, score_decimals: int = 6, box_decimals: int = 2
) -> Path:
    """Write the devkit line format, rows sorted by frame id (stable).

    Refuses detections the reader would reject (non-finite numbers, x2 < x1 or y2 < y1,
    class index < 1), so that a broken detector fails here and not at evaluation.
    """
    _check_writable(dets, path)
    path = Path(path)
    order = np.argsort(dets.frame_ids, kind="stable")
    sf, bf = f"{{:.{score_decimals}f}}", f"{{:.{box_decimals}f}}"
    lines = []
    for i in order:
        box = " ".join(bf.format(c) for c in dets.boxes[i])
        lines.append(
            f"{dets.frame_ids[i]:d} {dets.labels[i]:d} {sf.format(dets.scores[i])} {box}\n"
        )
    atomic.write_text(path, "".join(lines) or "\n")  # no detections: one blank line, not 0 bytes
    return path


def _refuse_empty(path: Path) -> None:
    """A 0-byte detections file, in either format, is refused: it is far more often a
    write that never happened than a detector that found nothing (`[]` in a .json file
    states that, and so does the .txt writer's one blank line)."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: is empty (0 bytes), as a write that never finished leaves "
                         "it; a result without detections is one blank line (.txt) or [] (.json)")


def read_vid_detections(
    path: str | Path,
    num_classes: int,
    valid_frame_ids: Iterable[int] | None = None,
    frame_sizes: Mapping[int, tuple[int, int]] | None = None,
) -> Detections:
    """Read and check the devkit line format; errors say `file:line: what is wrong`.

    Blank lines are skipped (they carry no detection); every other line must hold exactly
    7 whitespace-separated fields: two integers then five finite numbers. `frame_sizes`
    ({frame id: (width, height)}, e.g. `frame_sizes(videos)`) also bounds the boxes and,
    without `valid_frame_ids`, names the valid frames.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    _refuse_empty(path)
    valid = _valid_ids(valid_frame_ids, frame_sizes)
    fids: list[int] = []
    labels: list[int] = []
    scores: list[float] = []
    boxes: list[list[float]] = []
    for lineno, line in numbered_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 7:
            raise ValueError(
                f"{path}:{lineno}: expected 7 fields '<frame> <class> <score> <x1> <y1> "
                f"<x2> <y2>', got {len(fields)}: {quote(line)}"
            )
        try:
            if not all(f.isascii() and f.isdigit() for f in fields[:2]):  # no sign: '+3'
                raise ValueError
            fid, label = parse_int(fields[0]), parse_int(fields[1])
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: frame and class index must be integers of ASCII digits: {quote(line)}"
            ) from None
        try:
            score, *box = (parse_float(x) for x in fields[2:])
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: score and box must be numbers: {quote(line)}"
            ) from None
        problem = _row_problem(fid, label, score, box, num_classes, valid, frame_sizes)
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}")
        fids.append(fid)
        labels.append(label)
        scores.append(score)
        boxes.append(box)
    if not fids:
        return Detections.empty()
    return Detections(np.array(fids), np.array(labels), np.array(scores), np.array(boxes))


def to_coco_results(dets: Detections) -> list[dict]:
    """Detections as COCO result dicts (bbox x, y, w, h with w = x2 - x1)."""
    out = []
    for i in range(len(dets)):
        x1, y1, x2, y2 = (float(c) for c in dets.boxes[i])
        out.append(
            {
                "image_id": int(dets.frame_ids[i]),
                "category_id": int(dets.labels[i]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(dets.scores[i]),
            }
        )
    return out


def write_coco_results(path: str | Path, dets: Detections) -> Path:
    """Write COCO results JSON (same checks as `write_vid_detections`)."""
    _check_writable(dets, path)
    path = Path(path)
    atomic.write_text(path, json.dumps(to_coco_results(dets)))
    return path


def _is_int(v: object) -> bool:
    # JSON true/false load as bool, which Python counts as int: not a frame or class id.
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def read_coco_results(
    path: str | Path,
    num_classes: int,
    valid_frame_ids: Iterable[int] | None = None,
    frame_sizes: Mapping[int, tuple[int, int]] | None = None,
) -> Detections:
    """Read and check a COCO results JSON; errors name the file and the entry index.

    `valid_frame_ids` and `frame_sizes` as for `read_vid_detections`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    _refuse_empty(path)
    try:
        entries = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"{path}: not COCO results (JSON nested too deeply)") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: a COCO results file is a JSON list of detections")
    valid = _valid_ids(valid_frame_ids, frame_sizes)
    rows = []
    for i, e in enumerate(entries):
        where = f"{path}: entry {i}"
        if not isinstance(e, dict) or not {"image_id", "category_id", "bbox", "score"} <= set(e):
            raise ValueError(f"{where}: needs image_id, category_id, bbox and score")
        fid, label, bbox, score = e["image_id"], e["category_id"], e["bbox"], e["score"]
        if not (_is_int(fid) and _is_int(label)):
            raise ValueError(f"{where}: image_id and category_id must be integers")
        if not (
            isinstance(bbox, list)
            and len(bbox) == 4
            and all(_is_number(c) for c in bbox)
            and _is_number(score)
        ):
            raise ValueError(f"{where}: bbox must be 4 numbers and score a number")
        x, y, w, h = (float(c) for c in bbox)
        box = [x, y, x + w, y + h]
        problem = _row_problem(fid, label, float(score), box, num_classes, valid, frame_sizes)
        if problem:
            raise ValueError(f"{where}: {problem}")
        rows.append((fid, label, float(score), box))
    if not rows:
        return Detections.empty()
    return Detections(
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.array([r[2] for r in rows]),
        np.array([r[3] for r in rows]),
    )


def read_detections(
    path: str | Path,
    num_classes: int,
    valid_frame_ids: Iterable[int] | None = None,
    frame_sizes: Mapping[int, tuple[int, int]] | None = None,
) -> Detections:
    """Read either format: `.json` is COCO results, anything else the devkit line format."""
    read = read_coco_results if Path(path).suffix.lower() == ".json" else read_vid_detections
    return read(path, num_classes, valid_frame_ids, frame_sizes)
