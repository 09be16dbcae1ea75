"""Apply the figure and hygiene edits of issue 11 to the source of notebooks/0[1-6]_*.ipynb.

Idempotent: a second run changes nothing. Only cell sources, tags and metadata change; the
outputs stay as they are until the notebooks are executed again (`lsts report --only
notebooks`). Every edit finds its cell by content, not by position, and says when it finds
neither the old text nor the new one (someone rewrote that cell: check it by hand).

    python tools_edit_notebooks.py [notebooks folder]   (default: notebooks/ beside this file)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

IGNORE_TAG = "nbval-ignore-output"  # nbval >= 0.9 reads this cell tag as # NBVAL_IGNORE_OUTPUT
REASON_KEY = "nbval_ignore_reason"  # why the tag is there, for maintainers (not shown)
MARKER = "# NBVAL_IGNORE_OUTPUT"

warnings: list[str] = []


def warn(text: str) -> None:
    warnings.append(text)


def cells_with(nb: NotebookNode, text: str, cell_type: str | None = None) -> list[NotebookNode]:
    return [c for c in nb.cells if text in c.source and (cell_type is None or c.cell_type == cell_type)]


def replace_once(nb: NotebookNode, name: str, old: str, new: str, done: str | None = None,
                 *, regex: bool = False) -> None:
    """Replace `old` by `new` in the one cell holding it; nothing when `done` (default: `new`)
    is already in some cell; a warning when neither is found."""
    done = new if done is None else done
    if any(done in c.source for c in nb.cells):
        return
    for c in nb.cells:
        if regex:
            src, n = re.subn(old, new, c.source, count=1)
            if n:
                c.source = src
                return
        elif old in c.source:
            c.source = c.source.replace(old, new, 1)
            return
    warn(f"{name}: neither the old nor the new text found: {old[:70]!r}")


def tag(cell: NotebookNode, name: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if name not in tags:
        tags.append(name)


# --------------------------------------------------------------------------------------------
# Hygiene: CI plumbing out of the text the reader sees
# --------------------------------------------------------------------------------------------
def ignore_markers_to_tags(nb: NotebookNode, name: str) -> None:
    """`# NBVAL_IGNORE_OUTPUT` and the reason comment under it -> the nbval-ignore-output tag
    and the reason in the cell's metadata."""
    for c in nb.cells:
        if c.cell_type != "code" or MARKER not in c.source:
            continue
        lines = c.source.split("\n")
        i = next(k for k, line in enumerate(lines) if line.strip() == MARKER)
        reason: list[str] = []
        j = i + 1
        # The reason: "# Why: ..." (one line) or "# (...)" (until the closing parenthesis).
        if j < len(lines) and lines[j].startswith("# Why:"):
            reason, j = [lines[j][len("# Why:"):].strip()], j + 1
        elif j < len(lines) and lines[j].startswith("# ("):
            while j < len(lines) and lines[j].startswith("#"):
                reason.append(lines[j].lstrip("#").strip())
                j += 1
                if reason[-1].endswith(")") or reason[-1].endswith(".)"):
                    break
        c.source = "\n".join(lines[:i] + lines[j:])
        tag(c, IGNORE_TAG)
        if reason:
            text = " ".join(reason).strip()
            if text.startswith("(") and text.endswith(")"):
                text = text[1:-1]
            c.metadata[REASON_KEY] = text


FIGURE_DIR_COMMENTS = (
    "# Figures of the report preset go to the committed figures/; CI's smoke run writes\n"
    "# runs/figures_smoke/ so a test run never rewrites them.\n",
    "# The committed figures come from the report preset; other presets (CI's smoke run) write\n"
    "# theirs under runs/ so they never overwrite them.\n",
)


def drop_plumbing_comments(nb: NotebookNode, name: str) -> None:
    """Where figures go under CI is `paths.figures_dir`'s docstring; papermill is the
    parameters cell's tag."""
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for comment in FIGURE_DIR_COMMENTS:
            c.source = c.source.replace(comment, "")
        if "parameters" in c.metadata.get("tags", []):
            c.source = re.sub(r"^# Parameters \(papermill\)([.:])", r"# Parameters\1", c.source)


