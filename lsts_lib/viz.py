"""Drawing helpers shared by the notebooks: frames with boxes, strips of consecutive frames,
the evidence of each claim, the learned offsets p_n, where LSTS samples (S_n(p0) over an
image) and the architecture."""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from lsts_lib import results
from lsts_lib.data.types import FrameAnnotation
from lsts_lib.data.vid import load_image

ImageLike = torch.Tensor | np.ndarray | str | Path


def to_hwc(image: ImageLike) -> np.ndarray:
    """(3,H,W) tensor in [0,1], HxWx3 array or an image path -> HxWx3 float array in [0,1]."""
    if isinstance(image, str | Path):
        image = load_image(image)
    if isinstance(image, torch.Tensor):
        arr = image.detach().cpu().float().numpy()
        if arr.ndim == 3 and arr.shape[0] in (1, 3):
            arr = arr.transpose(1, 2, 0)
    else:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.clip(arr, 0.0, 1.0)


def class_colour(label: int) -> tuple[float, float, float, float]:
    """A stable colour per class label (tab10, then tab20)."""
    cmap = plt.get_cmap("tab10" if label <= 10 else "tab20")
    return cmap((label - 1) % cmap.N)


def draw_boxes(
    ax: Axes,
    image: ImageLike | None,
    boxes: np.ndarray | torch.Tensor,
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    scores: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    *,
    track_ids: Sequence[int] | np.ndarray | None = None,
    linewidth: float = 1.5,
    fontsize: float = 7.0,
    show_text: bool = True,
) -> Axes:
    """Show `image` on `ax` (if given) and draw boxes (x1 y1 x2 y2 pixels), labelled 1-based.

    The caption is `name`, then `#track` and/or the score when given. Captions sit on the
    box's top edge, inside the box when there is no room above it, and lower down where they
    would cover another caption of the axes; they are clipped to the axes (`_BoxLabels`).
    """
    if image is not None:
        ax.imshow(to_hwc(image))
    boxes = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes)
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(int)
    if scores is not None:
        scores = np.asarray(scores.cpu() if isinstance(scores, torch.Tensor) else scores)
    for k, (x1, y1, x2, y2) in enumerate(boxes.reshape(-1, 4).tolist()):
        colour = class_colour(int(labels[k]))
        ax.add_patch(
            Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=linewidth)
        )
        if not show_text:
            continue
        name = class_names[labels[k] - 1] if 1 <= labels[k] <= len(class_names) else str(labels[k])
        text = name
        if track_ids is not None:
            text += f" #{int(track_ids[k])}"
        if scores is not None:
            text += f" {float(scores[k]):.2f}"
        label = ax.text(x1, y1, text, fontsize=fontsize, color="white", ha="left",
                        va="bottom", clip_on=True,
                        bbox={"facecolor": colour, "alpha": 0.75, "pad": 1, "edgecolor": "none"})
        _BoxLabels.of(ax).add(label, (x1, y1))
    ax.set_axis_off()
    return ax


class _BoxLabels(Artist):
    """Places the box captions of one axes each time the axes are drawn, once the layout has
    fixed how many pixels a data unit is (a caption's size is in points, so whether two of
    them overlap is known only then). Drawn before them (lowest z-order), it moves each
    caption, topmost box first: onto its box's top edge; inside the box, under that edge,
    when above it the caption would leave the axes (a box touching the image's top); then
    below every caption already placed that it would cover; and left of the axes' right edge.
    It draws nothing itself and takes no part in the layout."""

    GAP_PX = 1.0  # between two stacked captions

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[tuple[Text, tuple[float, float]]] = []  # caption, box's (x1, y1)
        self.set_zorder(-np.inf)
        self.set_in_layout(False)

    @classmethod
    def of(cls, ax: Axes) -> _BoxLabels:
        """The axes' placer (one per axes, so captions of several `draw_boxes` calls on the
        same axes avoid one another)."""
        for artist in ax.artists:
            if isinstance(artist, cls):
                return artist
        return ax.add_artist(cls())

    def add(self, label: Text, corner: tuple[float, float]) -> None:
        self.labels.append((label, corner))

    def draw(self, renderer: RendererBase) -> None:
        place_box_labels(self.axes, self.labels, renderer)


def place_box_labels(ax: Axes, labels: Sequence[tuple[Text, tuple[float, float]]],
                     renderer: RendererBase) -> list[Bbox]:
    """Move each caption (left/bottom aligned Text with a bbox patch, in data coordinates) to
    where `_BoxLabels` says; returns the captions' patches in display pixels, in the order
    given."""
    frame = ax.bbox
    to_display = ax.transData.transform
    corners = [to_display(corner) for _, corner in labels]
    # Topmost box first (display y grows upwards), then leftmost.
    order = sorted(range(len(labels)), key=lambda i: (-corners[i][1], corners[i][0]))
    placed: dict[int, Bbox] = {}
    for i in order:
        text, _ = labels[i]
        text.update_bbox_position_size(renderer)
        patch = text.get_bbox_patch().get_window_extent(renderer)
        anchor = to_display(text.get_position())
        off = (anchor[0] - patch.x0, anchor[1] - patch.y0)  # text anchor within its patch
        w, h = patch.width, patch.height
        x, top = corners[i]
        left = min(max(x, frame.x0), frame.x1 - w)
        bottom = top if top + h <= frame.y1 else top - h  # above the edge, else under it
        for _ in range(len(placed)):
            box = Bbox.from_bounds(left, bottom, w, h)
            hits = [b for b in placed.values() if box.overlaps(b)]
            if not hits:
                break
            bottom = min(b.y0 for b in hits) - h - _BoxLabels.GAP_PX
        placed[i] = Bbox.from_bounds(left, bottom, w, h)
        text.set_position(ax.transData.inverted().transform((left + off[0], bottom + off[1])))
    return [placed[i] for i in range(len(labels))]


