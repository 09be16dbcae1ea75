"""`lsts claims`: paired intervals and verdicts on constructed runs whose answer is known.

A tiny VID-layout split (conftest's VidLayout) of 8 videos; each run's detections are built
from its ground truth: a box copied from the GT (a hit) or moved by its own width (a miss),
with a per-(run, seed) hit rate. Nothing here is a result of training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import VidLayout

from lsts_lib import claims as C
from lsts_lib import results as R
from lsts_lib.cli import main
from lsts_lib.data.vid import VIDDataset
from lsts_lib.engine.checkpoint import FORMAT, save_atomic
from lsts_lib.eval.detections_io import Detections, write_vid_detections
from lsts_lib.models.detector import OFFSETS_KEY

NUM_VIDEOS, FRAMES, RESAMPLES = 8, 6, 200


@pytest.fixture
def split(vid_layout: VidLayout) -> Path:
    """8 val videos of 6 frames, one object each (class alternating), 64x48 images."""
    lay = vid_layout
    lay.write_classes([("c1", "circle"), ("c2", "square")])
    lines = []
    for v in range(NUM_VIDEOS):
        cls = "c1" if v % 2 == 0 else "c2"
        frames = [[(0, cls, (4 + 2 * i + v, 6, 24 + 2 * i + v, 30))] for i in range(FRAMES)]
        lay.add_snippet(f"val/v{v}", frames)
        lines.append(f"val/v{v} {1 + v * FRAMES} 0 {FRAMES}")
    lay.write_split("VID_val_videos.txt", lines)
    return lay.root


def detections(root: Path, hit_rate: float, rng_seed: int) -> Detections:
    """Per frame one detection: the GT box on a `hit_rate` share of the frames (chosen at
    random), else the box moved
    right by its width (IoU 0, a false positive and a miss). Hits score above misses, so
    a class's AP is its share of hits."""
    ds = VIDDataset(root, "val")
    rng = np.random.default_rng(rng_seed)
    hits = iter(rng.permutation(NUM_VIDEOS * FRAMES) < round(hit_rate * NUM_VIDEOS * FRAMES))
    per_frame = {}
    for v in ds.videos:
        for i, fr in enumerate(v.frames):
            box = np.array(fr.boxes[0], dtype=np.float64)
            hit = next(hits)
            if not hit:
                box = box + np.array([box[2] - box[0], 0, box[2] - box[0], 0])
                box[[0, 2]] = np.minimum(box[[0, 2]], fr.width)
            score = (0.6 if hit else 0.1) + 0.3 * rng.random()  # hits rank above misses
            per_frame[v.start_index + i] = (box[None], np.array([score]), fr.labels[:1])
    return Detections.from_frames(per_frame)


def write_run(runs: Path, run: str, seed: int, dets: Detections, moved: float = 0.3) -> Path:
    d = runs / run / f"seed{seed}"
    write_vid_detections(d / "detections" / "detections.txt", dets)
    if run.startswith("lsts"):
        p0 = torch.zeros(9, 2)
        save_atomic({"format": FORMAT, "model": {OFFSETS_KEY: p0 + moved},
                     "offsets_init": {OFFSETS_KEY: p0}}, d / "model.pt")
    return d


HIT = {  # run -> hit rate per seed
    "single_frame": [0.6, 0.65, 0.7],
    "lsts": [0.6, 0.65, 0.7],
    "lsts_fixed": [0.2, 0.15, 0.25],  # clearly worse: held
    "lsts_no_dfa": [1.0, 1.0, 1.0],  # clearly better than lsts: not held
}


@pytest.fixture
def runs(split: Path, tmp_path: Path) -> Path:
    root = tmp_path / "runs" / "report"
    for run, rates in HIT.items():
        for seed, rate in enumerate(rates):
            # lsts and single_frame share their rng: identical detections per seed
            rng_seed = seed if run in ("lsts", "single_frame") else 100 + 10 * seed + len(run)
            write_run(root, run, seed, detections(split, rate, rng_seed))
    for seed in range(3):  # lsts_no_srfu: the very detections of lsts
        src = root / "lsts" / f"seed{seed}" / "detections" / "detections.txt"
        dst = root / "lsts_no_srfu" / f"seed{seed}" / "detections" / "detections.txt"
        dst.parent.mkdir(parents=True)
        dst.write_bytes(src.read_bytes())
    return root


