"""SynthVID generator: layout, XML schema, split files, determinism, motion mix, reuse/refusal."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import defusedxml.ElementTree as ET
import numpy as np
import pytest
from PIL import Image

import lsts_lib.paths
from lsts_lib import cli
from lsts_lib.data import VIDDataset, motion_category
from lsts_lib.data import synthvid as sv

needs_shared = pytest.mark.skipif(
    not lsts_lib.paths.SHARED_VID.exists(),
    reason="../shared/data (real ImageNet VID files) not present",
)
SMOKE = sv.PRESETS["smoke"]
CLASS_IDS = {c.id for c in sv.CLASSES}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sv.generate(tmp_path_factory.mktemp("synth") / "smoke", "smoke", seed=0,
                       progress=False)


def _tree_bytes(root: Path, *parts: str) -> dict[str, bytes]:
    """Relative path -> bytes of every file under root/<part> (files or folders)."""
    out = {}
    for part in parts:
        base = root / part
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        out.update({str(p.relative_to(root)): p.read_bytes() for p in files})
    return out


def test_layout_and_counts(smoke: Path) -> None:
    train = sorted((smoke / "Data/VID/train/ILSVRC2015_VID_train_0000").iterdir())
    val = sorted((smoke / "Data/VID/val").iterdir())
    assert [p.name for p in train] == [f"ILSVRC2015_train_{i:08d}" for i in range(SMOKE.train_videos)]
    assert [p.name for p in val] == [f"ILSVRC2015_val_{i:08d}" for i in range(SMOKE.val_videos)]
    for snippet in train + val:
        jpegs = sorted(p.name for p in snippet.glob("*.JPEG"))
        n = len(jpegs)
        assert SMOKE.frames[0] <= n <= SMOKE.frames[1]
        assert jpegs == [f"{i:06d}.JPEG" for i in range(n)]
        ann = smoke / "Annotations/VID" / snippet.relative_to(smoke / "Data/VID")
        assert sorted(p.name for p in ann.glob("*.xml")) == [f"{i:06d}.xml" for i in range(n)]
    det = sorted((smoke / "Data/DET/train/ILSVRC2014_train_0000").glob("*.JPEG"))
    assert [p.stem for p in det] == [f"ILSVRC2014_train_{i:08d}" for i in range(SMOKE.det_images)]
    assert len(list((smoke / "Annotations/DET").rglob("*.xml"))) == SMOKE.det_images

    lines = (smoke / "classes.txt").read_text().splitlines()
    assert lines == [f"{c.id} {c.name}" for c in sv.CLASSES]
    assert 5 <= len(lines) <= 8
    meta = json.loads((smoke / "synthvid.json").read_text())
    assert (meta["preset"], meta["seed"], meta["version"], meta["complete"]) == (
        "smoke", 0, sv.GENERATOR_VERSION, True)
    assert meta["params"]["width"] == SMOKE.width
    assert meta["counts"]["frames_train"] == sum(len(list(p.glob("*.JPEG"))) for p in train)


def test_xml_schema_and_boxes(smoke: Path) -> None:
    xmls = sorted((smoke / "Annotations").rglob("*.xml"))
    assert len(xmls) > 100
    n_obj, empty, sizes = 0, 0, []
    for xml in xmls:
        root = ET.parse(xml).getroot()
        assert root.tag == "annotation"
        is_det = "DET" in xml.parts
        rel = xml.relative_to(smoke / "Annotations" / ("DET" if is_det else "VID"))
        if is_det:
            assert root.findtext("folder") == rel.parent.name
            assert root.findtext("filename") == xml.stem
        else:
            assert root.findtext("folder") == str(rel.parent.relative_to(rel.parts[0]))
            assert root.findtext("filename") == xml.stem
        assert root.findtext("source/database") == "SynthVID"
        w, h = int(root.findtext("size/width")), int(root.findtext("size/height"))
        image = smoke / "Data" / xml.relative_to(smoke / "Annotations").with_suffix(".JPEG")
        if xml.stem in ("000000", "000007") or is_det:  # a sample of images: size agrees
            with Image.open(image) as im:
                assert im.size == (w, h) and im.format == "JPEG"
        objects = root.findall("object")
        empty += not objects
        for obj in objects:
            n_obj += 1
            int(obj.findtext("trackid"))
            assert obj.findtext("name") in CLASS_IDS
            x1, x2 = int(obj.findtext("bndbox/xmin")), int(obj.findtext("bndbox/xmax"))
            y1, y2 = int(obj.findtext("bndbox/ymin")), int(obj.findtext("bndbox/ymax"))
            assert 0 <= x1 < x2 <= w - 1 and 0 <= y1 < y2 <= h - 1, xml
            assert x2 - x1 + 1 >= sv.MIN_VISIBLE and y2 - y1 + 1 >= sv.MIN_VISIBLE
            assert obj.findtext("occluded") in ("0", "1")
            assert obj.findtext("generated") == "0"
            sizes.append(((x2 - x1 + 1) * (y2 - y1 + 1)) ** 0.5)
    assert n_obj > 100
    assert empty > 0, "frames with no object must exist"
    assert min(sizes) < 32 < max(sizes), "object sizes should span small to large"


def _line_shape(line: str) -> str:
    """A split-file line with its numbers and snippet indices abstracted."""
    return re.sub(r"\d+", "N", line.strip())


def test_split_files(smoke: Path) -> None:
    sets = smoke / "ImageSets"
    train = (sets / "VID_train_15frames.txt").read_text().splitlines()
    per_video: dict[str, list[int]] = {}
    for line in train:
        video, flag, idx, n = line.split()
        assert video.startswith("train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_") and flag == "1"
        per_video.setdefault(video, []).append(int(idx))
        assert 0 <= int(idx) < int(n)
        assert len(list((smoke / "Data/VID" / video).glob("*.JPEG"))) == int(n)
    assert len(per_video) == SMOKE.train_videos
    for idx in per_video.values():
        assert len(idx) == 15 and idx == sorted(set(idx))

    val = [ln.split() for ln in (sets / "VID_val_videos.txt").read_text().splitlines()]
    start = 1
    for video, first, zero, n in val:
        assert int(first) == start and zero == "0"
        assert len(list((smoke / "Data/VID" / video).glob("*.JPEG"))) == int(n)
        start += int(n)
    det = (sets / "DET_train_30classes.txt").read_text().splitlines()
    assert det[0] == "train/ILSVRC2014_train_0000/ILSVRC2014_train_00000000 1"
    assert len(det) == SMOKE.det_images


@needs_shared
def test_split_lines_have_the_real_shape(smoke: Path) -> None:
    for name in ("VID_train_15frames.txt", "VID_val_videos.txt", "DET_train_30classes.txt"):
        with open(lsts_lib.paths.SHARED_VID / "ImageSets" / name) as f:
            real = {_line_shape(next(f)) for _ in range(1)}
        ours = {_line_shape(ln) for ln in (smoke / "ImageSets" / name).read_text().splitlines()}
        assert ours == real, name


def test_motion_mix_covers_all_ranges(smoke: Path) -> None:
    mix: Counter[str] = Counter()
    for split in ("train", "val"):
        for video in VIDDataset(smoke, split).videos:
            for frame in video.frames:
                mix.update(motion_category(float(m)) for m in frame.motion_iou)
    total = sum(mix.values())
    for name in ("slow", "medium", "fast"):
        assert mix[name] / total > 0.08, mix


def test_reuse_does_not_regenerate(smoke: Path) -> None:
    probe = [smoke / "synthvid.json", smoke / "ImageSets/VID_val_videos.txt",
             next((smoke / "Annotations/VID/val").rglob("*.xml"))]
    before = [p.stat().st_mtime_ns for p in probe]
    assert sv.generate(smoke, "smoke", seed=0, progress=False) == smoke
    assert [p.stat().st_mtime_ns for p in probe] == before


def test_deterministic_and_overwrite(smoke: Path, tmp_path: Path) -> None:
    other = sv.generate(tmp_path / "ds", "smoke", seed=1, progress=False)
    ann = ("Annotations", "ImageSets", "classes.txt", "synthvid.json")
    assert _tree_bytes(other, "Annotations") != _tree_bytes(smoke, "Annotations")
    # Another preset/seed in the folder: refused without overwrite, replaced with it.
    with pytest.raises(ValueError, match="overwrite"):
        sv.generate(other, "smoke", seed=0, progress=False)
    # Regenerated with 2 worker processes: same bytes as the 1-process fixture.
    sv.generate(other, "smoke", seed=0, overwrite=True, workers=2, progress=False)
    assert _tree_bytes(other, *ann) == _tree_bytes(smoke, *ann)
    assert _tree_bytes(other, "Data") == _tree_bytes(smoke, "Data")  # JPEGs: same machine


@pytest.mark.parametrize("damage", ["missing_jpeg", "older_generator"])
def test_stale_dataset_is_regenerated(smoke: Path, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(smoke, copy)
    victim = copy / "Data/VID/val/ILSVRC2015_val_00000001/000003.JPEG"
    if damage == "missing_jpeg":
        victim.unlink()
    else:  # same preset and seed written by another generator version: no --overwrite needed
        meta = json.loads((copy / "synthvid.json").read_text())
        meta["version"] = "0"
        (copy / "synthvid.json").write_text(json.dumps(meta))
        victim.write_bytes(b"stale")
    sv.generate(copy, "smoke", seed=0, progress=False)
    assert victim.read_bytes() == (smoke / victim.relative_to(copy)).read_bytes()
    assert (copy / "synthvid.json").read_bytes() == (smoke / "synthvid.json").read_bytes()


@pytest.mark.parametrize("damage", ["edited_xml", "corrupted_jpeg", "deleted_jpeg"])
def test_synth_cli_regenerates_a_dataset_changed_in_place_and_says_so(
        smoke: Path, tmp_path: Path, capsys: pytest.CaptureFixture, damage: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(smoke, copy)
    args = ["synth", "--out", str(copy), "--preset", "smoke", "--seed", "0"]
    assert cli.main(args) == 0
    assert ": reused;" in capsys.readouterr().out
    victim = {"edited_xml": next((copy / "Annotations/VID/val").rglob("*.xml")),
              "corrupted_jpeg": copy / "Data/VID/val/ILSVRC2015_val_00000001/000003.JPEG",
              "deleted_jpeg": copy / "Data/VID/val/ILSVRC2015_val_00000001/000002.JPEG"}[damage]
    good = victim.read_bytes()
    if damage == "edited_xml":
        victim.write_text(victim.read_text().replace("<xmin>", "<xmin>1", 1))
    elif damage == "corrupted_jpeg":
        victim.write_bytes(good[: len(good) // 2] + b"\0" * (len(good) - len(good) // 2))
    else:
        victim.unlink()
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert ": regenerated in" in out and "reused" not in out
    assert victim.read_bytes() == good


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(ValueError, match="not a SynthVID dataset"):
        sv.generate(tmp_path, "smoke", seed=0, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert keep.read_text() == "mine"


def test_unknown_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="unknown SynthVID preset 'huge'"):
        sv.generate(tmp_path / "x", "huge")
    assert not (tmp_path / "x").exists()
    assert cli.main(["synth", "--out", str(tmp_path / "y"), "--preset", "huge"]) == 1
    assert "unknown SynthVID preset" in capsys.readouterr().err


def test_presets_are_plain_and_sane() -> None:
    assert set(sv.PRESETS) >= {"smoke", "report"}
    for p in sv.PRESETS.values():
        assert p.min_size >= 16 and p.width > p.height
        assert abs(sum(p.tier_probs) - 1) < 1e-9
    report = sv.PRESETS["report"]
    assert report.width * 9 == report.height * 16


def test_occlusion_marks_the_covered_object() -> None:
    import dataclasses

    import numpy as np

    p = sv.PRESETS["smoke"]
    rng = np.random.default_rng(0)
    # Two 'astronaut_tile' tracks (rounded rectangles), standing still, the front one
    # shifted by a quarter of the width: the back one is about 70 % covered.
    tile = [c.name for c in sv.CLASSES].index("astronaut_tile")
    base = sv._make_tracks(rng, p, 5, True, 2, tile, [0, 0])
    tracks = [dataclasses.replace(t, mask=base[0].mask, label=base[0].label,
                                  center=np.array([100.0 + 12 * k, 70.0]), size0=40.0,
                                  aspect=1.0, log_scale_rate=0.0, velocity=np.zeros(2),
                                  wobble_amp=np.zeros(2)) for k, t in enumerate(base)]
    canvas = Image.new("RGB", (p.width, p.height))
    _, boxes = sv._render_frame(rng, p, 0, tracks, [0, 1], canvas, np.zeros(2), np.zeros(2), 0.0)
    assert [(b.track_id, b.occluded) for b in boxes] == [(0, 1), (1, 0)]
    # Reversed z-order: now track 1 is behind.
    _, boxes = sv._render_frame(rng, p, 0, tracks, [1, 0], canvas, np.zeros(2), np.zeros(2), 0.0)
    assert [(b.track_id, b.occluded) for b in boxes] == [(0, 0), (1, 1)]


# --------------------------------------------------------------------------- true motion
def test_true_motion_moves_boxes_where_the_annotations_put_them(smoke: Path) -> None:
    """displacement() at a box centre = the annotated box's shift, for objects in full view."""
    from lsts_lib.data.motion_truth import displacement, load_motion

    checked, errors = 0, []
    videos = [v for split in ("train", "val") for v in VIDDataset(smoke, split=split).videos]
    for video in videos:
        motion = load_motion(smoke, video.name)
        assert len(motion) == len(video.frames)
        for t in range(len(video.frames) - 3):
            a, b = video.frames[t], video.frames[t + 3]
            for k, tid in enumerate(a.track_ids):
                (j,) = np.flatnonzero(b.track_ids == tid) if tid in b.track_ids else (None,)
                if j is None or a.occluded[k] or b.occluded[j]:
                    continue
                ba, bb = a.boxes[k], b.boxes[j]
                lo, hi = np.array([1, 1]), np.array([a.width - 2, a.height - 2])
                if not all((x[:2] > lo).all() and (x[2:] < hi).all() for x in (ba, bb)):
                    continue
                ca, cb = (ba[:2] + ba[2:]) / 2, (bb[:2] + bb[2:]) / 2
                shift, track = displacement(motion, t, t + 3, ca[None])
                assert track[0] == tid
                errors.append(float(np.abs(shift[0] - (cb - ca)).max()))
                checked += 1
    assert checked > 40
    # Box corners are whole pixels of a resampled mask: a pixel or two of slack.
    assert np.median(errors) < 1.0 and max(errors) < 3.0, (np.median(errors), max(errors))


def test_true_motion_of_the_background_is_the_camera_pan(smoke: Path) -> None:
    from lsts_lib.data.motion_truth import cell_centres, displacement, load_motion

    video = VIDDataset(smoke, split="val").videos[0]
    motion = load_motion(smoke, video.name)
    pts = cell_centres(motion.height, motion.width)
    shift, track = displacement(motion, 2, 7, pts)
    bg = track < 0
    assert bg.any()
    assert np.allclose(shift[bg], -5 * motion.pan)
    assert pts.shape == (9 * 16, 2) and pts[1, 0] - pts[0, 0] == 16


def test_true_motion_is_missing_for_datasets_without_it(tmp_path: Path) -> None:
    from lsts_lib.data.motion_truth import load_motion

    with pytest.raises(FileNotFoundError, match="regenerate"):
        load_motion(tmp_path, "val/ILSVRC2015_val_00000000")