def frame_strip(
    frames: Sequence[FrameAnnotation | ImageLike],
    class_names: Sequence[str] = (),
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    width: float = 2.6,
    show_text: bool = True,
) -> Figure:
    """A row (or grid) of frames; FrameAnnotations get their ground-truth boxes drawn."""
    n = len(frames)
    if n == 0:
        raise ValueError("frame_strip needs at least one frame")
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    first = frames[0]
    img0 = to_hwc(first.image if isinstance(first, FrameAnnotation) else first)
    aspect = img0.shape[0] / img0.shape[1]
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, width * aspect * nrows + 0.3), squeeze=False
    )
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.set_axis_off()
            continue
        f = frames[i]
        if isinstance(f, FrameAnnotation):
            draw_boxes(ax, f.image, f.boxes, f.labels, class_names, track_ids=f.track_ids,
                       show_text=show_text)
        else:
            ax.imshow(to_hwc(f))
            ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


# One dash pattern per variant, as many as tab10 has colours, so that a variant keeps a colour
# and a dash of its own: curves that overlap (the stage-2 losses nearly do) stay apart.
DASHES: tuple[str | tuple[float, tuple[float, ...]], ...] = (
    "-", (0, (6, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (6, 2, 1, 2, 1, 2)), (0, (12, 3)),
    (0, (2, 4)), (0, (12, 2, 2, 2)), (0, (1, 4)), (0, (12, 2, 5, 2)))


def variant_styles(variants: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Line style per variant (pass them all, in `VARIANTS` order, so that every figure gives a
    variant the same style): its own tab10 colour and its own dash (`DASHES`), and a width
    going from thick to thin so that a curve drawn later does not hide one drawn before."""
    colours = plt.get_cmap("tab10").colors
    if len(variants) > min(len(colours), len(DASHES)):
        raise ValueError(f"{len(variants)} variants: at most {len(DASHES)} styles")
    last = max(1, len(variants) - 1)
    return {v: {"color": colours[i], "ls": DASHES[i], "lw": 2.8 - 1.8 * i / last}
            for i, v in enumerate(variants)}


def identical_curves(curves: Mapping[str, pd.Series], rtol: float = 1e-9
                     ) -> list[list[str]]:
    """The names grouped by identical curves (same steps, values equal to `rtol` of the
    curve's scale), in first-seen order: variants that share a stage (the LSTS variants warm
    low2high up from the same stage-1 model) log the same numbers."""
    groups: list[list[str]] = []
    for name, curve in curves.items():
        for group in groups:
            ref = curves[group[0]]
            scale = float(np.nanmax(np.abs(ref.to_numpy()), initial=0.0))
            if (ref.index.equals(curve.index) and np.allclose(
                    curve.to_numpy(), ref.to_numpy(), rtol=0.0, atol=rtol * scale,
                    equal_nan=True)):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def plot_variant_curves(ax: Axes, curves: Mapping[str, pd.Series],
                        styles: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """One line per distinct curve (x: the series' index), in the style of its first variant;
    a line that several variants share is labelled with all of them and "(identical)", else
    the lines would lie on one another and the legend would name curves nobody can see.
    Returns the groups (`identical_curves`)."""
    groups = identical_curves(curves)
    for group in groups:
        curve = curves[group[0]]
        label = ", ".join(group) + (" (identical)" if len(group) > 1 else "")
        ax.plot(curve.index, curve.to_numpy(), label=label, **styles[group[0]])
    return groups


# Legend handle length (in font sizes) for dashed variant lines: matplotlib's default of 2 is
# shorter than one period of the longer `DASHES`, so the legend would not show the dash.
VARIANT_HANDLELENGTH = 4.0


def variant_legend(ax: Axes, **kw: Any) -> Any:
    """`ax.legend(**kw)` with handles long enough to show each variant's dash (`DASHES`)."""
    kw.setdefault("handlelength", VARIANT_HANDLELENGTH)
    return ax.legend(**kw)


LEGEND_FONTSIZE = 8.0  # the smallest legend text the figures use (6 pt could not be read)


def legend_outside(ax: Axes, *, handlelength: float | None = None, **kw: Any) -> Legend:
    """The axes' legend right of them, top-aligned with them, so that it covers no curve,
    bar or point whatever the data (`tight_layout` and constrained layout make room for it).
    `handlelength` defaults to `VARIANT_HANDLELENGTH` (long enough for the variants' dashes);
    other keywords go to `ax.legend`."""
    kw.setdefault("fontsize", LEGEND_FONTSIZE)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     handlelength=VARIANT_HANDLELENGTH if handlelength is None else handlelength,
                     **kw)


# Claims with a cost part: which run of (a, b) is timed against the other (the time ratio
# `lsts claims` judges is that run over the other) and the largest ratio the claim allows.
_COST_PART: dict[str, tuple[int, float, str]] = {
    "beats_flow": (0, results.SPEED_MARGIN, "<"), "per_frame": (1, results.COST_FRACTION, "≤")}
_CLAIM_GREEN = "tab:green"


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


def plot_claim(claim: results.Claim) -> Figure | None:
    """One claim's evidence: the per-seed paired differences a - b (mAP points) as dots, their
    seed mean with the combined 95 % interval (seeds + test videos; the test-video bootstrap
    alone with one seed), the zero line and the claimed side shaded; for a claim with a cost
    part, a second panel with the amortised CPU time ratio against its bound.

    None when the claim has no paired numbers (a run was not made): nothing to draw.
    """
    if not claim.seeds or claim.difference is None:
        return None
    a, b = claim.runs
    iv = claim.combined or claim.bootstrap
    assert iv is not None  # `lsts claims` fills both with the difference
    cost = _COST_PART.get(claim.key)
    ratio = _cost_ratio(claim, *cost) if cost else None
    fig, axes = plt.subplots(1, 2 if ratio else 1, figsize=(7.6 if ratio else 4.6, 4.0),
                             layout="constrained", squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]} if ratio else None)
    ax = axes[0, 0]
    diffs = np.asarray(claim.per_seed[a]) - np.asarray(claim.per_seed[b])
    jitter = np.linspace(-0.12, 0.12, len(diffs)) if len(diffs) > 1 else np.zeros(1)
    ax.plot(jitter, diffs, "o", color="0.25", ms=5, label=f"one seed ({len(diffs)})")
    which = "seeds + test videos" if claim.combined else "test videos only (1 seed)"
    ax.errorbar([1.0], [iv.estimate], yerr=[[iv.estimate - iv.low], [iv.high - iv.estimate]],
                fmt="D", color="tab:blue", ms=6, capsize=6, lw=2,
                label=f"seed mean, {100 * iv.confidence:.0f} % interval\n({which})")
    ax.axhline(0.0, color="k", lw=0.8)
    bound, side = results.CLAIMED_SIDE.get(claim.key, (0.0, "above"))
    values = [*diffs, iv.low, iv.high, 0.0, bound]
    low, high = min(values), max(values)
    pad = 0.12 * (high - low or 1.0)
    ax.set_ylim(low - pad, high + pad)
    y0, y1 = ax.get_ylim()
    what = (f"claimed: {results.run_label(a)} better" if side == "above" else
            f"claimed: gap at most {bound:g} points")
    span = (bound, y1) if side == "above" else (y0, bound)
    ax.axhspan(*span, color=_CLAIM_GREEN, alpha=0.12, lw=0, label=what)
    if bound:
        ax.axhline(bound, color=_CLAIM_GREEN, ls="--", lw=1)
    ax.set_xlim(-0.5, 1.5)
    ax.set_xticks([0.0, 1.0], ["per seed", "seed mean"])
    ax.set_ylabel(_wrap(f"mAP difference (points): {results.run_label(a)} − "
                        f"{results.run_label(b)}", 34),
                  fontsize=8)
    ax.set_title("accuracy: paired difference", fontsize=9)
    # Below the axes: inside, it would hide points or the interval whichever corner it took.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), framealpha=0.9)
    if ratio:
        _plot_cost(axes[0, 1], claim, *ratio)
    fig.suptitle(_wrap(f"{claim.statement}: {claim.verdict}", 60), fontsize=10)
    return fig


