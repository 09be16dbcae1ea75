"""The report's figures drawn from constructed claims and offsets (numbers made up to exercise
the drawing, not results of anything): what a reader must see is on the axes."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.quiver import Quiver

from lsts_lib import atomic, viz
from lsts_lib import results as R
from lsts_lib.claims import claims_json
from lsts_lib.eval.stats import HELD, NOT_TESTABLE, Interval
from lsts_lib.models.lsts import uniform_offsets

matplotlib.use("Agg")  # no display: draw to memory

SEEDS = [0, 1, 2, 3]
PER_SEED = {"lsts": [20.0, 22.0, 21.0, 23.0], "flow_warp": [18.0, 19.5, 20.0, 20.0],
            "lsts_fixed": [19.0, 21.0, 20.5, 21.5], "single_frame": [22.0, 23.0, 22.5, 24.0]}


def _claim(key: str, a: str, b: str, numbers: dict[str, float] | None = None) -> R.Claim:
    diffs = np.subtract(PER_SEED[a], PER_SEED[b])
    est = float(diffs.mean())
    return R.Claim(
        key, f"statement of {key}, long enough that a fixed-width title would have been cut "
        "at the figure's edge", "rule", (a, b), verdict=HELD, reason="why", seeds=SEEDS,
        per_seed={a: PER_SEED[a], b: PER_SEED[b]}, difference=est,
        t_interval=Interval(est, est - 1.0, est + 1.0, 0.95, len(SEEDS), "paired t over seeds"),
        bootstrap=Interval(est, est - 0.5, est + 2.0, 0.95, 100, "paired bootstrap"),
        combined=Interval(est, est - 1.2, est + 2.2, 0.95, len(SEEDS), "seeds + test videos"),
        numbers=numbers or {})


def _from_claims_json(tmp_path: Path, claims: list[R.Claim]) -> list[R.Claim]:
    """The claims as notebook 05 gets them: written by `lsts claims`' writer, read back."""
    runs = tmp_path / "runs" / "report"
    runs.mkdir(parents=True)
    atomic.write_json(runs / R.CLAIMS_FILE, claims_json(
        claims, split="test", data=tmp_path, num_videos=10, resamples=100, seed=0,
        test_noise=None))
    return R.load_claims(runs)[0]


def _inside(fig: Figure) -> None:
    """Everything drawn (titles, labels, legends) lies within the figure: nothing clipped."""
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, drawn artists only
    page = fig.bbox_inches
    assert page.x0 - 0.01 <= tight.x0 and tight.x1 <= page.x1 + 0.01, (tight, page)
    assert page.y0 - 0.01 <= tight.y0 and tight.y1 <= page.y1 + 0.01, (tight, page)


def test_plot_claim_shows_paired_differences_and_the_interval(tmp_path: Path) -> None:
    (claim,) = _from_claims_json(tmp_path, [_claim("learnable_sampling", "lsts", "lsts_fixed")])
    fig = viz.plot_claim(claim)
    assert fig is not None and len(fig.axes) == 1
    ax = fig.axes[0]
    diffs = np.subtract(PER_SEED["lsts"], PER_SEED["lsts_fixed"])
    seeds_line = next(ln for ln in ax.get_lines() if ln.get_marker() == "o")
    assert len(seeds_line.get_ydata()) == len(SEEDS)
    assert sorted(seeds_line.get_ydata()) == pytest.approx(sorted(diffs))
    # The error bar is the combined interval, around the seed-mean difference.
    est_line = next(ln for ln in ax.get_lines() if ln.get_marker() == "D")
    est = float(est_line.get_ydata()[0])
    assert est == pytest.approx(diffs.mean())
    bar = next(c for c in ax.collections if c.__class__.__name__ == "LineCollection")
    (seg,) = bar.get_segments()
    low, high = sorted(seg[:, 1])
    assert low < est < high
    assert (low, high) == pytest.approx((est - 1.2, est + 2.2))
    assert ax.get_ylabel().startswith("mAP difference (points)")
    assert 0.0 in [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == "-"
                   and len(ln.get_xdata()) == 2]  # the zero line
    # The claimed side (a beats b: above 0) is shaded from 0 up.
    (shade,) = [p for p in ax.patches if isinstance(p, Rectangle)
                and p.get_facecolor()[3] < 0.5]
    assert shade.get_y() == pytest.approx(0.0) and shade.get_height() > 0
    assert claim.statement.split(",")[0] in fig._suptitle.get_text().replace("\n", " ")
    _inside(fig)


