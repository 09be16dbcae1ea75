"""The HTML edition: its table of contents, and the headless-Chromium check of its pages
(skipped where Playwright or Chromium is missing)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402

from lsts_lib import html_edition  # noqa: E402


def figure_png() -> str:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 4])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def tiny_notebook(path: Path) -> Path:
    """An executed notebook: a title, two sections, one matplotlib figure."""
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("plt.plot([0, 1, 2], [0, 1, 4])", execution_count=1)
    code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": figure_png(),
                                                                  "text/plain": "<Figure>"})]
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · A title\nSome text."),
                nbformat.v4.new_markdown_cell("## The figure: y = x²"), code,
                nbformat.v4.new_markdown_cell("### A subsection\nMore text, $p_0 + p_n$.")]
    nbformat.write(nb, path)
    return path


def test_contents_list_every_heading_in_order(tmp_path: Path) -> None:
    [page] = html_edition.build([tiny_notebook(tmp_path / "01_tiny.ipynb")], tmp_path / "html")
    text = page.read_text()
    nav = text[text.index('<nav id="toc"'):text.index("</nav>")]
    links = re.findall(r'margin-left: ([\d.]+)em"><a href="#([^"]+)">([^<]+)</a>', nav)
    ids = re.findall(r'<h[123] id="([^"]+)"', text)
    assert [href for _, href, _ in links] == ids and len(ids) == 3
    # Text without nbconvert's pilcrow, indented by level below the page's top heading.
    assert [(m, t) for m, _, t in links] == [("0", "01 · A title"), ("1.5", "The figure: y = x²"),
                                             ("3", "A subsection")]
    assert text.index('<nav id="toc"') < text.index("<h1")


def test_math_is_found_in_markdown_and_mathjax_is_bundled(tmp_path: Path) -> None:
    nb = tiny_notebook(tmp_path / "01_tiny.ipynb")
    # One figure; one markdown cell with math (only the cell with $p_0 + p_n$).
    assert html_edition.expected_on_page(nb) == {"figures": 1, "math_cells": 1}
    assert html_edition._TEX.search("price $$a + b$$ here") is not None
    assert html_edition._TEX.search("no math, a lone $ sign") is None
    url = html_edition.bundle_mathjax(tmp_path / "html")
    assert url == f"{html_edition.MATHJAX_DIR}/MathJax.js?config={html_edition.MATHJAX_CONFIG}"
    assert (tmp_path / "html" / html_edition.MATHJAX_DIR / "MathJax.js").is_file()
    [page] = html_edition.build([nb], tmp_path / "html")
    assert f'src="{url}' in page.read_text() and "cdnjs.cloudflare.com/ajax/libs/mathjax" \
        not in page.read_text()
    # Nothing else from the network either: no require.js (no widget outputs to serve).
    assert "require.min.js" not in page.read_text()
    assert not re.search(r'src="(https?:)?//', page.read_text())


def test_a_page_without_headings_gets_no_contents() -> None:
    page = "<html><body><main><p>text</p></main></body></html>"
    assert html_edition.add_toc(page) == page


@pytest.mark.slow
@pytest.mark.skipif(html_edition.unavailable() is not None,
                    reason=f"HTML check cannot run: {html_edition.unavailable()}")
def test_check_passes_a_good_page_and_fails_broken_ones(tmp_path: Path) -> None:
    notebooks, html = tmp_path / "notebooks", tmp_path / "html"
    notebooks.mkdir()
    [good] = html_edition.build([tiny_notebook(notebooks / "01_good.ipynb")], html)
    page = good.read_text()
    img = re.search(r'<img [^>]*src="data:image/png;base64,[^"]+"[^>]*>', page)
    assert img is not None
    broken = {  # name -> the good page, damaged one way
        "02_broken_image": page.replace(img.group(0), '<img src="data:image/png;base64,AAAA">'),
        "03_missing_file": page.replace(img.group(0), '<img src="figure_not_there.png">'),
        "04_dropped_figure": page.replace(img.group(0), ""),
        "05_no_contents": re.sub(r'<nav id="toc".*?</nav>', "", page, flags=re.S),
        "06_dead_link": page.replace('href="#A-subsection"', 'href="#not-a-heading"'),
        "07_no_math": page.replace(f'src="{html_edition.MATHJAX_DIR}/MathJax.js',
                                   'src="no_mathjax_here/MathJax.js'),
    }
    for name, text in broken.items():
        assert text != page, name
        (html / f"{name}.html").write_text(text)
        (notebooks / f"{name}.ipynb").write_bytes((notebooks / "01_good.ipynb").read_bytes())

    results = {r["page"]: r for r in html_edition.check_html(html, notebooks)}

    ok = results["01_good.html"]
    assert ok["ok"], ok["problems"]
    assert (ok["figures"], ok["expected_figures"], ok["toc_links"]) == (1, 1, 3)
    assert ok["math_rendered"] >= 1  # typeset by the MathJax copied beside the page, offline
    shot = Path(ok["screenshot"])
    assert shot.parent == html / html_edition.CHECK_DIR and shot.stat().st_size > 1000
    assert (html / html_edition.CHECK_DIR / "check.json").is_file()
    expected = {"02_broken_image": "not shown", "03_missing_file": "not shown",
                "04_dropped_figure": "0 figures on the page, 1 image outputs",
                "05_no_contents": "no table of contents",
                "06_dead_link": "contents links to no anchor",
                "07_no_math": "no equation typeset by MathJax"}
    for name, problem in expected.items():
        r = results[f"{name}.html"]
        assert not r["ok"] and any(problem in p for p in r["problems"]), (name, r["problems"])


def test_report_html_stage_builds_then_checks_or_says_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lsts_lib import paths
    from lsts_lib.report import Report

    monkeypatch.setattr(paths, "RUNS", tmp_path / "runs")
    notebooks = paths.executed_notebooks_dir("smoke")
    notebooks.mkdir(parents=True)
    tiny_notebook(notebooks / "01_tiny.ipynb")
    report = Report("smoke", [0], set(), 1)

    monkeypatch.setattr(html_edition, "unavailable", lambda: "no Chromium found")
    report.stage_html()
    page = paths.html_edition_dir("smoke") / "01_tiny.html"
    assert '<nav id="toc"' in page.read_text()
    assert "HTML check skipped: no Chromium found" in capsys.readouterr().out

    checked: list[tuple[Path, Path]] = []

    def failing_check(html_dir: Path, notebook_dir: Path) -> list[dict]:
        checked.append((html_dir, notebook_dir))
        return [{"page": "01_tiny.html", "ok": False, "problems": ["no table of contents"],
                 "warnings": []}]

    monkeypatch.setattr(html_edition, "unavailable", lambda: None)
    monkeypatch.setattr(html_edition, "check_html", failing_check)
    with pytest.raises(ValueError, match=r"fails its check on \['01_tiny.html'\]"):
        report.stage_html()
    assert checked == [(page.parent, notebooks)]
