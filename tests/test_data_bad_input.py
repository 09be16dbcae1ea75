"""Every kind of bad dataset input gets a clear error naming the file, or a counted skip."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import frame_xml, moving_track

from lsts_lib.data import (
    DatasetError,
    DETDataset,
    VIDDataset,
    load_class_list,
    load_image,
    parse_annotation,
    read_split_file,
)
from lsts_lib.data.vid import BOX_TOLERANCE_PX

CLASSES_TXT = [("c1", "circle"), ("c2", "square")]


def _val_snippet(lay, frames, name="val/v0"):
    """A val split with one snippet; returns its annotation folder."""
    lay.write_classes(CLASSES_TXT)
    ann_dir = lay.add_snippet(name, frames)
    lay.write_split("VID_val_videos.txt", [f"{name} 1 0 {len(frames)}"])
    return ann_dir


def _rewrite(xml_path, text):
    xml_path.write_text(text)
    return xml_path


def test_missing_dataset_path(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "absent"))):
        VIDDataset(tmp_path / "absent", "val")
    with pytest.raises(DatasetError, match="does not exist"):
        DETDataset(tmp_path / "absent")


def test_missing_split_file(vid_layout):
    vid_layout.write_classes(CLASSES_TXT)
    with pytest.raises(DatasetError, match="VID_val_videos.txt"):
        VIDDataset(vid_layout.root, "val")


def test_malformed_xml(vid_layout):
    ann = _val_snippet(vid_layout, moving_track(3, 1.0))
    bad = _rewrite(ann / "000001.xml", "<annotation><size><width>64</width>")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(bad))}: malformed XML"):
        VIDDataset(vid_layout.root, "val")


def test_xml_entity_expansion_refused(vid_layout):
    ann = _val_snippet(vid_layout, moving_track(2, 1.0))
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        "<annotation><folder>&lol2;</folder><size><width>64</width><height>48</height>"
        "</size></annotation>"
    )
    bad = _rewrite(ann / "000000.xml", bomb)
    with pytest.raises(DatasetError, match=rf"{re.escape(str(bad))}: refused unsafe XML"):
        VIDDataset(vid_layout.root, "val")


def test_unknown_synset_is_an_error_or_a_counted_drop(vid_layout):
    frames = moving_track(3, 1.0)
    frames[1] = frames[1] + [(5, "n99999999", (1, 1, 10, 10))]
    ann = _val_snippet(vid_layout, frames)
    with pytest.raises(DatasetError, match=rf"{re.escape(str(ann / '000001.xml'))}.*'n99999999'"):
        VIDDataset(vid_layout.root, "val")
    with pytest.warns(UserWarning, match="1 objects of unknown class dropped"):
        ds = VIDDataset(vid_layout.root, "val", strict=False)
    assert ds.issues["objects of unknown class dropped"] == 1
    assert len(ds.frame(0, 1).labels) == 1


def test_box_with_xmin_greater_than_xmax(vid_layout):
    frames = moving_track(3, 1.0)
    frames[2] = [(0, "c1", (30, 5, 10, 25))]
    ann = _val_snippet(vid_layout, frames)
    with pytest.raises(DatasetError, match=rf"{re.escape(str(ann / '000002.xml'))}.*xmin > xmax"):
        VIDDataset(vid_layout.root, "val")
    with pytest.raises(DatasetError, match="xmin > xmax"):  # not even tolerated non-strict
        VIDDataset(vid_layout.root, "val", strict=False)


def test_box_outside_image(vid_layout):
    frames = moving_track(3, 1.0)
    frames[0] = [(0, "c1", (2, 5, 90, 25))]  # image is 64 px wide
    ann = _val_snippet(vid_layout, frames)
    with pytest.raises(DatasetError, match=rf"{re.escape(str(ann / '000000.xml'))}.*outside"):
        VIDDataset(vid_layout.root, "val")


def test_box_on_the_border_is_clipped_and_counted(vid_layout):
    w, h = vid_layout.width, vid_layout.height
    frames = moving_track(3, 1.0)
    frames[0] = [(0, "c1", (-1, 5, w, h - 1 + BOX_TOLERANCE_PX))]  # one pixel past, as real VID has
    _val_snippet(vid_layout, frames)
    with pytest.warns(UserWarning, match="1 boxes clipped"):
        ds = VIDDataset(vid_layout.root, "val")
    np.testing.assert_array_equal(ds.frame(0, 0).boxes[0], [0, 5, w - 1, h - 1])
    assert ds.issues["boxes clipped to the image"] == 1


def test_non_numeric_box(vid_layout):
    ann = _val_snippet(vid_layout, moving_track(2, 1.0))
    text = (ann / "000001.xml").read_text().replace("<xmin>3</xmin>", "<xmin>abc</xmin>")
    _rewrite(ann / "000001.xml", text)
    with pytest.raises(DatasetError, match=r"000001\.xml: <xmin> is not a number"):
        VIDDataset(vid_layout.root, "val")


def test_missing_jpeg(vid_layout):
    ann = _val_snippet(vid_layout, moving_track(3, 1.0))
    img = vid_layout.root / "Data" / "VID" / "val" / "v0" / "000002.JPEG"
    img.unlink()
    with pytest.raises(DatasetError, match=rf"image not found: {re.escape(str(img))}"):
        VIDDataset(vid_layout.root, "val", check_images=True)
    with pytest.raises(DatasetError, match=rf"image not found: {re.escape(str(img))}"):
        load_image(img)
    assert ann.exists()


def test_snippet_without_any_image_fails_even_unchecked(vid_layout):
    _val_snippet(vid_layout, moving_track(2, 1.0))
    for p in (vid_layout.root / "Data" / "VID" / "val" / "v0").glob("*.JPEG"):
        p.unlink()
    with pytest.raises(DatasetError, match="image not found"):
        VIDDataset(vid_layout.root, "val")


def test_corrupt_jpeg(vid_layout):
    _val_snippet(vid_layout, moving_track(3, 1.0))
    img = vid_layout.root / "Data" / "VID" / "val" / "v0" / "000001.JPEG"
    img.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(DatasetError, match=rf"corrupt image {re.escape(str(img))}"):
        VIDDataset(vid_layout.root, "val", check_images=True)
    with pytest.raises(DatasetError, match=rf"corrupt image {re.escape(str(img))}"):
        load_image(img)


def test_jpeg_size_differs_from_annotation(vid_layout):
    ann = _val_snippet(vid_layout, moving_track(2, 1.0))
    text = (ann / "000000.xml").read_text().replace("<width>64</width>", "<width>640</width>")
    _rewrite(ann / "000000.xml", text)
    with pytest.raises(DatasetError, match="is 64x48 but its annotation says 640x48"):
        VIDDataset(vid_layout.root, "val", check_images=True)


def test_empty_snippet_folder(vid_layout):
    ann = _val_snippet(vid_layout, moving_track(2, 1.0))
    for p in ann.glob("*.xml"):
        p.unlink()
    with pytest.raises(DatasetError, match=r"empty snippet val/v0"):
        VIDDataset(vid_layout.root, "val")


def test_empty_snippet_in_split_file(vid_layout):
    path = vid_layout.write_split("VID_val_videos.txt", ["val/v0 1 0 3", "val/v1 4 0 0"])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}:2: empty snippet val/v1"):
        read_split_file(path, "vid_val")


def test_snippet_frame_count_mismatch(vid_layout):
    _val_snippet(vid_layout, moving_track(3, 1.0))
    vid_layout.write_split("VID_val_videos.txt", ["val/v0 1 0 5"])
    with pytest.raises(DatasetError, match="lists 5 frames but .* holds 3"):
        VIDDataset(vid_layout.root, "val")


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        ("vid_train", "train/a/b 1 10"),  # 3 fields instead of 4
        ("vid_train", "train/a/b 1 x 300"),  # not an integer
        ("vid_train", "train/a/b 1 300 300"),  # frame index past the end
        ("vid_val", "val/v 1 0 5 9"),  # 5 fields
        ("vid_val", "val/v 0 0 5"),  # start index is 1-based
        ("det_train", "train/a/img"),  # 1 field
        ("det_train", "../etc/passwd 1"),  # escapes the dataset folder
    ],
)
def test_split_line_of_wrong_shape(vid_layout, kind, line):
    good = {"vid_train": "train/a/b 1 0 300", "vid_val": "val/v 1 0 5", "det_train": "train/a/c 1"}
    path = vid_layout.write_split("split.txt", [good[kind], line])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(path))}:2: "):
        read_split_file(path, kind)


def test_inconsistent_train_frame_counts(vid_layout):
    vid_layout.write_classes(CLASSES_TXT)
    vid_layout.add_snippet("train/a", moving_track(3, 1.0))
    vid_layout.write_split("VID_train_15frames.txt", ["train/a 1 0 3", "train/a 1 1 4"])
    with pytest.raises(DatasetError, match="listed with 3 and 4 frames"):
        VIDDataset(vid_layout.root, "train")


def test_bad_classes_file(vid_layout):
    vid_layout.root.mkdir(parents=True)
    (vid_layout.root / "classes.txt").write_text("c1 circle\nc2\n")
    with pytest.raises(DatasetError, match=r"classes\.txt:2"):
        load_class_list(vid_layout.root)
    (vid_layout.root / "classes.txt").write_text("c1 circle\nc1 again\n")
    with pytest.raises(DatasetError, match="duplicate"):
        load_class_list(vid_layout.root)


def test_missing_annotation_file(tmp_path):
    from lsts_lib.data import VID_CLASSES

    with pytest.raises(DatasetError, match="annotation not found"):
        parse_annotation(tmp_path / "x.xml", VID_CLASSES, tmp_path / "x.JPEG")


def test_missing_size(tmp_path):
    from lsts_lib.data import VID_CLASSES

    xml = tmp_path / "x.xml"
    xml.write_text(frame_xml("f", "x", 10, 10, []).replace("<size>", "<sz>").replace("</size>", "</sz>"))
    with pytest.raises(DatasetError, match=r"x\.xml: missing <size>"):
        parse_annotation(xml, VID_CLASSES, tmp_path / "x.JPEG")


def test_det_missing_annotation(vid_layout):
    vid_layout.write_classes(CLASSES_TXT)
    vid_layout.add_det_image("train/D/d0", [(0, "c1", (1, 1, 5, 5))])
    vid_layout.write_split("DET_train_30classes.txt", ["train/D/d0 1", "train/D/d9 1"])
    with pytest.raises(DatasetError, match=r"annotation not found: .*d9\.xml"):
        DETDataset(vid_layout.root)


def test_image_of_another_size_is_refused_where_it_is_decoded(vid_layout):
    """Every val image resized x2 after annotation: training and detection decode the frames
    through `load_frame`, which names the file; without check_images the reader is silent."""
    from PIL import Image

    from lsts_lib.data import load_frame
    from lsts_lib.engine.data import TrainStream

    _val_snippet(vid_layout, moving_track(3, 1.0))
    img = vid_layout.root / "Data" / "VID" / "val" / "v0" / "000001.JPEG"
    with Image.open(img) as im:
        im.resize((2 * im.width, 2 * im.height)).save(img, format="JPEG")
    ds = VIDDataset(vid_layout.root, "val")
    want = rf"image {re.escape(str(img))} is 128x96 but its annotation says 64x48"
    assert load_frame(ds.frame(0, 0)).shape == (3, 48, 64)
    with pytest.raises(DatasetError, match=want):
        load_frame(ds.frame(0, 1))
    stream = TrainStream(ds, None, seed=0, temporal=False)
    with pytest.raises(DatasetError, match=want):
        for position in range(len(stream)):
            stream.sample(0, position)


@pytest.mark.parametrize(
    "box",
    [(10, 5, 10, 25), (10, 5, 30, 5), (10, 5, 10, 5), (-2, 5, -1, 25)],
    ids=["xmin==xmax", "ymin==ymax", "point", "zero-width-after-clipping"],
)
def test_zero_area_box_is_refused_naming_the_file(vid_layout, box):
    frames = moving_track(3, 1.0)
    frames[1] = [(0, "c1", box)]
    ann = _val_snippet(vid_layout, frames)
    want = rf"{re.escape(str(ann / '000001.xml'))}: object 0 .*zero area"
    with pytest.raises(DatasetError, match=want):
        VIDDataset(vid_layout.root, "val")
    with pytest.raises(DatasetError, match=want):  # not even tolerated non-strict
        VIDDataset(vid_layout.root, "val", strict=False)


@pytest.mark.parametrize("which", ["split", "classes"])
def test_file_that_is_not_utf8_is_one_line_naming_it(vid_layout, tmp_path, capsys, which):
    """A Latin-1 file: `lsts data-stats` exits 1 with one line naming the file and line."""
    from lsts_lib.cli import main

    _val_snippet(vid_layout, moving_track(2, 1.0))
    if which == "split":
        path = vid_layout.root / "ImageSets" / "VID_val_videos.txt"
        path.write_bytes(b"val/v0 1 0 2\n# caf\xe9\n")
        want = f"{path}:2: not UTF-8 text (byte 0xe9 at column 6)"
    else:
        path = vid_layout.root / "classes.txt"
        path.write_bytes(b"c1 circle\nc2 carr\xe9\n")
        want = f"{path}:2: not UTF-8 text (byte 0xe9 at column 8)"
    with pytest.raises(DatasetError, match=re.escape(want)):
        VIDDataset(vid_layout.root, "val")
    assert main(["data-stats", "--data", str(vid_layout.root), "--split", "val"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and want in err


@pytest.mark.parametrize(
    ("which", "line"),
    [
        ("split", "val/v0 1 0 " + "2" * 1_000_000),
        ("split", "val/v0 1 0 2 " + "x" * 1_000_000),
        ("split", "val/" + "v" * 1_000_000 + " 1 0 2"),
        ("split", "val" + "/v" * 500_000 + " 1 0 2"),
        ("classes", "c1" + "x" * 1_000_000),
    ],
    ids=["huge-number", "extra-field", "huge-name", "huge-path", "classes"],
)
def test_errors_quote_at_most_200_characters_of_the_line(vid_layout, which, line):
    _val_snippet(vid_layout, moving_track(2, 1.0))
    if which == "split":
        (vid_layout.root / "ImageSets" / "VID_val_videos.txt").write_text(line + "\n")
    else:
        (vid_layout.root / "classes.txt").write_text(f"c0 zero\n{line}\n")
    with pytest.raises(DatasetError) as exc:
        VIDDataset(vid_layout.root, "val")
    msg = str(exc.value)
    assert len(msg) < len(str(vid_layout.root)) + 400 and "characters)" in msg, msg[:500]


def test_xml_number_fields_are_ascii_decimal(vid_layout):
    ann = _val_snippet(vid_layout, moving_track(2, 1.0))
    text = (ann / "000001.xml").read_text().replace("<xmin>3</xmin>", "<xmin>\u0663</xmin>")
    _rewrite(ann / "000001.xml", text)
    with pytest.raises(DatasetError, match=r"000001\.xml: <xmin> is not a number"):
        VIDDataset(vid_layout.root, "val")
