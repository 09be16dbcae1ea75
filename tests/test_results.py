"""Results aggregation, the claim rules and the README block, on fixture runs built in tmp_path.

The numbers here are constructed to exercise the rules; they are not results of anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lsts_lib import results as R
from lsts_lib.claims import claims_json
from lsts_lib.data.types import FrameAnnotation, Video
from lsts_lib.engine import inference
from lsts_lib.engine.checkpoint import FORMAT, save_atomic
from lsts_lib.eval.stats import Interval
from lsts_lib.models import build_detector, tiny_config
from lsts_lib.models.detector import OFFSETS_KEY


def write_run(root: Path, run: str, seed: int, mAP: float, variant: str | None = None,
              model: dict | None = None) -> Path:
    """A run folder as `lsts train` + `lsts evaluate` leave it (fractions, as eval.json has)."""
    d = root / run / f"seed{seed}"
    d.mkdir(parents=True)
    ev = {"mAP": mAP, "per_class": {"a": mAP},
          "motion": {"slow": mAP + 0.1, "medium": mAP, "fast": None},
          "coco": {"AP": mAP / 2, "AP50": mAP}}
    (d / "eval.json").write_text(json.dumps(ev))
    cfg = {"model": {"variant": variant or run, **(model or {})}, "train": {"seed": seed}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "env.json").write_text(json.dumps({  # flat, as lsts_lib.engine.train writes it
        "seed": seed, "torch": "9.9", "python": "3.11", "cpu": "Test CPU", "cpu_cores": 2,
        "torch_threads": 1, "gpu": None}))
    return d


def write_bench(root: Path, ms: dict[str, float], device: str = "cpu") -> dict:
    """A `lsts bench` JSON (schema lsts-bench-v1) with the given amortised times per run."""
    def entry(name: str, t: float) -> dict:
        return {"variant": "lsts" if name == "lsts_gaussian" else name, "offsets": None,
                "key": {"ms": 1000.0, "ms_measured": 999.0, "flops": 1, "fraction_of_peak": 0.5,
                        "stages": {"low": {"ms": 400.0, "flops": 4e10, "gflop_per_s": 100.0,
                                           "fraction_of_peak": 0.25}}},
                "nonkey": {"ms": t, "ms_measured": t - 1, "flops": 1, "fraction_of_peak": 0.2,
                           "stages": {"low": {"ms": 400.0, "flops": 4e10, "gflop_per_s": 100.0,
                                              "fraction_of_peak": 0.25},
                                      "lsts_align": {"ms": 5.0, "flops": 0,
                                                     "gflop_per_s": None,
                                                     "fraction_of_peak": None}}},
                "key_interval": 10, "amortised_ms": t, "amortised_ms_measured": t - 1,
                "amortised_gflops": t / 10, "peak_mb": 1.0,
                "speedup_vs_single_frame": ms["single_frame"] / t}

    bench = {"schema": "lsts-bench-v1", "key_interval": 10,
             "device": {"type": device, "cpu": "Test CPU", "name": f"Test {device}",
                        "torch_threads": 2, "torch": "9.9"},
             "sizes": {"preset": {"input_hw": [180, 320]}, "paper": {"input_hw": [600, 1000]}},
             "results": {size: {k: entry(k, v * (1 if size == "paper" else 0.1))
                                for k, v in ms.items()} for size in ("preset", "paper")}}
    (root / f"bench_{device}.json").write_text(json.dumps(bench))
    return bench


MAPS = {  # run -> mAP per seed (fractions)
    "single_frame": [0.50, 0.52, 0.54],
    "flow_warp": [0.40, 0.41, 0.42],
    "lsts_fixed": [0.43, 0.44, 0.45],
    "lsts": [0.49, 0.50, 0.51],
    "lsts_no_srfu": [0.48, 0.50, 0.52],  # difference 0 -> not held
    "lsts_no_dfa": [0.44, 0.45, 0.46],
}
MS = {"single_frame": 1000.0, "flow_warp": 300.0, "lsts_fixed": 200.0, "lsts": 200.0,
      "lsts_no_srfu": 190.0, "lsts_no_dfa": 180.0}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs" / "report"
    for run, maps in MAPS.items():
        for seed, m in enumerate(maps):
            write_run(root, run, seed, m)
    write_bench(root, MS)
    return root


def test_load_runs_and_summary(runs: Path) -> None:
    df = R.load_runs(runs, R.load_bench(runs))
    assert len(df) == 18
    assert list(df["run"].unique()) == ["single_frame", "flow_warp", "lsts_fixed", "lsts",
                                        "lsts_no_srfu", "lsts_no_dfa"]
    s = R.summary_table(df)
    assert s.loc["single_frame", "mAP"] == pytest.approx(52.0)
    assert s.loc["single_frame", "mAP_std"] == pytest.approx(2.0)  # sample std, ddof=1
    assert s.loc["single_frame", "slow"] == pytest.approx(62.0)
    assert s.loc["single_frame", "coco_AP"] == pytest.approx(26.0)
    assert math.isnan(s.loc["lsts", "fast"])  # None in eval.json stays missing, not 0
    assert s.loc["lsts", "n"] == 3
    assert s.loc["lsts", "cpu_ms"] == 200.0 and s.loc["lsts", "gflops"] == 20.0


def test_costs_are_merged_one_way(runs: Path) -> None:
    bench = R.load_bench(runs)
    del bench["results"]["paper"]["lsts_no_dfa"]  # a run the benchmark has no row for
    df = R.with_costs(R.load_runs(runs), bench)
    pd.testing.assert_frame_equal(df, R.load_runs(runs, bench))
    assert df["cpu_ms"].isna().tolist() == [r == "lsts_no_dfa" for r in df["run"]]
    assert R.with_costs(R.load_runs(runs), None)[["cpu_ms", "gflops"]].isna().all().all()


def test_missing_eval_names_file_and_command(tmp_path: Path) -> None:
    d = write_run(tmp_path / "report", "lsts", 0, 0.5)
    (d / "eval.json").unlink()
    with pytest.raises(R.MissingResultError, match=r"eval\.json.*lsts report --preset report"):
        R.load_runs(tmp_path / "report")
    with pytest.raises(R.MissingResultError, match="bench_cpu.json"):
        R.load_bench(tmp_path / "report")
    assert R.load_bench(tmp_path / "report", "cuda") is None  # the GPU bench is optional
    with pytest.raises(R.MissingResultError, match="no runs folder"):
        R.run_dirs(tmp_path / "nothing")


def test_labels_follow_the_resolved_config(tmp_path: Path) -> None:
    root = tmp_path / "report"
    write_run(root, "lsts", 0, 0.5, model={"offsets_init": "uniform", "grid_size": 3})
    write_run(root, "lsts_gaussian", 0, 0.5, variant="lsts",
              model={"offsets_init": "gaussian", "num_points": 40})
    s = R.summary_table(R.load_runs(root))
    assert s.loc["lsts", "label"] == "LSTS (uniform, N=9)"
    assert s.loc["lsts_gaussian", "label"] == "LSTS (gaussian, N=40)"
    assert s.loc["lsts_gaussian", "variant"] == "lsts"


def test_speed_table_gpu_columns(runs: Path) -> None:
    bench = R.load_bench(runs)
    s = R.summary_table(R.load_runs(runs, bench))
    t = R.speed_table(bench, None, s)
    assert (t["GPU ms (amortised)"] == R.NOT_MEASURED).all()
    gpu = write_bench(runs, {k: v / 50 for k, v in MS.items()}, device="cuda")
    t = R.speed_table(bench, gpu, s)
    assert t.loc[t["variant"] == s.loc["lsts", "label"], "GPU ms (amortised)"].item() == 4.0
    assert t.loc[0, "CPU ms (amortised)"] == 1000.0  # paper size, sum of stage medians
    assert t.loc[t["variant"] == s.loc["lsts", "label"], "speed-up vs single frame"].item() == 5.0
    with pytest.raises(ValueError, match="no results at size 'huge'"):
        R.bench_table(bench, "huge")
    # The speed-up beside the FLOP ratio (1000/200 GFLOPs: 5) and their quotient; % of peak.
    lsts = t.set_index("variant").loc[s.loc["lsts", "label"]]
    assert lsts["FLOP ratio vs single frame"] == pytest.approx(5.0)
    assert lsts["speed-up / FLOP ratio"] == pytest.approx(1.0)
    assert lsts["% of peak (key)"] == 50.0 and lsts["% of peak (non-key)"] == 20.0
    st = R.stage_rate_table(bench)
    assert list(st["frame"]) == ["key frame", "non-key frame", "non-key frame"]
    assert st.loc[0, "% of peak"] == 25.0 and st.loc[0, "GFLOPs"] == 40.0
    assert math.isnan(st.loc[2, "% of peak"])
    assert R.over_peak_note(bench) is None  # 25 % of the peak: nothing to explain
    stage = next(iter(bench["results"][R.bench_size(bench)]["lsts"]["key"]["stages"].values()))
    stage["fraction_of_peak"] = 1.048
    note = R.over_peak_note(bench)
    assert note is not None and "(104.8 %)" in note and "not an upper bound" in note
    stage["fraction_of_peak"] = 0.25
    with pytest.raises(ValueError, match="no 'copy_prop'"):
        R.stage_rate_table(bench, "copy_prop")
    assert "not measured" in R.peak_line(bench)
    bench["machine_peak"] = {"fp32": {"threads": 2, "gflop_per_s": 90.0, "kernels": {
        "gemm_2048": {"gflop_per_s": 90.0}, "conv3x3_res4": {"gflop_per_s": 70.0}}}}
    assert R.peak_line(bench) == ("machine peak (fp32, the benchmark's threads): 90 GFLOP/s "
                                  "(best kernel: gemm_2048)")


def test_paper_numbers() -> None:
    p = R.paper_numbers().set_index("method")
    assert p.loc["LSTS", "mAP"] == 77.2 and p.loc["FGFA", "fast"] == 56.1
    # 77.1 / 85.9 / 75.7 / 56.1 are the official code's README numbers, not the ICCV paper's.
    assert p.loc["FGFA", "source"] == "FGFA README (official code)"
    assert p.loc["R-FCN (single frame)", "s_per_img"] == 0.133
    assert "the paper or official README its row names" in R.paper_numbers().attrs["source"]
    # Every published row has its publication; the README's related work cites the same ids.
    assert set(p.index) <= set(R.CITATIONS) and set(R.RELATED_WORK) <= set(R.CITATIONS)
    refs = R.references_markdown()
    readme = (R.paths.REPO / "README.md").read_text()
    for arxiv in ("1611.07715", "1703.10025", "1907.06390", "2003.12063", "1911.05253"):
        assert f"arXiv:{arxiv}" in refs and f"arXiv:{arxiv}" in readme
    assert "ECCV 2018" in R.CITATIONS["MANet"] and "arXiv" not in R.CITATIONS["MANet"]


def test_update_readme_between_markers_only(runs: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro\n", "\n## After\ntail text\n"
    readme.write_text(f"{before}{R.README_START}\nold table\n{R.README_END}{after}")
    R.update_readme(readme, runs)
    text = readme.read_text()
    assert text.startswith(before + R.README_START) and text.endswith(R.README_END + after)
    assert "old table" not in text
    assert "Test CPU, 2 cores, no GPU, python 3.11, torch 9.9" in text
    # Threads are stated once, each as its process recorded it (env.json, the bench JSON).
    assert ("Torch threads, as each process recorded them: training 1 per process (18 runs); "
            "`lsts bench` 2 (every time in this report comes from them).") in text
    assert text.count("thread") == 1
    assert "seeds 0, 1, 2" in text and "| LSTS (uniform, N=81) | 50.0 ± 1.0 |" in text
    assert f"not computed yet (`{R.claims_command(runs)}`)" in text
    # The header lists the files read: those present, not the claims file not yet written.
    assert ("from `runs/report/*/seed*/eval.json`, `runs/report/*/seed*/config.yaml`, "
            "`runs/report/*/seed*/env.json` and `runs/report/bench_cpu.json`;") in text
    R.update_readme(readme, runs)
    assert readme.read_text() == text  # idempotent
    # with claims.json (as `lsts claims` writes it) the verdicts and the test noise appear
    spec = R.CLAIM_SPECS[2]
    iv = Interval(1.5, 0.5, 2.5, R.CONFIDENCE, 3, "seeds + test videos")
    claim = R.Claim(spec.key, spec.statement, spec.rule, (spec.a, spec.b), R.HELD,
                    "a reason", [0, 1, 2], {spec.a: [1.0] * 3, spec.b: [0.0] * 3}, 1.5,
                    iv, iv, iv)
    (runs / R.CLAIMS_FILE).write_text(json.dumps(claims_json(
        [claim], split="test", data=Path("d"), num_videos=40, resamples=100, seed=0,
        test_noise=Interval(60.0, 58.5, 61.5, R.CONFIDENCE, 100, "paired bootstrap"))))
    text = R.update_readme(readme, runs)
    # In the reader's names (labels, not run names), with what the paper itself reports.
    assert (f"1. {spec.statement}: **held**; LSTS (uniform, N=81) 1.0 % vs LSTS without SRFU "
            "0.0 % mAP; difference +1.50 points, 95 % interval [+0.50, +2.50] (seeds ± 1.00, "
            "test videos ± 1.00).\n   *The paper:* one of the paper's three contributions") in text
    assert "test split, 40 videos" in text
    assert "40 test videos is ± 1.50 points (within the 2.0 point target)" in text
    assert "**Did every variant finish learning?** " in text  # the plateau check, as in 05
    assert "**The next experiment.** " in text
    assert "`runs/report/bench_cpu.json` and `runs/report/claims.json`;" in text


@pytest.mark.parametrize("content", ["no markers\n", f"{R.README_START}\nonly start\n",
                                     f"{R.README_END}\n{R.README_START}\n",
                                     f"{R.README_START}{R.README_START}{R.README_END}"])
def test_update_readme_needs_markers(runs: Path, tmp_path: Path, content: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(content)
    with pytest.raises(ValueError, match="README"):
        R.update_readme(readme, runs)
    assert readme.read_text() == content  # untouched


def test_readme_gpu_recipe_is_generated_and_one_stage(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    copy = tmp_path / "README.md"
    copy.write_text(readme.read_text())
    block = R.update_readme_paper(copy)
    # Regenerate with: python -c "import lsts_lib.results as R; R.update_readme_paper('README.md')"
    assert copy.read_text() == readme.read_text(), "README's GPU recipe is stale"
    # One form in both places: the README's block is notebook 05's lines.
    assert block == "```bash\n" + "\n".join(R.paper_commands()) + "\n```"
    # The official protocol: every variant from ImageNet weights, none from another model.
    assert "--init-from" not in "\n".join(R.paper_commands())
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    with pytest.raises(ValueError, match="paper-commands"):
        R.update_readme_paper(bare)


def test_paper_commands_loop_over_the_plan(tmp_path: Path) -> None:
    import subprocess

    # The paper preset's plan: its seeds, and the whole catalogue (variants: null).
    assert R.PAPER_SEEDS == R.load_plan("paper").seeds and R.PAPER_VARIANTS == tuple(R.VARIANTS)
    cmds = R.paper_commands("/d ata", runs=("single_frame", "lsts", "lsts_gaussian"),
                            seeds=(0, 1))
    # lsts_gaussian is in the catalogue but not in the report's plan: the script says so.
    assert R.not_trained_in_report(R.PAPER_VARIANTS) == ["lsts_gaussian"]
    assert any(c.startswith("# (lsts_gaussian: never trained") for c in cmds)
    # Run the script with every command stubbed: each run is trained, detected and evaluated,
    # then the claims and the notebook, in that order.
    stubs = "".join(f"{c}() {{ echo {c} \"$@\"; }}\n"
                    for c in ("python", "torchrun", "lsts", "papermill"))
    out = subprocess.run(["bash", "-c", stubs + "\n".join(cmds)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    trained = [line.split("--out ")[1].split()[0] for line in out if line.startswith("torchrun")]
    assert trained == [f"runs/paper/{r}/seed{s}" for s in (0, 1)
                       for r in ("single_frame", "lsts", "lsts_gaussian")]
    assert "--variant lsts_gaussian" in out[7] and "data.root=/d ata" in out[1]
    detected = [line for line in out if line.startswith("lsts detect")]
    assert len(detected) == 6 and "--data /d ata" in detected[0]
    assert out[-2].startswith("lsts claims --runs runs/paper --data /d ata")
    assert out[-1].startswith("papermill notebooks/05_results.ipynb") and "PRESET paper" in out[-1]


# ------------------------------------------------------------------ what only notebooks used
def _frame(track_iou: dict[int, float]) -> FrameAnnotation:
    ids = np.array(list(track_iou), dtype=np.int64)
    return FrameAnnotation(Path("x.JPEG"), 64, 48, np.zeros((len(ids), 4), np.float32),
                           np.ones(len(ids), np.int64), ids, np.zeros(len(ids), bool),
                           np.zeros(len(ids), bool),
                           np.array(list(track_iou.values()), dtype=np.float32))


def test_fast_segment_picks_the_fastest_track_within_one_key_segment() -> None:
    slow = Video("v0", [_frame({0: 0.95}) for _ in range(8)])
    # track 1 is fast in frames 4..7 only; track 2 is fast everywhere but leaves at frame 6
    fast = Video("v1", [_frame({1: 0.9 if i < 4 else 0.3, 2: 0.5} if i < 6 else {1: 0.3})
                        for i in range(8)])
    # offline, k=4: keys 1 and 5; from key 5 the frames 5, 6 (n=2) share its segment
    assert R.fast_segment([slow, fast], 4, n=2) == (1, 5, 1)
    assert R.fast_segment([slow, fast], 4, n=2, mode="online") == (1, 4, 1)
    with pytest.raises(ValueError, match="no track"):
        R.fast_segment([slow], 4, n=2)


def test_offsets_and_focus_weights_of_a_run(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_detector(tiny_config("lsts", min_size=64, max_size=112))
    init = {OFFSETS_KEY: model.sampling_offsets()}
    with torch.no_grad():
        model.offsets.p.add_(0.25)
    run = tmp_path / "lsts" / "seed0"
    save_atomic({"format": FORMAT, "model": model.state_dict(), "offsets_init": init,
                 "model_config": model.cfg.to_dict(), "config": {}}, run / "model.pt")
    p0, p1 = R.load_offsets(run)
    assert np.allclose(p1 - p0, 0.25)
    # One measure everywhere: the L2 distance of a point (0.25 on both axes), not per axis.
    assert R.offsets_moved(p0, p1) == pytest.approx(0.25 * math.sqrt(2))
    assert R.offsets_moved_by_seed(tmp_path) == {0: pytest.approx(0.25 * math.sqrt(2))}
    t = R.offsets_moved_table(tmp_path)
    assert list(t["run"]) == ["lsts"] and t.loc[0, "seeds"] == 1
    loaded = R.load_run_detector(run)
    assert torch.equal(loaded.sampling_offsets(), model.offsets.p)
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(3, 48, 80, generator=g) for _ in range(3)]
    out = R.focus_weights(loaded, frames[0], frames[1:])
    T, N, h, w = out["S"].shape
    assert (T, N) == (2, len(p1)) and out["p"].shape == (N, 2)
    assert np.allclose(out["S"].sum(axis=1), 1.0, atol=1e-5)  # a softmax over the N points
    assert out["cell_px"] == pytest.approx((16 * 80 / 106, 16 * 48 / 64))  # 48x80 -> 64x106
    # The picture spans 106/16 x 64/16 cells; padded to 128 x 64 (multiples of 32), 8 x 4.
    assert out["image_cells"] == pytest.approx((106 / 16, 64 / 16)) and out["pad_to"] == 32
    assert (h, w) == (4, 8)
    copy = build_detector(tiny_config("copy_prop"))
    save_atomic({"format": FORMAT, "model": copy.state_dict(), "model_config": copy.cfg.to_dict(),
                 "config": {}}, tmp_path / "copy" / "model.pt")
    with pytest.raises(ValueError, match="not an LSTS variant"):
        R.load_offsets(tmp_path / "copy")
    with pytest.raises(ValueError, match="no LSTS alignment"):
        R.focus_weights(copy, frames[0], frames[1:])


def test_recipe_markdown_reads_the_config() -> None:
    from lsts_lib.engine.config import RunConfig, load_config, load_plan

    cfg = RunConfig.from_dict(load_config("report"))
    text = R.recipe_markdown(cfg, load_plan("report"))
    t = cfg.train
    opt = "AdamW" if t.optimizer == "adamw" else "SGD"
    assert opt in text and f"lr {t.stage1.lr:g}," in text and f"lr {t.stage2.lr:g}," in text
    assert f"weight decay {t.weight_decay:g}" in text and f"lr x{t.offsets_lr_mult:g}" in text
    frozen = [k for k, v in t.stage2.lr_mult.items() if v == 0]
    assert all(k in text.split("stage 2")[1] for k in frozen)
    other = RunConfig.from_dict(load_config("report", [
        f"train.optimizer={'sgd' if opt == 'AdamW' else 'adamw'}", "train.stage1.lr=0.0123",
        "train.stage1.lr_schedule=step", "train.weight_decay=0.0005"]))
    changed = R.recipe_markdown(other)
    assert opt not in changed and "lr 0.0123," in changed and "step decay" in changed
    assert "weight decay 0.0005" in changed
    warm = f"warm up low2high alone for {t.stage2.low2high_warmup} steps"
    assert (warm in text) == bool(t.stage2.low2high_warmup)
    off = R.recipe_markdown(RunConfig.from_dict(load_config(
        "report", ["train.stage2.low2high_warmup=0"])))
    assert "warm up low2high" not in off
    # The plan's flow pretraining is named with its own settings, and only when planned.
    from lsts_lib.engine.config import PlanConfig

    plan = PlanConfig(flow_pretrain={"steps": 321, "lr": 0.004})
    with_flow = R.recipe_markdown(cfg, plan)
    assert "pretrained once on SynthVID's true flow" in with_flow and "321 steps" in with_flow
    line = next(x for x in with_flow.splitlines() if "flow-pretrain" in x)
    assert "lr 0.004" in line and "batch size" not in line  # only the settings given
    assert "true flow" not in R.recipe_markdown(cfg, PlanConfig())


def test_recipe_markdown_names_one_stage_schedules_when_nothing_chains_the_stages() -> None:
    from lsts_lib.engine.config import RunConfig, load_config, load_plan

    paper = R.recipe_markdown(RunConfig.from_dict(load_config("paper")))
    assert "stage 1 (single frame)" not in paper and "stage 2 (temporal)" not in paper
    assert ("**temporal variants' schedule (train.stage2; each in one stage from ImageNet "
            "weights, not from the single-frame model)**") in paper
    assert "**single-frame variant's schedule (train.stage1; one stage, from ImageNet" in paper
    assert "x2.5 of the single-frame schedule's lr, x2.5 of the temporal schedule's" in paper
    # A plan (the report's shared stage 1) chains them: stage 2 starts from stage 1's model.
    report = R.recipe_markdown(RunConfig.from_dict(load_config("report")), load_plan("report"))
    assert "**stage 1 (single frame)**" in report and "**stage 2 (temporal)**" in report
    assert "of stage 1's lr" in report and "schedule" not in report
    # So does a config that names stage 2's start, plan or not; no ImageNet without weights.
    chained = R.recipe_markdown(RunConfig.from_dict(load_config(
        "paper", ["train.stage2.init_from=runs/x/model.pt"])))
    assert "**stage 2 (temporal)**" in chained and "runs/x/model.pt`" in chained
    scratch = R.recipe_markdown(RunConfig.from_dict(load_config(
        "paper", ["model.pretrained=false"])))
    assert "from a random initialisation" in scratch and "ImageNet" not in scratch


def test_flow_pretrain_table_and_text() -> None:
    ev = {"split": "test", "cells": {"all": 40},
          "epe_px": {"all": 3.0, "slow": 0.5, "medium": 2.0, "fast": 9.0},
          "zero_flow_epe_px": {"all": 6.0, "slow": 0.4, "medium": 4.0, "fast": 18.0}}
    summary = {"steps": 600, "batch_size": 4, "train_seconds": 150.2, "torch_threads": 1,
               "eval": ev}
    align = pd.DataFrame([{"run": R.run_label("flow_warp"), "seed": 0, "EPE all (px)": 4.0,
                           "EPE slow (px)": 0.6, "EPE medium (px)": 3.0,
                           "EPE fast (px)": 12.0}])
    t = R.flow_pretrain_table(summary, align)
    assert list(t.index) == ["pretrained on true flow", "zero (copy-propagation)",
                             "after detection training (seed 0)"]
    assert t.loc["zero (copy-propagation)", "EPE fast (px)"] == 18.0
    text = R.flow_pretrain_markdown(summary, t)
    assert "600 steps" in text and "test split" in text and "40 object cells" in text
    assert "slow 0.50 px against 0.40 px for zero flow (not better)" in text
    assert "fast 9.00 px against 18.00 px for zero flow (better)" in text
    assert ("Detection training (seed 0) then raised its error on every motion class "
            "measured: all 3.00 -> 4.00 px, slow 0.50 -> 0.60 px, medium 2.00 -> 3.00 px, "
            "fast 9.00 -> 12.00 px.") in text
    t.loc["after detection training (seed 0)", "EPE fast (px)"] = 8.0
    t.loc["after detection training (seed 0)", "EPE slow (px)"] = 0.52
    text = R.flow_pretrain_markdown(summary, t)
    assert ("raised its error on all 3.00 -> 4.00 px, medium 2.00 -> 3.00 px; lowered its "
            "error on fast 9.00 -> 8.00 px; kept its error on slow 0.50 -> 0.52 px.") in text
    assert len(R.flow_pretrain_table(summary)) == 2  # no alignment measured: no third row
    assert "not pretrained" in R.flow_pretrain_markdown(None)


def test_tuning_table(tmp_path: Path) -> None:
    path = tmp_path / "tuning.jsonl"
    path.write_text(json.dumps({"name": "a", "overrides": ["train.lr=1", "steps=9"],
                                "data": "d", "steps": 9, "dev_mAP": 0.25,
                                "motion": {"slow": 0.5, "medium": 0.25, "fast": None},
                                "train_s": 12.0, "note": "n"}) + "\n\n"
                    + json.dumps({"name": "o", "overrides": [], "steps": 1, "dev_mAP": None,
                                  "train_mAP": 0.9, "motion": None}) + "\n")
    t = R.tuning_table(path)
    assert list(t.columns) == list(R.TUNING_COLUMNS) and len(t) == 2
    assert t.loc[0, "what changed"] == "train.lr=1 steps=9" and t.loc[0, "dev mAP"] == 25.0
    assert t.loc[0, "slow"] == 50.0 and math.isnan(t.loc[0, "fast"])
    assert math.isnan(t.loc[1, "dev mAP"]) and "train mAP 90.0 (not dev)" in t.loc[1, "note"]
    assert t["dev videos"].tolist() == [R.DEV_NOT_RECORDED, ""]  # "d" says nothing; no dev mAP: no subset
    path.write_text("{bad\n")
    with pytest.raises(ValueError, match=r"tuning.jsonl:1"):
        R.tuning_table(path)


def test_tuning_table_says_how_many_dev_videos_each_dev_map_was_scored_on(
        tmp_path: Path) -> None:
    def row(name: str, overrides: list[str] | None = None, data: str = "report data",
            note: str = "", **extra: object) -> str:
        return json.dumps({"name": name, "overrides": overrides or [], "data": data,
                           "steps": 150, "dev_mAP": 0.3, "note": note, **extra})

    path = tmp_path / "tuning.jsonl"
    path.write_text("\n".join([
        row("capped", ["train.stage2.dev_max_videos=10", "train.threads=1"]),
        row("first3", data="report preset data (v3), first 3 dev videos (144 frames)"),
        row("scored", note="the report's model, scored on all 10 dev videos after the run "
                           "(its 3-video dev curve is flat)"),
        row("curve3", note="3-video dev curve 0: 35.8, 150: 32.2"),  # not what dev mAP read
        row("uncapped", ["train.stage2.dev_max_videos=null"]),
        row("uncapped_noted", ["train.stage2.dev_max_videos=null"],
            note="Dev curve on all 10 dev videos (step: mAP %)"),
        row("recorded", ["train.stage2.dev_max_videos=3"], dev_videos=4, dev_frames=190),
        row("unknown", data="this dev split = the one above"),
        json.dumps({"name": "flow", "overrides": [], "dev_mAP": None,
                    "note": "EPE on the 10 val videos"})]) + "\n")
    t = R.tuning_table(path).set_index("name")["dev videos"]
    assert t.to_dict() == {"capped": "10", "first3": "3 (144 frames)", "scored": "10",
                           "curve3": R.DEV_NOT_RECORDED, "uncapped": "all",
                           "uncapped_noted": "10", "recorded": "4 (190 frames)",
                           "unknown": R.DEV_NOT_RECORDED, "flow": ""}


def test_tuning_markdown_shows_every_note_in_full(tmp_path: Path) -> None:
    long_note = "stage 2 of lsts_fixed, " + "a long finding " * 30 + "| end <here>"
    path = tmp_path / "tuning.jsonl"
    path.write_text(json.dumps({"name": "S2_lsts", "overrides": ["init_from=<a b>.pt"],
                                "data": "d", "steps": 600, "dev_mAP": 0.2163, "motion": None,
                                "train_s": 236.6, "note": long_note}) + "\n")
    lines = R.tuning_markdown(R.tuning_table(path)).splitlines()
    assert lines[0] == ("| name | what changed | data | steps | dev videos | dev mAP | slow "
                        "| medium | fast | train s | note |")
    # text left, numbers right
    assert lines[1] == "|---|---|---|---:|---|---:|---:|---:|---:|---:|---|"
    row = lines[2]
    assert len(lines) == 3 and row.count(" | ") == 10  # no pipe of the note splits the row
    assert "| 600 | not recorded | 21.6 |  |  |  | 237 |" in row
    # The whole note, escaped for markdown: nothing cut, no HTML tag, no emphasis.
    assert "a long finding " * 30 in row and row.endswith("\\| end &lt;here&gt; |")
    assert "lsts\\_fixed" in row and "S2\\_lsts" in row and "init\\_from=&lt;a b&gt;.pt" in row


def write_alignment(run_dir: Path, method: str, epe: float, entropy: float | None = None) -> None:
    """An alignment.json as `lsts alignment` writes it (one method, every motion class)."""
    row = {"cells": 10, "epe_mean_px": epe, "epe_median_px": epe, "feature_mse": 1.0,
           "feature_rel_l2": 0.5}
    if entropy is not None:
        row |= {"s_entropy_nats": entropy, "s_uniform_entropy_nats": math.log(81), "s_max": 0.7}
    (run_dir / "alignment.json").write_text(json.dumps(
        {"method": method, "methods": {method: {c: row for c in R.MOTION_CLASSES}}}))


@pytest.mark.parametrize("lsts_epe, entropy, says", [
    (41.5, 0.8, ["On object cells (every motion class; seed 0 only)", "41.5 px",
                 "6.2 px",
                 "aligns worse than copying", "weights are peaked",
                 "not on the ones the objects moved to"]),
    (3.0, 4.0, ["aligns better than copying", "weights stay spread"]),
])
def test_discussion_follows_the_numbers(runs: Path, lsts_epe: float, entropy: float,
                                        says: list[str]) -> None:
    write_run(runs, "copy_prop", 0, 0.45)
    write_alignment(runs / "copy_prop" / "seed0", "copy", 6.2)
    write_alignment(runs / "lsts" / "seed0", "lsts", lsts_epe, entropy)
    text = R.discussion_markdown(runs)
    assert "52.0 ± 2.0 % VID mAP" in text  # the single-frame row of MAPS, not a typed number
    for s in says:
        assert s in text
    assert "No claims were judged yet" in text
    assert "No dev-split curves were recorded" in text
    assert "### The flow baseline" in text and "not pretrained on true flow" in text
    for run, mAPs in (("copy_prop", [0.30, 0.30, 0.301]), ("lsts", [0.02, 0.17, 0.21])):
        (runs / run / "seed0" / "dev.csv").write_text(
            "step,mAP\n" + "".join(f"{s},{m}\n" for s, m in zip((0, 75, 150), mAPs, strict=True)))
    text = R.discussion_markdown(runs)
    # One seed per variant: the change has no interval, so the plateau test decides nothing.
    assert "Not known from these curves" in text
    assert "LSTS (uniform, N=81) +4.0 points over its last 75 steps" in text
    assert "Copy-propagation +" not in text
    table = R.alignment_table(runs)
    assert table.set_index("run").loc[R.run_label("lsts"), "S entropy (nats)"] == entropy
    assert math.isnan(table.set_index("run").loc[R.run_label("copy_prop"), "max S_n"])


def test_discussion_names_the_noise_that_leaves_a_claim_open(runs: Path) -> None:
    wide = Interval(-1.0, -7.0, 5.0, 0.95, 2000, "paired bootstrap over test videos")
    narrow = Interval(-1.0, -2.0, 0.0, 0.95, 5, "paired t over seeds")
    c = R.Claim("beats_flow", "LSTS beats flow", "rule", ("lsts", "flow_warp"),
                verdict=R.INCONCLUSIVE, reason="accuracy inconclusive",
                t_interval=narrow, bootstrap=wide,
                combined=Interval(-1.0, -7.1, 5.1, 0.95, 5, "seeds + test videos"))
    assert ("the test videos make most of its width (± 6.00 of ± 6.10; the seeds alone give "
            "± 1.00)") in R._claim_sentence(c)
    c.t_interval, c.bootstrap = wide, narrow
    assert "the seeds make most of its width (± 6.00 of ± 6.10; the test videos alone give " \
        "± 1.00)" in R._claim_sentence(c)
    c.verdict = R.NOT_TESTABLE
    assert "most of its width" not in R._claim_sentence(c)


def test_dev_curve_table_says_where_a_stage_plateaus() -> None:
    dev = pd.DataFrame({
        "variant": ["stage1"] * 3 + ["lsts"] * 6,
        "seed": [0] * 3 + [0, 0, 0, 1, 1, 1],
        "step": [600, 1200, 1800] + [0, 50, 100] * 2,
        "mAP": [0.10, 0.30, 0.305] + [0.20, 0.22, 0.30, 0.22, 0.24, 0.30]})
    t = R.dev_curve_table(dev).set_index("variant")
    assert t.loc["stage1", "plateau"] and t.loc["stage1", "change over it"] == pytest.approx(0.5)
    assert t.loc["lsts", "dev mAP first"] == pytest.approx(21.0)
    assert t.loc["lsts", "change over it"] == pytest.approx(7.0) and not t.loc["lsts", "plateau"]
    assert t.loc["lsts", "seeds"] == 2 and t.loc["lsts", "last interval (steps)"] == 50
    assert t.loc["lsts", ["seed change min", "seed change max"]].tolist() == pytest.approx(
        [6.0, 8.0])
    assert (t.loc["lsts", "seeds rising"], t.loc["lsts", "seeds compared"]) == (2, 2)


def test_markdown_table_leaves_missing_numbers_empty() -> None:
    table = R.markdown_table(pd.DataFrame({"run": ["a", "b"], "x": [1.5, math.nan]}))
    assert table.splitlines()[2:] == ["| a | 1.5 |", "| b |  |"]


def test_low2high_markdown_reads_the_curves() -> None:
    assert "is 0" in R.low2high_markdown(pd.DataFrame(columns=["variant", "seed", "step",
                                                               "rel_mse"]))
    rows = [{"variant": v, "seed": s, "step": i + 1, "rel_mse": 1.0 if i == 0 else 0.2}
            for v in ("lsts", "lsts_fixed") for s in (0, 1) for i in range(20)]
    warm = pd.DataFrame(rows)
    text = R.low2high_markdown(warm)
    assert "from 1.00" in text and "to 0.20" in text and "2 seeds" in text and "coincide" in text
    other = warm.assign(rel_mse=warm.rel_mse.where(warm.variant == "lsts", 0.3))
    assert "coincide" not in R.low2high_markdown(other) and "20 steps" in text
    dev = pd.DataFrame([{"variant": "lsts", "seed": 0, "step": 0, "mAP": 0.30},
                        {"variant": "lsts", "seed": 1, "step": 0, "mAP": 0.40},
                        {"variant": "lsts", "seed": 0, "step": 150, "mAP": 0.9},
                        {"variant": "copy_prop", "seed": 0, "step": 0, "mAP": 0.25}])
    text = R.low2high_markdown(warm, dev)
    assert "35.0 % for LSTS" in text and "25.0 % for Copy" in text and "90.0" not in text
    assert "Copy" in text  # the reference's label


def test_dev_test_table_names_the_swapped_pairs() -> None:
    dev = pd.DataFrame({"variant": ["a", "a", "b", "b", "c", "c"], "seed": [0] * 6,
                        "step": [0, 10] * 3, "mAP": [0.1, 0.30, 0.1, 0.20, 0.1, 0.10]})
    runs_df = pd.DataFrame({"run": ["a", "a", "b", "c"], "seed": [0, 1, 0, 0],
                            "mAP": [20.0, 22.0, 25.0, 5.0]})
    t = R.dev_test_table(dev, runs_df)
    assert t.set_index("variant")["dev mAP"].round(6).to_dict() == {"a": 30.0, "b": 20.0,
                                                                    "c": 10.0}
    assert t.set_index("variant")["test mAP"].to_dict() == {"a": 21.0, "b": 25.0, "c": 5.0}
    assert list(t["dev rank"]) == [1, 2, 3] and list(t["test rank"]) == [2, 1, 3]
    text = R.dev_test_markdown(t, 144)
    assert "144 dev frames" in text and "1 of 3 pairs swap" in text
    assert "a above b on dev (30.0 vs 20.0 %) but below it on test (21.0 vs 25.0 %)" in text
    same = R.dev_test_markdown(t.assign(**{"test mAP": [30.0, 20.0, 1.0]}), 144)
    assert "rank as on the test split" in same


def test_offsets_travel_bound_follows_the_recipe() -> None:
    from lsts_lib.engine.config import RunConfig, load_config

    def bound(*over: str) -> float:
        return R.offsets_travel_bound(RunConfig.from_dict(load_config(
            "report", ["model.variant=lsts", "train.stage2.lr_schedule=step",
                       "train.stage2.lr_steps=[1.0]", "train.stage2.warmup_steps=0", *over])))

    # A constant rate: steps x lr x offsets_lr_mult.
    assert bound("train.stage2.steps=100", "train.stage2.lr=0.001",
                 "train.stage2.offsets_lr_mult=2.5") == pytest.approx(0.25)
    assert bound("train.stage2.steps=100", "train.stage2.lr=0.001",
                 "train.stage2.offsets_lr_mult=null",
                 "train.offsets_lr_mult=10") == pytest.approx(1.0)  # the default multiplier
    cosine = R.offsets_travel_bound(RunConfig.from_dict(load_config(
        "report", ["model.variant=lsts", "train.stage2.steps=100", "train.stage2.lr=0.001",
                   "train.stage2.warmup_steps=0", "train.stage2.offsets_lr_mult=2.5"])))
    assert 0.12 < cosine < 0.13  # cosine to 0: about half the constant rate's travel
    assert math.isnan(bound("train.optimizer=sgd"))  # SGD's step scales with the gradient


def test_mode_cost_ratios() -> None:
    def res(sf: float, lsts: float) -> dict:
        return {"single_frame": {"amortised_ms": sf}, "lsts": {"amortised_ms": lsts}}

    bench = {"results": {R.BENCH_SIZE: res(100.0, 60.0)},
             "modes": {"compile": {"results": {R.BENCH_SIZE: res(50.0, 20.0)}},
                       "other_size_only": {"results": {"preset": res(1.0, 1.0)}}}}
    ratios = R.mode_cost_ratios(bench)
    assert ratios == {inference.DEFAULT_MODE: pytest.approx(0.6), "compile": pytest.approx(0.4)}


def test_dev_frames_markdown_gives_one_model_on_both_sets_of_frames() -> None:
    dev1 = pd.DataFrame({"step": [1200, 600], "mAP": [0.447, 0.2], "frames": [480, 480]})
    dev2 = pd.DataFrame({"variant": ["single_frame"] * 3 + ["lsts"], "seed": [0, 1, 0, 0],
                         "step": [0, 0, 75, 0], "mAP": [0.337, 0.337, 0.5, 0.25],
                         "frames": [144] * 4})
    text = R.dev_frames_markdown(dev1, dev2, (None, 3))
    assert "stage 1 on 480 dev frames (all the dev videos)" in text
    assert "stage 2 on 144 dev frames (the first 3 dev videos)" in text
    assert "scores 44.7 % on the 480 frames and 33.7 % on the 144" in text
    assert "(step 1200)" in text and "single_frame's stage-2 step 0" in text
    assert "50.0" not in text and "25.0" not in text  # neither a later step nor another variant
    no_start = R.dev_frames_markdown(dev1, dev2[dev2.variant == "lsts"], (None, 3))
    assert "different frames" in no_start and "same model" not in no_start
    same = R.dev_frames_markdown(dev1, dev2.assign(frames=480), (None, None))
    assert same == "Both panels are read on the same 480 dev frames (all the dev videos)."
    one = R.dev_frames_markdown(dev1.assign(frames=48), dev2.assign(frames=48), (1, 1))
    assert one == "Both panels are read on the same 48 dev frames (the first dev video)."


def test_numbers_print_without_negative_zero_and_sentences_keep_map() -> None:
    assert R._fmt(-0.001, 2) == "0.00" and R._fmt(-0.5, 2) == "-0.50" and R._fmt(None) == "n/a"
    c = R.Claim("learnable_sampling", "Learnable beats fixed", "rule", ("lsts", "lsts_fixed"),
                verdict=R.INCONCLUSIVE, reason="mAP lsts 31.3 vs lsts_fixed 32.0")
    assert "** mAP lsts 31.3" in R._claim_sentence(c)
    c.reason = "variant x not run"
    assert "** Variant x not run." in R._claim_sentence(c)


@pytest.mark.parametrize("whole, says", [
    ((41.0, 100.0), "fall on either side of the rule's 0.5"),  # 0.41 against the sums' 0.52
    ((55.0, 100.0), "the ratio is 0.55."),
])
def test_cost_part_sentence_says_when_two_timings_disagree(whole: tuple[float, float],
                                                           says: str) -> None:
    def res(sf: float, lsts: float, measured: tuple[float, float] | None = None) -> dict:
        out = {"single_frame": {"amortised_ms": sf}, "lsts": {"amortised_ms": lsts}}
        if measured:
            out["lsts"]["amortised_ms_measured"], out["single_frame"]["amortised_ms_measured"] = (
                measured)
        return out

    bench = {"results": {R.BENCH_SIZE: res(100.0, 52.0, whole)},
             "modes": {"compile": {"results": {R.BENCH_SIZE: res(50.0, 30.0)}}}}
    claim = R.Claim("per_frame", "s", "r", ("single_frame", "lsts"), verdict=R.NOT_HELD)
    text = R.cost_part_sentence(claim, bench)
    assert "time 0.52" in text and "under `compile` the ratio is 0.60 (above" in text
    assert says in text and "does not change with it" in text
    if says.endswith("."):
        assert "either side" not in text
    assert R.cost_part_sentence(claim, {"results": bench["results"]}) is None  # no modes


def test_variant_summaries_say_how_the_flownet_started(runs: Path) -> None:
    text = R.variant_summaries(runs)
    assert list(text) == list(R.VARIANTS)
    assert "no flow supervision" in text["flow_warp"]  # the fixture's config has no flow init
    for seed in range(len(MAPS["flow_warp"])):
        cfg_path = runs / "flow_warp" / f"seed{seed}" / "config.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["train"]["flow_init_from"] = "runs/report/flownet/flownet.pt"
        cfg_path.write_text(yaml.safe_dump(cfg))
    text = R.variant_summaries(runs)["flow_warp"]
    assert "pretrained on SynthVID's true flow" in text and "no flow supervision" not in text
    assert "flow supervision" not in R.variant_summaries(runs)["lsts"]


def test_claim_sentence_counts_the_seeds_on_the_claimed_side() -> None:
    c = R.Claim("dfa", "DFA adds", "rule", ("lsts", "lsts_no_dfa"), verdict=R.INCONCLUSIVE,
                reason="mAP", seeds=[0, 1, 2],
                per_seed={"lsts": [30.0, 31.0, 29.0], "lsts_no_dfa": [28.0, 32.0, 27.0]})
    assert R.seeds_on_claimed_side(c) == (2, 3)
    assert "2 of 3 seeds' paired differences lie on the claimed side (above 0 points)" in (
        R._claim_sentence(c))
    c = R.Claim("per_frame", "close", "rule", ("single_frame", "lsts"), seeds=[0, 1],
                per_seed={"single_frame": [40.0, 40.0], "lsts": [39.0, 30.0]})
    assert R.seeds_on_claimed_side(c) == (1, 2)  # within 2 points: only seed 0


def test_load_claims_words_a_claim_as_its_spec_does(runs: Path) -> None:
    old = R.Claim("dfa", "DFA (an older wording) adds accuracy", "rule",
                  ("lsts", "lsts_no_dfa"), verdict=R.INCONCLUSIVE, reason="kept")
    (runs / R.CLAIMS_FILE).write_text(json.dumps({"claims": [old.to_dict()]}))
    (c,), _ = R.load_claims(runs)
    assert c.statement.startswith("DFA's fusion of the aligned memory")
    assert (c.verdict, c.reason) == (R.INCONCLUSIVE, "kept")
    assert R.label("lsts_no_dfa") == "LSTS without DFA fusion"


def test_next_experiment_asks_for_travel_only_when_the_bound_held_the_offsets(
        runs: Path) -> None:
    none = pd.DataFrame(columns=list(R.TUNING_COLUMNS))  # a record without the rows it reads
    bound = 2.91
    held = R.next_experiment_markdown(runs, none, (0.2, bound), " (see the bound below)")
    assert "with offsets that can travel (see the bound below), is the next" in held
    free = R.next_experiment_markdown(runs, none, (0.457, bound), " (see the bound below)")
    assert "travel" not in free and "below" not in free  # moved 16 % of the bound
    assert "the same for every variant, is the next experiment" in free
    readme = R.next_experiment_markdown(runs, none, (0.2, bound))  # the README gives no bound
    assert "offsets that can travel, is" in readme and "below" not in readme
    assert "travel" not in R.next_experiment_markdown(runs, none)  # nothing known


def test_plateau_sentence_gives_the_spread_of_the_change_over_the_seeds(runs: Path) -> None:
    # lsts: seed mean +2.0 points over the last 75 steps, seeds -1.0, +2.0 and +5.0 points;
    # lsts_fixed: flat on average (-0.5) although its seeds move by 3 points each way.
    for seed, (a, b) in enumerate(((0.30, 0.29), (0.30, 0.32), (0.30, 0.35))):
        (runs / "lsts" / f"seed{seed}" / "dev.csv").write_text(
            f"step,mAP\n0,0.02\n75,{a}\n150,{b}\n")
    for seed, (a, b) in enumerate(((0.30, 0.33), (0.30, 0.265))):
        (runs / "lsts_fixed" / f"seed{seed}" / "dev.csv").write_text(
            f"step,mAP\n75,{a}\n150,{b}\n")
    text = R._plateau_sentence(runs)
    assert ("LSTS (uniform, N=81) +2.0 points (seeds -1.0 to +5.0; 2 of 3 rising) over its "
            "last 75 steps") in text
    assert "frozen offsets" not in text  # the rule reads the seed mean: unchanged by the spread
    # Seeds from -1 to +5 points: the seed-mean change's interval reaches below the rule's 1.
    assert text.startswith("Not known from these curves.") and "within noise" in text
    (runs / "lsts" / "seed1" / "dev.csv").write_text("step,mAP\n0,0.02\n75,0.30\n")
    (runs / "lsts" / "seed2" / "dev.csv").unlink()
    (runs / "lsts" / "seed0" / "dev.csv").write_text("step,mAP\n0,0.02\n75,0.30\n150,0.35\n")
    one = R._plateau_sentence(runs)  # only seed 0 was scored at step 150: no spread to give
    assert "LSTS (uniform, N=81) +5.0 points over its last 75 steps" in one
    assert "rising)" not in one


def test_findings_follow_the_runs(runs: Path) -> None:
    for seed, m in enumerate((0.455, 0.46, 0.465)):
        write_run(runs, "copy_prop", seed, m)
    for run, epe in (("copy_prop", 6.0), ("flow_warp", 4.0), ("lsts", 30.0),
                     ("lsts_fixed", 60.0)):
        write_alignment(runs / run / "seed0", run, epe)
    df = R.load_runs(runs)
    text = " ".join(R.findings_sentences(runs, df, R.alignment_table(runs)))
    # MAPS: the LSTS variants 43.0 to 50.0 against copy's 46.0; flow 41.0, 5 points below.
    assert "2 of the 4 LSTS variants score below copy-propagation (44.0 to 50.0 % mAP " \
           "against 46.0 %)" in text
    assert "2 measured LSTS variants' alignment errs by 30.0 to 60.0 px against 6.0 px" in text
    assert "5.0 to 10.0 times copy's error; 2 of 2 worse" in text
    assert "flow baseline scores 41.0 % against copy-propagation's 46.0 %" in text
    assert "-5.00 ± 1.24: beyond seed noise), and its flow aligns objects better" in text
    assert "above copying on no motion class" in text and "Claim 2" not in text
    for seed in range(3):
        cfg_path = runs / "flow_warp" / f"seed{seed}" / "config.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["train"]["flow_init_from"] = "flownet.pt"
        cfg_path.write_text(yaml.safe_dump(cfg))
    assert "Claim 2 compares a baseline whose alignment was supervised by the true flow" in (
        " ".join(R.findings_sentences(runs, df, R.alignment_table(runs))))
    assert R.findings_sentences(runs, df[df["run"] != "copy_prop"], pd.DataFrame()) == []


# ---- notebook 04: the early rise of a stage's loss; notebook 03: the toy shift's reading --------

def _rising_log(steps: int = 600, bump: tuple[int, int] = (100, 140), height: float = 1.0,
                lr: float = 0.004) -> pd.DataFrame:
    """A log.csv of constant per-step losses with a bump over steps `bump` (the R-FCN terms
    rise, the RPN's fall), a 10-step warm-up then a flat rate."""
    step = np.arange(1, steps + 1)
    on = (step > bump[0]) & (step <= bump[1])
    return pd.DataFrame({
        "step": step, "loss": 1.0 + height * on,
        "loss_rpn_cls": 0.1 - 0.05 * (step > bump[0]), "loss_rpn_box": np.full(steps, 0.05),
        "loss_rfcn_cls": 0.6 + 0.7 * height * on, "loss_rfcn_box": 0.25 + 0.3 * height * on,
        "lr": np.where(step <= 10, lr * step / 10, lr)})


def _stage1_config(**schedule) -> object:
    from lsts_lib.engine.config import RunConfig, load_config

    cfg = load_config("smoke", {"train.stage": "stage1", "model.variant": "single_frame",
                                **{f"train.stage1.{k}": v for k, v in schedule.items()}})
    return RunConfig.from_dict(cfg)


def test_loss_rise_finds_the_bump_of_the_running_mean() -> None:
    rise = R.loss_rise(_rising_log(), window=20)
    # The running mean of 20 steps is 1.0 up to step 100 and 2.0 from step 120 to 140.
    assert rise is not None and rise["window"] == 20
    assert rise["low"] == 100 and rise["peak"] == 120
    assert rise["at_low"]["loss"] == pytest.approx(1.0) and rise["at_peak"]["loss"] == 2.0
    assert rise["back"] == 160  # the first window after the bump holds none of it again
    assert rise["lr"] == pytest.approx((0.004, 0.004))
    assert R.loss_rise(_rising_log(height=0.05), window=20) is None  # a wobble, not a rise
    assert R.loss_rise(_rising_log(bump=(400, 440)), window=20) is None  # past the early part


def test_loss_rise_markdown_tells_the_schedule_the_terms_and_the_images_apart() -> None:
    log = _rising_log()
    rise = R.loss_rise(log, window=20)
    run = _stage1_config(warmup_steps=10, lr=0.004, lr_schedule="cosine")
    # Images of one box everywhere but over the bump, where they hold two: the loss grows by
    # one with each box, so the images explain the whole rise.
    boxes = pd.Series(1.0 + ((log.step > 100) & (log.step <= 140)).to_numpy(),
                      index=pd.RangeIndex(1, 601, name="step"))
    text = R.loss_rise_markdown(rise, run, log, boxes)
    for part in ["Stage 1's curves rise early: the running mean of `loss` goes from 1.00 at "
                 "step 100 to 2.00 at step 120 (+100%) and is back at 1.00 by step 160.",
                 "It is not the learning rate: the warm-up ended at step 10",
                 "keeps the base rate at 100-100 % of its peak, 0.004",
                 "The terms that rise: loss_rfcn_cls +0.700, loss_rfcn_box +0.300; those that "
                 "keep falling: loss_rpn_cls -0.050.", "(1.00 with 1, 2.00 with 2; 1.00 a box",
                 "hold 2.00 boxes each against 1.00", "worth +1.00 of the +1.00, 100% of the "
                 "rise: most of it is the images'.", "OHEM"]:
        assert part in text, part
    # The same rise on images like the others': not the images, the detector's own course.
    flat = pd.Series(1.0, index=boxes.index)
    flat.iloc[::7] = 2.0  # a box count that varies, so that the loss per box is defined
    text = R.loss_rise_markdown(rise, run, log, flat)
    assert "the rest is the detector's own course at its peak learning rate" in text
    # A rise inside the warm-up is the schedule's to explain, not ruled out.
    text = R.loss_rise_markdown(rise, _stage1_config(warmup_steps=110, lr=0.004), log)
    assert "The learning rate changes over it: the warm-up ends at step 110" in text
    assert "boxes" not in text
    assert "no early rise" in R.loss_rise_markdown(None, run)


@pytest.mark.filterwarnings("ignore:.*images without a known object skipped")
def test_step_boxes_reads_each_steps_image_in_the_streams_order(tiny_vid: Path) -> None:
    from conftest import VidLayout

    from lsts_lib.engine.config import RunConfig, load_config
    from lsts_lib.engine.data import build_stream

    lay = VidLayout(tiny_vid)  # one more DET image, with three objects
    lay.add_det_image("train/D_0000/d2", [(0, "c1", (1, 1, 9, 9)), (1, "c2", (20, 2, 40, 30)),
                                          (2, "c1", (40, 20, 60, 44))])
    lay.write_split("DET_train_30classes.txt",
                    [f"train/D_0000/d{i} 1" for i in range(3)])
    run = RunConfig.from_dict(load_config("smoke", {
        "data.root": str(tiny_vid), "data.use_det": True, "train.stage": "stage1",
        "model.variant": "single_frame"}))
    stream = build_stream(run)
    boxes = R.step_boxes(run, 2 * len(stream))
    assert list(boxes.index[:2]) == [1, 2]
    for step in (1, len(stream) + 3):  # log step s trains on stream position s - 1
        kind, a, b = stream.entry_at(step - 1)
        ann = stream.det[a] if kind == "det" else stream.vid.videos[a].frames[b]
        assert boxes[step] == len(ann.labels)
    # One epoch visits every entry once: train/a 0, a 3, b 2, d0 (its c1 only) and d2 (d1 has
    # no object of the classes and is skipped).
    assert sorted(boxes.iloc[:len(stream)]) == [1, 1, 1, 1, 3]


def test_toy_shift_markdown_reads_who_found_the_shift_and_who_moved() -> None:
    shift = (2.0, -1.0)
    start = np.array([[1.6, -1.0], [0.0, 0.0], [-2.0, 2.0]])
    end = np.array([[2.0, -1.0], [0.4, 0.3], [-2.0, 2.0]])
    offsets = np.stack([start + (end - start) * s / 4 for s in range(5)])
    weight = np.array([[1 / 3, 1 / 3, 1 / 3]] * 2 + [[0.8, 0.1, 0.1]] * 3)
    text = R.toy_shift_markdown({"offsets": offsets, "mean_S": weight}, shift)
    for part in ["After 4 steps 1 of the 3 points lies within 0.5 cell of the shift: the 1 that "
                 "started nearest to it, 0.40 to 0.40 cells away.", "hold 80% of the "
                 "pixel-averaged softmax weight (at step 0: 33%), half of that by step 2.",
                 "The other 2, which started 2.24 to 5.00 cells from the shift, move too",
                 "by a median 0.25 cells from start to end, at most 0.50", "end with 20%"]:
        assert part in text, part
    none = R.toy_shift_markdown({"offsets": offsets, "mean_S": weight}, (4.0, 4.0))
    assert "none of the 3 points lies within 0.5 cell of the shift (the nearest ends" in none
    assert "All 3, which started" in none


# ------------------------------------------------------------------ the report's prose
_PAPER = R.paper_numbers()


def _paper_with(**maps: float) -> pd.DataFrame:
    """paper_numbers() with some methods' mAP changed (the prose must follow the table)."""
    p = _PAPER.copy()
    for method, value in maps.items():
        p.loc[p["method"] == method, "mAP"] = value
    return p


def test_related_work_reads_the_paper_table_and_cites_every_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = R.related_work_markdown()
    for key in R.RELATED_WORK:
        assert f"**{key}**: {R.CITATIONS[key]}." in text  # the reference list
    assert "73.0 % mAP at 0.034 s per image" in text and "(DFF; Zhu et al., CVPR 2017)" in text
    assert "its published 77.2 % is +0.1 points from FGFA's" in text
    assert "SELSA and MEGA reach a higher published accuracy than LSTS" in text
    monkeypatch.setattr(R, "paper_numbers", lambda: _paper_with(LSTS=81.0))
    moved = R.related_work_markdown()
    assert "its published 81.0 % is +3.9 points" in moved
    assert "MEGA reaches a higher published accuracy" in moved and "SELSA and" not in moved


def test_introduction_names_every_claims_pair_and_our_own_ablations() -> None:
    text = R.introduction_markdown()
    for spec in R.CLAIM_SPECS:
        assert f"({R.label(spec.a)} against {R.label(spec.b)})" in text
    assert "learnable sampling locations beat fixed ones" in text  # lower-cased
    assert "; LSTS beats flow-warp" in text  # an acronym keeps its capitals
    assert ("LSTS, frozen offsets, LSTS without SRFU and LSTS without DFA fusion are this "
            "project's own switches") in text
    assert "motion blur, occlusion and defocus" in text


def test_readme_introduction_and_related_work_are_generated() -> None:
    readme = (R.paths.REPO / "README.md").read_text()

    def block(start: str, end: str) -> str:
        return readme[readme.index(start) + len(start):readme.index(end)].strip("\n")

    # Regenerate with lsts_lib.results.update_readme_prose (the report's readme stage).
    assert block(R.INTRO_START, R.INTRO_END) == R.introduction_markdown()
    assert block(R.RELATED_START, R.RELATED_END) == R.related_work_markdown()
    assert R.DIFFERENCES_START in readme and R.DIFFERENCES_END in readme


def test_every_claim_says_what_the_paper_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(R.CLAIM_SOURCES) == {s.key for s in R.CLAIM_SPECS}
    for spec in R.CLAIM_SPECS:
        text = R.claim_source_markdown(spec.key)
        assert text.startswith("*The paper:*") and "*This claim:*" in text
        assert "this reproduction's operationalisation (not the paper's)" in text
    five = R.claim_source_markdown("per_frame")
    assert "LSTS 77.2 % against 74.1 % for the per-frame R-FCN" in five
    assert "by +3.1 points" in five and "'close to' is a weaker test" in five
    assert f"at most {R.CLOSE_MAP_POINTS:g} points" in five
    assert f"ratio at most {R.COST_FRACTION:g}" in five
    assert f"below {R.SPEED_MARGIN:g}" in R.claim_source_markdown("beats_flow")
    assert f"at least {R.OFFSETS_ENGAGED_CELLS:g} feature cells" in (
        R.claim_source_markdown("learnable_sampling"))
    monkeypatch.setattr(R, "paper_numbers", lambda: _paper_with(LSTS=70.0))
    assert "LSTS 70.0 % against 74.1 %" in R.claim_source_markdown("per_frame")
    assert "by -4.1 points" in R.claim_source_markdown("per_frame")
    table = R.thresholds_markdown()
    assert "this reproduction's operationalisation" in table and "LSTS 70.0 %" in table
    for value in (R.SPEED_MARGIN, R.CLOSE_MAP_POINTS, R.COST_FRACTION,
                  R.OFFSETS_ENGAGED_CELLS, R.TEST_NOISE_TARGET_POINTS):
        assert f"{value:g}" in table


def test_claim_line_uses_the_readers_names() -> None:
    iv = Interval(9.8, 4.0, 15.6, R.CONFIDENCE, 5, "seeds + test videos")
    c = R.Claim("per_frame", "close", "rule", ("single_frame", "lsts"), R.NOT_HELD, "reason",
                [0, 1], {"single_frame": [41.0, 41.2], "lsts": [31.0, 31.6]}, 9.8, iv, iv, iv,
                {"time_ratio": 0.498, "lsts.cpu_ms": 1852.0})
    line = R.claim_line_markdown(c)
    assert line.startswith("**not held**; Single-frame R-FCN 41.1 % vs LSTS (uniform, N=81) "
                           "31.3 % mAP; difference +9.80 points, 95 % interval [+4.00, +15.60]")
    assert line.endswith("CPU time ratio LSTS (uniform, N=81) / Single-frame R-FCN 0.50")
    assert "single_frame" not in line
    bare = R.Claim("srfu", "s", "r", ("lsts", "lsts_no_srfu"), reason="variant x not run")
    assert R.claim_line_markdown(bare) == "**not testable**; variant x not run"


def test_protocol_differences_read_both_configs() -> None:
    from lsts_lib.engine.config import RunConfig, load_config

    report = RunConfig.from_dict(load_config("report", ["model.variant=lsts"]))
    paper = RunConfig.from_dict(load_config("paper"))
    t = R.protocol_differences(report, paper, R.load_plan("report"), R.load_plan("paper"))
    rows = {r[0]: (r[1], r[2]) for r in t.itertuples(index=False)}
    ours, theirs = rows["optimizer"]
    assert ours.startswith("AdamW") and theirs.startswith("SGD with momentum 0.9")
    assert rows["temporal variants (train.stage2): which modules learn"] == (
        "backbone frozen, head at x0.1 the lr", "every module at the stage's lr")
    assert rows["temporal variants (train.stage2): schedule"][0].startswith(
        f"{report.train.stage2.steps} steps")
    mult = report.train.stage2.offsets_mult(report.train)
    assert rows["offsets p_n: lr multiplier (train.stage2)"] == (f"x{mult:g}", "x2.5")
    assert "one stage from ImageNet weights" in rows["how runs start"][1]
    assert list(t["aspect"])[:4] == list(rows)[:4]  # the largest departures first
    assert R.protocol_differences(paper, paper).empty
    sgd = RunConfig.from_dict(load_config("paper", ["train.optimizer=adamw"]))
    assert list(R.protocol_differences(sgd, paper)["aspect"]) == ["optimizer"]


def _tuning(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c, "") for c in R.TUNING_COLUMNS} for r in rows],
                        columns=list(R.TUNING_COLUMNS))


