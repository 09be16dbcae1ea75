"""The report's HTML edition: executed notebooks converted by nbconvert, each page with a
table of contents; and `lsts check-html`, which opens every page in headless Chromium.

The check fails a page that does not load, shows an image that did not decode, shows fewer
or more figures than its notebook has image outputs, or lacks a table of contents whose
links all land on a heading. It saves a full-page screenshot of each page for a human look.
Chromium is driven through Playwright with the system's own browser (`LSTS_CHROMIUM`, else
`chromium` on PATH); every request that is not a local file is refused, so the check is the
same offline as online and never waits on the network.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from lsts_lib import atomic, paths

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

TOC_ID = "toc"
_TEX = re.compile(r"\$\$.+?\$\$|(?<![\\$])\$[^$\s][^$]*?\$", re.S)
# Outputs nbconvert's lab template shows as <img> (an SVG output is inlined as <svg>).
IMAGE_MIME = ("image/png", "image/jpeg", "image/gif")
# Offline and quiet: no first-run, sync, component or background requests to Google.
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync")
CHECK_DIR = "check"  # screenshots and check.json, beside the pages
PAGE_TIMEOUT_MS = 60_000
# MathJax 2.7 from the jupyter-server-mathjax wheel, copied beside the pages so the equations
# render offline (nbconvert's default loads it from a CDN); its one bundled TeX config.
MATHJAX_DIR = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
MATH_TIMEOUT_MS = 30_000


# -- building -------------------------------------------------------------------------
class _Headings(HTMLParser):
    """(level, id, text) of every <h1>..<h3> with an id: the anchors nbconvert gives to
    markdown headings. The heading's own pilcrow link is not part of its text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[int, str, str]] = []
        self._open: tuple[int, str, list[str]] | None = None
        self._skip = 0  # depth inside an anchor-link <a>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("h1", "h2", "h3") and a.get("id"):
            self._open = (int(tag[1]), a["id"] or "", [])
        elif self._open and tag == "a" and "anchor-link" in (a.get("class") or ""):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == "a" and self._skip:
            self._skip -= 1
        elif self._open and tag == f"h{self._open[0]}":
            level, ident, text = self._open
            self.found.append((level, ident, " ".join("".join(text).split())))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open and not self._skip:
            self._open[2].append(data)


def add_toc(page: str) -> str:
    """`page` with a table of contents of its headings at the top of <main> (or <body>)."""
    parser = _Headings()
    parser.feed(page)
    if not parser.found:
        return page
    top = min(level for level, _, _ in parser.found)
    items = "".join(
        f'<li style="margin-left: {1.5 * (level - top):g}em">'
        f'<a href="#{html.escape(ident)}">{html.escape(text)}</a></li>\n'
        for level, ident, text in parser.found)
    # Laid out as a markdown cell of the lab template, so it lines up with the text below.
    nav = (f'<nav id="{TOC_ID}" aria-label="Contents" class="jp-Cell jp-MarkdownCell">\n'
           '<div class="jp-InputArea jp-Cell-inputArea"><div class="jp-InputPrompt"></div>\n'
           '<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown">\n'
           f'<p><strong>Contents</strong></p>\n<ul style="list-style: none">\n{items}</ul>\n'
           "</div></div>\n</nav>\n")
    for tag in ("<main>", "<body"):
        at = page.find(tag)
        if at >= 0:
            at = page.index(">", at) + 1
            return f"{page[:at]}\n{nav}{page[at:]}"
    raise ValueError("HTML page has neither <main> nor <body>: nowhere to put the contents")