def _cost_ratio(claim: results.Claim, timed: int, bound: float, op: str
                ) -> tuple[str, str, float, float, float, str] | None:
    """(timed run, other run, its ms, other ms, bound, op) from the claim's numbers, or None."""
    run, other = claim.runs[timed], claim.runs[1 - timed]
    t, t0 = (claim.numbers.get(f"{r}.cpu_ms") for r in (run, other))
    if t is None or t0 is None or not (math.isfinite(t) and math.isfinite(t0)):
        return None
    return run, other, float(t), float(t0), bound, op


# The measured ratio's bar: a neutral grey, as no run owns it (orange is copy_prop's colour in
# the other figures).
_RATIO_COLOUR = "0.45"


def _plot_cost(ax: Axes, claim: results.Claim, run: str, other: str, t: float, t0: float,
               bound: float, op: str) -> None:
    ratio = t / t0
    top = 1.25 * max(ratio, bound, 1.0)
    ax.axhspan(0.0, bound, color=_CLAIM_GREEN, alpha=0.12, lw=0,
               label=f"claimed: ratio {op} {bound:g}")
    ax.axhline(bound, color=_CLAIM_GREEN, ls="--", lw=1, label=f"the rule's bound, {bound:g}")
    ax.axhline(1.0, color="k", lw=0.8, label="equal cost (ratio 1)")
    ax.bar([0], [ratio], width=0.5, color=_RATIO_COLOUR, label="measured ratio")
    ax.set_xlim(-0.75, 0.75)
    ax.set_ylim(0.0, top)
    ax.set_xticks([])
    ax.set_xlabel(f"ratio {ratio:.2f} = {t:.0f} / {t0:.0f} ms", fontsize=9)
    ax.set_ylabel(_wrap(f"CPU time per frame, {results.run_label(run)} / "
                        f"{results.run_label(other)}", 34), fontsize=8)
    ax.set_title("cost: amortised time ratio", fontsize=9)
    # Below the axes, as the accuracy panel's: inside, it would sit on the bar or the lines.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), framealpha=0.9)


def _arrow_gain(largest: float, target: float = 0.45) -> float:
    """Magnification (1, 2, 5, 10, 20, ...) that draws the largest displacement at most
    `target` feature cells long, the spacing of a 9x9 grid's neighbours being one cell."""
    if largest <= 0 or largest >= target:
        return 1.0
    gain = 1.0
    for k in range(12):
        for step in (1.0, 2.0, 5.0):
            cand = step * 10.0 ** k
            if cand * largest <= target:
                gain = cand
    return gain


def draw_offset_moves(ax: Axes, init: np.ndarray, learned: np.ndarray, gain: float | None = None,
                      *, colour: Any = "tab:red", label: str = "learned",
                      crosses: str | None = "initial p_n") -> float:
    """The initial p_n (grey crosses, labelled `crosses`; None: not drawn) and an arrow from each to its
    learned position, the move magnified by `gain` (default `_arrow_gain` of the largest move:
    moves of a few hundredths of a cell drawn to scale would hide under the markers). Arrays
    (N, 2) of (dx, dy) feature cells; y is not inverted here. Returns the gain used."""
    move = learned - init
    if gain is None:
        gain = _arrow_gain(float(np.linalg.norm(move, axis=1).max()))
    if crosses is not None:
        ax.scatter(init[:, 0], init[:, 1], c="0.6", marker="x", s=22, lw=1, label=crosses,
                   zorder=1)
    ax.quiver(init[:, 0], init[:, 1], gain * move[:, 0], gain * move[:, 1], color=colour,
              angles="xy", scale_units="xy", scale=1, width=0.004, zorder=2,
              label=f"{label}: move" + (f" x{gain:g}" if gain > 1 else ""))
    # A quiver's data limits hold only its tails: add the heads, or arrows leaving the grid
    # are cut at the axes' edge (the margins leave room for the head's width).
    ax.update_datalim(np.vstack([init, init + gain * move]))
    ax.autoscale_view()
    return gain


