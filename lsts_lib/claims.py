"""`lsts claims`: the paper's five claims, judged with paired intervals over seeds and videos.

A claim "a beats b" is about the per-seed difference of the two runs' mAP on the test split:
every variant of seed s is trained from the same pretrained model with seed s, so seeds
pair. Two noises are measured (`lsts_lib.eval.stats`):

* training noise: a Student-t interval on the mean of the paired differences over seeds;
* test-set noise: a paired bootstrap over the test videos, one resample of the videos applied
  to every seed of both runs, the statistic being the seed-mean difference.

Their half-widths add in quadrature and `stats.verdict` reads the combined interval. With a
single seed no training noise is measured: the claim is *not testable* (its bootstrap interval
is still reported). The claims, their statements and the rules' thresholds, fixed before the
final run, are `results.CLAIM_SPECS` and the constants beside them.

Output: runs/<preset>/claims.json (`results.load_claims` reads it for notebook 05 and README).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lsts_lib import atomic
from lsts_lib.argtypes import nonnegative_int, positive_int
from lsts_lib.data.vid import VIDDataset
from lsts_lib.engine import rundir
from lsts_lib.eval.detections_io import frame_sizes, read_detections
from lsts_lib.eval.stats import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    NOT_TESTABLE,
    Interval,
    combine,
    paired_bootstrap,
    paired_t_interval,
    verdict,
)
from lsts_lib.eval.vid_eval import video_weighted_map
from lsts_lib.results import (
    CLAIM_SPECS,
    CLAIMS_FILE,
    CLOSE_MAP_POINTS,
    CONFIDENCE,
    COST_FRACTION,
    OFFSETS_ENGAGED_CELLS,
    OFFSETS_MEASURE,
    SPEED_MARGIN,
    STAGE_SUM,
    Claim,
    ClaimSpec,
    MissingResultError,
    bench_table,
    load_bench,
    load_offsets,
    offsets_moved,
    run_dirs,
)

SCHEMA = "lsts-claims-v1"
NOISE_VARIANT = "single_frame"  # whose mAP measures the test split's own noise
RESAMPLES = 2000


class _Scores:
    """mAP (points) of each run's detections for any reweighting of the test videos.

    Each (run, seed) is matched once; each distinct set of resamples is scored once per
    (run, seed), all its resamples together, however many claims use it: every bootstrap
    here draws the same resamples (one seed).
    """

    def __init__(self, runs: Path, data_root: Path, split: str) -> None:
        self.runs = Path(runs)
        self.found: dict[str, dict[int, Path]] = {}
        for run, seed, d in run_dirs(self.runs):
            self.found.setdefault(run, {})[seed] = d
        dataset = VIDDataset(data_root, split=split)
        dataset.load_all()
        self.split = split
        self.classes, self.videos = dataset.classes, list(dataset.videos)
        self._sizes = frame_sizes(self.videos)
        self._fn: dict[tuple[str, int], Callable[[np.ndarray], np.ndarray]] = {}
        self._draw: dict[bytes, int] = {}  # counts matrix -> its number
        self._memo: dict[tuple[str, int], dict[int, np.ndarray]] = {}

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    def seeds(self, run: str) -> list[int]:
        return sorted(self.found.get(run, {}))

    def run_dir(self, run: str, seed: int) -> Path:
        return self.found[run][seed]

    def _scorer(self, run: str, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        if (run, seed) not in self._fn:
            path = self.found[run][seed] / rundir.DETECTIONS / "detections.txt"
            if not path.is_file():
                raise MissingResultError(
                    f"{path}: missing; it is made by `lsts report --preset {self.runs.name} "
                    f"--only detect` (or `lsts detect --split {self.split}`)")
            dets = read_detections(path, self.classes.num_classes, frame_sizes=self._sizes)
            self._fn[run, seed] = video_weighted_map(self.classes, self.videos, dets)
        return self._fn[run, seed]

    def map(self, run: str, seed: int, counts: np.ndarray) -> np.ndarray:
        """mAP in points of each row of `counts` (k, videos), video i counted counts[r, i]
        times in row r (NaN without ground truth)."""
        counts = np.asarray(counts, dtype=np.int64)
        key = self._draw.setdefault(counts.tobytes(), len(self._draw))
        memo = self._memo.setdefault((run, seed), {})
        if key not in memo:
            memo[key] = 100.0 * self._scorer(run, seed)(counts)
        return memo[key]

    def observed(self, run: str, seed: int) -> float:
        """mAP in points on the test split itself."""
        return float(self.map(run, seed, np.ones((1, self.num_videos), dtype=np.int64))[0])

    def seed_mean(self, run: str, seeds: list[int], counts: np.ndarray) -> np.ndarray:
        return np.mean([self.map(run, s, counts) for s in seeds], axis=0)


def _bootstrap(sc: _Scores, statistic: Callable[[np.ndarray], np.ndarray], resamples: int,
               seed: int) -> Interval:
    iv = paired_bootstrap(statistic, sc.num_videos, resamples, CONFIDENCE, seed)
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        raise ValueError(f"{sc.split}: a resample of the test videos holds no ground truth; "
                         "the bootstrap needs ground truth in (nearly) every test video")
    return iv


def _paired(sc: _Scores, c: Claim, resamples: int, seed: int) -> str | None:
    """Fill the accuracy numbers of `c` (a - b over the paired seeds); the reason the
    accuracy part is not testable, or None when it has a combined interval."""
    a, b = c.runs
    seeds = sorted(set(sc.seeds(a)) & set(sc.seeds(b)))
    if not seeds:
        return f"no seed run for both {a} (seeds {sc.seeds(a)}) and {b} (seeds {sc.seeds(b)})"
    c.seeds = seeds
    c.per_seed = {r: [sc.observed(r, s) for s in seeds] for r in (a, b)}
    if not all(math.isfinite(v) for r in (a, b) for v in c.per_seed[r]):
        return f"mAP undefined: the {sc.split} split has no ground truth"
    c.bootstrap = _bootstrap(
        sc, lambda n: sc.seed_mean(a, seeds, n) - sc.seed_mean(b, seeds, n), resamples, seed)
    c.difference = c.bootstrap.estimate
    if len(seeds) < 2:
        return (f"one paired seed ({seeds[0]}): training noise not measured, it needs >= 2 "
                f"seeds; the test videos alone give {a} - {b} = {_iv(c.bootstrap)}")
    c.t_interval = paired_t_interval(c.per_seed[a], c.per_seed[b], CONFIDENCE)
    c.combined = combine(c.t_interval, c.bootstrap)
    return None


def _iv(iv: Interval) -> str:
    return f"{iv.estimate:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]"


def _accuracy_text(c: Claim) -> str:
    a, b = c.runs
    assert c.combined is not None and c.t_interval is not None and c.bootstrap is not None
    return (f"mAP {a} {np.mean(c.per_seed[a]):.1f} vs {b} {np.mean(c.per_seed[b]):.1f}, "
            f"{a} - {b} = {_iv(c.combined)} ({c.n_seeds} seeds ± "
            f"{c.t_interval.half_width:.2f}, test videos ± {c.bootstrap.half_width:.2f})")


def _cpu_ms(bench: Mapping[str, Any] | None, run: str) -> float:
    if bench is None:
        return math.nan
    cost = bench_table(bench)
    hit = cost[cost["variant"] == run]
    return float(hit["amortised_ms"].iloc[0]) if len(hit) else math.nan


def _cost_part(c: Claim, bench: Mapping[str, Any] | None, run: str, base: str,
               ok: Callable[[float], bool], rel: str) -> tuple[str, str]:
    """(verdict, text) of a cost condition on the amortised CPU time ratio run/base."""
    t, t0 = _cpu_ms(bench, run), _cpu_ms(bench, base)
    c.numbers |= {f"{run}.cpu_ms": t, f"{base}.cpu_ms": t0}
    if not (math.isfinite(t) and math.isfinite(t0)):
        return NOT_TESTABLE, f"no CPU benchmark of {run} and {base}"
    ratio = t / t0
    c.numbers["time_ratio"] = ratio
    held = ok(ratio)
    return (HELD if held else NOT_HELD,
            f"time {t:.0f} vs {t0:.0f} ms/frame (each a {STAGE_SUM}), ratio {ratio:.2f} "
            f"{rel if held else 'fails ' + rel}")


def _both(parts: tuple[str, str]) -> str:
    """An accuracy and a cost part: not held when either is not held, held when both are."""
    if NOT_HELD in parts:
        return NOT_HELD
    if all(p == HELD for p in parts):
        return HELD
    return NOT_TESTABLE if NOT_TESTABLE in parts else INCONCLUSIVE


def seeds_offsets_moved(sc: _Scores, run: str, seeds: list[int]) -> float:
    """results.offsets_moved (OFFSETS_MEASURE) averaged over the seeds' runs."""
    return float(np.mean([offsets_moved(*load_offsets(sc.run_dir(run, s))) for s in seeds]))