def build(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Convert executed notebooks to HTML pages in `out_dir` (nbconvert's lab template, images
    embedded), each with a table of contents. Returns the pages."""
    import jinja2
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    mathjax = bundle_mathjax(out_dir)
    # The lab template without its require.js <script> from a CDN: it serves widget outputs,
    # which these notebooks have none of, and would make every page reach for the network.
    template = {"lsts_lab.html.j2": "{%- extends 'index.html.j2' -%}\n"
                "{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}\n"}
    exporter = HTMLExporter(template_name="lab", template_file="lsts_lab.html.j2",
                            extra_loaders=[jinja2.DictLoader(template)],
                            **({"mathjax_url": mathjax} if mathjax else {}))
    pages = []
    for nb in notebooks:
        body, _ = exporter.from_filename(str(nb))
        pages.append(atomic.write_text(out_dir / f"{nb.stem}.html", add_toc(body)))
    return pages


def bundle_mathjax(out_dir: Path) -> str | None:
    """Copy MathJax into out_dir/mathjax (once) and return the pages' relative URL for it;
    None where jupyter-server-mathjax is not installed (the pages then use nbconvert's CDN)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    dest = out_dir / MATHJAX_DIR
    if not (dest / "MathJax.js").is_file():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", dest,
                        dirs_exist_ok=True)
    return f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def expected_on_page(notebook: Path) -> dict[str, int]:
    """What the page of `notebook` must show, read from the notebook once: `figures`, its
    outputs nbconvert renders as an <img>; `math_cells`, its markdown cells with TeX math
    ($...$ or $$...$$) for MathJax to typeset."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return {"figures": sum(any(m in out.get("data", {}) for m in IMAGE_MIME)
                           for cell in nb.cells for out in cell.get("outputs", [])),
            "math_cells": sum(1 for c in nb.cells
                              if c.cell_type == "markdown" and _TEX.search(c.source))}


# -- checking -------------------------------------------------------------------------
def find_chromium() -> str | None:
    return os.environ.get("LSTS_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")


def unavailable() -> str | None:
    """Why the check cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return "no Chromium found (install chromium, or set LSTS_CHROMIUM to its path)"
    return None


# Every <img> decoded and drawn; the figures among them (nbconvert's image outputs).
# Equations MathJax typeset (None: no MathJax on the page, or it never finished).
_MATH_JS = """ms => new Promise(done => {
  if (!(window.MathJax && MathJax.Hub)) return done(null);
  setTimeout(() => done(null), ms);
  MathJax.Hub.Queue(() => done(document.querySelectorAll('.MathJax, .MathJax_Display,'
                                                          + ' .MathJax_CHTML').length));
})"""
_IMAGES_JS = """async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return {
    figures: document.querySelectorAll('.jp-RenderedImage img').length,
    cells: document.querySelectorAll('.jp-Cell:not(nav)').length,
    broken: imgs.map((img, n) => ({n, src: img.getAttribute('src') || '',
                                  ok: img.complete && img.naturalWidth > 0
                                      && img.getBoundingClientRect().width > 0}))
                .filter(i => !i.ok).map(i => `img ${i.n}: ${i.src.slice(0, 60)}`),
  };
}"""

# Follows each contents link the way a click does and asks the browser what it targets.
_TOC_JS = """(id) => {
  const nav = document.getElementById(id);
  if (!nav) return null;
  const links = Array.from(nav.querySelectorAll('a[href^="#"]'));
  const broken = [];
  for (const a of links) {
    location.hash = a.getAttribute('href');
    if (!document.querySelector(':target')) broken.push(a.getAttribute('href'));
  }
  history.replaceState(null, '', location.pathname);
  window.scrollTo(0, 0);
  return {links: links.length, broken};
}"""


def _check_page(page: Page, html_path: Path, notebook: Path, shot: Path) -> dict:
    result: dict = {"page": html_path.name, "screenshot": None, "problems": [],
                    "warnings": []}
    problems = result["problems"]
    blocked: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc).splitlines()[0]))

    def route(r: Route) -> None:
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    try:
        page.goto(html_path.resolve().as_uri(), wait_until="load", timeout=PAGE_TIMEOUT_MS)
    except Exception as exc:  # Playwright's Error and TimeoutError
        problems.append(f"did not load: {str(exc).splitlines()[0]}")
        return result
    images = page.evaluate(_IMAGES_JS)
    on_page = expected_on_page(notebook) if notebook.is_file() else None
    expected = on_page["figures"] if on_page else None
    toc = page.evaluate(_TOC_JS, TOC_ID)
    result.update(cells=images["cells"], figures=images["figures"], expected_figures=expected,
                  broken_images=images["broken"], toc_links=toc and toc["links"],
                  broken_toc_links=toc and toc["broken"])
    if images["cells"] == 0:
        problems.append("no notebook cells on the page")
    if images["broken"]:
        problems.append(f"{len(images['broken'])} image(s) not shown")
    if expected is None:
        problems.append(f"no source notebook {notebook}")
    elif images["figures"] != expected:
        problems.append(f"{images['figures']} figures on the page, {expected} image outputs "
                        f"in {notebook.name}")
    tex = on_page["math_cells"] if on_page else 0
    if tex:
        try:
            math = page.evaluate(_MATH_JS, MATH_TIMEOUT_MS)
        except Exception:  # Playwright's Error: the page's MathJax failed or hung
            math = None
        result["math_rendered"] = math
        local = not any("mathjax" in u.lower() for u in blocked)
        if local and not math:
            problems.append(f"{tex} markdown cells with TeX, no equation typeset by MathJax")
    if toc is None or toc["links"] == 0:
        problems.append("no table of contents")
    elif toc["broken"]:
        problems.append(f"contents links to no anchor: {toc['broken']}")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    result["screenshot"] = str(shot)
    if blocked:  # e.g. MathJax from a CDN: the math shows as TeX source offline
        result["warnings"].append(f"not loaded (not a local file): {sorted(set(blocked))}")
    if errors:
        result["warnings"].append(f"script errors: {errors}")
    return result