def plot_offsets(offsets: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]
                 ) -> Figure:
    """Where the sampling offsets p_n started and where training took them, one row per run:
    left, the initial p_n (grey crosses) and the learned ones (a colour per seed) with an
    arrow from each initial to its learned position (magnified when too short to see, the
    factor in the title); right, each point's displacement p_n - p_n(init). `offsets` maps a
    run's label to {seed name: (initial, learned)}, arrays (N, 2) of (dx, dy) feature cells
    (`results.load_offsets`). y grows downwards, as in the image."""
    if not offsets:
        raise ValueError("plot_offsets needs at least one run")
    fig, axes = plt.subplots(len(offsets), 2, figsize=(10, 4.6 * len(offsets)),
                             layout="constrained", squeeze=False)
    for (name, seeds), (ax, dax) in zip(offsets.items(), axes, strict=True):
        moves = [learned - init for init, learned in seeds.values()]
        largest = max(float(np.linalg.norm(m, axis=1).max()) for m in moves)
        gain = _arrow_gain(largest)
        first = next(iter(seeds.values()))[0]
        for j, (seed, move) in enumerate(zip(seeds, moves, strict=True)):
            init, learned = seeds[seed]
            colour = plt.get_cmap("tab10")(j % 10)
            # Gaussian draws differ between seeds: their own crosses, one legend entry
            crosses = ("initial p_n" if j == 0 else
                       None if np.array_equal(init, first) else "_nolegend_")
            draw_offset_moves(ax, init, learned, gain, colour=colour, label=seed,
                              crosses=crosses)
            dax.scatter(move[:, 0], move[:, 1], s=12, color=colour, alpha=0.8, label=seed)
        ax.set_title(f"{name}: p_n, initial -> learned"
                     + (f" (arrows magnified x{gain:g})" if gain > 1 else ""), fontsize=9)
        dax.set_title(f"{name}: displacement p_n - p_n(init), largest {largest:.3f} cells",
                      fontsize=9)
        for a, what in ((ax, ""), (dax, "Δ")):
            a.set_xlabel(f"{what}dx (feature cells, 16 px each)")
            a.set_ylabel(f"{what}dy (feature cells)")
            a.set_aspect("equal")
            a.grid(alpha=0.3)
        reach = 1.15 * max(largest, 1e-3)
        dax.set_xlim(-reach, reach)
        dax.set_ylim(reach, -reach)
        dax.axhline(0.0, color="k", lw=0.6)
        dax.axvline(0.0, color="k", lw=0.6)
        dax.xaxis.set_major_locator(MaxNLocator(5))
        dax.yaxis.set_major_locator(MaxNLocator(5))
        ax.invert_yaxis()
        ax.legend(fontsize=LEGEND_FONTSIZE, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        dax.legend(fontsize=LEGEND_FONTSIZE, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def draw_focus(ax, image, p0_cell: tuple[int, int], p, S_p0, cell_px: tuple[float, float],
               title: str = "", *, true_disp: tuple[float, float] | None = None,
               expected_disp: tuple[float, float] | None = None, zoom: bool = False,
               vmax: float | None = None) -> PathCollection:
    """Overlay the sampling points p0 + p_n on an image, each dot sized/coloured by S_n(p0).

    Optionally arrows from p0 (displacements in feature cells, (dx, dy)): the true one (where
    the pixel's content is in this image) and LSTS's expected one sum_n S_n(p0) p_n, with a
    legend; `zoom` crops to the sampling grid; `vmax` the top of the colour scale (default:
    the largest weight, at least twice the uniform one; give panels sharing a colour bar the
    same). Returns the dots, for a colour bar (`focus_colorbar`).
    """
    ax.imshow(to_hwc(image))
    cx, cy = (p0_cell[0] + 0.5) * cell_px[0], (p0_cell[1] + 0.5) * cell_px[1]
    xs, ys = cx + p[:, 0] * cell_px[0], cy + p[:, 1] * cell_px[1]
    order = np.argsort(S_p0)  # heaviest drawn last, on top
    # Absolute scale (area proportional to S, colour from 0): near-uniform weights look uniform.
    dots = ax.scatter(xs[order], ys[order], s=8 + 600 * S_p0[order], c=S_p0[order],
                      cmap="magma", vmin=0.0, vmax=_focus_vmax(S_p0) if vmax is None else vmax,
                      edgecolors="white", linewidths=0.4, label="p0 + p_n, area ∝ S_n(p0)")
    ax.plot(cx, cy, "c+", ms=10, mew=2, label="p0")
    for disp, colour, name in ((true_disp, "lime", "true displacement"),
                               (expected_disp, "tab:red", "expected: Σ S_n(p0) p_n")):
        if disp is None:
            continue
        ax.annotate("", xy=(cx + disp[0] * cell_px[0], cy + disp[1] * cell_px[1]),
                    xytext=(cx, cy), arrowprops={"arrowstyle": "-|>", "color": colour,
                                                 "lw": 2.2, "shrinkA": 0, "shrinkB": 0})
        ax.plot([], [], color=colour, lw=2.2, label=name)  # the legend's entry for the arrow
    if zoom:
        pad = 0.75
        ax.set_xlim(xs.min() - pad * cell_px[0], xs.max() + pad * cell_px[0])
        ax.set_ylim(ys.max() + pad * cell_px[1], ys.min() - pad * cell_px[1])
    if true_disp is not None or expected_disp is not None:
        legend = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                           framealpha=0.9)
        for handle in legend.legend_handles:  # the dots' entry at a middling size, not the
            if isinstance(handle, PathCollection):  # first dot's (a saturated S is huge)
                handle.set_sizes([40.0])
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return dots


def plot_focus_pixel(current, key, p0_cell: tuple[int, int], p, S_p0,
                     cell_px: tuple[float, float], true_disp: tuple[float, float] | None = None,
                     expected_disp: tuple[float, float] | None = None, box=None,
                     titles: tuple[str, str] = ("", "")) -> Figure:
    """Where LSTS looks for one pixel p0 of a non-key frame: left, the frame with p0 (and its
    object's box, as the `GROUND_TRUTH` outline); right, the key frame around p0 with the
    weights S_n(p0) at p0 + p_n, and the true and the expected displacement when given (a
    real video has no true one; `draw_focus`), with a colour bar of S_n(p0)."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained",
                                   gridspec_kw={"width_ratios": [1.0, 1.25]})
    ax0.imshow(to_hwc(current))
    if box is not None:
        draw_ground_truth(ax0, [box])
    ax0.plot((p0_cell[0] + 0.5) * cell_px[0], (p0_cell[1] + 0.5) * cell_px[1], "c+", ms=12,
             mew=2.5)
    ax0.set_title(titles[0], fontsize=8)
    ax0.axis("off")
    dots = draw_focus(ax1, key, p0_cell, p, S_p0, cell_px, titles[1], true_disp=true_disp,
                      expected_disp=expected_disp, zoom=True)
    # Below the key frame: the legend takes the space on its right.
    focus_colorbar(fig, dots, ax1, shrink=0.6)
    return fig


def _focus_vmax(S_p0: np.ndarray) -> float:
    return max(float(np.max(S_p0)), 2.0 / len(S_p0))


def focus_colorbar(fig: Figure, dots: PathCollection, ax: Axes | Sequence[Axes],
                   shrink: float = 0.6) -> Any:
    """The colour bar of `draw_focus`'s dots below `ax` (one axes or several sharing it), saying
    that the dots' area shows S_n(p0) as well."""
    bar = fig.colorbar(dots, ax=ax, location="bottom", shrink=shrink, aspect=30, pad=0.02)
    bar.set_label("S_n(p0): the point's softmax weight (dot colour; area ∝ it too)",
                  fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


# The ground truth's outline: white dashes over a black line, seen on dark and light images
# alike, and in colours `class_colour` gives no class (lime, used before, is nearly tab:green).
GROUND_TRUTH = "white dashed outline"
_GT_UNDER = {"ec": "black", "lw": 3.0, "ls": "-"}
_GT_OVER = {"ec": "white", "lw": 1.8, "ls": (0, (3, 2))}


def draw_ground_truth(ax: Axes, boxes) -> None:
    """Ground-truth boxes (x1 y1 x2 y2 pixels) as the `GROUND_TRUTH` outline."""
    for b in boxes:
        for style in (_GT_UNDER, _GT_OVER):
            ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False,
                                   **style))


