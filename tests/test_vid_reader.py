"""The VID reader on tiny VID-layout fixtures, on the real ImageNet VID files, and on SynthVID."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import torch
from conftest import moving_track, needs_shared

import lsts_lib.paths
from lsts_lib.cli import main as cli_main
from lsts_lib.data import (
    MOTION_RANGES,
    VID_CLASSES,
    DatasetError,
    DETDataset,
    VIDDataset,
    compute_motion_iou,
    load_class_list,
    load_image,
    motion_category,
    read_split_file,
)
from lsts_lib.data.stats import dataset_stats
from lsts_lib.data.types import FrameAnnotation, Video

REAL = lsts_lib.paths.SHARED_VID
REAL_SETS = REAL / "ImageSets"
REAL_SNIPPET = REAL / "Data" / "VID" / "snippets" / "ILSVRC2015_val_00007010"


# ------------------------------------------------------------------------ classes
def test_vid_classes_label_order():
    assert VID_CLASSES.num_classes == 30
    assert VID_CLASSES.names[0] == "airplane" and VID_CLASSES.ids[0] == "n02691156"
    assert VID_CLASSES.names[-1] == "zebra" and VID_CLASSES.ids[-1] == "n02391049"
    assert VID_CLASSES.label_of("n04530566") == 28  # watercraft
    assert VID_CLASSES.names[VID_CLASSES.label_of("n02129604") - 1] == "tiger"


def test_class_list_from_root(tiny_vid, tmp_path):
    classes = load_class_list(tiny_vid)
    assert classes.ids == ("c1", "c2") and classes.names == ("circle", "square")
    assert load_class_list(tmp_path) is VID_CLASSES  # no classes.txt -> the 30 synsets


# ------------------------------------------------------------------------ tiny layout
def test_train_split(tiny_vid):
    ds = VIDDataset(tiny_vid, "train")
    assert [v.name for v in ds.videos] == ["train/T_0000/a", "train/T_0000/b"]
    assert [len(v) for v in ds.videos] == [6, 4]
    assert ds.num_frames == 10
    assert ds.samples == [(0, 0), (0, 3), (1, 2)]
    f = ds.frame(0, 3)
    assert f.image.name == "000003.JPEG" and f.image.parent.name == "a"
    assert f.boxes.dtype == np.float32 and f.boxes.shape == (1, 4)
    np.testing.assert_allclose(f.boxes[0], [5, 5, 25, 25])
    assert f.labels.tolist() == [1] and f.track_ids.tolist() == [0]
    assert ds.frame(1, 3).boxes.shape == (0, 4)  # a frame with no object
    assert ds[2] is ds.frame(1, 2)


def test_val_split_start_index_and_all_frames(tiny_vid):
    ds = VIDDataset(tiny_vid, "val")
    assert [v.start_index for v in ds.videos] == [1, 6]
    assert len(ds.samples) == 8 and ds.samples[5] == (1, 0)
    f = ds.frame(0, 4)
    assert f.labels.tolist() == [1, 2] and f.width == 64 and f.height == 48
    assert not f.occluded.any() and not f.generated.any()


def test_max_videos(tiny_vid):
    ds = VIDDataset(tiny_vid, "train", max_videos=1)
    assert len(ds.videos) == 1 and ds.samples == [(0, 0), (0, 3)]


def test_lazy_equals_eager(tiny_vid):
    eager = VIDDataset(tiny_vid, "val", lazy=False)
    lazy = VIDDataset(tiny_vid, "val", lazy=True)
    assert lazy._loaded == [False, False]  # nothing parsed yet
    assert lazy.num_frames == eager.num_frames and lazy.samples == eager.samples
    np.testing.assert_array_equal(lazy.frame(0, 2).boxes, eager.frame(0, 2).boxes)
    assert lazy._loaded == [True, False]
    assert [len(v) for v in lazy.videos] == [5, 3]
    np.testing.assert_allclose(lazy.frame(0, 1).motion_iou, eager.frame(0, 1).motion_iou)


def test_motion_iou_filled_on_load(tiny_vid):
    ds = VIDDataset(tiny_vid, "train")
    # 20x20 box (21 px with +1) moving 1 px/frame: IoU with a neighbour d frames away
    # is (21-d)/(21+d); frame 0 has neighbours 1..5.
    expect = np.mean([(21 - d) / (21 + d) for d in range(1, 6)])
    assert ds.frame(0, 0).motion_iou[0] == pytest.approx(expect, rel=1e-5)
    assert ds.frame(1, 0).motion_iou[0] == pytest.approx(1.0)  # static object


def test_det_dataset_skips_unknown_classes(tiny_vid):
    with pytest.warns(UserWarning, match="1 images without a known object skipped"):
        det = DETDataset(tiny_vid)
    assert len(det) == 1 and det.skipped == 1
    assert det.issues["objects of other classes dropped"] == 2
    assert det[0].labels.tolist() == [1] and det[0].image.name == "d0.JPEG"


def test_load_image_range(tiny_vid):
    img = load_image(tiny_vid / "Data" / "VID" / "val" / "v0" / "000000.JPEG")
    assert img.dtype == torch.float32 and img.shape == (3, 48, 64)
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05


# ------------------------------------------------------------------------ motion IoU
def _video(tracks_per_frame) -> Video:
    frames = []
    for objs in tracks_per_frame:
        boxes = np.array([b for _, _, b in objs], dtype=np.float32).reshape(-1, 4)
        n = len(objs)
        frames.append(
            FrameAnnotation(
                image=lsts_lib.paths.REPO,
                width=200,
                height=200,
                boxes=boxes,
                labels=np.ones(n, np.int64),
                track_ids=np.array([t for t, _, _ in objs], np.int64),
                occluded=np.zeros(n, bool),
                generated=np.zeros(n, bool),
            )
        )
    return Video(name="val/x", frames=frames)


def test_motion_iou_window_and_single_frame_objects():
    # 30 frames, object 0 moves 2 px/frame; object 7 appears in frame 0 only.
    frames = moving_track(30, 2.0)
    frames[0] = frames[0] + [(7, "c1", (100.0, 100.0, 120.0, 120.0))]
    video = _video(frames)
    compute_motion_iou([video], window=10)
    iou = lambda d: (21 - 2 * d) / (21 + 2 * d)  # noqa: E731
    # frame 15 sees neighbours 5..25 (20 of them), frame 0 sees 1..10
    assert video.frames[15].motion_iou[0] == pytest.approx(
        np.mean([iou(d) for d in list(range(1, 11)) * 2]), rel=1e-5
    )
    assert video.frames[0].motion_iou[0] == pytest.approx(np.mean([iou(d) for d in range(1, 11)]))
    assert video.frames[0].motion_iou[1] == 0.0  # no neighbour -> counted as fast (FGFA)
    compute_motion_iou([video], window=1)
    assert video.frames[15].motion_iou[0] == pytest.approx(iou(1), rel=1e-5)


def test_motion_categories():
    assert MOTION_RANGES["fast"] == (0.0, 0.7) and MOTION_RANGES["slow"] == (0.9, 1.0)
    assert [motion_category(x) for x in (0.0, 0.69, 0.7, 0.9, 0.91, 1.0)] == [
        "fast", "fast", "medium", "medium", "slow", "slow",
    ]


# ------------------------------------------------------------------------ stats + CLI
def test_dataset_stats_keys_and_values(tiny_vid):
    s = dataset_stats(VIDDataset(tiny_vid, "val"))
    assert s["videos"] == 2 and s["frames"] == 8 and s["objects"] == 10
    assert s["frames_without_objects"] == 3
    assert s["objects_per_class"] == {"circle": 5, "square": 5}
    assert sum(s["motion_mix"].values()) == pytest.approx(1.0)
    assert s["motion_mix"]["slow"] == pytest.approx(0.5)  # the static square
    assert set(s["box_size_mix"]) == {"small", "medium", "large"}


def test_data_stats_cli_json(tiny_vid, tmp_path, capsys):
    out = tmp_path / "stats.json"
    rc = cli_main(["data-stats", "--data", str(tiny_vid), "--split", "train", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["videos"] == 2 and data["frames"] == 10 and data["samples"] == 3
    assert data == dataset_stats(VIDDataset(tiny_vid, "train"))
    assert "motion mix" in capsys.readouterr().out


def test_data_stats_cli_missing_root(tmp_path, capsys):
    rc = cli_main(["data-stats", "--data", str(tmp_path / "nope"), "--split", "val"])
    err = capsys.readouterr().err
    assert rc == 1 and "does not exist" in err and "nope" in err


# ------------------------------------------------------------------------ real files
@cache
def _real(kind: str):
    name = {"vid_train": "VID_train_15frames.txt", "vid_val": "VID_val_videos.txt",
            "det_train": "DET_train_30classes.txt"}[kind]
    return read_split_file(REAL_SETS / name, kind)


@needs_shared
def test_real_split_line_counts():
    assert len(_real("vid_train")) == 57_834
    assert len(_real("vid_val")) == 555
    det = _real("det_train")
    # 53,638 newline characters: the last of its 53,639 lines has no trailing newline.
    assert (REAL_SETS / "DET_train_30classes.txt").read_bytes().count(b"\n") == 53_638
    assert len(det) == 53_639


@needs_shared
def test_real_split_first_lines():
    tr = _real("vid_train")
    assert tr[0].video == "train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
    assert (tr[0].flag, tr[0].frame, tr[0].num_frames) == (1, 10, 300)
    assert len({t.video for t in tr}) == 3862
    assert max(sum(1 for t in tr if t.video == v) for v in {t.video for t in tr[:500]}) <= 15
    val = _real("vid_val")
    assert (val[1].video, val[1].start_index, val[1].first_frame, val[1].num_frames) == (
        "val/ILSVRC2015_val_00000001", 465, 0, 464,
    )
    det = _real("det_train")
    assert det[0].image == "train/ILSVRC2014_train_0000/ILSVRC2014_train_00000663"
    assert det[0].flag == 1


@needs_shared
def test_real_val_start_indices_cumulative():
    val = _real("vid_val")
    assert val[0].start_index == 1
    for a, b in zip(val, val[1:], strict=False):
        assert b.start_index == a.start_index + a.num_frames
    assert sum(v.num_frames for v in val) == 176_126
    snippet = {v.video: v for v in val}["val/ILSVRC2015_val_00007010"]
    assert snippet.num_frames == 144 == len(list(REAL_SNIPPET.glob("*.JPEG")))


@needs_shared
def test_real_jpeg_decode():
    img = load_image(REAL_SNIPPET / "000000.JPEG")
    assert img.shape == (3, 720, 1280) and img.dtype == torch.float32
    assert 0.0 <= float(img.min()) < float(img.max()) <= 1.0
    last = load_image(REAL_SNIPPET / "000143.JPEG")
    assert last.shape == img.shape and not torch.equal(last, img)


# ------------------------------------------------------------------------ SynthVID
def _synth_smoke():
    root = lsts_lib.paths.synthvid_root("smoke")
    if not (root / "ImageSets" / "VID_val_videos.txt").exists():
        pytest.skip(f"SynthVID smoke data not generated at {root} (run `lsts synth`)")
    return root


def test_synthvid_smoke_reads():
    root = _synth_smoke()
    classes = load_class_list(root)
    assert classes is not VID_CLASSES and classes.num_classes >= 2
    for split in ("train", "val"):
        ds = VIDDataset(root, split)
        assert len(ds.videos) > 0 and len(ds.samples) > 0
        labels = np.concatenate([f.labels for v in ds.videos for f in v.frames])
        assert labels.min() >= 1 and labels.max() <= classes.num_classes
        for v in ds.videos:
            for f in v.frames:
                assert f.motion_iou is not None and len(f.motion_iou) == len(f.labels)
                assert (f.boxes[:, 2] >= f.boxes[:, 0]).all()
                assert (f.boxes[:, 2] <= f.width - 1).all() and (f.boxes[:, 3] <= f.height - 1).all()
        first = ds.frame(*ds.samples[0])
        img = load_image(first.image)
        assert img.shape == (3, first.height, first.width)


# ------------------------------------------------------------------------ data_prep check
def _check_script():
    import importlib.util

    path = lsts_lib.paths.REPO / "data_prep" / "check_imagenet_vid.py"
    spec = importlib.util.spec_from_file_location("check_imagenet_vid", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_imagenet_vid_script(tiny_vid, tmp_path, capsys):
    check = _check_script()
    out = tmp_path / "check.json"
    assert check.main(["--root", str(tiny_vid), "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["vid_val"]["objects_per_class"] == {"circle": 5, "square": 5}
    assert summary["det_train"]["images_without_known_object"] == 1
    (tiny_vid / "Data" / "VID" / "train" / "T_0000" / "a" / "000004.JPEG").unlink()
    assert check.main(["--root", str(tiny_vid), "--limit", "1"]) == 1
    assert "missing image" in capsys.readouterr().err


@needs_shared
def test_real_train_list_loads_lazily(tmp_path):
    # The real split files without the 1.1M annotation files: construction must not open
    # any XML; the first access to a snippet does, and names what is missing.
    root = tmp_path / "ILSVRC2015"
    root.mkdir()
    (root / "ImageSets").symlink_to(REAL_SETS, target_is_directory=True)
    ds = VIDDataset(root, "train")
    assert ds.lazy and len(ds.videos) == 3862 and len(ds.samples) == 57_834
    assert ds.num_frames == 1_122_397 and ds.classes is VID_CLASSES
    assert ds.samples[0] == (0, 10)
    with pytest.raises(DatasetError, match="empty snippet train/ILSVRC2015_VID_train_0000/"):
        ds.frame(0, 10)
    val = VIDDataset(root, "val", max_videos=3, lazy=True)
    assert val.num_frames == len(val.samples) == 3 * 464 and val.samples[464] == (1, 0)


def test_train_frames_have_unique_ids(tiny_vid):
    """Train snippets have no devkit ids: the reader numbers their frames consecutively, so
    videos do not share ids (lsts detect --split train keys detections on them)."""
    from lsts_lib.eval.detections_io import frame_ids, frame_locations

    ds = VIDDataset(tiny_vid, "train")
    assert [v.start_index for v in ds.videos] == [1, 7]
    assert frame_ids(ds.videos) == list(range(1, 11))
    assert len(frame_locations(ds.videos)) == 10  # raises on overlapping ids


def test_det_progress_bar_only_for_a_long_list_and_when_asked(tiny_vid, monkeypatch):
    import lsts_lib.data.vid as vid

    seen: list[bool] = []

    def fake_tqdm(items, **kw):
        seen.append(kw["disable"])
        return items

    monkeypatch.setattr(vid, "tqdm", fake_tqdm)
    real = vid.read_split_file
    monkeypatch.setattr(vid, "read_split_file", lambda *a: real(*a) * 300)  # 600 lines
    with pytest.warns(UserWarning):
        DETDataset(tiny_vid)
        DETDataset(tiny_vid, progress=False)
        DETDataset(tiny_vid, max_images=2)
    assert seen == [False, True, True]
