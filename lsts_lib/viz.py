"""Drawing helpers shared by the notebooks: frames with boxes, strips of consecutive frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

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