OFFSET_ROWS = [
    {"name": "S2_lsts_cut_res4a_s0", "dev mAP": 34.35, "dev videos": "10",
     "note": "offsets moved 0.019 cells (mean L2 distance)"},
    {"name": "S2_lsts_cut_res4a_s1", "dev mAP": 31.24, "dev videos": "10", "note": ""},
    {"name": "S2_lsts_offsets_x20_s0", "dev mAP": 32.34, "dev videos": "10",
     "note": "Paired with S2_lsts_cut_res4a_s0 (x2.5, 34.3 %). offsets moved 0.196 cells"},
    {"name": "S2_lsts_offsets_x40_s0", "dev mAP": 35.56, "dev videos": "10",
     "note": "Paired with S2_lsts_cut_res4a_s0 (x2.5, 34.3 %). offsets moved 0.442 cells"},
]


def test_offsets_choice_says_how_many_seeds_and_against_which_noise() -> None:
    text = R.offsets_choice_markdown(_tuning(OFFSET_ROWS), 40.0, 2.5, (2.0, 5))
    assert "x40 (the official code's is x2.5) was chosen on one seed" in text
    assert ("35.56 % dev mAP on 10 dev videos against 34.35 % for its pair at x2.5 "
            "(S2_lsts_cut_res4a_s0), +1.21 points") in text
    assert "x20 32.3 % (S2_lsts_offsets_x20_s0)" in text
    assert "varies by 2.0 points over 5 seeds" in text
    assert "differ by 3.1 points on the same dev videos" in text
    assert text.count("within dev noise") == 1 and "0.442 cells against 0.019" in text
    big = _tuning([*OFFSET_ROWS[:3], {**OFFSET_ROWS[3], "dev mAP": 45.0}])
    assert "larger than these yardsticks, on one seed" in R.offsets_choice_markdown(
        big, 40.0, 2.5, (2.0, 5))
    assert "official x2.5 in every stage" in R.offsets_choice_markdown(big, 2.5, 2.5)
    assert "has no tuning row" in R.offsets_choice_markdown(big, 10.0, 2.5)