def draw_detections(ax, image, gt_boxes, det_boxes, det_labels, class_names: Sequence[str],
                    det_scores=None, title: str = "") -> None:
    """Ground truth as the `GROUND_TRUTH` outline, detections drawn by `draw_boxes` (class
    colour, name and score)."""
    ax.imshow(to_hwc(image))
    draw_ground_truth(ax, gt_boxes)
    draw_boxes(ax, None, det_boxes, det_labels, class_names, det_scores, linewidth=1.2,
               fontsize=6)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _box(ax: Axes, xy: tuple[float, float], text: str, colour: str, w: float = 1.9,
         h: float = 0.95, fontsize: float = 8.0) -> tuple[float, float, float, float]:
    """A rounded box centred at xy; returns (x0, y0, x1, y1)."""
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, fc=colour, ec="0.25", lw=1.0,
                                boxstyle="round,pad=0.04,rounding_size=0.12", zorder=2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3)
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], text: str = "",
           *, rad: float = 0.0, dashed: bool = False, colour: str = "0.2",
           text_offset: tuple[float, float] = (0.0, 0.2), fontsize: float = 8.0) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, lw=1.2,
                                 color=colour, ls="--" if dashed else "-",
                                 connectionstyle=f"arc3,rad={rad}", zorder=1,
                                 shrinkA=0, shrinkB=0))
    if text:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(mx + text_offset[0], my + text_offset[1], text, ha="center", va="bottom",
                fontsize=fontsize, color=colour, zorder=3)