def _judge(sc: _Scores, spec: ClaimSpec, bench: Mapping[str, Any] | None, resamples: int,
           seed: int) -> Claim:
    c = Claim(spec.key, spec.statement, spec.rule, (spec.a, spec.b))
    missing = [r for r in c.runs if not sc.seeds(r)]
    if missing:
        c.reason = f"variant {', '.join(missing)} not run in this preset"
        return c
    untestable = _paired(sc, c, resamples, seed)
    if spec.key == "per_frame":  # single_frame - lsts within CLOSE_MAP_POINTS
        if untestable:
            acc, acc_text = NOT_TESTABLE, untestable
        else:
            assert c.combined is not None
            acc = (HELD if c.combined.high <= CLOSE_MAP_POINTS
                   else NOT_HELD if c.combined.low > CLOSE_MAP_POINTS else INCONCLUSIVE)
            acc_text = f"{_accuracy_text(c)}: gap {acc} against {CLOSE_MAP_POINTS} points"
    else:
        acc = NOT_TESTABLE if untestable else verdict(c.combined, +1)
        acc_text = untestable or _accuracy_text(c)
    if spec.key == "learnable_sampling" and acc != NOT_TESTABLE:
        moved = seeds_offsets_moved(sc, spec.a, c.seeds)
        c.numbers["offsets_moved_cells"] = moved
        if moved < OFFSETS_ENGAGED_CELLS:
            c.verdict = NOT_TESTABLE
            c.reason = (f"the {spec.a} offsets moved {moved:.3f} feature cells "
                        f"({OFFSETS_MEASURE}; < {OFFSETS_ENGAGED_CELLS}): "
                        f"learnable sampling did not engage; "
                        f"{acc_text}")
            return c
        acc_text += f"; offsets moved {moved:.2f} cells ({OFFSETS_MEASURE})"
    if spec.key == "beats_flow":
        cost, cost_text = _cost_part(c, bench, spec.a, spec.b, lambda r: r < SPEED_MARGIN,
                                     f"< {SPEED_MARGIN}")
    elif spec.key == "per_frame":
        cost, cost_text = _cost_part(c, bench, spec.b, spec.a, lambda r: r <= COST_FRACTION,
                                     f"<= {COST_FRACTION}")
    else:
        c.verdict, c.reason = acc, acc_text
        return c
    c.verdict = _both((acc, cost))
    c.reason = f"accuracy {acc} ({acc_text}); cost {cost} ({cost_text})"
    return c