TUNING_NEXT = [
    {"name": "S2_lsts_600_s1_3600", "steps": 600, "dev mAP": 31.2, "dev videos": "10",
     "note": "dev curve (step: mAP %) 0: 1.4, 75: 20.0, 450: 31.1, 600: 31.2: plateau from "
             "step 450; offsets moved 0.048 cells"},
    {"name": "S2_copy_prop_150_s1_3600", "steps": 150, "dev mAP": 41.5, "dev videos": "10",
     "note": "flat"},
    {"name": "S2_lsts_150_s1_3600", "steps": 150, "dev mAP": 27.8, "dev videos": "10",
     "note": ""},
    {"name": "S2_lsts_l2h300_150", "steps": 150, "dev mAP": 32.4, "dev videos": "?",
     "note": "3-video dev curve (step: mAP %) 0: 35.8, 75: 36.7, 150: 32.2 (without the "
             "warm-up: 1.9, 17.6, 21.2). S still saturates: entropy 0.84 of 4.39 nats, max S "
             "0.71, EPE 49.8 px against 7.2 px for zero motion (first 4 dev videos)."},
    {"name": "S2_lsts_l2h300_alignwarm200_150", "steps": 150, "dev mAP": 27.9,
     "dev videos": "3 (144 frames)",
     "note": "3-video dev curve 0: 29.3, 75: 34.5, 150: 27.9. S broad (entropy 3.53 of 4.39 "
             "nats, max 0.10), EPE 18.1 px against 7.2 px for zero motion."},
]