def test_plot_claim_cost_panel_and_close_claim(tmp_path: Path) -> None:
    claims = _from_claims_json(tmp_path, [
        _claim("beats_flow", "lsts", "flow_warp", {"lsts.cpu_ms": 200.0,
                                                   "flow_warp.cpu_ms": 400.0}),
        _claim("per_frame", "single_frame", "lsts", {"lsts.cpu_ms": 200.0,
                                                     "single_frame.cpu_ms": 1000.0})])
    for claim, ratio, bound in ((claims[0], 0.5, R.SPEED_MARGIN),
                                (claims[1], 0.2, R.COST_FRACTION)):
        fig = viz.plot_claim(claim)
        assert fig is not None and len(fig.axes) == 2
        cost = fig.axes[1]
        (bar,) = [p for p in cost.patches if isinstance(p, Rectangle)
                  and p.get_facecolor()[3] == 1.0]
        assert bar.get_height() == pytest.approx(ratio)  # LSTS's time over the other's
        assert f"{bound:g}" in cost.get_legend().get_texts()[0].get_text()
        _inside(fig)
    # "Close to per-frame accuracy": the allowed side is below CLOSE_MAP_POINTS.
    ax = viz.plot_claim(claims[1]).axes[0]
    (shade,) = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_facecolor()[3] < 0.5]
    assert shade.get_y() + shade.get_height() == pytest.approx(R.CLOSE_MAP_POINTS)


def test_plot_claim_without_runs_draws_nothing() -> None:
    claim = R.Claim("srfu", "SRFU adds accuracy", "rule", ("lsts", "lsts_no_srfu"),
                    verdict=NOT_TESTABLE, reason="variant lsts_no_srfu not run in this preset")
    assert viz.plot_claim(claim) is None


def test_plot_claim_one_seed_uses_the_bootstrap(tmp_path: Path) -> None:
    c = _claim("dfa", "lsts", "flow_warp")
    c.seeds, c.per_seed = [0], {k: v[:1] for k, v in c.per_seed.items()}
    c.t_interval = c.combined = None
    fig = viz.plot_claim(c)
    ax = fig.axes[0]
    assert len(next(ln for ln in ax.get_lines() if ln.get_marker() == "o").get_ydata()) == 1
    (seg,) = next(c_ for c_ in ax.collections
                  if c_.__class__.__name__ == "LineCollection").get_segments()
    assert sorted(seg[:, 1]) == pytest.approx([c.bootstrap.low, c.bootstrap.high])
    assert "test videos only" in ax.get_legend().get_texts()[-1].get_text()


@pytest.mark.parametrize("largest, gain", [(0.083, 5.0), (0.3, 1.0), (0.004, 100.0)])
def test_arrow_gain(largest: float, gain: float) -> None:
    assert viz._arrow_gain(largest) == gain
    assert gain * largest <= 0.45 or gain == 1.0


def test_plot_offsets_scatter_labels_and_arrows() -> None:
    init = uniform_offsets(3, 1.0).numpy()  # 9 points
    rng = np.random.default_rng(0)
    seeds = {f"seed{s}": (init, init + rng.uniform(-0.05, 0.05, init.shape)) for s in range(2)}
    fig = viz.plot_offsets({"LSTS": seeds})
    ax, dax = fig.axes[:2]
    assert "dx" in ax.get_xlabel() and "dy" in ax.get_ylabel()
    assert "dx" in dax.get_xlabel() and "dy" in dax.get_ylabel()
    assert ax.yaxis_inverted() and dax.yaxis_inverted()  # dy grows downwards, as in images
    quivers = [c for c in ax.collections if isinstance(c, Quiver)]
    assert len(quivers) == 2 and all(q.N == len(init) for q in quivers)
    gain = viz._arrow_gain(max(np.linalg.norm(b - a, axis=1).max() for a, b in seeds.values()))
    assert gain > 1 and f"x{gain:g}" in ax.get_title()
    np.testing.assert_allclose(quivers[0].U, gain * (seeds["seed0"][1] - init)[:, 0], rtol=1e-5)
    points = [c for c in dax.collections if isinstance(c, PathCollection)]
    assert len(points) == 2
    np.testing.assert_allclose(points[1].get_offsets(), seeds["seed1"][1] - init, rtol=1e-5)
    # No histogram any more: only the two scatter panels (and no bar patches).
    assert len(fig.axes) == 2
    with pytest.raises(ValueError):
        viz.plot_offsets({})


