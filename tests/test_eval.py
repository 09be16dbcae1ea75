"""The VID devkit evaluator, the FGFA motion split, COCO metrics and the detection formats.

Ground truth is built directly from Video/FrameAnnotation objects (no files needed).
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lsts_lib.data.types import ClassList, FrameAnnotation, Video
from lsts_lib.eval import (
    COCO_KEYS,
    FGFA_MOTION_RANGES,
    Detections,
    MatchRule,
    average_precision,
    box_iou,
    coco_eval,
    coco_metrics,
    evaluate_vid,
    format_results,
    frame_ids,
    gt_thresholds,
    read_detections,
    read_vid_detections,
    write_coco_results,
    write_vid_detections,
)

CLASSES = ClassList(
    names=("airplane", "bird", "zebra"), ids=("n02691156", "n01503061", "n02391049")
)


def frame(boxes=(), labels=(), motion=None, size=(640, 480)) -> FrameAnnotation:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    k = len(boxes)
    return FrameAnnotation(
        image=Path("x.JPEG"),
        width=size[0],
        height=size[1],
        boxes=boxes,
        labels=np.asarray(labels, dtype=np.int64).reshape(-1),
        track_ids=np.arange(k, dtype=np.int64),
        occluded=np.zeros(k, bool),
        generated=np.zeros(k, bool),
        motion_iou=None if motion is None else np.asarray(motion, dtype=np.float32),
    )


def dets_of(rows) -> Detections:
    """rows: (frame_id, label, score, x1, y1, x2, y2)."""
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    return Detections(a[:, 0], a[:, 1], a[:, 2], a[:, 3:])


def ap_of(result, name="airplane"):
    return result["per_class"][name]


# --------------------------------------------------------------------------- basics
def test_frame_ids_are_global_one_based():
    videos = [Video("val/a", [frame(), frame()], start_index=1), Video("val/b", [frame()], 3)]
    assert frame_ids(videos) == [1, 2, 3]


def test_iou_plus_one_convention():
    a = np.array([[0, 0, 9, 9]])
    b = np.array([[0, 0, 9, 4], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b, plus_one=True), [[50 / 100, 0.0]])
    np.testing.assert_allclose(box_iou(a, b, plus_one=False), [[36 / 81, 0.0]])


def test_gt_threshold_formula():
    boxes = np.array([[0, 0, 9, 9], [0, 0, 19, 19], [0, 0, 29, 29], [0, 0, 9, 199]])
    want = [100 / 400, 400 / 900, 0.5, min(0.5, 2000 / (20 * 210))]
    np.testing.assert_allclose(gt_thresholds(boxes), want)
    np.testing.assert_allclose(gt_thresholds(boxes, MatchRule(small_object_rule=False)), 0.5)


# --------------------------------------------------------------------------- hand-computed AP
BOX_A, BOX_B, FAR = [0, 0, 99, 99], [200, 0, 299, 99], [400, 300, 499, 399]


def two_gt_videos():
    return [Video("val/v", [frame([BOX_A, BOX_B], [1, 1])], start_index=1)]


def test_perfect_detections_give_ap_one():
    videos = [
        Video("val/v", [frame([BOX_A, BOX_B], [1, 2]), frame([BOX_A], [2])], start_index=1),
        Video("val/w", [frame([BOX_B], [1])], start_index=3),
    ]
    d = dets_of(
        [(1, 1, 0.9, *BOX_A), (1, 2, 0.8, *BOX_B), (2, 2, 0.7, *BOX_A), (3, 1, 0.6, *BOX_B)]
    )
    r = evaluate_vid(CLASSES, videos, d)
    assert r["per_class"]["airplane"] == 1.0 and r["per_class"]["bird"] == 1.0
    assert r["mAP"] == 1.0
    assert r["num_gt"] == {"airplane": 2, "bird": 2, "zebra": 0}


def test_false_positive_above_a_true_positive():
    # scores: TP 0.9, FP 0.8, TP 0.7 over 2 GTs: recall .5 .5 1, precision 1 .5 2/3;
    # envelope 1 up to recall .5, then 2/3: AP = .5 * 1 + .5 * 2/3.
    d = dets_of([(1, 1, 0.9, *BOX_A), (1, 1, 0.8, *FAR), (1, 1, 0.7, *BOX_B)])
    r = evaluate_vid(CLASSES, two_gt_videos(), d)
    assert ap_of(r) == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)
    # The same FP ranked last does not cost anything.
    d2 = dets_of([(1, 1, 0.9, *BOX_A), (1, 1, 0.1, *FAR), (1, 1, 0.7, *BOX_B)])
    assert ap_of(evaluate_vid(CLASSES, two_gt_videos(), d2)) == pytest.approx(1.0)


def test_missed_ground_truth_caps_recall():
    d = dets_of([(1, 1, 0.9, *BOX_A)])
    assert ap_of(evaluate_vid(CLASSES, two_gt_videos(), d)) == pytest.approx(0.5)
    assert ap_of(evaluate_vid(CLASSES, two_gt_videos(), Detections.empty())) == 0.0


def test_duplicate_detection_is_a_false_positive():
    # The duplicate on A (0.8) cannot take A again: same numbers as an FP at 0.8.
    d = dets_of([(1, 1, 0.9, *BOX_A), (1, 1, 0.8, *BOX_A), (1, 1, 0.7, *BOX_B)])
    assert ap_of(evaluate_vid(CLASSES, two_gt_videos(), d)) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_detection_of_the_wrong_class_does_not_match():
    d = dets_of([(1, 2, 0.9, *BOX_A), (1, 1, 0.8, *BOX_A)])
    r = evaluate_vid(CLASSES, two_gt_videos(), d)
    assert ap_of(r) == pytest.approx(0.5)
    assert r["per_class"]["bird"] is None  # detections but no GT: no AP


def test_small_object_threshold_changes_the_outcome():
    # 10x10 GT (+1 convention): threshold 100/400 = 0.25. The detection has IoU 40/100 = 0.4.
    videos = [Video("val/v", [frame([[0, 0, 9, 9]], [1])], start_index=1)]
    d = dets_of([(1, 1, 0.9, 0, 0, 9, 3)])
    assert ap_of(evaluate_vid(CLASSES, videos, d)) == 1.0
    fixed = MatchRule(small_object_rule=False)
    assert ap_of(evaluate_vid(CLASSES, videos, d, rule=fixed)) == 0.0


def test_plus_one_convention_changes_the_outcome():
    # Large GT (threshold 0.5). IoU = 100*50/(100*100) = 0.5 with +1; 99*49/99^2 < 0.5 without.
    videos = [Video("val/v", [frame([BOX_A], [1])], start_index=1)]
    d = dets_of([(1, 1, 0.9, 0, 0, 99, 49)])
    assert ap_of(evaluate_vid(CLASSES, videos, d)) == 1.0
    assert ap_of(evaluate_vid(CLASSES, videos, d, rule=MatchRule(plus_one=False))) == 0.0


def test_class_without_ground_truth_is_none_and_not_averaged():
    videos = [Video("val/v", [frame([BOX_A, BOX_B], [1, 2])], start_index=1)]
    d = dets_of([(1, 1, 0.9, *BOX_A), (1, 2, 0.9, *FAR), (1, 3, 0.95, *BOX_B)])
    r = evaluate_vid(CLASSES, videos, d)
    assert r["per_class"] == {"airplane": 1.0, "bird": 0.0, "zebra": None}
    assert r["mAP"] == pytest.approx(0.5)  # not (1 + 0 + 0) / 3
    assert r["classes_with_gt"] == 2
    assert "no ground truth" in format_results(r)


def test_no_ground_truth_at_all_gives_none():
    videos = [Video("val/v", [frame()], start_index=1)]
    r = evaluate_vid(CLASSES, videos, dets_of([(1, 1, 0.5, *BOX_A)]))
    assert r["mAP"] is None and set(r["per_class"].values()) == {None}


# --------------------------------------------------------------------------- motion split
def motion_case_videos():
    # A slow (0.95) and B fast (0.5) in frame 1; frame 2 has no object; C slow (0.92) in frame 3.
    return [
        Video(
            "val/v",
            [
                frame([BOX_A, BOX_B], [1, 1], motion=[0.95, 0.5]),
                frame(motion=[]),
                frame([BOX_A], [1], motion=[0.92]),
            ],
            start_index=1,
        )
    ]


def test_motion_split_ignores_out_of_range_ground_truth():
    d = dets_of(
        [
            (1, 1, 0.95, *BOX_A),  # takes A
            (1, 1, 0.90, *BOX_A),  # duplicate on A
            (1, 1, 0.80, *BOX_B),  # takes B
            (2, 1, 0.99, *FAR),  # frame without GT
        ]
    )
    r = evaluate_vid(CLASSES, motion_case_videos(), d)
    # all: FP(.99) TP FP TP over 3 GTs: precision .5 at recall 1/3 and 2/3 -> AP 1/3.
    assert r["mAP"] == pytest.approx(1 / 3)
    assert r["motion_all"] == pytest.approx(r["mAP"])
    # slow (A, C counted; B ignored): empty-frame FP weighs 2/3 (share of GTs in range);
    # A's match is TP; the duplicate overlaps in-range A more than ignored B -> FP 1;
    # the match of ignored B counts for nothing. tp 0 1 1 1, fp 2/3 2/3 5/3 5/3, npos 2:
    # precision .6 at recall .5 -> AP 0.3.
    assert r["motion"]["slow"] == pytest.approx(0.3)
    # fast (B counted): empty-frame FP 1/3; A's match and the duplicate (overlaps ignored A
    # more) are ignored; B's match TP: precision 1 / (4/3) at recall 1 -> AP 0.75.
    assert r["motion"]["fast"] == pytest.approx(0.75)
    assert r["motion"]["medium"] is None  # no GT in [0.7, 0.9]
    assert r["motion_num_gt"] == {"all": 3, "fast": 1, "medium": 0, "slow": 2}


def test_motion_tie_weight_in_a_frame_with_ground_truth():
    # P slow, Q and R fast; an FP far from everything ties (IoU 0 with both groups).
    videos = [
        Video(
            "val/v",
            [frame([BOX_A, BOX_B, [0, 200, 99, 299]], [1, 1, 1], motion=[0.95, 0.3, 0.1])],
            start_index=1,
        )
    ]
    d = dets_of([(1, 1, 0.9, *FAR), (1, 1, 0.5, *BOX_A)])
    # FGFA weighs the tie by the frame's share of ignored GTs (2/3 for slow): precision
    # 1 / (1 + 2/3) = 0.6 at recall 1. With the in-range share (1/3): 1 / (4/3) = 0.75.
    r = evaluate_vid(CLASSES, videos, d)
    assert r["motion"]["slow"] == pytest.approx(0.6)
    assert evaluate_vid(CLASSES, videos, d, tie_weight="in_range")["motion"]["slow"] == (
        pytest.approx(0.75)
    )
    # Range "all" ignores nothing, so the far FP is a full FP as in the plain devkit:
    # precision 1/2 at recall 1/3.
    assert r["motion_all"] == pytest.approx(r["mAP"]) == pytest.approx(1 / 6)


def test_motion_boundaries_are_inclusive():
    videos = [Video("val/v", [frame([BOX_A], [1], motion=[0.7])], start_index=1)]
    r = evaluate_vid(CLASSES, videos, dets_of([(1, 1, 0.9, *BOX_A)]))
    assert r["motion"]["fast"] == 1.0 and r["motion"]["medium"] == 1.0
    assert r["motion"]["slow"] is None


def test_motion_unavailable_without_motion_iou():
    r = evaluate_vid(CLASSES, two_gt_videos(), dets_of([(1, 1, 0.9, *BOX_A)]))
    assert r["motion_available"] is False and r["motion"] == dict.fromkeys(
        ("slow", "medium", "fast")
    )
    assert "not available" in format_results(r)


def test_motion_ranges_agree_with_the_reader():
    motion = pytest.importorskip("lsts_lib.data.motion")
    assert {k: tuple(v) for k, v in motion.MOTION_RANGES.items()} == FGFA_MOTION_RANGES


# --------------------------------------------------------------------------- random data
RANDOM_SIZE = 650  # square frames that hold every random GT box and (clipped) detection


def random_case(seed: int, n_videos=3, n_frames=20, large=True, motion=True):
    """Seeded GT (boxes >= 60 px when large, so the VID threshold is 0.5) and detections."""
    rng = np.random.default_rng(seed)
    videos, rows, start = [], [], 1
    for v in range(n_videos):
        frames = []
        for f in range(n_frames):
            k = int(rng.integers(0, 4))
            lo = 60 if large else 4
            wh = rng.uniform(lo, 200, size=(k, 2))
            xy = rng.uniform(0, 400, size=(k, 2))
            boxes = np.round(np.concatenate([xy, xy + wh], axis=1))
            labels = rng.integers(1, 3, size=k)  # class 3 never has GT
            mious = rng.uniform(0.4, 1.0, size=k) if motion else None
            frames.append(frame(boxes, labels, motion=mious, size=(RANDOM_SIZE, RANDOM_SIZE)))
            fid = start + f
            for b, lab in zip(boxes, labels, strict=True):
                for _ in range(int(rng.integers(0, 3))):  # misses and duplicates
                    s = b[2:] - b[:2]
                    jit = np.concatenate([b[:2], b[2:]]) + rng.normal(0, 0.12, 4) * np.tile(s, 2)
                    x1, y1 = np.minimum(jit[:2], jit[2:])
                    x2, y2 = np.maximum(jit[:2], jit[2:])
                    wrong = rng.random() < 0.1
                    lab_d = int(rng.integers(1, 4)) if wrong else int(lab)
                    rows.append((fid, lab_d, rng.random(), x1, y1, x2, y2))
            for _ in range(int(rng.integers(0, 3))):  # background FPs
                xy = rng.uniform(0, 500, 2)
                wh = rng.uniform(20, 150, 2)
                rows.append((fid, int(rng.integers(1, 4)), rng.random() * 0.7, *xy, *(xy + wh)))
        videos.append(Video(f"val/v{v}", frames, start_index=start))
        start += n_frames
    d = dets_of(rows)
    d.boxes = np.clip(d.boxes, 0, RANDOM_SIZE)
    return videos, d


COCO_RULE = MatchRule(plus_one=False, small_object_rule=False, iou_threshold=0.5)


def test_coco101_mode_equals_pycocotools_ap50():
    videos, d = random_case(0)
    ours = evaluate_vid(CLASSES, videos, d, rule=COCO_RULE, interpolation="coco101")
    ev = coco_eval(CLASSES, videos, d)
    prec = ev.eval["precision"][0, :, :, 0, -1]  # IoU .5, recall points, class, area all, 100
    for k, name in enumerate(CLASSES.names):
        p = prec[:, k]
        if (p < 0).all():
            assert ours["per_class"][name] is None
        else:
            assert ours["per_class"][name] == pytest.approx(float(p.mean()), abs=1e-6)
    assert ours["per_class"]["airplane"] is not None and ours["per_class"]["bird"] is not None
    metrics = coco_metrics(CLASSES, videos, d)
    assert ours["mAP"] == pytest.approx(metrics["AP50"], abs=1e-6)
    assert metrics["per_class_AP50"]["zebra"] is None


def test_continuous_and_101_point_ap_differ_little():
    videos, d = random_case(1, n_videos=4)
    cont = evaluate_vid(CLASSES, videos, d, rule=COCO_RULE)
    c101 = evaluate_vid(CLASSES, videos, d, rule=COCO_RULE, interpolation="coco101")
    for name in ("airplane", "bird"):
        assert 0.2 < cont["per_class"][name] < 0.99  # a non-trivial case
        assert abs(cont["per_class"][name] - c101["per_class"][name]) < 0.02
    # With boxes >= 60 px the devkit rule differs from the plain one only by the +1.
    dev = evaluate_vid(CLASSES, videos, d)
    assert abs(dev["mAP"] - cont["mAP"]) < 0.02


def test_average_precision_interpolations_by_hand():
    tp, fp = np.array([1, 0, 1]), np.array([0, 1, 0])
    assert average_precision(tp, fp, 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # 101 points: recall 0..0.5 (51 points) at 1, 0.51..1 (50 points) at 2/3.
    assert average_precision(tp, fp, 2, "coco101") == pytest.approx((51 + 50 * 2 / 3) / 101)
    with pytest.raises(ValueError, match="interpolation"):
        average_precision(tp, fp, 2, "eleven")


def reference_motion_ap(videos, d, lo, hi, cls):
    """A plain loop transcription of the rule in vid_eval's docstring (for one class)."""
    all_m = np.concatenate([f.motion_iou for v in videos for f in v.frames if len(f.labels)])
    empty_w = float(np.mean((all_m >= lo) & (all_m <= hi)))
    scored, npos = [], 0
    for v in videos:
        for i, fr in enumerate(v.frames):
            fid = v.start_index + i
            ign = [not (lo <= m <= hi) for m in fr.motion_iou]
            npos += sum(1 for lab, g in zip(fr.labels, ign, strict=True) if lab == cls and not g)
            rows = sorted(np.flatnonzero(d.frame_ids == fid), key=lambda r: -d.scores[r])
            done = [False] * len(fr.labels)
            for r in rows:
                ovs = [box_iou(d.boxes[r], g)[0, 0] for g in fr.boxes]
                thr = gt_thresholds(fr.boxes)
                best, kbest = -1.0, -1
                for k, ov in enumerate(ovs):
                    if d.labels[r] == fr.labels[k] and not done[k] and ov >= thr[k] and ov > best:
                        best, kbest = ov, k
                if kbest >= 0:
                    done[kbest] = True
                    tp, fp = (0.0 if ign[kbest] else 1.0), 0.0
                else:
                    o_in = max([ov for ov, g in zip(ovs, ign, strict=True) if not g], default=-1)
                    o_out = max([ov for ov, g in zip(ovs, ign, strict=True) if g], default=-1)
                    tp = 0.0
                    if o_in > o_out:
                        fp = 1.0
                    elif o_out > o_in:
                        fp = 0.0
                    else:
                        fp = empty_w if not ovs else sum(ign) / len(ign)
                if d.labels[r] == cls:
                    scored.append((d.scores[r], tp, fp))
    if npos == 0:
        return None
    scored.sort(key=lambda t: -t[0])
    ctp = cfp = 0.0
    points = []
    for _, tp, fp in scored:
        ctp, cfp = ctp + tp, cfp + fp
        points.append((ctp / npos, ctp / max(ctp + cfp, 1e-300)))
    ap, prev_r = 0.0, 0.0
    for j, (r, _) in enumerate(points):
        if r > prev_r:
            ap += (r - prev_r) * max(p for _, p in points[j:])
            prev_r = r
    return ap


