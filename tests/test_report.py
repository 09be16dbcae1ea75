"""`lsts report` helpers that do not need a whole run."""

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from lsts_lib import paths
from lsts_lib import report as report_mod
from lsts_lib.report import Report, scrub_machine_paths


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


@pytest.fixture
def presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the presets the report reads, and a scratch runs/ folder."""
    configs = tmp_path / "configs"
    shutil.copytree(paths.CONFIGS, configs)
    monkeypatch.setattr(paths, "CONFIGS", configs)
    monkeypatch.setattr(paths, "RUNS", tmp_path / "runs")
    return configs


def edit_preset(path: Path, section: str, **values: object) -> None:
    cfg = yaml.safe_load(path.read_text())
    cfg[section].update(values)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_a_changed_preset_makes_the_benchmark_stale(
    presets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake_child(*argv: str, threads: int | None = None) -> None:
        calls.append(argv[0])
        out = Path(argv[list(argv).index("--json") + 1])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"call": len(calls)}))

    monkeypatch.setattr(report_mod, "lsts_child", fake_child)
    rep = Report("smoke", [0], set(), 1)
    rep.stage_bench()
    assert calls == ["bench", "bench-lsts"]
    rep.stage_bench()  # nothing changed: both reused
    assert calls == ["bench", "bench-lsts"]
    edit_preset(presets / "smoke.yaml", "model", feat_channels=32)  # another model to time
    rep.stage_bench()
    assert calls == ["bench", "bench-lsts", "bench"]
    edit_preset(presets / "smoke.yaml", "eval", bench_repeats=3)  # another default repeat count
    rep.stage_bench()
    assert calls == ["bench", "bench-lsts", "bench", "bench"]
    edit_preset(presets / "smoke.yaml", "train", seed=4)  # nothing the benchmark reads
    rep.stage_bench()
    assert calls == ["bench", "bench-lsts", "bench", "bench"]


def test_the_report_generates_the_data_its_preset_names(
    presets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(report_mod, "lsts_child", lambda *argv, **kw: calls.append(argv))
    edit_preset(presets / "smoke.yaml", "data", root=str(tmp_path / "synth"), synth_seed=7)
    Report("smoke", [0], set(), 1).stage_data()
    [argv] = calls
    assert argv == ("synth", "--out", str(tmp_path / "synth"), "--preset", "smoke",
                    "--seed", "7")
    edit_preset(presets / "smoke.yaml", "data", preset=None)
    with pytest.raises(ValueError, match="data.preset is null"):
        Report("smoke", [0], set(), 1)


def test_notebooks_keep_ci_plumbing_out_of_the_code_readers_see() -> None:
    """nbval reads the `nbval-ignore-output` cell tag; the NBVAL comment markers would show in
    the report's code, and so would notes about CI."""
    notebooks = sorted(paths.NOTEBOOKS.glob(report_mod.NOTEBOOK_GLOB))
    assert len(notebooks) >= 6
    tagged = 0
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            assert "NBVAL_" not in cell.source, (path.name, cell.source[:80])
            assert "CI's" not in cell.source and "(papermill)" not in cell.source, path.name
            tagged += "nbval-ignore-output" in cell.metadata.get("tags", [])
    assert tagged > 0  # the preset-dependent cells are still ignored by nbval


def test_the_alignment_stage_measures_every_seed_and_redoes_only_what_is_missing(
    presets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lsts_lib.engine import plan as plan_mod

    measured: list[tuple[str, int]] = []

    def fake_child(*argv: str, threads: int | None = None) -> None:
        run = Path(argv[list(argv).index("--run") + 1])
        measured.append((run.parent.name, int(run.name.removeprefix("seed"))))
        Path(argv[list(argv).index("--json") + 1]).write_text(json.dumps({"run": str(run)}))

    monkeypatch.setattr(plan_mod, "lsts_child", fake_child)
    monkeypatch.setattr(plan_mod.rundir, "dataset_fingerprint", lambda root: "data")
    rep = Report("smoke", [0, 1], set(), 1)
    for r in rep.plan:  # alignment is keyed on the model's content: give each run one
        r.dir.mkdir(parents=True, exist_ok=True)
        r.model.write_bytes(f"{r.variant}{r.seed}".encode())
    expected = [(r.variant, r.seed) for r in rep.runs_of("alignment")]
    assert {s for _, s in expected} == {0, 1}  # every seed, not the first one only
    assert "single_frame" not in {v for v, _ in expected}  # nothing propagated there
    rep.stage_alignment()
    assert sorted(measured) == sorted(expected)
    rep.stage_alignment()  # every run done for the same model and data: nothing redone
    assert len(measured) == len(expected)
    variant, seed = expected[-1]
    (rep.runs / variant / f"seed{seed}" / "alignment.json").unlink()
    rep.stage_alignment()  # only the missing one
    assert measured[len(expected):] == [(variant, seed)]