def test_draw_offset_moves_magnifies_short_moves() -> None:
    import matplotlib.pyplot as plt

    init = uniform_offsets(3, 1.0).numpy()
    learned = init + 0.02  # a fiftieth of the grid spacing: invisible to scale
    fig, ax = plt.subplots()
    gain = viz.draw_offset_moves(ax, init, learned, label="lsts")
    assert gain == viz._arrow_gain(0.02 * np.sqrt(2)) and gain > 1
    (arrows,) = [c for c in ax.collections if isinstance(c, Quiver)]
    np.testing.assert_allclose(arrows.U, gain * 0.02, rtol=1e-5)
    (crosses,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(crosses.get_offsets(), init)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["initial p_n", f"lsts: move x{gain:g}"]
    ax.cla()
    assert viz.draw_offset_moves(ax, init, learned, 1.0, crosses=None) == 1.0
    assert not [c for c in ax.collections if isinstance(c, PathCollection)]
    assert ax.get_legend_handles_labels()[1] == ["learned: move"]
    plt.close(fig)


def _arrow_ends_inside(ax) -> None:
    """Every arrow's tail and head lies inside the axes, with room for the head around it."""
    x0, x1 = sorted(ax.get_xlim())
    y0, y1 = sorted(ax.get_ylim())
    room = 0.02 * (x1 - x0)
    for q in (c for c in ax.collections if isinstance(c, Quiver)):
        tails = np.asarray(q.get_offsets())
        for xy in (tails, tails + np.column_stack([q.U, q.V])):  # scale 1 in data units
            assert (xy[:, 0] > x0 + room).all() and (xy[:, 0] < x1 - room).all(), (xy, x0, x1)
            assert (xy[:, 1] > y0 + room).all() and (xy[:, 1] < y1 - room).all(), (xy, y0, y1)


def test_offset_arrows_leaving_the_grid_are_inside_the_axes() -> None:
    import matplotlib.pyplot as plt

    # The outer points of a 9x9 grid over [-4, 4] moved 0.9 cells outwards: the heads end at
    # +-4.9, past the limits the quiver's tails alone give.
    init = uniform_offsets(9, 4.0).numpy()
    learned = init + 0.9 * np.sign(init) * (np.abs(init) == 4.0)
    fig = viz.plot_offsets({"LSTS": {"seed0": (init, learned), "seed1": (init, init - 0.1)}})
    ax = fig.axes[0]
    assert ax.yaxis_inverted()
    assert max(ax.get_xlim()) > 4.9 and min(ax.get_ylim()) < -4.9
    _arrow_ends_inside(ax)
    plt.close(fig)
    fig, ax = plt.subplots()  # as notebook 04 draws one seed's moves
    viz.draw_offset_moves(ax, init, learned)
    ax.invert_yaxis()
    _arrow_ends_inside(ax)
    plt.close(fig)


@pytest.mark.parametrize("n", [7, 8, 10])
def test_variant_styles_give_each_variant_its_colour_and_dash(n: int) -> None:
    names = [f"v{i}" for i in range(n)]
    styles = viz.variant_styles(names)
    assert list(styles) == names
    colours = [s["color"] for s in styles.values()]
    dashes = [str(s["ls"]) for s in styles.values()]
    assert len(set(colours)) == n and len(set(dashes)) == n  # hence distinct pairs too
    widths = [s["lw"] for s in styles.values()]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]
    with pytest.raises(ValueError):
        viz.variant_styles([f"v{i}" for i in range(len(viz.DASHES) + 1)])


def test_variant_styles_cover_the_registered_variants() -> None:
    from lsts_lib.models.variants import VARIANTS

    styles = viz.variant_styles(list(VARIANTS))
    assert len({(s["color"], str(s["ls"])) for s in styles.values()}) == len(VARIANTS)


