"""`lsts bench` times the backbone block by block (conv1 .. feat_conv, each res4 block by its
paper name), and `results.cut_cost` costs other cuts from those blocks."""

from __future__ import annotations

import pytest
import torch

from lsts_lib import results as R
from lsts_lib.engine import bench as bench_mod
from lsts_lib.engine.config import RunConfig, load_config
from lsts_lib.engine.measure import flops_of
from lsts_lib.models.backbone import cut_block, res4_block_names
from lsts_lib.models.detector import build_detector

PEAK = {"dtype": "float32", "threads": 1, "repeats": 1, "statistic": "median",
        "gflop_per_s": 50.0, "kernels": {"gemm_2048": {"gflops": 17.2, "ms": 344.0,
                                                       "gflop_per_s": 50.0}}}


def test_bench_blocks_add_up_to_the_low_and_high_stages(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    # The machine's peak is not what this test is about (test_detect_bench measures it).
    monkeypatch.setattr(bench_mod, "machine_peak", lambda *a, **k: PEAK)
    rep = bench_mod.bench("smoke", "cpu", ("preset",), ["single_frame"], repeats=1,
                          progress=False)
    blocks = rep["blocks"]["preset"]
    arch = rep["sizes"]["preset"]["backbone"]
    assert [b["name"] for b in blocks] == ["conv1", "res2", "res3", *res4_block_names(arch),
                                           "res5", "feat_conv"]
    low = [b for b in blocks if b["part"] == "low"]
    assert low == blocks[:len(low)] and low[-1]["name"] == cut_block(arch)
    stages = rep["results"]["preset"]["single_frame"]["key"]["stages"]
    for part in ("low", "high"):  # FLOPs are fixed by the shapes: the sums are exact
        assert sum(b["flops"] for b in blocks if b["part"] == part) == stages[part]["flops"]
    for b in blocks:
        assert b["ms"] > 0 and b["flops"] > 0
        assert b["gflop_per_s"] == pytest.approx(b["flops"] / b["ms"] / 1e6, rel=1e-2)
        assert b["fraction_of_peak"] == pytest.approx(b["gflop_per_s"] / 50.0, rel=1e-2)
    assert blocks[-1]["channels"] == rep["sizes"]["preset"]["feat_channels"]
    assert [b["stride"] for b in blocks][-3:] == [16, 16, 16]
    assert blocks[0]["stride"] == 4 and blocks[-1]["receptive_field"] > low[-1]["receptive_field"]
    assert any("backbone by block: low conv1..res4a" in line
               for line in bench_mod.summary_lines(rep))


def test_resnet101_blocks_are_named_as_the_paper_and_cut_at_res4b3() -> None:
    # The paper's model at a tiny input: the names and the cut do not depend on the size.
    model = RunConfig.from_dict(load_config("paper")).model.replace(
        pretrained=False, min_size=64, max_size=96)
    blocks = bench_mod.bench_blocks(model, (64, 96), 1, torch.device("cpu"), progress=False)
    names = [b["name"] for b in blocks]
    assert names[3:8] == ["res4a", "res4b1", "res4b2", "res4b3", "res4b4"]
    assert names[-3:] == ["res4b22", "res5", "feat_conv"] and len(names) == 3 + 23 + 2
    assert [b["name"] for b in blocks if b["part"] == "low"][-1] == "res4b3"
    torch.manual_seed(0)
    det = build_detector(model).eval()
    x = det.preprocess([bench_mod.synthetic_image((64, 96), 0, torch.device("cpu"))])[0]
    with torch.no_grad():
        assert sum(b["flops"] for b in blocks if b["part"] == "low") == flops_of(
            lambda: det.extract_low(x))


def _bench(ms: list[float]) -> dict:
    names = ["conv1", "res2", "res3", "res4a", "res4b1", "res4b2", "res5", "feat_conv"]
    parts = ["low"] * 5 + ["high"] * 3  # cut at res4b1
    blocks = [{"name": n, "part": p, "ms": m, "flops": int(m * 1e9), "receptive_field": 10 * i,
               "channels": 8 * i, "stride": 16, "out_hw": [3, 5]}
              for i, (n, p, m) in enumerate(zip(names, parts, ms, strict=True))]
    return {"key_interval": 10, "results": {"paper": {}}, "blocks": {"paper": blocks}}


def test_cut_cost_sums_the_blocks_up_to_the_cut() -> None:
    bench = _bench([1, 2, 3, 4, 5, 6, 9, 10])  # backbone 40 ms, 40 GFLOPs
    c = R.cut_cost(bench, "res4a")
    assert (c["low_ms"], c["high_ms"]) == (10, 30)
    assert (c["low_gflops"], c["high_gflops"]) == pytest.approx((10, 30))
    assert c["nonkey_share"] == pytest.approx(0.25) and c["receptive_field"] == 30
    # (1 + 9 * 0.25) / 10 of the whole backbone per frame at k = 10.
    assert c["amortised_share"] == pytest.approx(0.325)
    assert c["speedup"] == pytest.approx(1 / 0.325) and not c["official"]
    assert c["speedup_flops"] == pytest.approx(1 / 0.325)  # here FLOPs are 1e9 per ms
    bench["blocks"]["paper"][0]["flops"] *= 11  # conv1: 11 GFLOPs, the backbone 50
    assert R.cut_cost(bench, "res4a")["speedup_flops"] == pytest.approx(10 / (1 + 9 * 20 / 50))
    bench["blocks"]["paper"][0]["flops"] //= 11
    assert R.cut_cost(bench, "res4b1")["official"]
    assert R.cut_cost(bench, "res4b2")["nonkey_share"] == pytest.approx(21 / 40)
    table = R.cut_table(bench)  # default: the CUTS this backbone has, its cut, end of res4
    assert list(table.index) == ["res4a", "res4b1", "res4b2"]
    assert list(table["official"]) == [False, True, False]
    assert table.loc["res4b2", "low ms"] == 21
    for bad in ("res4b3", "res5", "Conv4_3"):
        with pytest.raises(ValueError, match=f"cannot cut the backbone at '{bad}'.*res4b2"):
            R.cut_cost(bench, bad)
    stages = R.backbone_stage_table(bench)
    assert list(stages.index) == ["conv1", "res2", "res3", "res4a..res4b1 (low)", "res4b2",
                                  "res5", "feat_conv"]
    assert stages.loc["res4a..res4b1 (low)", ["GFLOPs", "ms", "receptive_field"]].tolist() == [
        pytest.approx(9), 9, 40]
    assert stages["GFLOPs"].sum() == pytest.approx(40) and stages.loc["res5", "size"] == "3x5"
    with pytest.raises(ValueError, match="no per-block backbone cost"):
        R.cut_cost({"key_interval": 10, "results": {"paper": {}}}, "res4a")


def test_block_sums_markdown_states_both_numbers_and_why() -> None:
    bench = _bench([1, 2, 3, 4, 5, 6, 9, 10])  # low conv1..res4b1: 15 ms; high 25 ms
    bench["repeats"] = 5
    stages = {"low": {"ms": 12.0, "flops": 15 * 10**9}, "high": {"ms": 25.0, "flops": 25 * 10**9}}
    bench["results"]["paper"] = {"single_frame": {"key": {"stages": stages}}}
    text = R.block_sums_markdown(bench)
    for part in ["The per-block times of the low part (conv1 … res4b1) add up to 15 ms, 25.0% "
                 "more than the 12 ms the low stage measures as a whole",
                 "(high part: 25 ms, 0.0% more than 25 ms)",
                 "the median of 5 calls of that block alone",
                 "the low stage as one call that runs conv1 … res4b1 back to back",
                 "A sum of 5 medians is not the median of 5 totals",
                 "agree exactly (15.0 and 25.0 GFLOPs)"]:
        assert part in text, part
    stages["low"]["ms"] = 20.0
    assert "add up to 15 ms, 25.0% less than the 20 ms" in R.block_sums_markdown(bench)
    stages["high"]["flops"] += 1
    assert "rerun `lsts bench`" in R.block_sums_markdown(bench)