def test_motion_split_matches_a_loop_reference():
    videos, d = random_case(2, n_videos=2, n_frames=15, large=False)
    r = evaluate_vid(CLASSES, videos, d)
    for name, (lo, hi) in FGFA_MOTION_RANGES.items():
        for c, cname in enumerate(CLASSES.names, start=1):
            want = reference_motion_ap(videos, d, lo, hi, c)
            got = r["motion_per_class"][name][cname]
            assert (got is None) == (want is None)
            if want is not None:
                assert got == pytest.approx(want, abs=1e-9), (name, cname)
    assert r["motion_all"] == pytest.approx(r["mAP"])


# --------------------------------------------------------------------------- COCO metrics
def test_coco_metrics_keys_and_perfect_detections():
    videos, _ = random_case(3, n_videos=1, n_frames=10, motion=False)
    rows = []
    for fid, fr in zip(frame_ids(videos), (f for v in videos for f in v.frames), strict=True):
        rows += [(fid, lab, 0.9, *b) for b, lab in zip(fr.boxes, fr.labels, strict=True)]
    m = coco_metrics(CLASSES, videos, dets_of(rows))
    assert set(COCO_KEYS) <= set(m)
    assert m["AP"] == pytest.approx(1.0) and m["AR100"] == pytest.approx(1.0)
    assert m["AP_small"] is None  # every box >= 60 px: no small GT, pycocotools' -1
    empty = coco_metrics(CLASSES, videos, Detections.empty())
    assert empty["AP"] == 0.0


