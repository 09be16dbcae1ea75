"""Bad detection files give an error naming the file and line, never a different mAP."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lsts_lib.data.types import ClassList, FrameAnnotation, Video
from lsts_lib.eval import (
    Detections,
    evaluate_vid,
    frame_ids,
    frame_sizes,
    read_coco_results,
    read_detections,
    read_vid_detections,
)

CLASSES = ClassList(names=("airplane", "bird"), ids=("n02691156", "n01503061"))
GOOD = "1 1 0.9 10 10 50 50"


def _frame() -> FrameAnnotation:
    return FrameAnnotation(
        image=Path("x.JPEG"),
        width=100,
        height=100,
        boxes=np.array([[10, 10, 50, 50]], np.float32),
        labels=np.array([1]),
        track_ids=np.array([0]),
        occluded=np.zeros(1, bool),
        generated=np.zeros(1, bool),
    )


# Two videos: frames 1..3 and 10..11 (a gap, as between videos of a sub-split).
VIDEOS = [Video("val/a", [_frame()] * 3, start_index=1), Video("val/b", [_frame()] * 2, 10)]


def read_lines(tmp_path, *lines: str) -> Detections:
    path = tmp_path / "dets.txt"
    path.write_text("".join(f"{x}\n" for x in lines))
    return read_vid_detections(path, CLASSES.num_classes, frame_ids(VIDEOS))


def test_good_file_reads(tmp_path):
    d = read_lines(tmp_path, GOOD, "", "11 2 0.1 0 0 5 5")
    assert len(d) == 2 and d.frame_ids.tolist() == [1, 11]
    assert read_lines(tmp_path, "03 01 0.9 10 10 50 50").frame_ids.tolist() == [3]


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("1 1 0.9 10 10 50", "expected 7 fields"),
        ("1 1 0.9 10 10 50 50 7", "expected 7 fields"),
        ("1.0 1 0.9 10 10 50 50", "must be integers"),
        ("1 bird 0.9 10 10 50 50", "must be integers"),
        ("1 1 high 10 10 50 50", "must be numbers"),
        ("1 1 0.9 10 10 50 5O", "must be numbers"),
        ("1 0 0.9 10 10 50 50", "class index 0 is outside 1..2"),
        ("1 3 0.9 10 10 50 50", "class index 3 is outside 1..2"),
        ("4 1 0.9 10 10 50 50", "frame index 4 is not a frame of the split"),
        ("0 1 0.9 10 10 50 50", "frame index 0 is not a frame of the split"),
        ("1 1 nan 10 10 50 50", "not a finite number"),
        ("1 1 inf 10 10 50 50", "not a finite number"),
        ("1 1 0.9 10 10 nan 50", "non-finite coordinate"),
        ("1 1 0.9 50 10 10 50", "x2 < x1"),
        ("1 1 0.9 10 50 50 10", "y2 < y1"),
        # int()/float() read these as 1, 10, 10.0 and 0.9: strict ASCII decimal only.
        ("\u0661 1 0.9 10 10 50 50", "must be integers"),
        ("1_0 1 0.9 10 10 50 50", "must be integers"),
        ("1 1 0.9 1_0 10 50 50", "must be numbers"),
        ("1 1 \u0660.\u0669 10 10 50 50", "must be numbers"),
        # a sign is not a digit; leading zeros ('03') are read as the number (harmless)
        ("+3 1 0.9 10 10 50 50", "integers of ASCII digits"),
        ("1 +1 0.9 10 10 50 50", "integers of ASCII digits"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, bad, what):
    with pytest.raises(ValueError) as exc:
        read_lines(tmp_path, GOOD, GOOD, bad)
    msg = str(exc.value)
    assert "dets.txt:3:" in msg and what in msg


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        read_vid_detections(tmp_path / "nothere.txt", 2)


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": float("nan")}, "finite"),
        ({"image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5], "score": 0.5}, "class index 9"),
        ({"image_id": 5, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}, "frame index 5"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -5, 5], "score": 0.5}, "x2 < x1"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5], "score": 0.5}, "4 numbers"),
        ({"image_id": "1", "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}, "integers"),
        # JSON true is a Python bool, which isinstance(.., int) accepts as 1.
        ({"image_id": True, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}, "integers"),
        ({"image_id": 1, "category_id": True, "bbox": [0, 0, 5, 5], "score": 0.5}, "integers"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": True}, "a number"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, True, 5], "score": 0.5}, "4 numbers"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}, "needs image_id"),
    ],
)
def test_bad_coco_entry_names_file_and_entry(tmp_path, entry, what):
    path = tmp_path / "dets.json"
    good = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}
    path.write_text(json.dumps([good, entry]))
    with pytest.raises(ValueError) as exc:
        read_coco_results(path, CLASSES.num_classes, frame_ids(VIDEOS))
    assert "dets.json: entry 1" in str(exc.value) and what in str(exc.value)


def test_coco_file_must_be_a_json_list(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text('{"image_id": 1}')
    with pytest.raises(ValueError, match="JSON list"):
        read_detections(path, 2)
    path.write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_detections(path, 2)


def test_evaluator_rejects_detections_outside_the_split():
    # A Detections object that bypassed the file reader: caught by the evaluator too.
    d = Detections([7], [1], [0.9], [[10, 10, 50, 50]])
    with pytest.raises(ValueError, match="not frames of the split"):
        evaluate_vid(CLASSES, VIDEOS, d)
    with pytest.raises(ValueError, match="class index 3"):
        evaluate_vid(CLASSES, VIDEOS, Detections([1], [3], [0.9], [[10, 10, 50, 50]]))
    with pytest.raises(ValueError, match="not a finite number"):
        evaluate_vid(CLASSES, VIDEOS, Detections([1], [1], [np.nan], [[10, 10, 50, 50]]))


def test_overlapping_start_indices_are_rejected():
    videos = [Video("val/a", [_frame()] * 3, start_index=1), Video("val/b", [_frame()], 3)]
    with pytest.raises(ValueError, match="overlaps"):
        evaluate_vid(CLASSES, videos, Detections.empty())


def test_cli_reports_the_bad_line_and_exits_1(tmp_path, monkeypatch, capsys):
    class FakeVID:
        def __init__(self, root, split="val"):
            self.classes, self.videos = CLASSES, VIDEOS

    module = types.ModuleType("lsts_lib.data.vid")
    module.VIDDataset = FakeVID
    module.EVAL_SPLITS = ("val", "test")
    monkeypatch.setitem(sys.modules, "lsts_lib.data.vid", module)
    from lsts_lib.cli import main

    det = tmp_path / "dets.txt"
    det.write_text(f"{GOOD}\n1 1 nan 10 10 50 50\n")
    out = tmp_path / "res.json"
    rc = main(["evaluate", "--data", str(tmp_path / "ds"), "--detections", str(det),
               "--json", str(out)])
    assert rc == 1
    assert "dets.txt:2:" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("score", "box", "label"),
    [
        (np.nan, [10, 10, 50, 50], 1),
        (0.5, [10, 10, np.inf, 50], 1),
        (0.5, [50, 10, 10, 50], 1),
        (0.5, [10, 10, 50, 50], 0),
    ],
)
def test_writers_refuse_what_the_reader_would_reject(tmp_path, score, box, label):
    from lsts_lib.eval import write_coco_results, write_vid_detections

    d = Detections([1, 1], [1, label], [0.9, score], [[10, 10, 50, 50], box])
    for write, name in ((write_vid_detections, "d.txt"), (write_coco_results, "d.json")):
        with pytest.raises(ValueError, match="refusing to write 1 invalid"):
            write(tmp_path / name, d)
        assert not (tmp_path / name).exists()


def test_cli_refuses_a_split_without_devkit_frame_ids(tmp_path, capsys):
    from lsts_lib.cli import main

    det = tmp_path / "dets.txt"
    det.write_text(f"{GOOD}\n")
    args = ["evaluate", "--data", str(tmp_path), "--split", "train", "--detections", str(det)]
    assert main(args) == 1
    assert "evaluates val or test only" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("box", "ok"),
    [
        ((10, 10, 50, 50), True),
        ((-1, -1, 101, 101), True),  # the image [0, 100] passed by the 1 px tolerance
        ((-1.5, 10, 50, 50), False),
        ((10, -2, 50, 50), False),
        ((10, 10, 101.5, 50), False),
        ((10, 10, 50, 150), False),
    ],
)
def test_detections_outside_the_annotated_image_are_refused(tmp_path, box, ok):
    sizes = frame_sizes(VIDEOS)  # every frame 100x100
    line = "1 1 0.9 " + " ".join(map(str, box))
    x1, y1, x2, y2 = box
    entry = {"image_id": 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.9}
    (tmp_path / "d.txt").write_text(f"{GOOD}\n{line}\n")
    (tmp_path / "d.json").write_text(json.dumps([entry]))
    d = Detections([1], [1], [0.9], [box])
    checks = [
        (lambda: read_detections(tmp_path / "d.txt", 2, frame_sizes=sizes), "d.txt:2: "),
        (lambda: read_detections(tmp_path / "d.json", 2, frame_sizes=sizes), "entry 0: "),
        (lambda: evaluate_vid(CLASSES, VIDEOS, d), "detection 0: "),
    ]
    for run, where in checks:
        if ok:
            run()
        else:
            with pytest.raises(ValueError, match=f"{where}box .* outside the 100x100 image"):
                run()


def test_cli_refuses_detections_made_on_images_resized_x2(tiny_vid, tmp_path, capsys):
    from lsts_lib.cli import main
    from lsts_lib.data.vid import VIDDataset

    ds = VIDDataset(tiny_vid, split="val")
    fr = ds.frame(0, 0)
    det = tmp_path / "dets.txt"
    det.write_text("".join(f"1 {lab} 0.9 " + " ".join(str(2 * c) for c in b) + "\n"
                           for b, lab in zip(fr.boxes, fr.labels, strict=True)))
    assert main(["evaluate", "--data", str(tiny_vid), "--detections", str(det)]) == 1
    assert "dets.txt:1: box (4.0 10.0 44.0 50.0) lies outside the 64x48 image" in (
        capsys.readouterr().err)


def test_cli_refuses_json_output_onto_the_detections_file(tiny_vid, tmp_path, capsys):
    from lsts_lib.cli import main

    det = tmp_path / "dets.json"
    det.write_text("[]")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.json").symlink_to(det)
    for same in (det, tmp_path / "sub" / ".." / "dets.json", tmp_path / "link.json"):
        args = ["evaluate", "--data", str(tiny_vid), "--detections", str(det), "--json", str(same)]
        assert main(args) == 1
        assert f"--json {same}: is the detections file" in capsys.readouterr().err
        assert det.read_text() == "[]"


def test_deeply_nested_coco_json_is_a_one_line_error(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"dets.json: not COCO results \(JSON nested too deeply"):
        read_detections(path, 2)


@pytest.mark.parametrize("suffix", [".txt", ".json"])
def test_detections_file_that_is_not_utf8_names_the_file(tmp_path, suffix):
    path = tmp_path / f"dets{suffix}"
    path.write_bytes(f"{GOOD}\n".encode() + b"1 1 0.9 10 10 50 50 \xff\n")
    with pytest.raises(ValueError, match=rf"dets\{suffix}(:2)?: not (UTF-8 text|valid JSON)"):
        read_detections(path, 2)


def test_error_quotes_at_most_200_characters_of_a_huge_line(tmp_path):
    path = tmp_path / "dets.txt"
    path.write_text(f"{GOOD}\n1 1 0.9 10 10 50 {'5' * 1_000_000}x\n")
    with pytest.raises(ValueError) as exc:
        read_vid_detections(path, 2)
    msg = str(exc.value)
    assert "dets.txt:2: score and box must be numbers: '1 1 0.9 10 10 50 555" in msg
    assert len(msg) < len(str(path)) + 300 and "(1,000,018 characters)" in msg


def test_text_artefacts_are_written_atomically_and_name_the_file(tmp_path, monkeypatch):
    """A full disk leaves neither a 0-byte temp nor a clobbered user 'X.tmp'; the error
    names the target file."""
    import errno
    import os

    from lsts_lib import atomic
    from lsts_lib.eval import write_coco_results, write_vid_detections

    d = Detections([1], [1], [0.9], [[10, 10, 50, 50]])
    for write, name in ((write_vid_detections, "d.txt"), (write_coco_results, "d.json")):
        own = tmp_path / f"{name}.tmp"
        own.write_text("the user's own file")
        write(tmp_path / name, d)  # a good write leaves the user's X.tmp alone
        assert own.read_text() == "the user's own file"

        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(atomic.os, "fsync", full)
        with pytest.raises(OSError) as exc:
            write(tmp_path / "new" / name, d)
        monkeypatch.undo()
        assert str(tmp_path / "new" / name) in str(exc.value)
        assert "No space left" in str(exc.value)
        assert list((tmp_path / "new").iterdir()) == []
        assert own.read_text() == "the user's own file"


def test_cli_json_onto_a_folder_is_one_line_and_leaves_no_temp(tiny_vid, tmp_path, capsys):
    from lsts_lib.cli import main

    det = tmp_path / "dets.txt"
    det.write_text("1 1 0.9 10 10 20 20\n")
    folder = tmp_path / "results"
    folder.mkdir()
    args = ["evaluate", "--data", str(tiny_vid), "--detections", str(det), "--json", str(folder),
            "--no-coco"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{folder}" in err and "is a folder" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dets.txt", "ds", "results"]


@pytest.mark.parametrize("command", ["evaluate", "data-stats"])
def test_cli_json_refuses_the_dataset_and_files_that_are_not_its_json(
        tiny_vid, tmp_path, capsys, command):
    from lsts_lib.cli import main

    det = tmp_path / "dets.txt"
    det.write_text("1 1 0.9 10 10 20 20\n")
    args = ["data-stats", "--data", str(tiny_vid)] if command == "data-stats" else [
        "evaluate", "--data", str(tiny_vid), "--detections", str(det), "--no-coco"]
    classes = tiny_vid / "classes.txt"
    before = classes.read_text()
    for inside in (classes, tiny_vid / "new.json", tiny_vid / "Data" / ".." / "x.json"):
        assert main([*args, "--json", str(inside)]) == 1
        assert "inside the --data folder" in capsys.readouterr().err
    assert classes.read_text() == before and not (tiny_vid / "new.json").exists()
    assert not (tiny_vid / "x.json").exists()
    mine = tmp_path / "thesis.tex"
    for text in ("\\documentclass{article}\n", "[1, 2]\n", ""):
        mine.write_text(text)
        assert main([*args, "--json", str(mine)]) == 1
        assert "not a JSON object written by this tool" in capsys.readouterr().err
        assert mine.read_text() == text
    ours = tmp_path / "results.json"
    assert main([*args, "--json", str(ours)]) == 0
    assert main([*args, "--json", str(ours)]) == 0  # its own earlier results: rewritten
    assert isinstance(json.loads(ours.read_text()), dict)


@pytest.mark.parametrize("suffix", [".txt", ".json"])
def test_zero_byte_detections_file_is_refused_in_either_format(tmp_path, suffix):
    path = tmp_path / f"dets{suffix}"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"dets\.(txt|json): is empty \(0 bytes\)"):
        read_detections(path, 2)
    path.write_text("[]" if suffix == ".json" else "\n")  # explicitly no detections: read
    assert len(read_detections(path, 2)) == 0
    from lsts_lib.eval import write_coco_results, write_vid_detections

    write = write_coco_results if suffix == ".json" else write_vid_detections
    write(path, Detections.empty())  # the writers' empty result is read back, not refused
    assert len(read_detections(path, 2)) == 0