def test_note_curve_reads_the_dev_curves_of_tuning_notes() -> None:
    assert R.note_curve(TUNING_NEXT[0]["note"]) == {0: 1.4, 75: 20.0, 450: 31.1, 600: 31.2}
    assert R.note_curve(TUNING_NEXT[3]["note"]) == {0: 35.8, 75: 36.7, 150: 32.2}
    assert R.note_curve(TUNING_NEXT[4]["note"]) == {0: 29.3, 75: 34.5, 150: 27.9}
    assert R.note_curve("no curve here") == {}


def test_next_experiment_is_argued_from_the_tuning_rows(runs: Path) -> None:
    text = R.next_experiment_markdown(runs, _tuning(TUNING_NEXT))
    assert ("S2_lsts_600_s1_3600 trained LSTS's stage 2 for 600 steps, starting from 1.4 % "
            "dev mAP at step 0: its dev mAP stopped rising from step 450 and ended at 31.2 % "
            "on 10 dev videos, below copy-propagation's 41.5 % after 150 steps on the same "
            "videos (S2_copy_prop_150_s1_3600), against 27.8 %") in text
    assert "18.1 px against 49.8 px after the low2high warm-up alone" in text
    assert "still above the 7.2 px of not moving at all" in text
    assert "entropy 3.53 of 4.39 nats, against 0.84" in text
    assert "gained no dev mAP (27.9 % against 32.2 % at step 150, on 3 dev videos)" in text
    assert "not a longer stage 2 on the frozen backbone" in text
    assert "Those LSTS rows ran an older recipe" not in text  # no current-recipe rows given
    now = [{"name": f"S2_lsts_cut_res4a_s{k}", "steps": 150, "dev mAP": m,
            "dev videos": "10 (480 frames)", "note": ""} for k, m in enumerate((35.6, 31.0))]
    text = R.next_experiment_markdown(runs, _tuning([*TUNING_NEXT, *now]))
    assert ("this report's own LSTS models score 31.0 to 35.6 % after 150 steps on the same "
            "dev videos (S2_lsts_cut_res4a_s0, S2_lsts_cut_res4a_s1), still below "
            "copy-propagation's 41.5 %") in text
    other = _tuning([TUNING_NEXT[0], {**TUNING_NEXT[1], "dev mAP": 30.0, "dev videos": "3"},
                     *TUNING_NEXT[2:]])
    assert "above copy-propagation's 30.0 % after 150 steps on other (not comparable) videos" \
        in R.next_experiment_markdown(runs, other)