def test_identical_curves_are_drawn_once_and_labelled_with_all_their_variants() -> None:
    import matplotlib.pyplot as plt
    import pandas as pd

    steps = np.arange(1, 51)
    base = pd.Series(1.0 / steps, index=steps)
    curves = {"lsts_fixed": base, "lsts": base.copy(), "lsts_no_srfu": base * (1 + 1e-3),
              "lsts_no_dfa": base + 1e-15, "short": base.iloc[:-1]}
    assert viz.identical_curves(curves) == [
        ["lsts_fixed", "lsts", "lsts_no_dfa"], ["lsts_no_srfu"], ["short"]]
    fig, ax = plt.subplots()
    styles = viz.variant_styles(list(curves))
    groups = viz.plot_variant_curves(ax, curves, styles)
    assert len(groups) == 3
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == [
        "lsts_fixed, lsts, lsts_no_dfa (identical)", "lsts_no_srfu", "short"]
    assert lines[0].get_color() == styles["lsts_fixed"]["color"]
    assert lines[1].get_linestyle() != lines[0].get_linestyle()
    plt.close(fig)


def test_architecture_figure_names_the_papers_parts() -> None:
    fig = viz.architecture_figure()
    texts = " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
    for name in ("key frame", "non-key frame", "res4b3", "Conv4_3", "low2high", "LSTS key→key",
                 "LSTS key→cur", "quality net", "SRFU", "DFA", "memory", "R-FCN head",
                 "offsets $p_n$"):
        assert name in texts, name
    _inside(fig)