BENCH_MS = {"single_frame": 1000.0, "flow_warp": 300.0, "lsts": 200.0}


def bench(ms: dict[str, float] = BENCH_MS) -> dict:
    return {"results": {"paper": {k: {"amortised_ms": v} for k, v in ms.items()}}}


def test_verdicts_follow_the_constructed_answer(runs: Path, split: Path) -> None:
    cs = {c.key: c for c in C.compute_claims(runs, split, "val", bench(), RESAMPLES)}
    held = cs["learnable_sampling"]  # 65 % hits vs 20 %
    assert held.verdict == R.HELD, held.reason
    assert held.seeds == [0, 1, 2] and held.n_seeds == 3
    assert held.combined.low > 0 and held.combined.confidence == R.CONFIDENCE
    assert held.difference == pytest.approx(
        np.mean(held.per_seed["lsts"]) - np.mean(held.per_seed["lsts_fixed"]))
    # the combined half-width is the two half-widths in quadrature
    assert held.combined.half_width == pytest.approx(
        math.hypot(held.t_interval.half_width, held.bootstrap.half_width))
    assert held.numbers["offsets_moved_cells"] == pytest.approx(0.3 * math.sqrt(2), rel=1e-6)

    same = cs["srfu"]  # identical detections: every difference is 0, the interval a point
    assert same.verdict == R.INCONCLUSIVE
    assert (same.combined.low, same.combined.high) == (0.0, 0.0)

    assert cs["dfa"].verdict == R.NOT_HELD  # lsts_no_dfa is the better run
    assert cs["dfa"].combined.high < 0

    missing = cs["beats_flow"]
    assert missing.verdict == R.NOT_TESTABLE
    assert missing.reason == "variant flow_warp not run in this preset"

    pf = cs["per_frame"]  # gap exactly 0 (same detections), time 200/1000
    assert pf.verdict == R.HELD, pf.reason
    assert pf.numbers["time_ratio"] == pytest.approx(0.2)


def test_per_map_values_equal_the_devkit_evaluation(runs: Path, split: Path) -> None:
    from lsts_lib.eval.detections_io import read_detections
    from lsts_lib.eval.vid_eval import evaluate_dataset

    c = C.compute_claims(runs, split, "val", None, RESAMPLES)[0]
    ds = VIDDataset(split, "val")
    for seed, value in zip(c.seeds, c.per_seed["lsts_fixed"], strict=True):
        path = runs / "lsts_fixed" / f"seed{seed}" / "detections" / "detections.txt"
        dets = read_detections(path, ds.classes.num_classes)
        assert value == pytest.approx(100 * evaluate_dataset(ds, dets)["mAP"])