def architecture_figure() -> Figure:
    """The LSTS detector as the paper builds it (ResNet-101, R-FCN head), drawn from the
    library's stages: a key frame goes through the whole backbone and SRFU updates the memory
    M, on which the head runs; a non-key frame goes through the low part only, low2high
    lifts it, and DFA aligns M to it with LSTS and fuses the two. Names as in the paper and in
    `lsts_lib.models` (detector.py, srfu_dfa.py, lsts.py, fusion.py)."""
    fig, ax = plt.subplots(figsize=(16, 7.0), layout="constrained")
    ax.set_xlim(-0.1, 16.8)
    ax.set_ylim(-0.75, 7.1)
    ax.set_axis_off()
    frame_c, back_c, lsts_c, fuse_c, head_c, mem_c = (
        "#e8e8e8", "#cfe2f3", "#fde9c9", "#d9ead3", "#ead1dc", "#fff2a8")
    xs = [1.0, 3.45, 5.9, 8.35, 10.8, 13.25, 15.7]  # columns of the two paths
    yk, yn, ym = 5.0, 1.1, 3.05  # key row, non-key row, memory
    # The module groups, drawn first so the boxes sit on them; a narrow margin round the
    # boxes leaves the arrows' labels room outside the dashed outline.
    group_x = (xs[3] - 0.95 - 0.12, xs[4] + 0.95 + 0.12)
    for y, name in ((yk, "SRFU: Sparsely Recursive Feature Updating (key frames)"),
                    (yn, "DFA: Dense Feature Aggregation (non-key frames)")):
        ax.add_patch(FancyBboxPatch((group_x[0], y - 0.78), group_x[1] - group_x[0], 1.56,
                                    boxstyle="round,pad=0.02,rounding_size=0.15", fc="none",
                                    ec="0.45", ls="--", lw=1.0, zorder=0))
        ax.text((xs[3] + xs[4]) / 2, y + 1.25 if y == yk else y - 1.25, name, ha="center",
                va="center", fontsize=8.5, style="italic", color="0.3")
    k = [_box(ax, (xs[0], yk), "key frame $I_k$\n(one in 10)", frame_c),
         _box(ax, (xs[1], yk), "low part $N_{low}$\nResNet up to res4b3\n(Conv4_3)", back_c),
         _box(ax, (xs[2], yk), "high part $N_{high}$\nres4b4 … res5c (dilated)\n+ feat_conv",
              back_c),
         _box(ax, (xs[3], yk), "LSTS key→key\nalign $M_{k-1}$ to $F_k$", lsts_c),
         _box(ax, (xs[4], yk), "quality net\nfuse aligned $M_{k-1}$\nwith $F_k$", fuse_c),
         _box(ax, (xs[5], yk), "R-FCN head\n(RPN + PS-RoI pooling)", head_c),
         _box(ax, (xs[6], yk), "detections\nof $I_k$", frame_c)]
    n = [_box(ax, (xs[0], yn), "non-key frame $I_t$", frame_c),
         _box(ax, (xs[1], yn), "low part $N_{low}$\n(same weights)", back_c),
         _box(ax, (xs[2], yn), "low2high\n1x1 → 3x3 → 3x3 conv\n→ $L_t$", back_c),
         _box(ax, (xs[3], yn), "LSTS key→cur\nalign $M_k$ to $L_t$", lsts_c),
         _box(ax, (xs[4], yn), "quality net\nfuse aligned $M_k$\nwith $L_t$", fuse_c),
         _box(ax, (xs[5], yn), "R-FCN head\n(same weights)", head_c),
         _box(ax, (xs[6], yn), "detections\nof $I_t$", frame_c)]
    mem = _box(ax, ((xs[3] + xs[4]) / 2, ym), "memory $M_k$\n(1024 ch, stride 16)", mem_c,
               w=2.1, h=0.8)
    offs = _box(ax, (xs[1] + 0.6, ym), "offsets $p_n$: one global\n(N, 2) parameter, "
                "shared\nby both LSTS alignments", lsts_c, w=2.6, h=0.9, fontsize=7.5)
    for row, labels in ((k, ["", "", "$F_k$", "", "$M_k$", ""]),
                        (n, ["", "", "", "", "$F_t$", ""])):
        for (a, b), text in zip(itertools.pairwise(row), labels, strict=True):
            # A label over an arrow that crosses a group's outline goes on the part outside
            # it, where the dashed line does not strike through it.
            x0, x1 = a[2], b[0]
            free = (x0, min(x1, group_x[0])) if x0 < group_x[0] < x1 else (
                (max(x0, group_x[1]), x1) if x0 < group_x[1] < x1 else (x0, x1))
            _arrow(ax, (x0, (a[1] + a[3]) / 2), (x1, (b[1] + b[3]) / 2), text,
                   text_offset=((free[0] + free[1] - x0 - x1) / 2, 0.2))
    # F_k (and L_t) also enter the fusion directly, bypassing the alignment.
    for row, side in ((k, 1), (n, -1)):
        y = row[2][3] if side > 0 else row[2][1]
        start, end = ((row[2][0] + row[2][2]) / 2 + 0.4, y), ((row[4][0] + row[4][2]) / 2, y)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, lw=1.2,
                                     color="0.2", shrinkA=0, shrinkB=0, zorder=1,
                                     connectionstyle=f"bar,fraction={-0.1 * side}"))
    # The memory: written by SRFU's fusion, read by the next key's SRFU and by DFA.
    mx = (mem[0] + mem[2]) / 2
    _arrow(ax, ((k[4][0] + k[4][2]) / 2, k[4][1]), (mx + 0.5, mem[3]), "write $M_k$",
           text_offset=(0.55, -0.1))
    _arrow(ax, (mx - 0.5, mem[3]), ((k[3][0] + k[3][2]) / 2, k[3][1]),
           "next key: $M_{k-1}$", dashed=True, text_offset=(-0.75, -0.1))
    _arrow(ax, (mx - 0.3, mem[1]), ((n[3][0] + n[3][2]) / 2, n[3][3]), "read $M_k$",
           text_offset=(-0.55, -0.15))
    for target, y in ((k[3], k[3][1]), (n[3], n[3][3])):
        _arrow(ax, ((offs[0] + offs[2]) / 2 + 0.6, offs[3] if y > ym else offs[1]),
               (target[0] + 0.35, y), dashed=True, colour="#b07d2b")
    ax.text(8.35, 6.95, "LSTS detector: full backbone on key frames only; every other frame "
            "reuses the key's memory through learned sampling", ha="center", va="center",
            fontsize=10, weight="bold")
    ax.text(mem[2] + 0.25, ym, "carried from key frame to key frame:\nsolid = this key writes "
            "it,\ndashed = the next key reads it", ha="left", va="center", fontsize=7,
            color="0.3")
    return fig


def crop_letterbox(image: torch.Tensor, level: float = 0.15) -> torch.Tensor:
    """The image (3, H, W) in [0, 1] without its letterbox (or pillarbox) bars: the border rows
    and columns in which no pixel is brighter than `level` (the stored frame is wider than the
    video, as in the real ImageNet VID frames here). The whole image when it is all dark."""
    bright = image.amax(dim=0) > level
    rows, cols = bright.any(dim=1).nonzero().ravel(), bright.any(dim=0).nonzero().ravel()
    if len(rows) == 0:
        return image
    return image[:, int(rows[0]):int(rows[-1]) + 1, int(cols[0]):int(cols[-1]) + 1]


def _unit_range(a: torch.Tensor) -> np.ndarray:
    a = a.float()
    return ((a - a.min()) / (a.max() - a.min() + 1e-12)).numpy()