# --------------------------------------------------------------------------------------------
# Notebook by notebook
# --------------------------------------------------------------------------------------------
ARCH_MD = """## The model in one picture

Before the data, the model it feeds. LSTS runs the whole ResNet only on key frames (one in
ten). **SRFU** aligns the memory $M$ (the previous key's feature) to a key frame's high-level
feature $F_k$ with LSTS and fuses the two with a quality network; the result is the new memory,
on which the R-FCN head runs. Every other frame runs only the low part of the ResNet;
`low2high` lifts that cheap feature towards the high-level space, and **DFA** aligns the memory
to it with LSTS and fuses the two with a second quality network before the head. Both
alignments share one global set of learned sampling offsets $p_n$. Notebook 02 measures where
the backbone is cut; notebook 03 gives the equations of LSTS, SRFU and DFA next to their code."""

ARCH_CODE = """fig = architecture_figure()
fig.savefig(FIGURES / "01_architecture.png", dpi=110)
plt.show()"""


def edit_01(nb: NotebookNode, name: str) -> None:
    replace_once(nb, name, "from lsts_lib.viz import draw_boxes, frame_strip",
                 "from lsts_lib.viz import architecture_figure, draw_boxes, frame_strip",
                 done="architecture_figure, draw_boxes")
    if cells_with(nb, "architecture_figure()"):
        return
    setup = cells_with(nb, "FIGURES = lsts_lib.paths.figures_dir(PRESET)", "code")
    if len(setup) != 1:
        warn(f"{name}: the cell defining FIGURES not found; architecture cells not inserted")
        return
    at = nb.cells.index(setup[0]) + 1
    code = ARCH_CODE if cells_with(nb, "architecture_figure, draw_boxes") else (
        "from lsts_lib.viz import architecture_figure\n\n" + ARCH_CODE)
    nb.cells[at:at] = [nbformat.v4.new_markdown_cell(ARCH_MD), nbformat.v4.new_code_cell(code)]


def edit_02(nb: NotebookNode, name: str) -> None:
    # No ImageNet weights can exist on this machine and none of the measurements needs them:
    # asking for them printed torch.hub's "Downloading ..." and the fallback's RuntimeWarning.
    replace_once(
        nb, name,
        'detector = build_detector(paper_config("lsts")).eval()',
        "# No ImageNet weights: none can be downloaded here, and nothing measured below needs them.\n"
        'detector = build_detector(paper_config("lsts", pretrained=False)).eval()',
        done='paper_config("lsts", pretrained=False)')
    for c in cells_with(nb, 'paper_config("lsts", pretrained=False)', "code"):
        # The output is now the same on every machine: nbval may compare it.
        c.source = c.source.replace(
            f"{MARKER}\n# Why: whether ImageNet weights can be fetched depends on the machine.\n", "")
        if IGNORE_TAG in c.metadata.get("tags", []) and REASON_KEY in c.metadata and \
                "ImageNet weights can be fetched" in c.metadata[REASON_KEY]:
            c.metadata["tags"].remove(IGNORE_TAG)
            del c.metadata[REASON_KEY]
    replace_once(
        nb, name,
        r"The model tries to load torchvision's\s+ImageNet weights; on a machine without internet "
        r"or a warm cache it says so once and starts\s+from random weights\. Everything measured "
        r"below",
        "It is built without ImageNet\nweights (`pretrained=False`): none can be downloaded "
        "on this machine, and everything\nmeasured below",
        done="`pretrained=False`", regex=True)


def edit_03(nb: NotebookNode, name: str) -> None:
    replace_once(nb, name, '    ax.set_title(f"step {step}")\n',
                 '    ax.set_title(f"step {step}")\n    ax.set_xlabel("dx (feature cells)")\n',
                 done='ax.set_xlabel("dx (feature cells)")')
    replace_once(nb, name, 'axes[-1].set_xlabel("step")\n',
                 'axes[-1].set_xlabel("step")\naxes[-1].set_ylabel("MSE (log scale)")\n'
                 'axes[0].set_ylabel("dy (feature cells, down)")\n',
                 done='axes[0].set_ylabel("dy (feature cells')


CLAIM_OLD = """    axes = viz.plot_claim(c, summary)
    fig = np.ravel(axes)[0].figure
    fig.tight_layout()
    fig.savefig(FIGURES / f"05_claim{i}_{c.key}.png", dpi=120)
    plt.show()"""