def test_readme_shows_the_architecture_and_every_image_it_names_exists() -> None:
    from lsts_lib import paths

    readme = (paths.REPO / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert "figures/01_architecture.png" in images
    for image in images:
        assert (paths.REPO / image).is_file(), image


def test_variant_legend_handles_show_a_whole_dash_period() -> None:
    import matplotlib.pyplot as plt
    import pandas as pd

    from lsts_lib.models.variants import VARIANTS

    styles = viz.variant_styles(list(VARIANTS))
    steps = np.arange(1, 11)
    curves = {v: pd.Series(steps * (i + 1.0), index=steps) for i, v in enumerate(VARIANTS)}
    fig, ax = plt.subplots()
    viz.plot_variant_curves(ax, curves, styles)
    legend = viz.variant_legend(ax, fontsize=7)
    assert legend.handlelength >= 3
    assert legend.get_texts()[0].get_fontsize() == 7  # the caller's keywords pass through
    # matplotlib scales dashes by the line width: the handle (in points) must span one period
    # of every variant's dash, else two variants' entries can look alike.
    periods = [sum(s["ls"][1]) * s["lw"] for s in styles.values() if isinstance(s["ls"], tuple)]
    assert legend.handlelength * 7 >= max(periods)
    assert viz.variant_legend(ax, handlelength=6).handlelength == 6
    plt.close(fig)


# ---- figure audit fixes: captions, legends, scales, colours --------------------------------

def _patches(ax) -> list:
    """The display extents of the box captions' background patches (after a draw)."""
    renderer = ax.figure.canvas.get_renderer()
    return [t.get_bbox_patch().get_window_extent(renderer) for t in ax.texts]


@pytest.mark.parametrize("size", [(6.0, 2.0), (3.0, 1.2)])
def test_box_captions_stay_inside_the_image_and_apart(size: tuple[float, float]) -> None:
    import matplotlib.pyplot as plt

    img = np.zeros((90, 160, 3))
    boxes = np.array([[10, 0, 60, 40],      # touches the image's top: no room above it
                      [12, 30, 70, 80],     # its caption would sit on the first box's
                      [14, 32, 50, 60],     # and this one's on both
                      [150, 50, 159, 89]])  # at the right edge: caption shifted left
    fig, axes = plt.subplots(1, 2, figsize=size, layout="constrained")
    for ax in axes:  # the second axes' captions are placed apart from the first's
        viz.draw_boxes(ax, img, boxes, [1, 2, 3, 4], ["a_long_class_name", "b", "c", "d"],
                       track_ids=[0, 1, 2, 3])
        ax.set_title("a title the captions must not spill onto", fontsize=8)
    fig.canvas.draw()  # the layout has changed the axes' size: captions are placed now
    for ax in axes:
        patches = _patches(ax)
        assert len(patches) == 4
        frame = ax.bbox
        for p in patches:
            assert p.x0 >= frame.x0 - 0.5 and p.x1 <= frame.x1 + 0.5, (p, frame)
            assert p.y1 <= frame.y1 + 0.5, (p, frame)  # nothing above the image, on the title
        for i in range(4):
            for j in range(i + 1, 4):
                assert not patches[i].overlaps(patches[j]), (i, j, patches[i], patches[j])
        # The first box touches the top: its caption hangs inside it, under its top edge.
        top = ax.transData.transform((10, 0))[1]
        assert patches[0].y1 <= top + 0.5
        assert all(t.get_clip_on() for t in ax.texts)
    plt.close(fig)


def test_box_captions_are_placed_again_after_the_figure_is_resized() -> None:
    import matplotlib.pyplot as plt

    img = np.zeros((90, 160, 3))
    boxes = np.array([[10, 20, 60, 40], [12, 24, 70, 80], [14, 27, 50, 60]])
    fig, ax = plt.subplots(figsize=(6, 3.4))
    viz.draw_boxes(ax, img, boxes, [1, 2, 3], ["aaaa", "bbbb", "cccc"], fontsize=9)
    fig.canvas.draw()
    fig.set_size_inches(2.5, 1.5)  # captions keep their size in points: they grow in data
    fig.canvas.draw()
    patches = _patches(ax)
    assert not any(patches[i].overlaps(patches[j]) for i in range(3) for j in range(i + 1, 3))
    plt.close(fig)


def test_ground_truth_is_drawn_in_a_colour_no_class_has() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    fig, ax = plt.subplots()
    img = np.zeros((60, 80, 3))
    viz.draw_detections(ax, img, [np.array([5, 5, 30, 30])], np.array([[6, 6, 31, 31]]),
                        np.array([3]), ["a", "b", "c"], np.array([0.5]), "title")
    edges = [tuple(p.get_edgecolor()[:3]) for p in ax.patches if isinstance(p, Rectangle)]
    white, black = to_rgb("white"), to_rgb("black")
    assert edges.count(white) == 1 and edges.count(black) == 1  # dashes over a black line
    (gt,) = [p for p in ax.patches if tuple(p.get_edgecolor()[:3]) == white]
    assert gt.get_linestyle() not in ("-", "solid")
    # Far from the colour of every class up to 10 (tab10: SynthVID has 7; lime was 0.44 from
    # tab:green), apart from each of VID's 30 (tab20 has a light grey); and dashed, as no
    # class's box is.
    palette = np.array([to_rgb(viz.class_colour(k)) for k in range(1, 31)])
    for colour in (white, black):
        dist = np.linalg.norm(palette - np.array(colour), axis=1)
        assert dist[:10].min() > 0.55 and dist.min() > 0.3
    assert to_rgb(viz.class_colour(3)) in edges  # the detection, in its class's colour
    assert "white dashed" in viz.GROUND_TRUTH
    plt.close(fig)


def test_cost_panel_names_every_mark_in_colours_no_run_has(tmp_path: Path) -> None:
    from matplotlib.colors import to_rgb

    from lsts_lib.models.variants import VARIANTS

    (claim,) = _from_claims_json(tmp_path, [_claim(
        "per_frame", "single_frame", "lsts", {"lsts.cpu_ms": 200.0, "single_frame.cpu_ms": 1e3})])
    cost = viz.plot_claim(claim).axes[1]
    labels = [t.get_text() for t in cost.get_legend().get_texts()]
    assert "measured ratio" in labels and "equal cost (ratio 1)" in labels
    assert any(f"{R.COST_FRACTION:g}" in lab and "bound" in lab for lab in labels)
    (bar,) = [p for p in cost.patches if isinstance(p, Rectangle) and p.get_facecolor()[3] == 1.0]
    run_colours = [to_rgb(s["color"]) for s in viz.variant_styles(list(VARIANTS)).values()]
    assert tuple(bar.get_facecolor()[:3]) not in run_colours
    legend = cost.get_legend().get_window_extent()
    assert legend.y1 <= cost.get_window_extent().y0  # below the panel, on no mark


def test_plot_offsets_legends_are_readable() -> None:
    init = uniform_offsets(3, 1.0).numpy()
    fig = viz.plot_offsets({"LSTS": {"seed0": (init, init + 0.1)}})
    for ax in fig.axes[:2]:
        assert all(t.get_fontsize() >= 8 for t in ax.get_legend().get_texts())


def test_architecture_labels_are_not_struck_through_by_the_group_outlines() -> None:
    from matplotlib.patches import FancyBboxPatch

    fig = viz.architecture_figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    outlines = [p.get_window_extent(renderer) for p in ax.patches
                if isinstance(p, FancyBboxPatch) and p.get_facecolor()[3] == 0]  # dashed, unfilled
    assert len(outlines) == 2
    for text in ax.texts:
        if not text.get_text():
            continue
        box = text.get_window_extent(renderer)
        for outline in outlines:
            inside = (box.x0 > outline.x0 and box.x1 < outline.x1 and box.y0 > outline.y0
                      and box.y1 < outline.y1)
            assert inside or not box.overlaps(outline), text.get_text()
    for name in ("$F_k$", "$M_k$", "$F_t$"):  # the arrow labels at the outlines' sides
        assert name in [t.get_text() for t in ax.texts]


def test_legend_outside_leaves_the_axes_free() -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, layout="constrained")
    axes[0].plot([0, 1], [0, 1], label="a")
    legend = viz.legend_outside(axes[0])
    fig.canvas.draw()
    box, frame = legend.get_window_extent(), axes[0].get_window_extent()
    assert box.x0 >= frame.x1 and not box.overlaps(axes[1].get_window_extent())
    assert legend.get_texts()[0].get_fontsize() == viz.LEGEND_FONTSIZE
    plt.close(fig)