def plot_feature_maps(features: Mapping[str, tuple[torch.Tensor, tuple[int, int],
                                                   torch.Tensor, torch.Tensor]],
                      stride: int = 16, title: str = "") -> Figure:
    """Notebook 02's feature maps, one row per image: the image, then for the low cut and the
    top feature the per-cell L2 norm over the channels and the channel of largest spatial
    variance. `features` maps a row's name to (image (3, H, W), the resized (h, w) the model
    read, low feature, top feature (C, h', w')); only the cells covering the image are drawn
    (not the padding to a multiple of the stride). Each map is min-max scaled on its own (the
    titles say so): brightness compares places within a map, not maps with one another."""
    fig, axes = plt.subplots(len(features), 5, figsize=(17, 3.0 * len(features)),
                             squeeze=False, layout="constrained")
    for row, (name, (img, (h, w), low, high)) in zip(axes, features.items(), strict=True):
        gh, gw = -(-h // stride), -(-w // stride)  # cells covering the image
        row[0].imshow(to_hwc(img))
        row[0].set_title(name, fontsize=10)
        for col, (cut, f) in enumerate([("low cut", low), ("top feature", high)]):
            f = f[:, :gh, :gw]
            row[1 + 2 * col].imshow(_unit_range(f.norm(dim=0)), cmap="magma", vmin=0, vmax=1)
            row[1 + 2 * col].set_title(f"{cut}: L2 norm over {f.shape[0]} ch\n"
                                       "(min-max scaled per panel)", fontsize=10)
            c = int(f.flatten(1).std(dim=1).argmax())
            row[2 + 2 * col].imshow(_unit_range(f[c]), cmap="viridis", vmin=0, vmax=1)
            row[2 + 2 * col].set_title(f"{cut}: channel {c} (largest variance)\n"
                                       "(min-max scaled per panel)", fontsize=10)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_quality_weights(score_a: torch.Tensor | np.ndarray, score_b: torch.Tensor | np.ndarray,
                         weight_a: torch.Tensor | np.ndarray, title: str = "") -> Figure:
    """The quality network's two score maps Q(A), Q(B) (H, W) on one diverging colour scale,
    centred on 0 and symmetric (+-the largest |Q| of both, so a colour is the same score in
    both panels), with one colour bar; and the softmax weight w_A (0 to 1) with its own."""
    qa, qb, wa = (np.asarray(m, dtype=float) for m in (score_a, score_b, weight_a))
    m = float(max(np.abs(qa).max(), np.abs(qb).max())) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.2), layout="constrained")
    for ax, q, name in ((axes[0], qa, "score Q(A)"), (axes[1], qb, "score Q(B)")):
        scores = ax.imshow(q, cmap="coolwarm", vmin=-m, vmax=m)
        ax.set_title(name)
    fig.colorbar(scores, ax=list(axes[:2]), shrink=0.85, label="Q (one scale for both)")
    weights = axes[2].imshow(wa, cmap="viridis", vmin=0, vmax=1)
    axes[2].set_title("weight w_A (softmax of the two)")
    fig.colorbar(weights, ax=axes[2], shrink=0.85, label="w_A")
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def plot_toy_shift(history: Mapping[str, Any], shift: tuple[float, float],
                   steps: Sequence[int]) -> Figure:
    """Notebook 03's toy: the learnable offsets (feature cells) at each of `steps`, a dot per
    point (area ~ its pixel-averaged softmax weight) and, faint, the path each took since
    step 0 (`history["offsets"][:step + 1]`, from `models.lsts.fit_toy_shift`), the true shift
    as a red star; last, the loss curve."""
    offsets = np.asarray(history["offsets"], dtype=float)  # (steps + 1, N, 2)
    mean_S = np.asarray(history["mean_S"], dtype=float)
    fig, axes = plt.subplots(1, len(steps) + 1, figsize=(3.1 * (len(steps) + 1), 3.5),
                             layout="constrained")
    for ax, step in zip(axes, steps, strict=False):
        if step > 0:
            for n in range(offsets.shape[1]):
                ax.plot(offsets[:step + 1, n, 0], offsets[:step + 1, n, 1], color="0.35",
                        lw=0.7, alpha=0.45, zorder=1)
        pts = offsets[step]
        ax.scatter(pts[:, 0], pts[:, 1], s=20 + 900 * mean_S[step], color="tab:orange",
                   alpha=0.7, edgecolor="k", linewidth=0.4, zorder=2)
        ax.scatter(*shift, marker="*", s=160, color="tab:red", zorder=3)
        ax.set_xlim(-4, 4)
        ax.set_ylim(4, -4)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_title(f"step {step}" + (" (grey: paths so far)" if step > 0 else ""),
                     fontsize=9)
        ax.set_xlabel("dx (feature cells)")
    axes[0].set_ylabel("dy (feature cells, down)")
    loss = np.asarray(history["loss"], dtype=float)
    axes[-1].plot(loss)
    axes[-1].set_yscale("log")
    axes[-1].set_title("MSE(aligned, target)", fontsize=9)
    axes[-1].set_xlabel("step")
    axes[-1].set_ylabel("MSE (log scale)")
    fig.suptitle(f"Learnable offsets (size ~ mean softmax weight) finding the shift "
                 f"{tuple(shift)}")
    return fig


