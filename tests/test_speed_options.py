"""Issue "Speed" (targets 3 and 5): a FlowNet-S-sized flow baseline timed beside the variants,
the speed options timed for the mode table, and each option's mAP change on the test split."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lsts_lib import report as report_mod
from lsts_lib import results as R
from lsts_lib.engine import bench as bench_mod
from lsts_lib.engine import inference, measure, rundir
from lsts_lib.engine.bench import SPEED_ONLY, SPEEDUP, bench
from lsts_lib.engine.inference import InferenceOptions
from lsts_lib.engine.measure import flops_of
from lsts_lib.engine.plan import Orchestrator, run_plan
from lsts_lib.models.flownet import FlowNetS
from lsts_lib.report import Report

FLOWNET_S = "flow_warp_flownet_s"


def flownet_s_gflops(hw: tuple[int, int]) -> float:
    """FlowNet-S's GFLOPs (2 per multiply-add) on half of frame size `hw`, counted here from
    the paper's architecture (Dosovitskiy et al. 2015: nine encoder convs, then four 4x4
    stride-2 up-convolutions, each level predicting flow with a 3x3 conv), independently of
    the module's own layer table."""
    def out(n: int, k: int, s: int) -> int:
        return (n + 2 * (k // 2) - k) // s + 1

    h, w = hw[0] // 2, hw[1] // 2
    encoder = [("conv1", 6, 64, 7, 2), ("conv2", 64, 128, 5, 2), ("conv3", 128, 256, 5, 2),
               ("conv3_1", 256, 256, 3, 1), ("conv4", 256, 512, 3, 2),
               ("conv4_1", 512, 512, 3, 1), ("conv5", 512, 512, 3, 2),
               ("conv5_1", 512, 512, 3, 1), ("conv6", 512, 1024, 3, 2)]
    macs, size = 0, {}
    for name, cin, cout, k, s in encoder:
        h, w = out(h, k, s), out(w, k, s)
        size[name] = (h, w)
        macs += k * k * cin * cout * h * w
    macs += 9 * 1024 * 2 * h * w  # flow at conv6
    cin, (ph, pw) = 1024, size["conv6"]
    for skip, skip_c, cout in (("conv5_1", 512, 512), ("conv4_1", 512, 256),
                               ("conv3_1", 256, 128), ("conv2", 128, 64)):
        # An up-convolution costs k^2 Cin Cout per *input* pixel (feature and flow).
        macs += 16 * cin * cout * ph * pw + 16 * 2 * 2 * ph * pw
        ph, pw = size[skip]
        cin = skip_c + cout + 2
        macs += 9 * cin * 2 * ph * pw  # flow at this level
    return 2 * macs / 1e9


def test_flownet_s_costs_what_its_architecture_does() -> None:
    with torch.device("meta"):  # FLOPs need shapes only
        net = FlowNetS().eval()
        frame = torch.empty(1, 3, 600, 1000)
    counted = flops_of(lambda: net(frame, frame)) / 1e9
    expected = flownet_s_gflops((600, 1000))
    assert 23.0 < expected < 25.5  # ~24 GFLOPs at DFF's half-size input of a 600x1000 frame
    assert counted == pytest.approx(expected, rel=0.01)
    with torch.no_grad():  # the flow the warp reads: stride 16 of the frame, any size asked
        small = torch.rand(1, 3, 96, 160)
        assert FlowNetS()(small, small).shape == (1, 2, 6, 10)
        assert FlowNetS()(small, small, (7, 11)).shape == (1, 2, 7, 11)


@pytest.fixture(scope="module")
def bench_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    mp = pytest.MonkeyPatch()
    # A tiny peak (the real one takes seconds) and a CPU without native bf16.
    mp.setattr(bench_mod, "machine_peak", lambda device, shapes, dtype=torch.float32:
               measure.machine_peak(device, {"tiny": (8, 8, 8, 1)}, dtype, gemm_n=64))
    mp.setattr(inference, "native_amp", lambda device, amp: False)
    mp.setattr(inference, "cpu_flags", lambda: ["avx2", "fma"])
    try:
        out = tmp_path_factory.mktemp("bench") / "bench_cpu.json"
        yield bench("smoke", "cpu", ("preset",),
                    ["single_frame", "flow_warp", "lsts", FLOWNET_S], repeats=1, json_out=out,
                    progress=False, options=InferenceOptions(fold_bn=True),
                    mode_sizes=["preset"], mode_variants=["single_frame", "lsts"])
    finally:
        mp.undo()


def test_bench_times_flownet_s_and_modes_only_where_asked(bench_report: dict) -> None:
    res = bench_report["results"]["preset"]
    fs, fw = res[FLOWNET_S], res["flow_warp"]
    assert fs["speed_only"] and fs["label"] == SPEED_ONLY[FLOWNET_S].label
    assert fs["variant"] == "flow_warp" and "speed_only" not in fw
    assert set(fs["nonkey"]["stages"]) == {"preprocess", "flow", "warp", "head"}
    # FlowNet-S at half size against the small trained FlowNet at full size.
    assert fs["nonkey"]["stages"]["flow"]["flops"] > fw["nonkey"]["stages"]["flow"]["flops"]
    mode = bench_report["modes"]["fold_bn"]["results"]
    assert set(mode) == {"preset"} and set(mode["preset"]) == {"single_frame", "lsts"}
    for name, r in mode["preset"].items():
        assert r[SPEEDUP] == pytest.approx(res[name]["amortised_ms"] / r["amortised_ms"],
                                           rel=1e-2)
    assert bench_report["amp_support"]["bf16"] == \
        "not supported on this CPU (no avx512_bf16/amx_bf16)"
    with pytest.raises(ValueError, match="must be among"):
        bench("smoke", "cpu", ("preset",), ["lsts"], options=InferenceOptions(fold_bn=True),
              mode_variants=["single_frame"])


def test_speed_table_shows_flownet_s_beside_resnet(bench_report: dict) -> None:
    t = R.speed_table(bench_report).set_index("variant")
    label = SPEED_ONLY[FLOWNET_S].label
    assert list(t.index).index(label) == list(t.index).index(R.run_label("flow_warp")) + 1
    stages = bench_report["results"]["preset"][FLOWNET_S]
    assert t.loc[label, "flow net GFLOPs"] == pytest.approx(
        stages["nonkey"]["stages"]["flow"]["flops"] / 1e9)
    assert t.loc[label, "feature net GFLOPs"] == pytest.approx(
        sum(stages["key"]["stages"][s]["flops"] for s in ("low", "high")) / 1e9)
    line = R.flow_cost_line(bench_report)
    ratio = t.loc[label, "feature net GFLOPs"] / t.loc[label, "flow net GFLOPs"]
    assert label in line and f"1/{ratio:.1f}" in line
    # Beside trained runs it has no accuracy of its own.
    summary = R.summary_table(pd_runs(["single_frame", "flow_warp"]))
    ts = R.speed_table(bench_report, None, summary).set_index("variant")
    assert ts.loc[label, R.SYNTH_MAP] == R.SPEED_ONLY_TEXT
    assert ts.loc[R.run_label("flow_warp"), R.SYNTH_MAP] == 40.0


def pd_runs(names: list[str]):
    """A tidy runs table of one seed each (mAP 40 %), as `load_runs` makes."""
    import pandas as pd

    return pd.DataFrame([{"run": n, "variant": n, "label": R.run_label(n), "seed": 0,
                          **dict.fromkeys(R.METRICS, 40.0), "cpu_ms": 1.0, "gflops": 1.0}
                         for n in names])


def test_mode_table_from_the_benchmark(bench_report: dict) -> None:
    res = bench_report["results"]["preset"]
    fold = bench_report["modes"]["fold_bn"]["results"]["preset"]
    options = {"rows": [{"variant": "lsts", "mode": "fold_bn", "mAP_change": -0.001,
                         "notes": {"fold_bn": "0 BatchNorm layers folded"}}]}
    t = R.mode_table(bench_report, options).set_index("mode")
    assert list(t.index) == [inference.DEFAULT_MODE, "fold_bn", "amp_bf16"]
    assert t.loc["fold_bn", "lsts ms"] == fold["lsts"]["amortised_ms"]
    assert t.loc["fold_bn", "single_frame speed-up"] == fold["single_frame"][SPEEDUP]
    assert t.loc[inference.DEFAULT_MODE, "lsts speed-up"] == 1.0
    flop_ratio = res["single_frame"]["amortised_gflops"] / res["lsts"]["amortised_gflops"]
    assert t.loc["fold_bn", "lsts speed-up / FLOP ratio"] == pytest.approx(
        fold["lsts"]["speedup_vs_single_frame"] / flop_ratio)
    assert fold["lsts"]["speedup_vs_single_frame"] == pytest.approx(
        fold["single_frame"]["amortised_ms"] / fold["lsts"]["amortised_ms"], rel=1e-2)
    assert t.loc["fold_bn", "lsts mAP change"] == pytest.approx(-0.1)
    assert t.loc["fold_bn", "note"] == "detected models: 0 BatchNorm layers folded"
    assert t.loc["amp_bf16", "note"] == "bf16: not supported on this CPU (no avx512_bf16/amx_bf16)"
    assert R.mode_table({"results": bench_report["results"]}).empty  # no modes timed


def test_report_bench_asks_for_the_supported_options(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(report_mod, "lsts_child", lambda *argv, **kw: calls.append(argv))
    monkeypatch.setattr(report_mod.Report, "_stamped",
                        lambda self, stage, name, inputs, outputs, make: make())
    for native in (False, True):
        monkeypatch.setattr(inference, "native_amp", lambda device, amp, n=native: n)
        Report("report", [0], set(), 1).stage_bench()
        argv = calls[-2]
        assert argv[0] == "bench" and "--fold-bn" in argv and "--channels-last" in argv
        assert ("--amp" in argv) == native and "--compile" in argv
        i = argv.index("--mode-variants")
        assert argv[argv.index("--mode-sizes") + 1] == "paper"
        assert list(argv[i + 1:]) == list(R.MODE_VARIANTS)


def test_detect_options_rows_agree_with_the_normal_detection(
    data_root: Path, tmp_path: Path
) -> None:
    plan = run_plan(tmp_path / "runs", [0], ["single_frame", "lsts"])
    orch = Orchestrator("smoke", data_root, progress=False,
                        overrides={"train.steps": 1, "train.threads": 1})
    orch.train(plan)
    orch.detect(plan)
    modes = InferenceOptions(fold_bn=True, channels_last=True).modes()
    got = orch.detect_options(plan, modes, ["lsts"], seed=0)
    json.dumps(got)  # JSON-ready
    assert got["split"] == orch.eval_split
    rows = {(r["variant"], r["mode"]): r for r in got["rows"]}
    assert set(rows) == {("lsts", m) for m in
                         (inference.DEFAULT_MODE, "channels_last", "fold_bn",
                          "channels_last+fold_bn")}
    lsts = next(r for r in plan if r.variant == "lsts")
    normal = json.loads((lsts.dir / rundir.EVAL).read_text())["mAP"]
    default = rows[("lsts", inference.DEFAULT_MODE)]
    assert default["mAP"] == normal and default["mAP_change"] == 0.0
    for (_, mode), r in rows.items():
        ev = json.loads((lsts.dir / f"eval_{mode}.json").read_text())["mAP"] \
            if mode != inference.DEFAULT_MODE else normal
        assert r["mAP"] == ev and r["mAP_change"] == pytest.approx(ev - normal)
        # The same weights run another way: scores agree to float rounding.
        assert r["max_abs_score_change"] is None or r["max_abs_score_change"] < 1e-3
        assert set(r["notes"]) == ({"fold_bn"} if "fold_bn" in mode else set()) | (
            {"channels_last"} if "channels_last" in mode else set())
    # Rerun: every detection and evaluation is reused (stamps), the rows are the same.
    det = lsts.dir / f"{rundir.DETECTIONS}_fold_bn" / "detections.txt"
    mtime = det.stat().st_mtime_ns
    assert orch.detect_options(plan, modes, ["lsts"], seed=0) == got
    assert det.stat().st_mtime_ns == mtime


def test_readme_shows_the_mode_table_from_the_json(bench_report: dict, tmp_path: Path) -> None:
    root = tmp_path / "report"
    for run in ("single_frame", "flow_warp", "lsts"):
        d = root / run / "seed0"
        d.mkdir(parents=True)
        (d / "eval.json").write_text(json.dumps({"mAP": 0.4, "split": "test"}))
        (d / "config.yaml").write_text(f"model: {{variant: {run}}}\n")
        (d / "env.json").write_text(json.dumps({"cpu": "Test CPU", "torch": "9.9"}))
    (root / "bench_cpu.json").write_text(json.dumps(bench_report))
    block = R.readme_block(root)
    assert "**Speed options**" in block and "| lsts mAP change" not in block
    assert "| amp_bf16 |" in block and "bf16: not supported on this CPU" in block
    assert R.flow_cost_line(bench_report) in block
    # The table's reading follows it, as in notebook 05 (fold_bn's GroupNorm note included).
    assert R.mode_markdown(R.mode_table(bench_report)) in block
    (root / rundir.DETECT_OPTIONS).write_text(json.dumps(
        {"rows": [{"variant": "lsts", "mode": "fold_bn", "mAP_change": 0.0}]}))
    block = R.readme_block(root)
    row = next(line for line in block.splitlines() if line.startswith("| fold_bn |"))
    header = next(line for line in block.splitlines() if line.startswith("| mode |"))
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    assert cells[" lsts mAP change "].strip() == "0.00"


def test_mode_markdown_names_the_fastest_mode_and_the_largest_map_change() -> None:
    import pandas as pd

    from lsts_lib import results as R

    modes = pd.DataFrame([
        {"mode": "fp32_nchw", "single_frame speed-up": 1.0, "lsts speed-up": 1.0,
         "lsts speed-up / FLOP ratio": 0.73, "lsts mAP change": 0.0},
        {"mode": "channels_last", "single_frame speed-up": 1.4, "lsts speed-up": 2.3,
         "lsts speed-up / FLOP ratio": 1.2, "lsts mAP change": -0.04},
        {"mode": "fold_bn", "single_frame speed-up": 1.3, "lsts speed-up": 1.9,
         "lsts speed-up / FLOP ratio": 1.07, "lsts mAP change": 0.0},
        {"mode": "amp_bf16", "note": "bf16: not supported"}])
    text = R.mode_markdown(modes)
    assert "`channels_last`" in text and "2.30x" in text and "1.40x" in text
    assert "1.20 of its FLOP ratio, against 0.73" in text and "0.04 points" in text
    assert R.mode_markdown(modes.iloc[:1]) == "No speed option was timed at this size."