def test_crop_letterbox_cuts_the_dark_bars_only() -> None:
    import torch

    img = torch.full((3, 20, 40), 0.06)
    img[:, 1:20, 8:33] = torch.rand(3, 19, 25) * 0.5 + 0.3
    out = viz.crop_letterbox(img)
    assert out.shape == (3, 19, 25)
    assert torch.equal(out, img[:, 1:20, 8:33])
    dark = torch.zeros(3, 5, 5)
    assert viz.crop_letterbox(dark) is dark


def _features(seed: int = 0):
    """One 64 x 96 image, the model reading it at 32 x 48 (stride 16: 2 x 3 cells), with a
    low and a top feature of 4 channels, channel 1 bright on the object's cells."""
    import torch

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(4, 2, 3, generator=g) * 0.1
    low[1, 0, 0] = 5.0  # the object covers the top-left cell
    high = low.clone()
    return {"frame": (torch.zeros(3, 64, 96), (32, 48), low, high)}


def test_feature_maps_say_each_panel_is_scaled_on_its_own() -> None:
    import matplotlib.pyplot as plt

    fig = viz.plot_feature_maps(_features(), 16, "title")
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("scaled per panel" in t for t in titles) == 4
    images = [ax.get_images()[0] for ax in fig.axes[1:5]]
    assert all(im.get_clim() == (0, 1) for im in images)
    assert images[0].get_array().shape == (2, 3)  # the cells covering the image
    plt.close(fig)


def test_feature_maps_caption_reads_the_maps_on_and_off_the_objects() -> None:
    features = _features()
    text = viz.feature_maps_caption(features, {"frame": np.array([[0, 0, 30, 30]])}, 16)
    assert "1 annotated object cover 1 of the 6 cells drawn" in text
    assert "low cut channel 1 1.00 against" in text and "brighter on the objects" in text
    assert "not one map with another" in text
    assert "No row" in viz.feature_maps_caption(features, {}, 16)


def test_quality_scores_share_one_symmetric_scale() -> None:
    import matplotlib.pyplot as plt

    qa = np.array([[0.1, -0.2], [0.3, 0.0]])
    qb = np.array([[0.5, -0.1], [0.2, 0.1]])
    fig = viz.plot_quality_weights(qa, qb, np.full((2, 2), 0.5))
    (ia,), (ib,), (iw,) = (ax.get_images() for ax in fig.axes[:3])
    assert ia.get_clim() == ib.get_clim() == pytest.approx((-0.5, 0.5))
    assert iw.get_clim() == (0, 1)
    assert len(fig.axes) == 5  # three panels, one colour bar for both scores, one for w_A
    plt.close(fig)