def test_coco_metrics_are_silent(capsys):
    videos, d = random_case(4, n_videos=1, n_frames=5)
    coco_metrics(CLASSES, videos, d)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- file formats
def test_vid_detection_file_round_trip(tmp_path):
    videos, d = random_case(5, n_videos=2, n_frames=6)
    path = write_vid_detections(tmp_path / "dets.txt", d)
    first = path.read_text().splitlines()[0].split()
    assert len(first) == 7 and int(first[0]) >= 1
    back = read_vid_detections(path, CLASSES.num_classes, frame_ids(videos))
    order = np.argsort(d.frame_ids, kind="stable")
    np.testing.assert_array_equal(back.frame_ids, d.frame_ids[order])
    np.testing.assert_array_equal(back.labels, d.labels[order])
    np.testing.assert_allclose(back.scores, d.scores[order], atol=5e-7)
    np.testing.assert_allclose(back.boxes, d.boxes[order], atol=5e-3)
    r1 = evaluate_vid(CLASSES, videos, d)
    r2 = evaluate_vid(CLASSES, videos, back)
    assert r1["mAP"] == pytest.approx(r2["mAP"], abs=1e-3)


def test_coco_results_round_trip(tmp_path):
    videos, d = random_case(6, n_videos=2, n_frames=6)
    path = write_coco_results(tmp_path / "dets.json", d)
    entry = json.loads(path.read_text())[0]
    assert set(entry) == {"image_id", "category_id", "bbox", "score"}
    back = read_detections(path, CLASSES.num_classes, frame_ids(videos))
    np.testing.assert_array_equal(back.frame_ids, d.frame_ids)
    np.testing.assert_array_equal(back.labels, d.labels)
    np.testing.assert_allclose(back.boxes, d.boxes, atol=1e-9)
    np.testing.assert_array_equal(back.scores, d.scores)


