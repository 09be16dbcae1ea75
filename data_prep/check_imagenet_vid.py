"""Check a real ImageNet VID (ILSVRC2015) download before training or evaluating on it.

Usage:
    python data_prep/check_imagenet_vid.py --root /data/ILSVRC2015 [--limit 20] [--json OUT]

The reader (`lsts_lib.data.VIDDataset` / `DETDataset`) reads the download as it unpacks,
with the three FGFA split files placed in ROOT/ImageSets, so nothing has to be converted;
this script only verifies that everything the splits name is there and readable:

1. layout: Data/VID/{train,val}, Annotations/VID/{train,val}, Data/DET/train,
   Annotations/DET/train, ImageSets/ exist;
2. the split files VID_train_15frames.txt, VID_val_videos.txt, DET_train_30classes.txt parse
   (a bad line is reported with file and line number);
3. every frame of every listed snippet has its JPEG and its XML, and the XMLs parse
   (classes, boxes) -- for DET every listed image;
4. objects per class for VID train, VID val and DET (DET objects of the other 170 DET
   classes are counted as dropped, images without a VID class as skipped, as the reader does).

--limit N checks only the first N snippets per VID split and N*20 DET images (a quick
partial check). The exit status is 0 when nothing is wrong, 1 otherwise. It also works on a
SynthVID folder (classes from its classes.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from lsts_lib.data.vid import (
    SPLIT_FILES,
    DatasetError,
    load_class_list,
    parse_annotation,
    read_split_file,
)

LAYOUT = (
    "ImageSets",
    "Data/VID/train",
    "Data/VID/val",
    "Annotations/VID/train",
    "Annotations/VID/val",
    "Data/DET/train",
    "Annotations/DET/train",
)
MAX_LISTED_PROBLEMS = 20


class Checker:
    def __init__(self, root: Path, limit: int | None) -> None:
        self.root = root
        self.limit = limit
        self.classes = load_class_list(root)
        self.problems: list[str] = []
        self.summary: dict = {"root": str(root), "limit": limit}

    def problem(self, msg: str) -> None:
        self.problems.append(msg)

    def layout(self) -> None:
        missing = [d for d in LAYOUT if not (self.root / d).is_dir()]
        for d in missing:
            self.problem(f"missing folder {self.root / d}")
        self.summary["layout_missing"] = missing

    def split(self, key: str, kind: str):
        path = self.root / "ImageSets" / SPLIT_FILES[key]
        try:
            lines = read_split_file(path, kind)  # type: ignore[arg-type]
        except DatasetError as exc:
            self.problem(str(exc))
            return None
        self.summary[f"{key}_split_lines"] = len(lines)
        return lines

    def vid(self, split: str, lines) -> None:
        # snippet -> frame count, in file order
        counts: dict[str, int] = {}
        for ln in lines:
            counts.setdefault(ln.video, ln.num_frames)
        videos = list(counts.items())[: self.limit] if self.limit else list(counts.items())
        per_class: Counter[str] = Counter()
        frames = objects = empty = 0
        for name, n in tqdm(videos, desc=f"VID {split}", unit="snippet"):
            img_dir = self.root / "Data" / "VID" / name
            ann_dir = self.root / "Annotations" / "VID" / name
            have_img = set(os.listdir(img_dir)) if img_dir.is_dir() else set()
            have_ann = set(os.listdir(ann_dir)) if ann_dir.is_dir() else set()
            if not have_img or not have_ann:
                self.problem(f"empty or missing snippet {name} (images: {len(have_img)}, "
                             f"annotations: {len(have_ann)})")
                continue
            for fi in range(n):
                if f"{fi:06d}.JPEG" not in have_img:
                    self.problem(f"missing image {img_dir / f'{fi:06d}.JPEG'}")
                if f"{fi:06d}.xml" not in have_ann:
                    self.problem(f"missing annotation {ann_dir / f'{fi:06d}.xml'}")
                    continue
                try:
                    ann = parse_annotation(ann_dir / f"{fi:06d}.xml", self.classes,
                                           img_dir / f"{fi:06d}.JPEG")
                except DatasetError as exc:
                    self.problem(str(exc))
                    continue
                frames += 1
                objects += len(ann.labels)
                empty += len(ann.labels) == 0
                per_class.update(self.classes.names[i - 1] for i in ann.labels.tolist())
        self.summary[f"vid_{split}"] = {
            "snippets_listed": len(counts),
            "snippets_checked": len(videos),
            "frames_listed": sum(counts.values()),
            "frames_checked": frames,
            "frames_without_objects": empty,
            "objects": objects,
            "objects_per_class": {c: per_class[c] for c in self.classes.names},
        }

    def det(self, lines) -> None:
        todo = lines[: self.limit * 20] if self.limit else lines
        per_class: Counter[str] = Counter()
        images = skipped = 0
        for ln in tqdm(todo, desc="DET train", unit="image"):
            img = self.root / "Data" / "DET" / f"{ln.image}.JPEG"
            xml = self.root / "Annotations" / "DET" / f"{ln.image}.xml"
            if not img.is_file():
                self.problem(f"missing image {img}")
            try:
                ann = parse_annotation(xml, self.classes, img, unknown="skip")
            except DatasetError as exc:
                self.problem(str(exc))
                continue
            images += 1
            skipped += len(ann.labels) == 0
            per_class.update(self.classes.names[i - 1] for i in ann.labels.tolist())
        self.summary["det_train"] = {
            "images_listed": len(lines),
            "images_checked": images,
            "images_without_known_object": skipped,
            "objects_per_class": {c: per_class[c] for c in self.classes.names},
        }


def run(root: Path, limit: int | None) -> tuple[dict, list[str]]:
    if not root.is_dir():
        raise DatasetError(f"dataset path does not exist: {root}")
    chk = Checker(root, limit)
    chk.layout()
    for key, kind in (("train", "vid_train"), ("val", "vid_val")):
        lines = chk.split(key, kind)
        if lines is not None:
            chk.vid(key, lines)
    det_lines = chk.split("det", "det_train")
    if det_lines is not None:
        chk.det(det_lines)
    chk.summary["problems"] = len(chk.problems)
    return chk.summary, chk.problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="the ILSVRC2015 folder")
    ap.add_argument("--limit", type=int, default=None, help="check only the first N snippets")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = ap.parse_args(argv)
    try:
        summary, problems = run(args.root, args.limit)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key in ("vid_train", "vid_val"):
        s = summary.get(key)
        if s:
            print(f"VID {key[4:]}: {s['snippets_checked']}/{s['snippets_listed']} snippets, "
                  f"{s['frames_checked']}/{s['frames_listed']} frames checked, "
                  f"{s['objects']} objects, {s['frames_without_objects']} frames without objects")
    if summary.get("det_train"):
        s = summary["det_train"]
        print(f"DET train: {s['images_checked']}/{s['images_listed']} images checked, "
              f"{s['images_without_known_object']} without an object of the known classes")
    for key in ("vid_train", "vid_val", "det_train"):
        if summary.get(key):
            top = sorted(summary[key]["objects_per_class"].items(), key=lambda kv: -kv[1])
            print(f"  {key} objects per class: " + ", ".join(f"{c} {n}" for c, n in top))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        for msg in problems[:MAX_LISTED_PROBLEMS]:
            print(f"  {msg}", file=sys.stderr)
        if len(problems) > MAX_LISTED_PROBLEMS:
            print(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more", file=sys.stderr)
        return 1
    print("OK: everything the split files name is present and parses")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
