"""One reader for the ILSVRC2015 VID layout: the real ImageNet VID download and SynthVID.

Layout (both datasets)::

    ROOT/Data/VID/{train,val,test}/<snippet>/NNNNNN.JPEG    (test: SynthVID only)
    ROOT/Annotations/VID/{train,val,test}/<snippet>/NNNNNN.xml
    ROOT/Data/DET/train/<image>.JPEG, ROOT/Annotations/DET/train/<image>.xml
    ROOT/ImageSets/VID_train_15frames.txt, VID_val_videos.txt, DET_train_30classes.txt,
                   VID_test_videos.txt (SynthVID only, val's format)
    ROOT/classes.txt   (optional; SynthVID writes it: `<id string> <name>` per line)

Loading policy. The split files give every snippet's frame count, so a `VIDDataset` knows
its videos, frames and samples without opening an XML. Annotations are then parsed a
whole snippet at a time (motion IoU needs every frame of a track). When the split names at
most `EAGER_MAX_FRAMES` frames (SynthVID, a `max_videos` subset) every snippet is parsed
at construction, so bad input fails immediately; above that (the real train list is about
1.1M frames, val 176k) a snippet is parsed on first access through `ds.videos[i]` or
`ds.frame(i, j)` and cached.

Bad input raises `DatasetError` naming the file. Two things the VID devkit and FGFA's
loader tolerate are counted instead (see `VIDDataset.issues`): boxes that pass the image
border by at most `BOX_TOLERANCE_PX` pixels are clipped to it, and with `strict=False`
objects of an unknown class id are dropped (FGFA drops them silently; we count them) and
boxes further out are clipped too. Malformed XML, missing files, empty snippets, boxes
with xmin > xmax and boxes of zero area (also after clipping) are always errors.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from lsts_lib.data.motion import compute_motion_iou
from lsts_lib.data.text import numbered_lines, parse_float, parse_int, quote
from lsts_lib.data.types import ClassList, FrameAnnotation, Video

__all__ = [
    "BOX_TOLERANCE_PX",
    "DETDataset",
    "DatasetError",
    "EAGER_MAX_FRAMES",
    "SPLIT_FILES",
    "VID_CLASSES",
    "VIDDataset",
    "ValVideoLine",
    "VidTrainLine",
    "DetTrainLine",
    "load_class_list",
    "load_frame",
    "load_image",
    "parse_annotation",
    "read_split_file",
]


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message names the file (and line)."""


# The 30 ImageNet VID classes in label order (label = position + 1; 0 is background).
_VID_SYNSETS = """
airplane n02691156; antelope n02419796; bear n02131653; bicycle n02834778; bird n01503061;
bus n02924116; car n02958343; cattle n02402425; dog n02084071; domestic_cat n02121808;
elephant n02503517; fox n02118333; giant_panda n02510455; hamster n02342885;
horse n02374451; lion n02129165; lizard n01674464; monkey n02484322; motorcycle n03790512;
rabbit n02324045; red_panda n02509815; sheep n02411705; snake n01726692; squirrel n02355227;
tiger n02129604; train n04468005; turtle n01662784; watercraft n04530566; whale n02062744;
zebra n02391049
"""
_pairs = [p.split() for p in _VID_SYNSETS.replace("\n", " ").split(";")]
VID_CLASSES = ClassList(names=tuple(n for n, _ in _pairs), ids=tuple(s for _, s in _pairs))
del _pairs

SPLIT_FILES = {
    "train": "VID_train_15frames.txt",
    "val": "VID_val_videos.txt",
    "det": "DET_train_30classes.txt",
    # SynthVID only: a held-out split in val's format (ImageNet VID's test has no boxes).
    "test": "VID_test_videos.txt",
}
# Splits listed one line per snippet with devkit frame ids (every frame evaluated).
EVAL_SPLITS = ("val", "test")

# Real VID boxes sometimes end on (or one pixel past) the last row/column; we accept up to
# this many pixels outside [0, W-1] x [0, H-1] and clip, as FGFA's loader clips every box.
BOX_TOLERANCE_PX = 2.0
# Above this many frames in a split, snippets are parsed on first access (see module doc).
EAGER_MAX_FRAMES = 50_000


# ----------------------------------------------------------------------------- classes
def load_class_list(root: str | Path) -> ClassList:
    """`root/classes.txt` (`<id> <name>` per line, label order) if present, else VID_CLASSES."""
    path = Path(root) / "classes.txt"
    if not path.exists():
        return VID_CLASSES
    ids, names = [], []
    for lineno, raw in numbered_lines(path, DatasetError):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DatasetError(f"{path}:{lineno}: expected '<id> <name>', got {quote(raw)}")
        ids.append(parts[0])
        names.append(parts[1].strip())
    if not ids:
        raise DatasetError(f"{path}: no classes listed")
    try:
        return ClassList(names=tuple(names), ids=tuple(ids))
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from exc


