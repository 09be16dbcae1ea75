"""Notebook 05's pictures (the moving-object strip, S_n(p0) at a moving pixel) and the
sentences that read its tables and figures: each comparison is checked in both directions."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from lsts_lib import results as R
from lsts_lib.data.types import FrameAnnotation, Video
from lsts_lib.eval.stats import Interval

matplotlib.use("Agg")


def _frame(objs: dict[int, tuple[float, float, float]]) -> FrameAnnotation:
    """objs: track id -> (x1 of a 32x32 box, y1, motion IoU)."""
    ids = np.array(list(objs), dtype=np.int64)
    boxes = np.array([[x, y, x + 32, y + 32] for x, y, _ in objs.values()], np.float32)
    return FrameAnnotation(Path("x.JPEG"), 320, 180, boxes.reshape(-1, 4),
                           np.ones(len(ids), np.int64), ids, np.zeros(len(ids), bool),
                           np.zeros(len(ids), bool),
                           np.array([m for _, _, m in objs.values()], dtype=np.float32))


def _video(name: str, tracks: dict[int, tuple[float, float]], n: int = 8) -> Video:
    """tracks: id -> (pixels moved per frame along x, motion IoU)."""
    return Video(name, [_frame({t: (10 + v * i, 50.0, m) for t, (v, m) in tracks.items()})
                        for i in range(n)])


def test_moving_segment_wants_low_motion_iou_and_real_motion() -> None:
    # track 1: low motion IoU but still; track 2: low IoU, moves 6 px/frame; 3: 20 px, IoU 0.6
    v = _video("v", {1: (0.0, 0.2), 2: (6.0, 0.45), 3: (20.0, 0.6)})
    # offline, k=4, n=2: keys 1 and 5; the strip 1..2 moves track 2 by 6 px < 16: not moving
    seg = R.moving_segment([v], 4, n=2)
    assert seg.track == 3 and seg.motion_iou == pytest.approx(0.6)  # the moving fallback
    assert "lowest available" in seg.title()
    assert R.moving_segment([v], 4, n=2, cell_px=100.0).track == 1  # nothing moves a cell
    # over 3 frames (key 1: frames 1..3) track 2 moves 12 px; with 4-px cells it qualifies
    seg = R.moving_segment([v], 4, n=3, cell_px=4.0)
    assert (seg.track, seg.key) == (2, 1) and seg.shift_px == pytest.approx(12.0)
    assert "(< 0.5)" in seg.title("test/v") and "of test/v" in seg.title("test/v")
    assert seg.strip_iou < 1.0
    with pytest.raises(ValueError, match="no track"):
        R.moving_segment([v], 4, n=9)


def test_moving_segment_prefers_accepted_tracks_and_least_overlap() -> None:
    v = _video("v", {1: (4.0, 0.3), 2: (6.0, 0.4)}, n=12)
    assert R.moving_segment([v], 10, n=5).track == 2  # moves more: its boxes overlap less
    seg = R.moving_segment([v], 10, n=5, prefer=lambda vi, k, t: t == 1)
    assert seg.track == 1
    # a preference nothing meets leaves the choice as without one
    assert R.moving_segment([v], 10, n=5, prefer=lambda *a: False).track == 2


def test_top_detections_and_best_overlap() -> None:
    fids = np.array([1, 2, 2, 2, 2])
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.7])
    assert R.top_detections(fids, scores, 2, k=3).tolist() == [4, 2, 3]
    assert R.top_detections(fids, scores, 3).tolist() == []
    gt = np.array([0, 0, 10, 10])
    assert R.best_overlap(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), gt) == pytest.approx(1)
    assert R.best_overlap(np.zeros((0, 4)), gt) == 0.0


def _strip_case() -> tuple[dict[str, list[np.ndarray]], list[np.ndarray], list[np.ndarray]]:
    """A key frame and two frames after it: the object moves 20 px right per frame, another
    object stands at (100, 100). copy_prop keeps its key box; flow_warp keeps it too (within
    half a pixel); lsts follows the object; lsts_fixed jumps onto the other object."""
    gt = [np.array([20.0 * i, 0, 20.0 * i + 40, 40]) for i in range(3)]
    other = np.array([[100.0, 100, 140, 140]])
    key = np.array([[0.0, 0, 40, 40]])
    boxes = {"copy_prop": [key] * 3,
             "flow_warp": [key, key + 0.5, key - 0.5],
             "lsts": [g[None] for g in gt],
             "lsts_fixed": [key, other, other + 1.0]}
    return boxes, gt, [other] * 3


def test_strip_reading_says_which_boxes_moved_and_where_they_are() -> None:
    boxes, gt, others = _strip_case()
    r = R.strip_reading(boxes, gt, others, key_frame=10).set_index(["run", "frame"])
    assert r.index.get_level_values("frame").unique().tolist() == [11, 12]  # non-key frames
    assert r.loc[("copy_prop", 11), "object IoU"] == pytest.approx(800 / 2400)
    assert r.loc[("copy_prop", 12), "object IoU"] == 0.0
    assert r.loc["copy_prop", "kept"].all() and r.loc["flow_warp", "as reference"].all()
    assert r.loc["flow_warp", "kept"].all()  # half a pixel: the same box
    assert not r.loc["lsts", "kept"].any() and not r.loc["lsts", "as reference"].any()
    assert r.loc["lsts", "object IoU"].tolist() == pytest.approx([1.0, 1.0])
    assert r.loc["lsts", "other IoU"].tolist() == [0.0, 0.0]
    assert r.loc["lsts_fixed", "other IoU"].min() > 0.9
    assert r.loc["lsts_fixed", "object IoU"].max() == 0.0


def test_strip_markdown_reads_what_the_strip_shows_both_ways() -> None:
    boxes, gt, others = _strip_case()
    scores = dict.fromkeys(boxes, 0.3)
    label = R.run_label
    text = R.strip_markdown(R.strip_reading(boxes, gt, others, key_frame=10), scores, 3)
    assert "non-key frames 11-12" in text and "top 3 boxes" in text
    assert f"{label('copy_prop')} 0.17" in text and f"{label('lsts')} 1.00" in text
    assert (f"{label('flow_warp')} left the key frame's boxes where {label('copy_prop')} has "
            "them") in text
    assert f"{label('lsts_fixed')} moved its boxes onto other objects" in text
    assert f"{label('lsts')} moved its boxes (onto the object on both frames)" in text
    assert f"{label('lsts')} follows the moving object better" in text
    assert f"{label('flow_warp')} follows" not in text
    assert "its boxes are only on other annotated objects" in text  # lsts_fixed's line
    # Without the run that follows: nothing beats copying the key frame's feature.
    del boxes["lsts"]
    text = R.strip_markdown(R.strip_reading(boxes, gt, others), scores, 3)
    assert text.count("no method follows the object clearly better") == 1
    assert "; box classes not compared" in text
    assert f"- {label('lsts_fixed')} moves its boxes off its key frame's on both" in text
    assert f"- {label('flow_warp')} keeps its key frame's boxes on both" in text
    # A lead under the margin, or with the wrong class, is no "better".
    boxes, gt, others = _strip_case()
    reading = R.strip_reading(boxes, gt, others)
    reading.loc[reading["run"] == "lsts", "object IoU"] = 0.17 + R.STRIP_BETTER_IOU - 0.02
    assert "no method follows the object clearly better" in R.strip_markdown(reading, scores, 3)
    labels = {run: [np.full(len(b), 1) for b in bs] for run, bs in boxes.items()}
    wrong = R.strip_reading(boxes, gt, others, labels=labels, object_label=2)
    assert wrong["class right"].eq(False).all()
    text = R.strip_markdown(wrong, scores, 3)
    assert "follows the moving object better" not in text and "compared" not in text
    assert f"carry another class than the object's: {label('lsts')}'s on 2 of the frames" in text
    right = R.strip_reading(boxes, gt, others, labels=labels, object_label=1)
    assert f"{label('lsts')} follows the moving object better" in R.strip_markdown(right, scores, 3)
    only = R.strip_reading({"lsts": boxes["copy_prop"]}, gt, others)
    assert "Too few" in R.strip_markdown(only, scores, 3)


def test_focus_pixel_takes_a_moving_cell_of_the_object() -> None:
    truth = np.zeros((2, 4, 5), np.float32)
    track = np.full((4, 5), -1)
    track[1:3, 1:4] = 7  # the object: rows 1-2, columns 1-3
    truth[0, 1:3, 1:4] = 0.5  # half a cell: not moving enough ...
    truth[0, 2, 3] = 0.8
    p0, moving = R.focus_pixel(truth, track, 7)
    assert (p0, moving) == ((3, 2), False)  # ... so the cell that moves most
    truth[0, 1:3, 2:4] = 1.5  # now columns 2-3 move 1.5 cells
    truth[1, 0, 0] = 9.0  # background motion does not count
    p0, moving = R.focus_pixel(truth, track, 7)
    assert moving and track[p0[1], p0[0]] == 7 and p0[0] in (2, 3)
    with pytest.raises(ValueError, match="covers no cell"):
        R.focus_pixel(truth, track, 8)


def test_focus_markdown_says_when_the_softmax_saturates() -> None:
    p = np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    peaked = R.focus_stats_at(np.array([0.0, 0.05, 0.95]), p)
    assert peaked["expected"] == pytest.approx((0.95, 0.0), abs=1e-6)
    assert peaked["max"] == pytest.approx(0.95) and peaked["uniform"] == pytest.approx(math.log(3))
    text = R.focus_markdown((1.0, 0.0), peaked, 16.0)
    assert "has saturated" in text and "closer to the true displacement" in text
    assert "no closer" not in text
    spread = R.focus_stats_at(np.full(3, 1 / 3), p)
    assert spread["entropy"] == pytest.approx(math.log(3), rel=1e-5)
    text = R.focus_markdown((1.0, 0.0), spread, 16.0)
    assert "No point takes more than 0.5" in text and "no closer" in text
    assert "moved most" in R.focus_markdown((1.0, 0.0), spread, 16.0, moving=False)


def _summary(maps: dict[str, float], ms: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"label": {r: R.run_label(r) for r in maps}, "mAP": maps,
                         "cpu_ms": ms})


def test_accuracy_and_cost_markdown_both_directions() -> None:
    below = _summary({"single_frame": 40.0, "copy_prop": 38.0, "lsts": 30.0},
                     {"single_frame": 1000.0, "copy_prop": 100.0, "lsts": 500.0})
    text = R.accuracy_markdown(below)
    assert "Copy-propagation, 2.0 points below it at 1/10.0 of" in text
    assert "LSTS (uniform, N=81), 10.0 points below" in text
    above = _summary({"single_frame": 40.0, "lsts": 41.5}, {"single_frame": 1000.0, "lsts": 500.0})
    assert "LSTS (uniform, N=81), 1.5 points above it" in R.accuracy_markdown(above)
    assert "Only one variant" in R.accuracy_markdown(above.loc[["lsts"]])
    slow = _summary({"single_frame": 1, "flow_warp": 1, "lsts": 1},
                    {"single_frame": 1000.0, "flow_warp": 200.0, "lsts": 400.0})
    text = R.cost_markdown(slow)
    assert "DFF flow warp is the cheapest, at 1/5.0" in text and "2.00x the flow warp's time per frame (slower)" in text
    fast = _summary({"single_frame": 1, "flow_warp": 1, "lsts": 1},
                    {"single_frame": 1000.0, "flow_warp": 400.0, "lsts": 200.0})
    assert "0.50x the flow warp's time per frame (faster)" in R.cost_markdown(fast)


def test_interval_markdown() -> None:
    iv = pd.DataFrame({"label": ["A", "B"], "mAP_t_half": [0.2, 3.0]}, index=["a", "b"])
    assert "± 3.00 points (B)" in R.interval_markdown(iv) and "narrowest ± 0.20" in R.interval_markdown(iv)
    iv["mAP_t_half"] = math.nan
    assert "one seed" in R.interval_markdown(iv)


def _claim(key: str, diffs: list[float], low: float, high: float,
           verdict: str = R.NOT_HELD) -> R.Claim:
    a = [50.0 + d for d in diffs]
    est = (low + high) / 2
    iv = Interval(est, low, high, 0.95, len(diffs), "t")
    runs = ("single_frame", "lsts") if key == "per_frame" else ("lsts", "flow_warp")
    return R.Claim(key, "a claim", "rule", runs, verdict, "why", list(range(len(diffs))),
                   {runs[0]: a, runs[1]: [50.0] * len(diffs)}, est, iv, iv, iv)


def test_claim_figure_markdown_reads_the_side_of_the_claim() -> None:
    on = R.claim_figure_markdown(_claim("beats_flow", [1.0, 2.0, -0.5], 0.5, 2.0))
    assert on.startswith("2 of 3 seeds") and "lies wholly on the claimed side" in on
    off = R.claim_figure_markdown(_claim("beats_flow", [-1.0, -2.0], -3.0, -0.5))
    assert off.startswith("0 of 2") and "wholly off" in off
    assert "straddles 0" in R.claim_figure_markdown(_claim("beats_flow", [1.0, -1.0], -1, 1))
    # per-frame accuracy: the claimed side is a gap below CLOSE_MAP_POINTS
    close = R.claim_figure_markdown(_claim("per_frame", [1.0, 1.5], 0.5, 1.8))
    assert close.startswith("2 of 2") and "below 2 points" in close and "wholly on" in close
    far = R.claim_figure_markdown(_claim("per_frame", [10.0, 12.0], 8.0, 14.0))
    assert far.startswith("0 of 2") and "wholly off" in far
    assert "No paired" in R.claim_figure_markdown(R.Claim("x", "s", "r", ("a", "b")))


def test_claims_table_markdown_and_tally() -> None:
    cs = [_claim("beats_flow", [1.0], 0.5, 2.0, R.HELD), _claim("beats_flow", [1.0], -1, 2,
                                                                  R.INCONCLUSIVE)]
    text = R.claims_table_markdown(cs)
    assert "1 held, 1 inconclusive" in text and "The claims that held: a claim." in text
    cs[0].verdict = R.NOT_HELD
    assert "None of the paper's claims held" in R.claims_table_markdown(cs)
    assert R.verdict_tally([]) == "none judged"


def test_alignment_table_markdown_both_directions() -> None:
    align = pd.DataFrame({"run": [R.run_label(r) for r in ("copy_prop", "flow_warp", "lsts")],
                          "EPE all (px)": [6.0, 4.0, 60.0]})
    text = R.alignment_table_markdown(align)
    assert "only DFF flow warp aligns objects better" in text and "LSTS (uniform, N=81) 60.0 px" in text
    align["EPE all (px)"] = [6.0, 7.0, 60.0]
    assert "none aligns objects better than copying" in R.alignment_table_markdown(align)
    assert "not measured" in R.alignment_table_markdown(align.iloc[1:])
    assert "No alignment" in R.alignment_table_markdown(pd.DataFrame())


def test_paper_and_offsets_markdown() -> None:
    text = R.paper_markdown(R.paper_numbers())
    assert "at or above R-FCN (single frame), DFF, FGFA and below MANet, SELSA, MEGA" in text
    low = pd.DataFrame({"method": ["LSTS", "X"], "mAP": [70.0, 60.0]})
    assert "below no method" in R.paper_markdown(low)
    assert "not testable" in R.offsets_markdown([0.01, 0.04])
    # The seeds' mean decides, as in claim 1, not the seed that moved most.
    assert "not testable" in R.offsets_markdown([0.01, 2 * R.OFFSETS_ENGAGED_CELLS - 0.02])
    text = R.offsets_markdown([0.4, 0.5])
    assert "did change" in text and "0.450 feature cells averaged over the 2" in text
    assert R.OFFSETS_MEASURE in text and "at most 0.500" in text
    assert "No LSTS run" in R.offsets_markdown([])


def test_plot_focus_pixel_draws_both_arrows_with_a_legend() -> None:
    from lsts_lib import viz

    p = np.array([[dx, dy] for dy in (-1.0, 0.0, 1.0) for dx in (-1.0, 0.0, 1.0)])
    S = np.full(9, 0.02)
    S[5] = 1 - 0.16
    img = np.zeros((64, 80, 3))
    fig = viz.plot_focus_pixel(img, img, (2, 2), p, S, (16.0, 16.0), (1.0, 0.5), (0.84, 0.0),
                               np.array([20, 20, 50, 50]), ("current", "key"))
    ax = fig.axes[1]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["p0 + p_n, area ∝ S_n(p0)", "p0", "true displacement",
                      "expected: Σ S_n(p0) p_n"]
    assert len([c for c in ax.get_children() if type(c).__name__ == "Annotation"]) == 2
    assert ax.get_xlim()[0] == pytest.approx(40 - 16 - 12)  # zoomed to the grid
    # The dots' colours have a scale: a colour bar of S_n(p0) from 0 to the largest weight
    (bar,) = fig.axes[2:]
    assert "S_n(p0)" in bar.get_xlabel()
    assert bar.get_xlim() == pytest.approx((0.0, 0.84))
    matplotlib.pyplot.close(fig)


def test_focus_border_counts_points_outside_the_map_and_the_picture() -> None:
    # A 4 x 6 map, p0 at its bottom-right cell; the picture ends 0.75 cells above the map's end.
    p = np.array([[0.0, 0.0],    # p0 itself: in the map, but its centre is below the picture
                  [1.0, 0.0],    # x = 6 = w: every tap outside
                  [0.5, -1.0],   # x = 5.5: half its weight on column 6, outside
                  [-2.0, -2.0],  # well inside, inside the picture
                  [2.5, 1.5]])   # outside
    S = np.array([0.5, 0.1, 0.2, 0.1, 0.1])
    b = R.focus_border(S, p, (5, 3), (4, 6), image_cells=(6.0, 3.25), pad_to=32)
    assert (b["outside"], b["edge"], b["beyond"], b["beyond_in_map"]) == (2, 1, 3, 1)
    assert b["outside_each"] == pytest.approx((0.1, 0.1))
    assert b["outside_total"] == pytest.approx(0.2) and b["edge_total"] == pytest.approx(0.2)
    assert b["zero_share"] == pytest.approx(0.1 + 0.1 + 0.2 * 0.5)
    assert b["past"] == {"bottom": pytest.approx(0.75)} and b["reach"] == 2.5
    text = R.focus_border_markdown(b)
    for part in ["3 of the 5 sampling points of p0 are drawn outside the picture",
                 "reach up to 2.50 cells from p0 = cell (5, 3) of the 4 × 6 feature map",
                 "so 3 of the points read the zero padding",  # 2 wholly, 1 with part of its taps
                 "S gives them 0.3 of its weight in all, a share the aligned feature F'(p0) "
                 "loses",
                 "1 of the dots beyond the picture lies wholly inside the map",
                 "a multiple of 32 pixels, so the map reaches 0.75 cells past its bottom edge"]:
        assert part in text, part
    # One sentence on the zeros, whatever their weight; a negligible one says so.
    assert text.count("zero padding") == 1
    tiny = R.focus_border_markdown({**b, "zero_share": 3.8e-10})
    assert "S gives them 3.8e-10 of its weight in all: negligible here." in tiny
    # An inner pixel: nothing leaves the map; without the picture's extent nothing is drawn.
    inner = R.focus_border(S, p, (2, 2), (6, 6))
    assert (inner["outside"], inner["edge"], inner["beyond"]) == (0, 0, None)
    text = R.focus_border_markdown(inner)
    assert text == ("None of the 5 points leaves the 6 × 6 feature map, so none reads the zero "
                    "padding around it.")


def test_points_wholly_outside_the_map_get_the_weight_of_a_zero_score() -> None:
    # What focus_border_markdown says of LSTS, checked on the model: zero padding is applied
    # to the embedding f(F_ref) (after its bias), so s_n = 0 for a point outside the map.
    import torch

    from lsts_lib.models.lsts import LSTSAlign, LSTSOffsets, bilinear_sample

    torch.manual_seed(0)
    offsets = LSTSOffsets("uniform", grid_size=5, grid_range=2.0)
    align = LSTSAlign(offsets, in_channels=3, embed_channels=4)
    with torch.no_grad():
        for conv in (align.f, align.g):
            conv.weight.normal_(std=1.0)
            conv.bias.normal_(std=1.0)
        F_ref, F_target = torch.randn(1, 3, 5, 6), torch.randn(1, 3, 5, 6)
        S = align.weights(F_ref, F_target)[0, :, 4, 5]  # the bottom-right cell
        s = (bilinear_sample(align.f(F_ref), offsets.p) * align.g(F_target)[:, None]).sum(2)
    s = s[0, :, 4, 5]
    b = R.focus_border(S.numpy(), offsets.p.detach().numpy(), (5, 4), (5, 6))
    assert b["outside"] == 25 - 9 and b["edge"] == 0  # dx or dy in {1, 2} leaves the map
    assert int((s == 0).sum()) == b["outside"]
    lo, hi = b["outside_each"]
    assert lo == pytest.approx(hi) == pytest.approx(float(1 / torch.exp(s.double()).sum()))


def test_focus_real_markdown_reads_saturation_and_says_what_it_shows() -> None:
    p = np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 4.0]])
    peaked = [np.array([0.01, 0.02, 0.97]), np.array([0.05, 0.05, 0.9])]
    text = R.focus_real_markdown(peaked, p, (10, 6))
    for part in ["At p0 = cell (10, 6), S is saturated in all 2 real frames",
                 "largest weight is 0.97 and 0.90", "against 1.10 for uniform weights over "
                 "the 3 points", "always on the same point, p_n = (+1.00, +4.00) cells",
                 "copies one sampled location", "trained on SynthVID only",
                 "not a learned correspondence between real frames"]:
        assert part in text, part
    spread = [np.full(3, 1 / 3), np.array([0.3, 0.4, 0.3])]
    text = R.focus_real_markdown(spread, p, (1, 1))
    assert "not saturated in any of the 2 real frames" in text and "1.10 and 1.09" in text
    assert "copies" not in text and "not a learned correspondence" in text
    mixed = R.focus_real_markdown([peaked[0], spread[1]], p, (1, 1))
    assert "saturated (one point above 0.5 of the weight) in 1 of the 2" in mixed
    assert "on 2 different points" in mixed


def test_strip_scores_are_read_against_each_runs_score_scale() -> None:
    # Frames 0..9; frame f's best score is f / 10 (a weaker box beside it), one frame empty.
    ids = np.repeat(np.arange(10), 2)
    scores = np.ravel([[f / 10, f / 20] for f in range(10)])
    med, q10, q90 = R.top_score_scale(ids, scores)
    assert (med, q10, q90) == pytest.approx((0.45, 0.09, 0.81))
    with pytest.raises(ValueError, match="no detections"):
        R.top_score_scale([], [])
    boxes, gt, others = _strip_case()
    reading = R.strip_reading(boxes, gt, others)
    top = {"copy_prop": 0.05, "lsts": 0.5}
    scale = {"copy_prop": (0.35, 0.16, 0.77), "lsts": (0.33, 0.16, 0.74)}
    text = R.strip_markdown(reading, top, 3, scale=scale)
    label = R.run_label
    assert (f"{label('copy_prop')} 0.35 (0.16-0.77), {label('lsts')} 0.33 (0.16-0.74)"
            in text)
    assert f"on this strip {label('copy_prop')} stays below its 10th percentile" in text
    assert f"{label('lsts')} stay" not in text
    # Without a scale the sentence is left out.
    assert "For scale" not in R.strip_markdown(reading, top, 3)