def _dev_csv(d: Path, rows: list[tuple[int, float]], frames: int = 144) -> None:
    d.joinpath("dev.csv").write_text("step,mAP,frames\n" + "".join(
        f"{s},{m},{frames}\n" for s, m in rows))


def test_plateau_is_decided_only_when_every_seed_rises_alike(runs: Path) -> None:
    for seed, end in enumerate((0.35, 0.351, 0.352)):  # +5.0 to +5.2 points, every seed
        _dev_csv(runs / "lsts" / f"seed{seed}", [(75, 0.30), (150, end)])
    text = R._plateau_sentence(runs)
    assert text.startswith("No. The plateau rule (this reproduction's")
    assert "on 144 dev frames" in text and "still learning" in text


def test_dev_ranking_and_the_test_split_as_the_main_limit(runs: Path) -> None:
    # Dev frames rank lsts above single_frame; the test split, single_frame above lsts.
    for run, dev in (("single_frame", 0.30), ("lsts", 0.40), ("flow_warp", 0.20)):
        for seed in range(3):
            _dev_csv(runs / run / f"seed{seed}", [(0, 0.1), (150, dev)])
    text = R.dev_ranking_markdown(runs, _tuning([]))
    assert "cannot rank the variants: 1 of 3 pairs order differently" in text
    assert "Single-frame R-FCN, 1st on the test split (52.0 %), ranks 2nd on those frames " \
           "(30.0 %)" in text
    for _, _, d in R.run_dirs(runs):
        ev = json.loads((d / "eval.json").read_text())
        (d / "eval.json").write_text(json.dumps({**ev, "split": "test"}))
    (runs / "data_stats_test.json").write_text(json.dumps(
        {"videos": 30, "frames": 720, "objects": 1385}))
    iv = Interval(0.5, -1.5, 2.5, R.CONFIDENCE, 3, "seeds + test videos")
    open_ = R.Claim("srfu", "s", "r", ("lsts", "lsts_no_srfu"), R.INCONCLUSIVE, "reason",
                    [0, 1, 2], {"lsts": [1.0] * 3, "lsts_no_srfu": [0.5] * 3}, 0.5, iv, iv, iv)
    (runs / R.CLAIMS_FILE).write_text(json.dumps(claims_json(
        [open_], split="test", data=Path("d"), num_videos=30, resamples=100, seed=0,
        test_noise=Interval(41.0, 30.5, 51.5, R.CONFIDENCE, 100, "paired bootstrap"))))
    limit = R.held_out_split_markdown(runs)
    assert "its test split, the one every number above is read on: 30 SynthVID videos of 24 " \
           "frames (720 frames, 1385 objects)" in limit
    assert "Single-frame R-FCN's seed-mean mAP is ± 10.5 points (5.2 times the 2 points" in limit
    assert "Claim 1 stays inconclusive with intervals of ± 2.0 points" in limit