# ------------------------------------------------------------------------- split files
@dataclass(frozen=True)
class VidTrainLine:
    """`train/.../<snippet> 1 <frame index, 0-based> <frames in snippet>`."""

    video: str
    flag: int
    frame: int
    num_frames: int


@dataclass(frozen=True)
class ValVideoLine:
    """`val/<snippet> <global 1-based start index> <first frame> <frames in snippet>`."""

    video: str
    start_index: int
    first_frame: int
    num_frames: int


@dataclass(frozen=True)
class DetTrainLine:
    """`train/<folder>/<image> <flag>`."""

    image: str
    flag: int


SplitKind = Literal["vid_train", "vid_val", "det_train"]
_SPLIT_FIELDS: dict[str, tuple[type, int]] = {
    "vid_train": (VidTrainLine, 4),
    "vid_val": (ValVideoLine, 4),
    "det_train": (DetTrainLine, 2),
}
_NAME_RE = re.compile(r"^[\w.\-]+(/[\w.\-]+)*$")


def read_split_file(
    path: str | Path, kind: SplitKind
) -> list[VidTrainLine] | list[ValVideoLine] | list[DetTrainLine]:
    """Parse one of the three ImageSets formats; a bad line raises naming file and line."""
    path = Path(path)
    if kind not in _SPLIT_FIELDS:
        raise ValueError(f"unknown split file kind {kind!r}; use one of {sorted(_SPLIT_FIELDS)}")
    if not path.is_file():
        raise DatasetError(f"split file not found: {path}")
    cls, n_fields = _SPLIT_FIELDS[kind]
    out = []
    for lineno, raw in numbered_lines(path, DatasetError):
        parts = raw.split()
        if not parts:
            continue  # blank lines (e.g. a trailing one) carry nothing
        where = f"{path}:{lineno}"
        if len(parts) != n_fields:
            raise DatasetError(
                f"{where}: expected {n_fields} fields for {kind}, got {len(parts)}: {quote(raw)}"
            )
        name = parts[0]
        folders = name.split("/")
        # Longer than NAME_MAX (a component) or 1024 characters (real names have ~60), it
        # names no file, and the OS error would echo it whole.
        too_long = len(name) > 1024 or max(map(len, folders)) > 255
        if not _NAME_RE.match(name) or ".." in folders or too_long:
            raise DatasetError(f"{where}: bad path field {quote(name)}")
        try:
            nums = [parse_int(p) for p in parts[1:]]
        except ValueError:
            raise DatasetError(f"{where}: non-integer field in {quote(raw)}") from None
        if kind == "vid_train":
            flag, frame, count = nums
            if count <= 0:
                raise DatasetError(f"{where}: empty snippet {name} (0 frames)")
            if not 0 <= frame < count:
                raise DatasetError(f"{where}: frame {frame} outside 0..{count - 1}")
        elif kind == "vid_val":
            start, first, count = nums
            if count <= 0:
                raise DatasetError(f"{where}: empty snippet {name} (0 frames)")
            if start < 1 or first < 0:
                raise DatasetError(f"{where}: start index must be >= 1, first frame >= 0")
        out.append(cls(name, *nums))
    return out


