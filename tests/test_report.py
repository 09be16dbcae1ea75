"""`lsts report` helpers that do not need a whole run."""

from pathlib import Path

import nbformat

from lsts_lib import paths
from lsts_lib.report import scrub_machine_paths


def test_scrub_machine_paths_removes_absolute_paths(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("import warnings")
    cell.outputs = [nbformat.v4.new_output(
        "stream", name="stderr", text=f"{paths.REPO}/lsts_lib/models/backbone.py:88: Warning\n")]
    nb.cells.append(cell)
    nb.metadata["papermill"] = {"input_path": str(tmp_path / "a.ipynb"),
                                "output_path": str(tmp_path / "a.ipynb"), "duration": 1.0}
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, path)
    scrub_machine_paths(path)
    text = path.read_text()
    assert str(paths.REPO) not in text and str(tmp_path) not in text
    out = nbformat.read(path, as_version=4)
    assert out.cells[0].outputs[0]["text"].startswith("lsts_lib/models/backbone.py:88")
    assert out.metadata["papermill"] == {"duration": 1.0}