CLAIM_NEW = """    fig = viz.plot_claim(c)  # None when a run of the pair was not made: nothing to draw
    if fig is not None:
        fig.savefig(FIGURES / f"05_claim{i}_{c.key}.png", dpi=120)
        plt.show()"""
CLAIM_MD = """
Each claim's figure shows the evidence the verdict reads: the dots are the per-seed paired
differences of mAP (points, percent) between the two runs, the bar their seed mean with the
combined interval, the green band what the claim asserts (above 0 for *X beats Y*; below the
printed number of points for *close to per-frame accuracy*). A claim with a cost part has a
second panel: the amortised CPU time ratio against the claim's bound."""

OFFSETS_CODE = """lsts_runs = [r for r in ("lsts", "lsts_gaussian") if (RUNS / r).is_dir()]
offsets = {run: {d.name: R.load_offsets(d) for d in sorted((RUNS / run).glob("seed*"))}
           for run in lsts_runs}
shifts = []  # mean offset movement of every LSTS run, in feature cells
for run, seeds in offsets.items():
    for seed, (p0, p1) in seeds.items():
        shift = np.linalg.norm(p1 - p0, axis=1)
        shifts.append(shift.mean())
        print(f"{run}/{seed}: N={len(p0)}, mean |p_n - p_n(init)| = {shift.mean():.4f} cells, "
              f"max {shift.max():.4f}")
fig = viz.plot_offsets({summary.loc[run, "label"]: seeds for run, seeds in offsets.items()})
fig.savefig(FIGURES / "05_offsets.png", dpi=120)
plt.show()"""
OFFSETS_MD_OLD = (r"Below: every seed's\s+offsets at initialisation \(grey\) and after training "
                  r"\(coloured, with an arrow from where each\s+started\), and the distributions "
                  r"of their horizontal and vertical components, in feature cells\s+\(one cell = "
                  r"16 input pixels\)\.")
OFFSETS_MD_NEW = """Below, left: every
seed's offsets at initialisation (grey crosses), with an arrow to where training took each
(magnified by the factor in the title when the moves are too short to see at scale); right:
each point's displacement p_n - p_n(init). Both in feature cells (one cell = 16 input
pixels), dy growing downwards as in the image."""


def edit_05(nb: NotebookNode, name: str) -> None:
    replace_once(nb, name, CLAIM_OLD, CLAIM_NEW)
    heading = cells_with(nb, "## The paper's claims, tested", "markdown")
    if heading and CLAIM_MD.strip()[:40] not in heading[0].source:
        heading[0].source = heading[0].source.rstrip("\n") + "\n" + CLAIM_MD
    elif not heading:
        warn(f"{name}: the claims section's markdown not found; figure legend not added")
    cell = cells_with(nb, 'fig.savefig(FIGURES / "05_offsets.png"', "code")
    if len(cell) != 1:
        warn(f"{name}: the 05_offsets cell not found")
    elif "viz.plot_offsets" not in cell[0].source:
        cell[0].source = OFFSETS_CODE
    replace_once(nb, name, OFFSETS_MD_OLD, OFFSETS_MD_NEW,
                 done="displacement p_n - p_n(init). Both in feature cells", regex=True)


EDITS: dict[str, Callable[[NotebookNode, str], None]] = {
    "01_dataset_exploration.ipynb": edit_01,
    "02_resnet_layer_selection.ipynb": edit_02,
    "03_lsts_maths.ipynb": edit_03,
    "05_results.ipynb": edit_05,
}


def main(folder: Path) -> int:
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        print(f"{folder}: no notebooks")
        return 1
    for path in notebooks:
        before = path.read_text(encoding="utf-8")
        nb = nbformat.reads(before, as_version=4)
        edit = EDITS.get(path.name)
        if edit:
            edit(nb, path.name)  # first: it may drop a marker the generic pass would tag
        ignore_markers_to_tags(nb, path.name)
        drop_plumbing_comments(nb, path.name)
        nbformat.validate(nb)
        after = nbformat.writes(nb)
        if before.endswith("\n") and not after.endswith("\n"):
            after += "\n"
        if after != before:
            path.write_text(after, encoding="utf-8")
            print(f"edited {path.name}")
        else:
            print(f"unchanged {path.name}")
    for w in warnings:
        print("WARNING", w)
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "notebooks"))