def _claims(sc: _Scores, bench: Mapping[str, Any] | None, resamples: int,
            seed: int) -> list[Claim]:
    return [_judge(sc, spec, bench, resamples, seed) for spec in CLAIM_SPECS]


def compute_claims(runs: Path, data_root: Path, split: str, bench: Mapping[str, Any] | None,
                   resamples: int = RESAMPLES, seed: int = 0) -> list[Claim]:
    """The paper's claims on the runs of one preset (`runs/<preset>`), from each run's
    detections/detections.txt on `split` of the dataset at `data_root`; the cost parts use the
    CPU benchmark `bench` (None: those parts are not testable). `seed` seeds the bootstrap."""
    return _claims(_Scores(runs, data_root, split), bench, resamples, seed)


def _map_noise(sc: _Scores, run: str, resamples: int, seed: int) -> Interval | None:
    seeds = sc.seeds(run)
    if not seeds:
        return None
    return _bootstrap(sc, lambda n: sc.seed_mean(run, seeds, n), resamples, seed)


def map_noise(runs: Path, data_root: Path, split: str, run: str = NOISE_VARIANT,
              resamples: int = RESAMPLES, seed: int = 0) -> Interval | None:
    """Bootstrap interval over the test videos of `run`'s seed-mean mAP (points): how much
    the test split alone moves a number (None when the run is absent)."""
    return _map_noise(_Scores(runs, data_root, split), run, resamples, seed)