def test_toy_shift_draws_each_points_path_so_far() -> None:
    import matplotlib.pyplot as plt
    import torch

    steps, n = 4, 3
    offsets = torch.stack([torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]]) + 0.3 * s
                           for s in range(steps + 1)])
    history = {"offsets": offsets, "mean_S": torch.full((steps + 1, n), 1 / n),
               "loss": torch.linspace(1.0, 0.1, steps + 1)}
    fig = viz.plot_toy_shift(history, (2, -1), [0, 2, 4])
    assert not fig.axes[0].get_lines()  # step 0: nowhere to come from
    paths = fig.axes[1].get_lines()
    assert len(paths) == n
    np.testing.assert_allclose(paths[1].get_xydata(), offsets[:3, 1].numpy())
    assert len(fig.axes[2].get_lines()) == n and len(fig.axes[2].get_lines()[0].get_xdata()) == 5
    plt.close(fig)


def _dev_rows() -> tuple:
    import pandas as pd

    dev1 = pd.DataFrame({"step": [10, 20], "mAP": [0.1, 0.2], "frames": [50, 50]})
    rows = [{"variant": v, "seed": s, "step": t, "mAP": 0.1 * i + 0.01 * s + 0.001 * t,
             "frames": 20} for i, v in enumerate(["single_frame", "lsts"]) for s in range(3)
            for t in (0, 5, 10)]
    return dev1, pd.DataFrame(rows)


def test_dev_map_draws_each_variants_dash_and_its_seeds_as_dots() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from lsts_lib.models.variants import VARIANTS

    dev1, dev2 = _dev_rows()
    styles = viz.variant_styles(list(VARIANTS))
    fig = viz.plot_dev_map(dev1, dev2, styles)
    ax = fig.axes[1]
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]  # no bands
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for v in ("single_frame", "lsts"):
        assert lines[v].get_color() == styles[v]["color"]
        assert lines[v].get_linestyle() == plt.Line2D([], [], ls=styles[v]["ls"]).get_linestyle()
    dots = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    assert sorted(len(d.get_offsets()) for d in dots) == [9, 9]  # 3 seeds x 3 steps each
    np.testing.assert_allclose(sorted(np.concatenate([d.get_offsets()[:, 1] for d in dots])),
                               sorted(100 * dev2.mAP))
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
    plt.close(fig)


def test_learning_rates_get_a_panel_per_stage_on_linear_scales() -> None:
    import matplotlib.pyplot as plt
    import pandas as pd

    s1 = pd.DataFrame({"step": np.arange(1, 101), "lr": np.linspace(4e-3, 1e-9, 100)})
    s2 = pd.DataFrame({"step": np.arange(1, 11), "lr": np.linspace(1e-3, 1e-7, 10)})
    s2["lr_offsets"] = 40 * s2.lr
    fig = viz.plot_learning_rates(s1, s2, "lsts")
    ax1, ax2, right = fig.axes
    assert ax1.get_xlim() == (0, 100) and ax2.get_xlim() == (0, 10)
    assert ax1.get_yscale() == ax2.get_yscale() == "linear" and ax1.get_ylim()[0] == 0
    assert right.get_ylim()[0] == 0 and right.get_ylim()[1] >= 40e-3
    assert "40 x the base rate" in ax2.get_title()
    assert len(viz.plot_learning_rates(s1).axes) == 1
    plt.close("all")


def test_focus_pixel_without_a_true_displacement() -> None:
    import matplotlib.pyplot as plt

    p = np.array([[dx, dy] for dy in (-1.0, 0.0, 1.0) for dx in (-1.0, 0.0, 1.0)])
    S = np.full(9, 0.01)
    S[5] = 0.92
    img = np.zeros((64, 80, 3))
    fig = viz.plot_focus_pixel(img, img, (2, 2), p, S, (16.0, 16.0), expected_disp=(0.9, 0.0))
    ax = fig.axes[1]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "true displacement" not in labels and "expected: Σ S_n(p0) p_n" in labels
    assert len([c for c in ax.get_children() if type(c).__name__ == "Annotation"]) == 1
    (dots,) = [h for h in ax.get_legend().legend_handles if isinstance(h, PathCollection)]
    assert dots.get_sizes()[0] < 100  # not the saturated dot's area
    plt.close(fig)