def assert_same(got, want, path: str = "") -> None:
    """Equal claims: the same structure, texts and verdicts, numbers within 1e-9."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        for k in want:
            assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=0, abs=1e-9, nan_ok=True), path
    else:
        assert got == want, path


def test_claims_equal_scoring_one_resample_at_a_time(runs: Path, split: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import per_resample_map

    got = [c.to_dict() for c in C.compute_claims(runs, split, "val", bench(), RESAMPLES)]

    def one_at_a_time(classes, videos, dets):
        score = per_resample_map(classes, videos, dets)
        return lambda counts: np.array([math.nan if (v := score(c)) is None else v
                                        for c in counts])

    monkeypatch.setattr(C, "video_weighted_map", one_at_a_time)
    want = [c.to_dict() for c in C.compute_claims(runs, split, "val", bench(), RESAMPLES)]
    assert [c["verdict"] for c in want] == [R.HELD, R.NOT_TESTABLE, R.INCONCLUSIVE, R.NOT_HELD,
                                           R.HELD]
    assert_same(got, want)


def test_cost_part_and_gap_can_fail(runs: Path, split: Path) -> None:
    cs = {c.key: c for c in C.compute_claims(runs, split, "val", bench(
        {**BENCH_MS, "lsts": 600.0}), RESAMPLES)}
    assert cs["per_frame"].verdict == R.NOT_HELD  # 0.6 of per-frame time is no fraction
    assert "cost not held" in cs["per_frame"].reason
    assert f"ms/frame (each a {R.STAGE_SUM})" in cs["per_frame"].reason  # its measure named
    cs = {c.key: c for c in C.compute_claims(runs, split, "val", None, RESAMPLES)}
    assert cs["per_frame"].verdict == R.NOT_TESTABLE  # accuracy held, no benchmark
    assert "no CPU benchmark" in cs["per_frame"].reason
    # single_frame far above lsts: the gap's lower end passes CLOSE_MAP_POINTS
    for seed in range(3):
        write_vid_detections(runs / "lsts" / f"seed{seed}" / "detections" / "detections.txt",
                             detections(split, 0.2, 7 + seed))
    pf = {c.key: c for c in C.compute_claims(runs, split, "val", bench(), RESAMPLES)}["per_frame"]
    assert pf.combined.low > R.CLOSE_MAP_POINTS and pf.verdict == R.NOT_HELD


def test_unmoved_offsets_and_one_seed_are_not_testable(runs: Path, split: Path) -> None:
    for seed in range(3):
        write_run(runs, "lsts", seed, Detections.empty(), moved=0.01)
        write_vid_detections(runs / "lsts" / f"seed{seed}" / "detections" / "detections.txt",
                             detections(split, 0.65, seed))
    c = C.compute_claims(runs, split, "val", None, RESAMPLES)[0]
    assert c.verdict == R.NOT_TESTABLE
    assert "did not engage" in c.reason and c.combined is not None  # numbers still kept

    one = runs.parent / "one"
    for run in ("lsts", "lsts_fixed"):
        (one / run).mkdir(parents=True)
        (runs / run / "seed0").rename(one / run / "seed0")
    c = C.compute_claims(one, split, "val", None, RESAMPLES)[0]
    assert c.verdict == R.NOT_TESTABLE and "training noise not measured" in c.reason
    assert c.t_interval is None and c.combined is None and c.bootstrap.low > 0


def test_cli_writes_claims_json_that_the_readers_read(runs: Path, split: Path, capsys) -> None:
    out = runs / R.CLAIMS_FILE
    assert main(["claims", "--runs", str(runs), "--data", str(split), "--split", "val",
                 "--resamples", "50"]) == 0
    assert "wrote" in capsys.readouterr().out
    obj = json.loads(out.read_text())
    assert obj["split"] == "val" and obj["num_videos"] == NUM_VIDEOS and obj["resamples"] == 50
    assert obj["test_noise"]["variant"] == "single_frame"
    cs, meta = R.load_claims(runs)
    again = {c.key: c for c in C.compute_claims(runs, split, "val", None, 50)}
    for c in cs:  # the file round-trips to the same claims (no benchmark in either)
        assert c.verdict == again[c.key].verdict and c.combined == again[c.key].combined
    table = R.claims_table(cs)
    assert list(table["verdict"]) == [c.verdict for c in cs]
    assert "n/a" in table.loc[1, "difference (mAP points)"]  # beats_flow: not run
    assert "Test-set noise" in R.split_noise_line(meta)

    assert main(["claims", "--runs", str(split.parent / "nothing"), "--data", str(split),
                 "--split", "val"]) == 1
    assert "no runs folder" in capsys.readouterr().err


def test_interval_table_uses_the_t_half_width() -> None:
    import pandas as pd

    df = pd.DataFrame({"run": ["lsts"] * 3 + ["flow_warp"], "seed": [0, 1, 2, 0],
                       "mAP": [50.0, 52.0, 54.0, 40.0]})
    t = R.interval_table(df)
    assert t.loc["lsts", "mAP"] == 52.0
    assert t.loc["lsts", "mAP_t_half"] == pytest.approx(4.303 * 2 / math.sqrt(3), rel=1e-3)
    assert math.isnan(t.loc["flow_warp", "mAP_t_half"]) and t.loc["flow_warp", "n"] == 1