def plot_dev_map(dev1: pd.DataFrame, dev2: pd.DataFrame,
                 styles: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Notebook 04's dev-split mAP over training: left, the shared stage-1 detector (dev.csv
    rows); right, stage 2 (dev.csv rows with variant and seed columns): per variant its mean
    over the seeds as a line in the variant's colour and dash (`variant_styles`), and every
    seed's value as a dot beside it (variants shifted apart a little along x, so that their
    seeds do not fall on one another). Legend right of the axes."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 3.9), layout="constrained",
                                   gridspec_kw={"width_ratios": [1.0, 1.25]})
    ax1.plot(dev1.step, 100 * dev1.mAP, "o-", color="k")
    ax1.set(title=f"stage 1: single-frame R-FCN, on {int(dev1.frames.iloc[0])} dev frames",
            xlabel="stage-1 step", ylabel="dev VID mAP (%)")
    variants = [v for v in styles if (dev2.variant == v).any()]
    span = float(dev2.step.max() - dev2.step.min()) or 1.0
    shift = 0.035 * span  # between neighbouring variants, in steps
    for i, variant in enumerate(variants):
        g = dev2[dev2.variant == variant]
        dx = (i - (len(variants) - 1) / 2) * shift
        style = styles[variant]
        mean = (100 * g.groupby("step").mAP.mean())
        ax2.plot(mean.index + dx, mean.to_numpy(), marker="o", ms=5, label=variant, **style)
        ax2.scatter(g.step + dx, 100 * g.mAP, s=14, color=style["color"], alpha=0.6,
                    linewidths=0, zorder=3)
    seeds = dev2.seed.nunique()
    ax2.scatter([], [], s=14, color="0.4", label=f"one seed (dots, {seeds} per variant)")
    ax2.set(title=f"stage 2 on {int(dev2.frames.iloc[0])} dev frames (line: mean of {seeds} "
            "seeds)", xlabel="stage-2 step", ylabel="dev VID mAP (%)")
    ax2.set_xticks(sorted(dev2.step.unique()))
    legend_outside(ax2)
    return fig


def plot_learning_rates(stage1: pd.DataFrame, stage2: pd.DataFrame | None = None,
                        label2: str = "") -> Figure:
    """The learning rates read from log.csv (columns step, lr, lr_offsets), one panel per
    stage on its own step axis, linear scales from 0: stage 1's base rate; stage 2's base rate
    (left axis) and, when the run has offsets, their parameter group's rate on a right axis of
    its own (its multiplier of the base rate in the title)."""
    fig, axes = plt.subplots(1, 2 if stage2 is not None else 1, figsize=(11, 3.2),
                             layout="constrained", squeeze=False,
                             gridspec_kw={"width_ratios": [1.6, 1.0]} if stage2 is not None
                             else None)
    ax = axes[0, 0]
    ax.plot(stage1.step, stage1.lr, color="k")
    ax.set(xlabel="stage-1 step", ylabel="base learning rate", ylim=(0, None),
           xlim=(0, int(stage1.step.max())), title="stage 1")
    if stage2 is None:
        return fig
    ax = axes[0, 1]
    ax.plot(stage2.step, stage2.lr, color="tab:blue", label="base rate (left axis)")
    ax.set(xlabel="stage-2 step", ylim=(0, None), xlim=(0, int(stage2.step.max())))
    ax.set_ylabel("base learning rate", color="tab:blue")
    title = f"stage 2{': ' + label2 if label2 else ''}"
    offsets = stage2.lr_offsets if "lr_offsets" in stage2 else pd.Series(dtype=float)
    if offsets.notna().any():
        mult = float((offsets / stage2.lr).median())
        right = ax.twinx()
        right.plot(stage2.step, offsets, color="tab:red", ls=(0, (4, 3)),
                   label="offsets p_n (right axis)")
        right.set_ylim(0, None)
        right.set_ylabel("offsets' learning rate", color="tab:red")
        title += f"\noffsets p_n at {mult:g} x the base rate (red, right axis)"
    ax.set_title(title, fontsize=10)
    return fig


def _cells_in_boxes(shape: tuple[int, int], boxes: np.ndarray, scale: tuple[float, float],
                    stride: int) -> np.ndarray:
    """(h', w') mask of the feature cells whose centre lies in a box (x1 y1 x2 y2 pixels of an
    image resized by `scale` (x, y) for the model)."""
    gh, gw = shape
    cx = (np.arange(gw) + 0.5) * stride / scale[0]
    cy = (np.arange(gh) + 0.5) * stride / scale[1]
    mask = np.zeros((gh, gw), dtype=bool)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        mask |= ((cy >= y1) & (cy <= y2))[:, None] & ((cx >= x1) & (cx <= x2))[None, :]
    return mask


def feature_maps_caption(features: Mapping[str, tuple[torch.Tensor, tuple[int, int],
                                                      torch.Tensor, torch.Tensor]],
                         boxes: Mapping[str, np.ndarray], stride: int = 16,
                         margin: float = 0.1) -> str:
    """What `plot_feature_maps` shows of the annotated objects, row by row for the rows of
    `boxes` (their ground-truth boxes, x1 y1 x2 y2 pixels of the image as given): each map's
    mean (scaled as drawn, 0 to 1) on the cells whose centre lies on an object against the
    other cells, and whether the map is brighter or darker on the objects (by more than
    `margin`) or about as bright."""
    parts = []
    for name, row_boxes in boxes.items():
        img, (h, w), low, high = features[name]
        gh, gw = -(-h // stride), -(-w // stride)
        mask = _cells_in_boxes((gh, gw), row_boxes, (w / img.shape[-1], h / img.shape[-2]),
                               stride)
        if not mask.any() or mask.all():
            continue
        reads = []
        for cut, f in (("low cut", low), ("top feature", high)):
            f = f[:, :gh, :gw]
            c = int(f.flatten(1).std(dim=1).argmax())
            for what, m in (("L2 norm", _unit_range(f.norm(dim=0))),
                            (f"channel {c}", _unit_range(f[c]))):
                on, off = float(m[mask].mean()), float(m[~mask].mean())
                side = ("brighter on the objects" if on > off + margin else
                        "darker on the objects" if on < off - margin else
                        "about as bright on the objects as off them")
                reads.append(f"{cut} {what} {on:.2f} against {off:.2f} ({side})")
        n = len(np.asarray(row_boxes).reshape(-1, 4))
        parts.append(f"On the {name}, whose {n} annotated object{'s' if n != 1 else ''} cover "
                     f"{int(mask.sum())} of the {mask.size} cells drawn, the maps' mean on "
                     f"the objects' cells against the other cells (0 to 1, as drawn) reads: "
                     + "; ".join(reads) + ".")
    if not parts:
        return "No row of the figure has annotated objects to read the maps against."
    return " ".join(parts) + (" Per-panel scaling makes these compare places within one "
                              "map, not one map with another.")