# ------------------------------------------------------------------------- annotations
def _text(node, tag: str, xml_path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{xml_path}: missing <{tag}>")
    return child.text.strip()


def _number(node, tag: str, xml_path: Path) -> float:
    value = _text(node, tag, xml_path)
    try:
        out = parse_float(value)
    except ValueError:
        raise DatasetError(f"{xml_path}: <{tag}> is not a number: {quote(value)}") from None
    if not np.isfinite(out):
        raise DatasetError(f"{xml_path}: <{tag}> is not finite: {quote(value)}")
    return out


def _flag(node, tag: str) -> bool:
    child = node.find(tag)
    return child is not None and (child.text or "0").strip() not in ("0", "")


def _parse_xml(
    xml_path: Path,
    classes: ClassList,
    image_path: Path,
    *,
    unknown: Literal["error", "skip"] = "error",
    clip_any: bool = False,
) -> tuple[FrameAnnotation, int, int]:
    """Parse one frame's XML -> (annotation, objects of unknown class dropped, boxes clipped)."""
    if not xml_path.is_file():
        raise DatasetError(f"annotation not found: {xml_path}")
    try:
        root = SafeET.parse(str(xml_path)).getroot()
    except DefusedXmlException as exc:
        raise DatasetError(f"{xml_path}: refused unsafe XML ({type(exc).__name__})") from exc
    except SafeET.ParseError as exc:
        raise DatasetError(f"{xml_path}: malformed XML ({exc})") from exc
    size = root.find("size")
    if size is None:
        raise DatasetError(f"{xml_path}: missing <size>")
    width, height = int(_number(size, "width", xml_path)), int(_number(size, "height", xml_path))
    if width <= 0 or height <= 0:
        raise DatasetError(f"{xml_path}: image size {width}x{height} is not positive")

    boxes, labels, tracks, occl, gen = [], [], [], [], []
    n_unknown = n_clipped = 0
    for k, obj in enumerate(root.findall("object")):
        name = _text(obj, "name", xml_path)
        if name not in classes.ids:
            if unknown == "skip":
                n_unknown += 1
                continue
            raise DatasetError(f"{xml_path}: object {k} has unknown class id {quote(name)}")
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"{xml_path}: object {k} has no <bndbox>")
        x1, y1, x2, y2 = (_number(bb, t, xml_path) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x1 > x2 or y1 > y2:
            raise DatasetError(
                f"{xml_path}: object {k} has xmin > xmax or ymin > ymax: {x1, y1, x2, y2}"
            )
        # A box of zero width or height has no inside to learn (its regression target is
        # log 0): refused here, where the file can still be named.
        if x1 == x2 or y1 == y2:
            raise DatasetError(
                f"{xml_path}: object {k} has zero area (xmin == xmax or ymin == ymax): "
                f"{x1, y1, x2, y2}"
            )
        over = max(-x1, -y1, x2 - (width - 1), y2 - (height - 1))
        if over > 0:
            if over > BOX_TOLERANCE_PX and not clip_any:
                raise DatasetError(
                    f"{xml_path}: object {k} box {x1, y1, x2, y2} lies {over:g} px outside the "
                    f"{width}x{height} image (tolerance {BOX_TOLERANCE_PX:g} px)"
                )
            x1, x2 = min(max(x1, 0.0), width - 1.0), min(max(x2, 0.0), width - 1.0)
            y1, y2 = min(max(y1, 0.0), height - 1.0), min(max(y2, 0.0), height - 1.0)
            if x1 == x2 or y1 == y2:
                raise DatasetError(
                    f"{xml_path}: object {k} box lies outside the {width}x{height} image: "
                    f"zero area left after clipping it to the image"
                )
            n_clipped += 1
        track = obj.find("trackid")
        try:
            tid = parse_int(track.text) if track is not None and track.text else -1 - k
        except ValueError:
            raise DatasetError(f"{xml_path}: object {k} trackid is not an integer") from None
        boxes.append((x1, y1, x2, y2))
        labels.append(classes.label_of(name))
        tracks.append(tid)
        occl.append(_flag(obj, "occluded"))
        gen.append(_flag(obj, "generated"))

    ann = FrameAnnotation(
        image=Path(image_path),
        width=width,
        height=height,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        track_ids=np.asarray(tracks, dtype=np.int64),
        occluded=np.asarray(occl, dtype=bool),
        generated=np.asarray(gen, dtype=bool),
    )
    return ann, n_unknown, n_clipped


def parse_annotation(
    xml_path: str | Path,
    classes: ClassList,
    image_path: str | Path,
    *,
    unknown: Literal["error", "skip"] = "error",
) -> FrameAnnotation:
    """Parse one VID/DET frame XML (defusedxml) into boxes (K,4) float32 xmin ymin xmax ymax.

    An unknown class id raises `DatasetError` (or, with unknown="skip", the object is
    dropped, as for DET images holding objects of other classes). Boxes further than
    BOX_TOLERANCE_PX outside the image raise; boxes within the tolerance are clipped.
    """
    ann, _, _ = _parse_xml(Path(xml_path), classes, Path(image_path), unknown=unknown)
    return ann


# ------------------------------------------------------------------------------ images
def _check_size(path: Path, size: tuple[int, int], expect_wh: tuple[int, int] | None) -> None:
    """Boxes are in the annotation's pixel grid: an image of another size would silently
    misplace every box (e.g. a folder of images resized after annotation)."""
    if expect_wh is not None and tuple(size) != tuple(expect_wh):
        raise DatasetError(
            f"image {path} is {size[0]}x{size[1]} but its annotation says "
            f"{expect_wh[0]}x{expect_wh[1]}"
        )


def _check_image(path: Path, expect_wh: tuple[int, int] | None = None) -> None:
    if not path.is_file():
        raise DatasetError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(f"corrupt image {path}: {exc}") from exc
    _check_size(path, size, expect_wh)


def load_image(path: str | Path, expect_wh: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode a JPEG to a float32 tensor (3, H, W) in [0, 1]; with `expect_wh` (width,
    height) an image of another size raises `DatasetError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            _check_size(path, im.size, expect_wh)
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(f"corrupt image {path}: {exc}") from exc
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def load_frame(ann: FrameAnnotation) -> torch.Tensor:
    """The image of an annotated frame, checked against the annotation's <size>."""
    return load_image(ann.image, (ann.width, ann.height))


# ----------------------------------------------------------------------------- datasets
def _check_root(root: Path) -> None:
    if not root.exists():
        raise DatasetError(f"dataset path does not exist: {root}")
    if not root.is_dir():
        raise DatasetError(f"dataset path is not a folder: {root}")


class _VideoList(list):
    """A list of Video that parses a snippet's annotations on first access (lazy mode)."""

    def __init__(self, videos: list[Video], load) -> None:
        super().__init__(videos)
        self._load = load

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError(index)
        self._load(i)
        return list.__getitem__(self, i)

    def __iter__(self) -> Iterator[Video]:
        for i in range(len(self)):
            yield self[i]


class VIDDataset:
    """Snippets of a VID-layout split with per-frame boxes, labels, track ids and motion IoU.

    `samples` are (video index, frame index) pairs: for train the frames named by
    VID_train_15frames.txt, for val every frame. `issues` counts tolerated problems.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        classes: ClassList | None = None,
        max_videos: int | None = None,
        check_images: bool = False,
        strict: bool = True,
        lazy: bool | None = None,
        motion_window: int = 10,
    ) -> None:
        if split not in ("train", *EVAL_SPLITS):
            raise ValueError(f"split must be one of train, {', '.join(EVAL_SPLITS)}; "
                             f"got {split!r}")
        self.root = Path(root)
        _check_root(self.root)
        self.split = split
        self.classes = classes if classes is not None else load_class_list(self.root)
        self.check_images = check_images
        self.strict = strict
        self.motion_window = motion_window
        self.split_file = self.root / "ImageSets" / SPLIT_FILES[split]
        self.issues: Counter[str] = Counter()

        videos: list[Video] = []
        counts: list[int] = []
        self.samples: list[tuple[int, int]] = []
        if split == "train":
            index: dict[str, int] = {}
            for ln in read_split_file(self.split_file, "vid_train"):
                vi = index.get(ln.video)
                if vi is None:
                    if max_videos is not None and len(videos) >= max_videos:
                        continue
                    vi = index[ln.video] = len(videos)
                    videos.append(Video(name=ln.video))
                    counts.append(ln.num_frames)
                elif counts[vi] != ln.num_frames:
                    raise DatasetError(
                        f"{self.split_file}: {ln.video} listed with {counts[vi]} and "
                        f"{ln.num_frames} frames"
                    )
                self.samples.append((vi, ln.frame))
            # Train snippets have no devkit frame ids: number their frames consecutively in
            # split-file order (as val's are), so that a frame id names one frame.
            start = 1
            for video, n in zip(videos, counts, strict=True):
                video.start_index, start = start, start + n
        else:
            for ln in read_split_file(self.split_file, "vid_val"):
                if max_videos is not None and len(videos) >= max_videos:
                    break
                videos.append(Video(name=ln.video, start_index=ln.start_index))
                counts.append(ln.num_frames)
            self.samples = [(vi, fi) for vi, n in enumerate(counts) for fi in range(n)]
        if not videos:
            raise DatasetError(f"{self.split_file}: lists no snippets")
        self._counts = counts
        self._loaded = [False] * len(videos)
        self.videos: list[Video] = _VideoList(videos, self._load_video)
        self.lazy = sum(counts) > EAGER_MAX_FRAMES if lazy is None else lazy
        if not self.lazy:
            bar = tqdm(range(len(videos)), desc=f"{split} snippets", leave=False,
                       disable=len(videos) < 100)
            for vi in bar:
                self._load_video(vi)
        if self.issues:
            self.report_issues()

    # -- loading
    def _load_video(self, vi: int) -> None:
        if self._loaded[vi]:
            return
        video = list.__getitem__(self.videos, vi)
        n = self._counts[vi]
        ann_dir = self.root / "Annotations" / "VID" / video.name
        img_dir = self.root / "Data" / "VID" / video.name
        xmls = sorted(ann_dir.glob("*.xml")) if ann_dir.is_dir() else []
        if not xmls:
            raise DatasetError(f"empty snippet {video.name}: no annotation files in {ann_dir}")
        if len(xmls) != n:
            raise DatasetError(
                f"snippet {video.name}: {self.split_file.name} lists {n} frames but "
                f"{ann_dir} holds {len(xmls)} annotation files"
            )
        frames = []
        for fi in range(n):
            xml = ann_dir / f"{fi:06d}.xml"
            img = img_dir / f"{fi:06d}.JPEG"
            ann, n_unknown, n_clipped = _parse_xml(
                xml,
                self.classes,
                img,
                unknown="error" if self.strict else "skip",
                clip_any=not self.strict,
            )
            if self.check_images:
                _check_image(img, (ann.width, ann.height))
            elif fi == 0 and not img.is_file():
                # Cheap guard even without check_images: a snippet with no images at all.
                raise DatasetError(f"image not found: {img}")
            self.issues["objects of unknown class dropped"] += n_unknown
            self.issues["boxes clipped to the image"] += n_clipped
            frames.append(ann)
        video.frames = frames
        compute_motion_iou([video], window=self.motion_window)
        self._loaded[vi] = True
        self.issues = +self.issues  # drop zero counts

    def load_all(self) -> None:
        """Parse every snippet now (lazy mode); shows progress."""
        todo = [i for i, done in enumerate(self._loaded) if not done]
        for vi in tqdm(todo, desc=f"{self.split} snippets", leave=False, disable=len(todo) < 100):
            self._load_video(vi)

    def report_issues(self) -> str:
        """Warn once with the counted, tolerated problems; returns the message."""
        msg = ", ".join(f"{v} {k}" for k, v in sorted(self.issues.items()))
        if msg:
            warnings.warn(f"{self.root} ({self.split}): {msg}", stacklevel=2)
        return msg

    # -- access
    @property
    def num_frames(self) -> int:
        """Frames in the loaded snippets (all frames, not only the sampled ones)."""
        return sum(self._counts)

    def frame(self, vi: int, fi: int) -> FrameAnnotation:
        return self.videos[vi].frames[fi]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> FrameAnnotation:
        vi, fi = self.samples[i]
        return self.frame(vi, fi)

    def __repr__(self) -> str:
        return (
            f"VIDDataset(root={str(self.root)!r}, split={self.split!r}, videos={len(self.videos)}, "
            f"frames={self.num_frames}, samples={len(self.samples)}, classes={self.classes.num_classes})"
        )


class DETDataset:
    """Still images of DET_train_30classes.txt, as the VID+DET training protocol uses them.

    Objects of classes outside `classes` are dropped and images left with no object are
    skipped (as FGFA does); both are counted in `issues` and reported once.
    """

    def __init__(
        self,
        root: str | Path,
        classes: ClassList | None = None,
        check_images: bool = False,
        max_images: int | None = None,
        progress: bool = True,
    ) -> None:
        self.root = Path(root)
        _check_root(self.root)
        self.classes = classes if classes is not None else load_class_list(self.root)
        self.split_file = self.root / "ImageSets" / SPLIT_FILES["det"]
        lines = read_split_file(self.split_file, "det_train")
        if max_images is not None:
            lines = lines[:max_images]
        self.issues: Counter[str] = Counter()
        self.images: list[FrameAnnotation] = []
        # A bar for the long real list only, and none when the caller asks (a notebook that
        # builds a training stream to count boxes keeps a progress widget out of its outputs).
        for ln in tqdm(lines, desc="DET images", leave=False,
                       disable=not progress or len(lines) < 500):
            xml = self.root / "Annotations" / "DET" / f"{ln.image}.xml"
            img = self.root / "Data" / "DET" / f"{ln.image}.JPEG"
            ann, n_unknown, n_clipped = _parse_xml(xml, self.classes, img, unknown="skip")
            self.issues["objects of other classes dropped"] += n_unknown
            self.issues["boxes clipped to the image"] += n_clipped
            if len(ann.labels) == 0:
                self.issues["images without a known object skipped"] += 1
                continue
            if check_images:
                _check_image(img, (ann.width, ann.height))
            self.images.append(ann)
        self.issues = +self.issues
        self.skipped = self.issues["images without a known object skipped"]
        if self.issues:
            msg = ", ".join(f"{v} {k}" for k, v in sorted(self.issues.items()))
            warnings.warn(f"{self.split_file}: {msg}", stacklevel=2)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> FrameAnnotation:
        return self.images[i]
