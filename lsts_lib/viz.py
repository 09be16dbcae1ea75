"""Drawing helpers shared by the notebooks: frames with boxes, strips of consecutive frames,
the results' bar charts, and where LSTS samples (S_n(p0) over an image)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

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

    The caption is `name`, then `#track` and/or the score when given.
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
        ax.text(x1, y1, text, fontsize=fontsize, color="white", va="bottom",
                bbox={"facecolor": colour, "alpha": 0.75, "pad": 1, "edgecolor": "none"})
    ax.set_axis_off()
    return ax


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


def bar_with_errors(summary: pd.DataFrame, runs: Sequence[str], metric: str = "mAP", ax=None,
                    title: str | None = None):
    """Bars of a metric's mean per run with the seed std as error bars (and each seed's dot
    when the tidy rows are attached as `summary.attrs['rows']`)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    runs = [r for r in runs if r in summary.index]
    means = [summary.loc[r, metric] for r in runs]
    std_col = f"{metric}_std"
    errs = [summary.loc[r, std_col] if std_col in summary.columns else 0.0 for r in runs]
    errs = [0.0 if not math.isfinite(e) else e for e in errs]
    x = range(len(runs))
    # The run a claim is about (listed first) in orange, what it is compared with in blue.
    ax.bar(x, means, yerr=errs if any(errs) else None, capsize=4,
           color=["tab:orange" if i == 0 else "tab:blue" for i in range(len(runs))])
    rows = summary.attrs.get("rows")
    if rows is not None and metric in rows:
        for i, r in enumerate(runs):
            ys = rows.loc[rows["run"] == r, metric]
            ax.plot([i] * len(ys), ys, "k.", ms=4)
    labels = [summary.loc[r, "label"] if "label" in summary.columns else results.run_label(r)
              for r in runs]
    ax.set_xticks(list(x), [lab.replace(" (", "\n(").replace(", ", ",\n") for lab in labels],
                  fontsize=7)
    ax.set_ylabel(results.METRICS.get(metric, results.COSTS.get(metric, metric)))
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_claim(claim: results.Claim, summary: pd.DataFrame, axes=None):
    """One figure per claim: mAP bars with error bars, plus the time bars for cost claims."""
    cost = claim.key in ("beats_flow", "per_frame")
    if axes is None:
        _, axes = plt.subplots(1, 2 if cost else 1, figsize=(7 if cost else 3.8, 3))
    axes = list(axes) if isinstance(axes, Sequence) or hasattr(axes, "__len__") else [axes]
    bar_with_errors(summary, claim.runs, "mAP", axes[0], f"{claim.statement}\n[{claim.verdict}]")
    if cost and len(axes) > 1:
        bar_with_errors(summary, claim.runs, "cpu_ms", axes[1], "amortised CPU ms/frame")
    return axes


def draw_focus(ax, image, p0_cell: tuple[int, int], p, S_p0, cell_px: tuple[float, float],
               title: str = "") -> None:
    """Overlay the sampling points p0 + p_n on an image, each dot sized/coloured by S_n(p0)."""
    ax.imshow(to_hwc(image))
    cx, cy = (p0_cell[0] + 0.5) * cell_px[0], (p0_cell[1] + 0.5) * cell_px[1]
    xs, ys = cx + p[:, 0] * cell_px[0], cy + p[:, 1] * cell_px[1]
    order = np.argsort(S_p0)  # heaviest drawn last, on top
    # Absolute scale (area proportional to S, colour from 0): near-uniform weights look uniform.
    ax.scatter(xs[order], ys[order], s=8 + 600 * S_p0[order], c=S_p0[order], cmap="magma",
               vmin=0.0, vmax=max(float(S_p0.max()), 2.0 / len(S_p0)), edgecolors="white",
               linewidths=0.4)
    ax.plot(cx, cy, "c+", ms=10, mew=2)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def draw_detections(ax, image, gt_boxes, det_boxes, det_labels, class_names: Sequence[str],
                    det_scores=None, title: str = "") -> None:
    """Ground truth as thick lime outlines, detections drawn by `lsts_lib.draw_boxes`
    (class colour, name and score)."""
    ax.imshow(to_hwc(image))
    for b in gt_boxes:
        ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec="lime",
                               lw=2.5, alpha=0.8))
    draw_boxes(ax, None, det_boxes, det_labels, class_names, det_scores, linewidth=1.2,
                   fontsize=6)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
