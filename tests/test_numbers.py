"""Numbers the report states in several places come from one function each: the feature-map
size at the paper's input, LSTS's multiply-accumulates, the benchmark's stage categories and
the `lsts` command named under each table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lsts_lib import report as report_mod
from lsts_lib import results as R
from lsts_lib.engine import bench_lsts
from lsts_lib.engine.bench import CATEGORIES
from lsts_lib.models import build_detector, paper_config, tiny_config
from lsts_lib.models.backbone import ResNetBackbone, low_channels
from lsts_lib.models.detector import (
    PAPER_INPUT,
    feature_map_hw,
    input_hw,
    paper_feature_hw,
)
from lsts_lib.models.lsts import LSTSAlign, LSTSOffsets, lsts_macs, shift_box_size

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------- feature-map size
@pytest.mark.parametrize("hw", [(64, 112), (50, 90), (100, 37)])
def test_feature_map_hw_is_what_the_detector_computes(hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    cfg = tiny_config("lsts", min_size=64, max_size=112)
    model = build_detector(cfg).eval()
    with torch.no_grad():
        x = model.preprocess([torch.rand(3, *hw)])[0]
        low = model.extract_low(x)
        high = model.extract_high(low)
    assert tuple(x.shape[-2:]) == input_hw(cfg, hw)
    assert tuple(low.shape[-2:]) == tuple(high.shape[-2:]) == feature_map_hw(cfg, hw)


def test_paper_feature_map_is_38x64_because_the_transform_pads() -> None:
    """The split backbone (ResNet-18 here: the same stride-2 layers as ResNet-101) gives
    38x64 on the padded 608x1024 input the detector feeds it, and 38x63 only on an unpadded
    600x1000 tensor, which the detector never computes."""
    assert input_hw(paper_config(), PAPER_INPUT) == (608, 1024)
    assert paper_feature_hw() == (38, 64)
    with torch.device("meta"):
        backbone = ResNetBackbone("resnet18", 64, pretrained=False)
        padded = backbone.high(backbone.low(torch.empty(1, 3, *input_hw(paper_config(),
                                                                         PAPER_INPUT))))
        raw = backbone.low(torch.empty(1, 3, *PAPER_INPUT))
    assert tuple(padded.shape[-2:]) == paper_feature_hw()
    assert tuple(raw.shape[-2:]) == (38, 63)
    assert bench_lsts.paper_shape()["height"] == 38 and bench_lsts.paper_shape()["width"] == 64


# ------------------------------------------------------------------------- multiply-adds
@pytest.mark.parametrize("hw", [(7, 37), (5, 16)])
def test_efficient_macs_are_what_the_flop_counter_counts(hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    offsets = LSTSOffsets("uniform", 3, 1.0)
    with torch.no_grad():
        offsets.p.add_(0.3)  # off the integers, as after training
    align = LSTSAlign(offsets, 8, 4).eval()
    F_ref, F_tgt = torch.randn(1, 8, *hw), torch.randn(1, 8, *hw)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        align(F_ref, F_tgt)
    m = lsts_macs(offsets(), *hw, C=8, C_e=4)
    assert 2 * m.efficient_total == counter.get_total_flops()
    assert m.N == 9 and m.D == shift_box_size(offsets()) == 16
    hw_ = hw[0] * hw[1]
    assert m.embeddings == 2 * 8 * 4 * hw_
    assert m.naive == 9 * hw_ * (5 * 4 + 5 * 8)  # 4 taps per sample + dot + weighted sum


def test_complexity_table_and_notebook_03_read_one_count() -> None:
    setting = R.lsts_setting()  # the paper's
    assert setting.feature_hw == (38, 64) and setting.input_hw == (608, 1024)
    m = setting.macs
    assert (m.H, m.W, m.N, m.D) == (38, 64, 81, 100)
    # The efficient form's count is the one `lsts bench` records for srfu_align / dfa_align
    # at the paper's size (4185413632 FLOPs in runs/report/bench_cpu.json).
    assert 2 * m.efficient_total == 4185413632
    table = R.complexity_table(setting).set_index("part")
    t, bare = table[R.GFLOPS_WITH], table[R.GFLOPS_WITHOUT]
    # GFLOPs as `lsts bench` counts them (a multiply-add is two): the same unit as every
    # other cost in the report, with and without the embeddings f, g.
    assert t["LSTS alignment, efficient form"] == round(4185413632 / 1e9, 3)
    assert t["LSTS alignment, naive form"] == round(2 * m.naive_total / 1e9, 3)
    assert bare["LSTS alignment, naive form"] == round(2 * m.naive / 1e9, 3)
    assert bare["LSTS alignment, efficient form"] == round(2 * m.efficient / 1e9, 3)
    for part in table.index:  # every row loses the same embeddings
        assert t[part] - bare[part] == pytest.approx(2 * m.embeddings / 1e9, abs=2e-3)
    assert m.efficient < m.naive  # the efficient form also multiplies less
    text = setting.describe()
    assert "38x64" in text and "608x1024" in text and "N = 81" in text and "D = 100" in text
    mem = R.complexity_table().set_index("part")["extra memory (MB)"]
    assert mem["LSTS alignment, efficient form"] < mem["LSTS alignment, naive form"] / 50
    assert low_channels("resnet101") == 1024 and low_channels("resnet18") == 256


# ------------------------------------------------------------------------- benchmark labels
def _stage(ms: float) -> dict:
    return {"ms": ms, "flops": 0}


def _bench() -> dict:
    key = {"preprocess": _stage(5), "low": _stage(100), "high": _stage(300),
           "srfu_align": _stage(6), "srfu_fuse": _stage(7), "head": _stage(4)}
    nonkey = {"preprocess": _stage(5), "low": _stage(100), "low2high": _stage(20),
              "dfa_align": _stage(5), "dfa_fuse": _stage(8), "head": _stage(4)}
    flow = {"preprocess": _stage(5), "flow": _stage(30), "warp": _stage(2), "head": _stage(4)}

    def entry(k: dict, n: dict) -> dict:
        return {"key": {"stages": k, "ms": sum(s["ms"] for s in k.values())},
                "nonkey": {"stages": n, "ms": sum(s["ms"] for s in n.values())}}

    return {"device": {"torch_threads": 2}, "repeats": 5, "key_interval": 10,
            "sizes": {"paper": {"input_hw": [600, 1000]}},
            "blocks": {"paper": [{"name": "feat_conv", "out_hw": [38, 64]}]},
            "results": {"paper": {"lsts": entry(key, nonkey),
                                  "flow_warp": entry({**key, "srfu_align": _stage(0)}, flow)}}}


def test_category_columns_name_the_stages_they_sum() -> None:
    t = R.stage_category_table(_bench())
    assert t.loc["lsts", "non-key fusion (low2high + dfa_fuse)"] == 28
    assert t.loc["lsts", "key fusion (srfu_fuse)"] == 7
    assert t.loc["lsts", "non-key lsts_alignment (dfa_align)"] == 5
    assert t.loc["flow_warp", "non-key other (preprocess + flow + warp)"] == 37
    # Every category of every frame adds up to the frame's stages.
    for name in ("lsts", "flow_warp"):
        e = _bench()["results"]["paper"][name]
        assert t.loc[name, [c for c in t.columns if c.startswith("key ")]].sum() == \
            e["key"]["ms"]
    assert {c.split(" (")[0].split(" ", 1)[1] for c in t.columns} <= set(CATEGORIES)


def test_alignment_timing_names_both_measurements() -> None:
    lsts_json = {"shape": {"height": 38, "width": 64}, "threads": 2, "repeats": 5,
                 "efficient_ms": 70.0, "naive_ms": 2500.0}
    text = R.alignment_timing_markdown(lsts_json, _bench())
    assert "`lsts bench-lsts`" in text and "`lsts bench`" in text
    assert "70.0 ms" in text and "srfu_align 6.0 ms" in text and "dfa_align 5.0 ms" in text
    assert "38x64 map" in text and "(the same module, map and FLOPs)" in text
    # 70 ms alone against 5 and 6 ms in the detector: the gap is named, not called noise.
    assert "their medians differ by up to 14.00x" in text
    assert "repeats of these runs were not kept" in text
    assert "1.4% of an LSTS key frame" in text  # 6 / 422 ms, both from `lsts bench`
    assert "422 ms, sum of per-stage medians" in text
    older = R.alignment_timing_markdown({**lsts_json, "shape": {"height": 38, "width": 63}},
                                        _bench())
    assert "map sizes differ" in older
    # With every call kept: each measurement's spread, and the gap against the largest.
    bench = _bench()
    stages = bench["results"]["paper"]["lsts"]
    stages["key"]["stages"]["srfu_align"]["ms_repeats"] = [5.9, 6.0, 6.6]
    stages["nonkey"]["stages"]["dfa_align"]["ms_repeats"] = [4.8, 5.0, 5.1]
    kept = R.alignment_timing_markdown(
        {**lsts_json, "efficient_ms_repeats": [69.0, 70.0, 71.0],
         "naive_ms_repeats": [2400.0, 2500.0, 2600.0]}, bench)
    assert "efficient form 70.0 ms, calls 69.0–71.0 ms" in kept
    assert "srfu_align 6.0 ms, calls 5.9–6.6 ms" in kept
    assert "slowest call is at most 1.12x the fastest" in kept  # 6.6 / 5.9
    assert "not kept" not in kept


# ------------------------------------------------------------------------- commands
def test_made_by_names_the_command_the_report_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(report_mod, "lsts_child", lambda *argv, **kw: calls.append(argv))
    monkeypatch.setattr(report_mod.Report, "_stamped",
                        lambda self, stage, name, inputs, outputs, make: make())
    report_mod.Report("report", [0], set(), 1).stage_bench()
    bench_argv, lsts_argv = calls
    line = R.made_by("report", "bench", "bench_lsts")
    assert line.startswith("Made by `lsts report --preset report`")
    assert R._command_line(bench_argv) in line and R._command_line(lsts_argv) in line
    assert "--config report" in line and "runs/report/bench_cpu.json" in line
    assert str(R.paths.REPO) not in line  # repository-relative paths
    smoke = R.made_by("smoke", "bench")
    assert "--config smoke" in smoke and "--sizes preset " in smoke


def test_made_by_per_run_outputs_name_their_runs() -> None:
    rep = report_mod.Report("report", None, set(), 1)
    line = R.made_by("report", "evaluate", "claims")
    first = rep.runs_of("evaluate")[0]
    assert f"for each of its {len(rep.runs_of('evaluate'))} runs" in line
    assert f"runs/{rep.preset}/{first.variant}/seed{first.seed}/model.pt" in line
    assert "`lsts evaluate " in line and "`lsts claims --runs runs/report" in line
    assert all(not r.every_frame_key for r in
               (R.VARIANTS[r.variant] for r in rep.runs_of("alignment")))
    with pytest.raises(ValueError, match="unknown report output"):
        rep.commands("nonsense")
    # A figure of one variant names that variant's command, not the plan's first run's.
    lsts = R.made_by("report", "train", variant="lsts")
    assert "(lsts seed 0 shown)" in lsts and "--out runs/report/lsts/seed0 " in lsts
    assert f"for each of its {len(rep.runs_of('train', 'lsts'))} runs" in lsts
    assert "single_frame" not in lsts


def test_plan_overrides_are_the_train_commands() -> None:
    rep = report_mod.Report("report", None, set(), 1)
    over = R.plan_overrides("report")
    assert list(over) == list(dict.fromkeys(r.variant for r in rep.runs_of("train")))
    flow = next(r for r in rep.runs_of("train") if r.variant == "flow_warp")
    assert flow.flow_init is not None  # the report preset pretrains the FlowNet
    assert "model.variant=flow_warp" in over["flow_warp"]
    assert "train.flow_init_from=runs/report/flownet/flownet.pt" in over["flow_warp"]
    assert "flow_init_from" not in over["lsts"] and "train.seed" not in over["lsts"]
    command = R._command_line(rep.orchestrator.train_argv(flow)).strip("`").split()
    assert all(token in command for token in over["flow_warp"].split())


def test_the_orchestrator_runs_the_commands_it_names(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from lsts_lib.engine import plan as plan_mod

    calls: list[tuple[str, ...]] = []

    def fake_child(*argv: str, threads: int | None = None) -> None:
        calls.append(argv)
        args = list(argv)
        if argv[0] == "detect":
            out = tmp_path / args[args.index("--out") + 1]
            out.mkdir(parents=True, exist_ok=True)
            (out / "detections.txt").write_text("")
        else:
            (tmp_path / args[args.index("--json") + 1]).write_text("{}")

    monkeypatch.setattr(plan_mod, "lsts_child", fake_child)
    (tmp_path / "data").mkdir()
    run = plan_mod.run_plan(tmp_path / "runs", [0], ["lsts"])[-1]
    run.dir.mkdir(parents=True)
    run.model.write_bytes(b"weights")
    orch = plan_mod.Orchestrator("smoke", tmp_path / "data", jobs=1)
    orch.detect_one(run)
    orch.align_one(run)
    assert [list(c) for c in calls] == [orch.detect_argv(run), orch.evaluate_argv(run),
                                        orch.align_argv(run)]