def test_untrained_configurations_are_named(runs: Path) -> None:
    bench = json.loads((runs / "bench_cpu.json").read_text())
    bench["results"]["paper"]["flow_warp_flownet_s"] = {
        **bench["results"]["paper"]["flow_warp"], "speed_only": True,
        "label": "DFF flow warp (FlowNet-S size)"}
    text = R.untrained_markdown(runs, bench)
    assert "LSTS (gaussian, N=40) (`lsts_gaussian`: in the catalogue" in text
    assert "Copy-propagation (`copy_prop`" in text  # the fixture never ran it
    assert "DFF flow warp (FlowNet-S size) (`flow_warp_flownet_s`: a benchmark configuration" \
        in text
    assert "`lsts`" not in text


def test_update_readme_prose_fills_its_three_blocks(runs: Path, tmp_path: Path) -> None:
    from lsts_lib.engine.config import load_config

    (runs / "lsts" / "seed0" / "config.yaml").write_text(
        yaml.safe_dump(load_config("report", ["model.variant=lsts"])))
    readme = tmp_path / "README.md"
    readme.write_text("\n".join(f"{a}\nold\n{b}" for a, b in (
        (R.INTRO_START, R.INTRO_END), (R.RELATED_START, R.RELATED_END),
        (R.DIFFERENCES_START, R.DIFFERENCES_END))) + "\n")
    blocks = R.update_readme_prose(readme, runs, _tuning(OFFSET_ROWS))
    text = readme.read_text()
    assert "old" not in text and all(b in text for b in blocks.values())
    assert "`runs/report/lsts/seed0/config.yaml`" in blocks["differences"]
    assert "| optimizer | AdamW" in blocks["differences"]
    assert "within dev noise" in blocks["differences"]  # the fixture's seeds: 2.0 points apart
    R.update_readme_prose(readme, runs, _tuning(OFFSET_ROWS))
    assert readme.read_text() == text  # idempotent