def test_detections_from_frames_and_by_frame():
    d = Detections.from_frames(
        {
            2: (np.array([BOX_A]), np.array([0.5]), np.array([1])),
            1: (np.array([BOX_B, FAR]), np.array([0.9, 0.1]), np.array([2, 3])),
        }
    )
    assert d.frame_ids.tolist() == [1, 1, 2] and len(d) == 3
    assert {k: v.tolist() for k, v in d.by_frame().items()} == {1: [0, 1], 2: [2]}


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def fake_dataset(monkeypatch):
    """Stand-in for lsts_lib.data.vid.VIDDataset, serving the motion case."""

    class FakeVID:
        def __init__(self, root, split="val"):
            self.classes, self.videos = CLASSES, motion_case_videos()

    module = types.ModuleType("lsts_lib.data.vid")
    module.VIDDataset = FakeVID
    module.EVAL_SPLITS = ("val", "test")
    monkeypatch.setitem(sys.modules, "lsts_lib.data.vid", module)


def test_cli_evaluate_prints_table_and_writes_json(tmp_path, fake_dataset, capsys):
    from lsts_lib.cli import main

    det = tmp_path / "dets.txt"
    det.write_text(f"1 1 0.95 {' '.join(map(str, BOX_A))}\n2 1 0.99 {' '.join(map(str, FAR))}\n")
    out = tmp_path / "res.json"
    assert (
        main(["evaluate", "--data", str(tmp_path / "ds"), "--detections", str(det), "--json", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    assert "VID devkit mAP" in text and "COCO: AP" in text and "zebra" in text
    res = json.loads(out.read_text())
    assert {"mAP", "per_class", "motion", "num_gt", "num_detections", "coco"} <= set(res)
    assert res["per_class"]["zebra"] is None and res["num_detections"] == 2
    assert set(res["motion"]) == {"slow", "medium", "fast"}
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(tmp_path / "ds"),
                "--detections",
                str(det),
                "--no-coco",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["coco"] is None


def test_cli_on_a_dataset_read_by_the_vid_reader(tiny_vid, tmp_path, capsys):
    """End to end with lsts_lib.data.vid: GT boxes as detections score 1.0 everywhere."""
    from lsts_lib.cli import main
    from lsts_lib.data.vid import VIDDataset

    ds = VIDDataset(tiny_vid, split="val")
    rows = []
    for v in ds.videos:
        for i, fr in enumerate(v.frames):
            rows += [
                (v.start_index + i, lab, 0.9, *b)
                for b, lab in zip(fr.boxes, fr.labels, strict=True)
            ]
    det = write_vid_detections(tmp_path / "dets.txt", dets_of(rows))
    out = tmp_path / "res.json"
    assert (
        main(["evaluate", "--data", str(tiny_vid), "--detections", str(det), "--json", str(out)])
        == 0
    )
    res = json.loads(out.read_text())
    assert res["mAP"] == 1.0 and res["coco"]["AP"] == pytest.approx(1.0)
    assert res["num_frames"] == 8 and res["motion_available"] is True
    assert (
        sum(res["motion_num_gt"][k] for k in ("slow", "medium", "fast"))
        >= res["motion_num_gt"]["all"]
    )


# --------------------------------------------------------------------------- line order
def _metric_values(res) -> list[float]:
    """Every number a result reports as a metric (devkit, motion split, COCO)."""
    vals = [res["mAP"], res["motion_all"], *res["per_class"].values(), *res["motion"].values()]
    vals += [ap for per in res["motion_per_class"].values() for ap in per.values()]
    coco = res["coco"] or {}
    vals += [v for k, v in coco.items() if k != "per_class_AP50"]
    vals += list(coco.get("per_class_AP50", {}).values())
    return [v for v in vals if v is not None]


@pytest.mark.parametrize("suffix", [".txt", ".json"])
def test_ground_truth_in_any_line_order_scores_100_everywhere(tiny_vid, tmp_path, suffix):
    """`lsts evaluate` on the GT written as detections, lines reversed or shuffled: 100 %."""
    from lsts_lib.cli import main
    from lsts_lib.data.vid import VIDDataset

    ds = VIDDataset(tiny_vid, split="val")
    rows = [
        (v.start_index + i, int(lab), 0.9, *map(float, b))
        for v in ds.videos
        for i, fr in enumerate(v.frames)
        for b, lab in zip(fr.boxes, fr.labels, strict=True)
    ]
    rng = np.random.default_rng(0)
    for order in (rows[::-1], [rows[i] for i in rng.permutation(len(rows))]):
        det = tmp_path / f"dets{suffix}"
        if suffix == ".json":
            det.write_text(json.dumps(
                [{"image_id": f, "category_id": c, "score": s, "bbox": [x1, y1, x2 - x1, y2 - y1]}
                 for f, c, s, x1, y1, x2, y2 in order]))
        else:
            det.write_text("".join(" ".join(map(str, r)) + "\n" for r in order))
        out = tmp_path / "res.json"
        args = ["evaluate", "--data", str(tiny_vid), "--detections", str(det), "--json", str(out)]
        assert main(args) == 0
        res = json.loads(out.read_text())
        values = _metric_values(res)
        assert len(values) >= 10 and res["motion_available"]
        assert values == [pytest.approx(1.0)] * len(values)


def test_permuting_the_lines_never_changes_any_metric():
    """Property: the result is a function of the set of detections (seeded permutations;
    scores on a coarse grid so that ties, which the rules break by row order, are common)."""
    for seed in range(4):
        videos, d = random_case(seed, n_videos=2, n_frames=8, large=seed % 2 == 0)
        d = Detections(d.frame_ids, d.labels, np.round(d.scores, 1), d.boxes)
        want = evaluate_vid(CLASSES, videos, d, coco=True)
        rng = np.random.default_rng(seed)
        for _ in range(5):
            got = evaluate_vid(CLASSES, videos, d.select(rng.permutation(len(d))), coco=True)
            assert got == want


# --------------------------------------------------------------------------- video resampling
def test_video_weighted_map_equals_evaluating_the_resampled_split():
    from lsts_lib.eval import video_weighted_map

    videos, d = random_case(5, n_videos=3, n_frames=8)
    score = video_weighted_map(CLASSES, videos, d)
    assert score(np.ones(3)) == pytest.approx(evaluate_vid(CLASSES, videos, d)["mAP"], abs=1e-12)
    # counts (2, 0, 1): video 0 twice (a copy with its own frame ids), video 1 left out.
    n = 8
    shift = 3 * n
    copy0 = Video("val/v0copy", videos[0].frames, start_index=1 + shift)
    rows = np.concatenate([d.frame_ids[:, None], d.labels[:, None], d.scores[:, None], d.boxes], 1)
    v0 = rows[rows[:, 0] <= n]
    v2 = rows[rows[:, 0] > 2 * n]
    v0c = v0.copy()
    v0c[:, 0] += shift
    resampled = evaluate_vid(CLASSES, [videos[0], videos[2], copy0],
                             dets_of(np.concatenate([v0, v2, v0c])))
    assert score(np.array([2, 0, 1])) == pytest.approx(resampled["mAP"], abs=1e-12)
    with pytest.raises(ValueError, match="one entry per video"):
        score(np.ones(2))


@pytest.mark.parametrize("interpolation", ["continuous", "coco101"])
def test_video_weighted_map_scores_resamples_together_as_one_at_a_time(interpolation):
    """The batched scorer (TPs only, counts @ cumulative counts, rows in chunks) against the
    one-resample-at-a-time definition: tied scores, a class whose GT is in two videos only
    (resamples without it, or without any GT), duplicated videos."""
    from conftest import per_resample_map

    from lsts_lib.eval import video_weighted_map

    videos, d = random_case(11, n_videos=5, n_frames=6)
    d = Detections(d.frame_ids, d.labels, np.round(d.scores, 1), d.boxes)  # many equal scores
    for i, v in enumerate(videos):  # bird (2): GT in videos 1 and 3 only
        if i not in (1, 3):
            v.frames = [replace(f, labels=np.where(f.labels == 2, 1, f.labels))
                        for f in v.frames]
    assert len(np.unique(np.round(d.scores, 1))) < len(d) // 4
    rng = np.random.default_rng(0)
    counts = np.concatenate([
        np.ones((1, 5)),
        [np.bincount(rng.integers(0, 5, 5), minlength=5) for _ in range(40)],
        [[1, 0, 2, 0, 1], [0, 0, 0, 0, 0], [3, 0, 2, 1, 0], [0, 2, 0, 0, 0], [0, 0, 0, 1, 0]],
    ]).astype(np.int64)
    want = [per_resample_map(CLASSES, videos, d, interpolation)(c) for c in counts]
    assert want[-4] is None and 0 < want[-5] < 1  # no GT at all; no bird GT
    score = video_weighted_map(CLASSES, videos, d, interpolation=interpolation)
    got = score(counts)
    assert got.shape == (len(counts),)
    assert np.isnan(got[-4]) and np.isfinite(np.delete(got, -4)).all()
    np.testing.assert_allclose(np.delete(got, -4), np.delete(np.array(want), -4).astype(float),
                               rtol=0, atol=1e-12)
    want_all = evaluate_vid(CLASSES, videos, d, interpolation=interpolation, motion_ranges=None)
    assert got[0] == pytest.approx(want_all["mAP"], abs=1e-12)
    # rows in chunks of one, and leading axes, change nothing
    small = video_weighted_map(CLASSES, videos, d, interpolation=interpolation,
                               chunk_elements=1)
    np.testing.assert_array_equal(small(counts[:-1].reshape(5, 9, 5)),
                                  got[:-1].reshape(5, 9))


def test_video_weighted_map_breaks_ties_as_evaluate_vid():
    from lsts_lib.eval import video_weighted_map

    videos, d = random_case(6, n_videos=3, n_frames=8)
    d = Detections(d.frame_ids, d.labels, np.round(d.scores, 1), d.boxes)  # many equal scores
    rng = np.random.default_rng(0)
    for _ in range(3):
        p = rng.permutation(len(d))
        shuffled = Detections(d.frame_ids[p], d.labels[p], d.scores[p], d.boxes[p])
        score = video_weighted_map(CLASSES, videos, shuffled)
        assert score(np.ones(3)) == pytest.approx(evaluate_vid(CLASSES, videos, d)["mAP"], abs=1e-12)