def claims_json(claims: list[Claim], *, split: str, data: Path, num_videos: int,
                resamples: int, seed: int, test_noise: Interval | None) -> dict[str, Any]:
    """The claims.json object that `results.load_claims` reads."""
    return {
        "schema": SCHEMA, "split": split, "data": str(data), "num_videos": num_videos,
        "resamples": resamples, "bootstrap_seed": seed, "confidence": CONFIDENCE,
        "test_noise": None if test_noise is None else {
            "variant": NOISE_VARIANT, "interval": asdict(test_noise)},
        "claims": [c.to_dict() for c in claims],
    }


def write_claims(path: Path, runs: Path, data_root: Path, split: str,
                 bench: Mapping[str, Any] | None, resamples: int = RESAMPLES,
                 seed: int = 0) -> list[Claim]:
    """Compute the claims and the test-set noise and write them to `path` (claims.json)."""
    sc = _Scores(runs, data_root, split)
    cs = _claims(sc, bench, resamples, seed)
    noise = _map_noise(sc, NOISE_VARIANT, resamples, seed)
    atomic.write_json(path, claims_json(cs, split=split, data=Path(data_root),
                                        num_videos=sc.num_videos, resamples=resamples,
                                        seed=seed, test_noise=noise))
    return cs


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", required=True, type=Path,
                        help="a preset's runs folder (runs/<preset>, <variant>/seed<k> inside)")
    parser.add_argument("--data", required=True, type=Path, help="dataset root (VID layout)")
    parser.add_argument("--split", required=True,
                        help="the split the runs' detections are on (the report's test split)")
    parser.add_argument("--json", type=Path, default=None,
                        help=f"where to write the claims (default: <runs>/{CLAIMS_FILE})")
    parser.add_argument("--bench", type=Path, default=None,
                        help="CPU benchmark JSON (default: <runs>/bench_cpu.json if present; "
                             "without one the cost parts are not testable)")
    parser.add_argument("--resamples", type=positive_int, default=RESAMPLES,
                        help="bootstrap resamples of the test videos")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed")


def main(args: argparse.Namespace) -> int:
    out = args.json if args.json is not None else args.runs / CLAIMS_FILE
    atomic.check_json_output(out, args.data)
    run_dirs(args.runs)  # a missing or empty runs folder fails before the data is read
    if args.bench is not None:
        bench = atomic.read_json(args.bench)
    else:
        bench = load_bench(args.runs) if (args.runs / "bench_cpu.json").is_file() else None
    cs = write_claims(out, args.runs, args.data, args.split, bench, args.resamples, args.seed)
    for i, c in enumerate(cs, 1):
        print(f"{i}. {c}")
    print(f"wrote {out}")
    return 0
