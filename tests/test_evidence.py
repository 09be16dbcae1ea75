"""The report's evidence beside its verdicts: whether the seeds agree on where the offsets
went, the alignment over every seed, what each time is and how much it moves, the cost
tables in one unit, the one statement of threads."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lsts_lib import results as R
from lsts_lib.engine.checkpoint import FORMAT, save_atomic
from lsts_lib.engine.measure import time_samples, timing
from lsts_lib.models import build_detector, tiny_config
from lsts_lib.models.detector import OFFSETS_KEY

GRID = np.stack(np.meshgrid(np.arange(-2.0, 3.0), np.arange(-2.0, 3.0)), -1).reshape(-1, 2)


# ------------------------------------------------------------------ offsets across seeds
def test_offsets_agreement_tells_a_shared_move_from_seed_noise() -> None:
    rng = np.random.default_rng(1)
    shared = rng.normal(size=GRID.shape) * 0.3
    same = R.offsets_agreement([GRID] * 5, [GRID + shared] * 5)
    assert same.cosine == pytest.approx(1.0)
    assert same.seed_mean == pytest.approx(same.per_seed)
    assert same.shared == pytest.approx(1.0) and same.beyond_noise
    assert same.seed_mean > same.null_high > same.null_mean > same.null_low

    # Each seed's own direction, same lengths: nothing shared beyond noise.
    r = np.linalg.norm(shared, axis=1)
    noise = []
    for _ in range(5):
        th = rng.uniform(0, 2 * np.pi, len(GRID))
        noise.append(GRID + np.stack([r * np.cos(th), r * np.sin(th)], -1))
    own = R.offsets_agreement([GRID] * 5, noise)
    assert not own.beyond_noise and abs(own.cosine) < own.cosine_null_high
    assert own.null_low <= own.seed_mean <= own.null_high
    assert own.per_seed == pytest.approx(r.mean())
    # AdamW-like noise on top of a whole-set shift: the shift is what the seeds share.
    shifted = R.offsets_agreement([GRID] * 5, [p + [0.0, 0.3] for p in noise])
    assert shifted.beyond_noise and shifted.shift == pytest.approx((0.0, 0.3), abs=0.05)
    assert shifted.shift_share == pytest.approx(shifted.shared, abs=0.1)

    assert R.offsets_agreement([GRID], [GRID + 1]) is None  # one seed: nothing to compare
    assert R.offsets_agreement([GRID, GRID + 0.5], noise[:2]) is None  # other starts

    text = R.offsets_agreement_markdown(own)
    assert "do not differ from the initial grid in any way the seeds agree on" in text
    assert f"{own.per_seed:.2f} per seed" in text
    text = R.offsets_agreement_markdown(shifted)
    assert "share a displacement beyond seed noise" in text
    assert f"({shifted.shift[0]:+.2f}, {shifted.shift[1]:+.2f}) cells (the mean dp" in text
    assert "seed-specific" in text or "most of it" in text
    assert "cannot be compared" in R.offsets_agreement_markdown(None)


def test_offsets_agreement_of_runs_reads_each_seed(tmp_path: Path) -> None:
    torch.manual_seed(0)
    for seed, move in enumerate((0.2, 0.25, 0.3)):
        model = build_detector(tiny_config("lsts", min_size=64, max_size=112))
        init = {OFFSETS_KEY: model.sampling_offsets()}
        with torch.no_grad():
            model.offsets.p.add_(move)  # every seed moves every point the same way
        save_atomic({"format": FORMAT, "model": model.state_dict(), "offsets_init": init,
                     "model_config": model.cfg.to_dict(), "config": {}},
                    tmp_path / "lsts" / f"seed{seed}" / "model.pt")
    a = R.offsets_agreement_of(tmp_path)
    assert a.seeds == 3 and a.cosine == pytest.approx(1.0, abs=1e-6)
    assert a.shift == pytest.approx((0.25, 0.25), abs=1e-6)


# ------------------------------------------------------------------ alignment, every seed
def _alignment(d: Path, method: str, epe: float) -> None:
    d.mkdir(parents=True, exist_ok=True)
    per = {c: {"cells": 10, "epe_mean_px": epe + i, "feature_rel_l2": 0.5}
           for i, c in enumerate(R.MOTION_CLASSES)}
    (d / "alignment.json").write_text(json.dumps({"method": method,
                                                 "methods": {method: per}}))


def test_alignment_table_gives_mean_and_std_over_every_seed(tmp_path: Path) -> None:
    for seed, (copy, lsts) in enumerate(((6.0, 40.0), (6.2, 50.0), (6.4, 60.0))):
        _alignment(tmp_path / "copy_prop" / f"seed{seed}", "copy_prop", copy)
        _alignment(tmp_path / "lsts" / f"seed{seed}", "lsts", lsts)
    _alignment(tmp_path / "flow_warp" / "seed0", "flow_warp", 4.0)  # one seed only
    t = R.alignment_table(tmp_path).set_index("run")
    lsts = t.loc[R.run_label("lsts")]
    assert lsts["EPE all (px)"] == 50.0 and lsts["EPE all (px) std"] == 10.0
    assert lsts["seeds"] == 3 and lsts["seed ids"] == "0, 1, 2"
    assert (lsts["EPE all min"], lsts["EPE all max"]) == (40.0, 60.0)
    assert math.isnan(t.loc[R.run_label("flow_warp"), "EPE all (px) std"])
    shown = R.alignment_display(t.reset_index()).set_index("run")
    assert shown.loc[R.run_label("lsts"), "EPE all (px)"] == "50.00 ± 10.00"
    assert shown.loc[R.run_label("flow_warp"), "EPE all (px)"] == "4.00"
    assert list(shown["seeds"]) == [3, 1, 3]  # report order: copy, flow, lsts
    text = R.alignment_table_markdown(t.reset_index())
    assert "mean ± sample std over 1 to 3 seeds" in text
    assert "LSTS (uniform, N=81) 50.0 ± 10.0 px" in text
    words = " ".join(R._alignment_sentences(t.reset_index()))
    assert "in every one of its 3 seeds (range 40.0 to 60.0 px)" in words
    # The flow run's FlowNet after detection training: the seeds' mean, said so.
    pre = {"eval": {"epe_px": dict.fromkeys(R.MOTION_CLASSES, 3.0),
                    "zero_flow_epe_px": dict.fromkeys(R.MOTION_CLASSES, 6.0)}}
    assert "after detection training (seed 0)" in R.flow_pretrain_table(pre, t.reset_index()).index
    _alignment(tmp_path / "flow_warp" / "seed1", "flow_warp", 5.0)
    assert "after detection training (mean of 2 seeds)" in R.flow_pretrain_table(
        pre, R.alignment_table(tmp_path)).index


# ------------------------------------------------------------------ timings
def test_every_timed_call_is_kept() -> None:
    calls = []
    samples = time_samples(lambda: calls.append(1), 4, torch.device("cpu"))
    assert len(samples) == 4 and len(calls) == 5  # one warm-up, not returned
    t = timing([3.0, 1.0, 2.0, 10.0, 4.0])
    assert t == {"ms": 3.0, "ms_repeats": [3.0, 1.0, 2.0, 10.0, 4.0]}


def _entry(key: dict, nonkey: dict, k: int = 10, whole: tuple | None = None) -> dict:
    def frame(stages: dict) -> dict:
        return {"stages": stages, "ms": sum(s["ms"] for s in stages.values()),
                "flops": sum(s["flops"] for s in stages.values())}

    e = {"key": frame(key), "nonkey": frame(nonkey), "key_interval": k}
    e["amortised_ms"] = (e["key"]["ms"] + (k - 1) * e["nonkey"]["ms"]) / k
    e["amortised_gflops"] = (e["key"]["flops"] + (k - 1) * e["nonkey"]["flops"]) / k / 1e9
    if whole:
        for kind, reps in zip(("key", "nonkey"), whole, strict=True):
            e[kind]["ms_measured"] = float(np.median(reps))
            e[kind]["ms_measured_repeats"] = list(reps)
        e["amortised_ms_measured"] = (e["key"]["ms_measured"]
                                      + (k - 1) * e["nonkey"]["ms_measured"]) / k
    return e


def _st(ms: float, flops: float, reps: list[float] | None = None) -> dict:
    return {"ms": ms, "flops": flops, **({"ms_repeats": reps} if reps else {})}


def _bench() -> dict:
    low, high, head = _st(100, 70e9, [90, 100, 130]), _st(300, 270e9, [280, 300, 310]), \
        _st(10, 4e9, [9, 10, 12])
    sf = _entry({"low": low, "high": high, "head": head},
                {"low": low, "high": high, "head": head}, k=1,
                whole=([400, 410, 450], [400, 410, 450]))
    lsts = _entry({"low": low, "high": high, "srfu_fuse": _st(5, 3e9, [5, 5, 6]), "head": head},
                  {"low": low, "low2high": _st(20, 15e9, [19, 20, 25]),
                   "dfa_fuse": _st(5, 3e9, [4, 5, 5]), "head": head},
                  whole=([420, 430, 440], [130, 135, 150]))
    fixed = _entry({"low": low, "high": high, "srfu_fuse": _st(9, 3e9, [8, 9, 9]), "head": head},
                   {"low": low, "low2high": _st(20, 15e9, [20, 20, 21]),
                    "dfa_fuse": _st(5, 3e9, [5, 5, 5]), "head": head})
    flow = _entry({"low": low, "high": high, "head": head},
                  {"flow": _st(30, 15e9, [30, 30, 31]), "warp": _st(2, 0, [2, 2, 2]),
                   "head": head})
    return {"repeats": 3, "key_interval": 10, "device": {"torch_threads": 2},
            "sizes": {"paper": {"input_hw": [600, 1000]}},
            "blocks": {"paper": [{"name": "res4b3", "part": "low"},
                                 {"name": "res5", "part": "high"}]},
            "results": {"paper": {"single_frame": sf, "flow_warp": flow, "lsts_fixed": fixed,
                                  "lsts": lsts}}}


def test_speed_table_gives_each_time_its_spread_and_its_measure() -> None:
    bench = _bench()
    lsts = bench["results"]["paper"]["lsts"]
    key_lo = 90 + 280 + 5 + 9
    nonkey_hi = 130 + 25 + 5 + 12
    stages, whole = R.amortised_ranges(lsts)
    assert stages[0] == pytest.approx((key_lo + 9 * (90 + 19 + 4 + 9)) / 10)
    assert stages[1] == pytest.approx((130 + 310 + 6 + 12 + 9 * nonkey_hi) / 10)
    assert whole == pytest.approx(((420 + 9 * 130) / 10, (440 + 9 * 150) / 10))
    t = R.speed_table(bench).set_index("variant").loc[R.run_label("lsts")]
    assert t["CPU ms (amortised)"] == pytest.approx(lsts["amortised_ms"])
    assert t["CPU ms range (amortised)"] == R.range_text(stages)
    assert t["CPU ms, whole frames (amortised)"] == pytest.approx((430 + 9 * 135) / 10)
    assert t["whole-frame range"] == R.range_text(whole)
    assert R.speed_table(bench).set_index("variant").loc[
        R.run_label("flow_warp"), "whole-frame range"] == "not recorded"
    st = R.stage_rate_table(bench)
    assert list(st.loc[st["stage"] == "low2high", ["min ms", "max ms"]].iloc[0]) == [19, 25]
    assert "CPU ms range" in R.SPEED_COLUMNS and R.STAGE_SUM in R.SPEED_COLUMNS
    text = R.timing_measures_markdown(bench)
    for measure in (R.STAGE_SUM, R.WHOLE_FRAME, R.BLOCK_SUM):
        assert measure in text
    assert "headline because the claims' cost rules were fixed on it" in text


def test_the_same_work_timed_in_two_passes_bounds_what_a_difference_means() -> None:
    t = R.same_work_table(_bench())
    fuse = t[(t["stage"] == "srfu_fuse")].iloc[0]
    assert fuse["variants"] == "lsts_fixed, lsts" and fuse["between passes"] == 9 / 5
    assert fuse["within one pass"] == pytest.approx(6 / 5)  # lsts' 5..6 (lsts_fixed: 8..9)
    assert set(t["stage"]) == {"srfu_fuse", "low2high", "dfa_fuse"}  # shared stages left out
    text = R.same_work_markdown(t)
    assert "differs by up to 1.80x (srfu_fuse at a key frame" in text
    assert "smaller than 80 % is therefore not a measured difference" in text
    assert "at most 1.32x its fastest" in text  # low2high's 19..25 in lsts
    assert "No stage" in R.same_work_markdown(R.same_work_table({"results": {"paper": {}}}))


def test_claim_2_cost_says_where_the_time_goes_and_02_states_the_saving() -> None:
    bench = _bench()
    summary = pd.DataFrame({"cpu_ms": {r: e["amortised_ms"]
                                       for r, e in bench["results"]["paper"].items()},
                            "label": {r: R.run_label(r) for r in bench["results"]["paper"]}})
    text = R.cost_markdown(summary, bench=bench)
    # lsts non-key 100 + 20 + 5 + 10 = 135 ms; flow 30 + 2 + 10 = 42 ms
    assert "LSTS takes" in text and "x the flow warp's time per frame (slower)" in text
    assert "on a non-key frame (9 of every 10 frames)" in text
    assert ("135 ms (low backbone conv1–res4b3 100, low2high 20, head 10, quality-net fusion "
            "5)") in text
    assert "DFF flow warp 42 ms (flow network 30, head 10, warp 2)" in text
    assert "takes 2.4x DFF flow warp's whole non-key frame" in text and "notebook 02" in text
    assert "notebook 02" not in R.cost_markdown(summary)  # without the benchmark: no split
    saving = R.saving_sentence(bench)
    sf, lsts = (bench["results"]["paper"][r] for r in ("single_frame", "lsts"))
    flops, speed = (sf["amortised_gflops"] / lsts["amortised_gflops"],
                    sf["amortised_ms"] / lsts["amortised_ms"])
    assert f"fall to 1/{flops:.2f}" in saving and f"CPU time to 1/{speed:.2f}" in saving
    assert f"realises {speed / flops:.2f} of the speed-up" in saving
    assert R.WHOLE_FRAME in saving and R.STAGE_SUM in saving


# ------------------------------------------------------------------ the rest
def test_seed_scope_names_a_std_and_a_half_width() -> None:
    df = pd.DataFrame({"run": ["single_frame"] * 3, "mAP": [41.0, 41.2, 41.4]})
    text = R.seed_scope(df)
    assert "sample standard deviation 0.20 points" in text
    assert f"95 % t half-width ± {R.t_half_width([41.0, 41.2, 41.4]):.2f} points" in text
    assert "±0.1" not in R.seed_scope(df.iloc[:1])


def test_gradient_bins_are_the_printed_ones() -> None:
    size = np.array([0.5, 1.5, 3.0, 2.0, 0.9, 0.4])
    dist = np.array([0.5, 1.5, 3.0, 5.0, 6.5, 7.9])
    bins = R.gradient_bins(size, dist)
    assert list(bins.index) == ["0-1", "1-2", "2-4", "4-6", "6-8"]
    text = R.gradient_reach_markdown(bins)
    assert "farthest points (6-8 cells) it is 0.4 to 0.9, at most 30% of its largest" in text
    assert "steepest 2-4 cells away (up to 3.0)" in text


def test_bench_lsts_keeps_every_timed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from lsts_lib.engine import bench_lsts

    small = {"batch": 1, "channels": 8, "embed": 4, "height": 12, "width": 14,
             "grid_size": 3, "grid_range": 1.0}
    monkeypatch.setattr(bench_lsts, "paper_shape", lambda: small)
    monkeypatch.setattr(bench_lsts, "peak_memory_mb", lambda impl, dev, threads: 0.0)
    out = bench_lsts.run(repeats=3, keyframe=False)
    for form in ("efficient", "naive"):
        reps = out[f"{form}_ms_repeats"]
        assert len(reps) == 3 and out[f"{form}_ms"] == sorted(reps)[1]
    assert bench_lsts.BENCH_LSTS_VERSION >= 3  # the report's stamp remeasures older JSONs


def test_the_headline_sentence_counts_the_whole_frame_calls() -> None:
    bench = _bench()
    assert "(each frame timed 3 times as one call)" in R.timing_measures_markdown(bench)
    for kind in ("key", "nonkey"):  # a benchmark made before every call was kept
        del bench["results"]["paper"]["lsts"][kind]["ms_measured_repeats"]
    assert "(each frame timed once as one call)" in R.timing_measures_markdown(bench)