def check_html(html_dir: Path, notebook_dir: Path, out_dir: Path | None = None,
               chromium: str | None = None) -> list[dict]:
    """Open every page of the edition in `html_dir` in headless Chromium; one result per page
    (`problems` empty when it passes), a screenshot each in `out_dir` (default
    html_dir/check). Each page X.html is held against the notebook notebook_dir/X.ipynb."""
    from playwright.sync_api import sync_playwright

    chromium = chromium or find_chromium()
    if chromium is None:
        raise OSError("no Chromium found (install chromium, or set LSTS_CHROMIUM)")
    out_dir = out_dir or html_dir / CHECK_DIR
    pages = sorted(html_dir.glob("*.html"))
    if not pages:
        raise ValueError(f"no HTML pages in {html_dir}")
    results = []
    # A fresh profile each run: nothing cached or remembered between checks.
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS))
        try:
            for path in pages:
                page = browser.new_page()
                results.append(_check_page(page, path, notebook_dir / f"{path.stem}.ipynb",
                                           out_dir / f"{path.stem}.png"))
                page.close()
        finally:
            browser.close()
    for r in results:
        r["ok"] = not r["problems"]
    atomic.write_json(out_dir / "check.json", results)
    return results


def report_lines(results: list[dict]) -> list[str]:
    """One line per page (ok with its counts, or FAIL with its problems), then its warnings."""
    lines = []
    for r in results:
        verdict = (f"ok ({r['figures']} figures, {r['toc_links']} contents links)" if r["ok"]
                   else "FAIL: " + "; ".join(r["problems"]))
        lines += [f"{r['page']}: {verdict}", *(f"  warning: {w}" for w in r["warnings"])]
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="report", choices=["smoke", "report"],
                        help="whose edition: report/ for report, runs/<preset>/html otherwise")
    parser.add_argument("--html", type=Path, help="the pages' folder (default: the preset's)")
    parser.add_argument("--notebooks", type=Path,
                        help="the executed notebooks they were made from (default: the preset's)")
    parser.add_argument("--out", type=Path,
                        help=f"screenshots and check.json (default: HTML_DIR/{CHECK_DIR})")


def main(args: argparse.Namespace) -> int:
    why = unavailable()
    if why:
        raise OSError(f"cannot open the pages: {why}")
    html_dir = args.html or paths.html_edition_dir(args.preset)
    out_dir = args.out or html_dir / CHECK_DIR
    results = check_html(html_dir, args.notebooks or paths.executed_notebooks_dir(args.preset),
                         out_dir)
    print("\n".join(report_lines(results)))
    print(f"screenshots and check.json in {out_dir}")
    return 0 if all(r["ok"] for r in results) else 1
