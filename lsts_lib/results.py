"""The report's numbers: every run of a preset gathered into tables, the paper's claims tested.

Everything here reads the files the pipeline writes (nothing is typed in by hand, except the
paper's own published numbers in `paper_numbers()`, which carry their source):

    runs/<preset>/<run>/seed<k>/{config.yaml, env.json, log.csv, model.pt, eval.json}
    runs/<preset>/bench_cpu.json        `lsts bench --device cpu`
    runs/<preset>/bench_cuda.json       `lsts bench --device cuda` (optional, a GPU box)
    runs/<preset>/bench_lsts_cpu.json   `lsts bench-lsts`
    runs/<preset>/claims.json           `lsts claims` (lsts_lib/claims.py)

`load_runs` -> one tidy row per (run, seed); `summary_table` -> mean, std and n per run;
`interval_table` -> mean and t-interval half-width per run; `CLAIM_SPECS` -> the paper's
claims and the rules (thresholds fixed here) that `lsts claims` applies; `load_claims` and
`claims_table` read its verdicts; `speed_table` -> runtime at the paper's size;
`backbone_stage_table` -> the backbone's cost per stage and `cut_cost` / `cut_table` ->
its cost cut at any res4 block (both from the benchmark's per-block timings), `cut_accuracy`
-> the dev mAP of the tuning runs at another cut; `update_readme` -> the README's results block; `update_readme_paper` -> the README's GPU
recipe (from `paper_commands`); `recipe_markdown` -> the training recipe of a resolved
config; `tuning_table` / `tuning_markdown` -> the dev-split tuning runs; `made_by` -> the
exact `lsts` commands behind a table (from `Report.commands`, the code that runs them);
`lsts_setting` / `complexity_table` -> the paper's LSTS size (the map its detector computes)
and its multiply-adds (`models.lsts.lsts_macs`); `stage_category_table` /
`alignment_timing_markdown` -> the benchmark's stages by category, and the alignment's two
measurements, each labelled with what it measures; `timing_measures_markdown`,
`same_work_table` -> which time is the headline (STAGE_SUM, WHOLE_FRAME, BLOCK_SUM name each)
and how far the same work's time moves between passes; `threads_statement` -> the report's one
statement of threads; `alignment_table` -> `lsts alignment` per run, mean ± std over seeds;
`offsets_agreement` -> whether the seeds moved the sampling points alike. The report's prose:
`introduction_markdown` / `related_work_markdown` (README and notebook 01,
`update_readme_prose`), `CLAIM_SOURCES` / `claim_source_markdown` / `thresholds_markdown`
(what the paper itself reports behind each claim; the thresholds as this reproduction's),
`protocol_differences` / `differences_markdown` (the recipe against the paper's protocol, from
the two configs and the tuning record), `next_experiment_markdown` / `dev_ranking_markdown` /
`held_out_split_markdown` (notebook 05's conclusion, from the tuning record and the runs).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from lsts_lib import atomic, paths
from lsts_lib.engine import inference, rundir
from lsts_lib.engine.bench import CATEGORIES as BENCH_CATEGORIES
from lsts_lib.engine.bench import CATEGORY as BENCH_CATEGORY
from lsts_lib.engine.bench import SPEEDUP
from lsts_lib.engine.checkpoint import load_checkpoint
from lsts_lib.engine.config import FLOW_PRETRAIN_KEYS, PlanConfig, RunConfig, load_plan
from lsts_lib.engine.detect import load_detector
from lsts_lib.engine.flow_pretrain import SUMMARY as FLOWNET_SUMMARY
from lsts_lib.engine.optim import lr_factor
from lsts_lib.engine.plan import FLOWNET_DIR
from lsts_lib.engine.trainlog import load_logs
from lsts_lib.eval.stats import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    NOT_TESTABLE,
    Interval,
    paired_t_interval,
)
from lsts_lib.models.backbone import low_channels
from lsts_lib.models.config import ModelConfig, paper_config
from lsts_lib.models.detector import (
    OFFSETS_KEY,
    PAPER_INPUT,
    VideoDetector,
    feature_map_hw,
    input_hw,
)
from lsts_lib.models.lsts import LSTSMacs, LSTSOffsets, grid_sample_offsets, lsts_macs
from lsts_lib.models.variants import OWN_ABLATION, STAGE1, VARIANTS, flow_training, label

# Accuracy columns of the tidy table (percent, 0-100) and their headers.
METRICS: dict[str, str] = {
    "mAP": "mAP",
    "slow": "mAP slow",
    "medium": "mAP medium",
    "fast": "mAP fast",
    "coco_AP": "COCO AP",
    "coco_AP50": "COCO AP50",
}
# Cost columns (one benchmark per variant, no spread over seeds). Measured on the paper's
# network (ResNet-101, random weights) at its input size, not on the ResNet-18 the accuracy
# columns come from: the headers say so wherever they stand beside SynthVID accuracy.
COSTS: dict[str, str] = {
    "cpu_ms": "CPU ms/frame (ResNet-101, 600x1000, sum of per-stage medians)",
    "gflops": "GFLOPs/frame (ResNet-101, 600x1000)",
}
NOT_MEASURED = "not measured"
SYNTH_MAP = "SynthVID mAP (ResNet-18)"  # the speed table's accuracy column: the CPU preset's
SPEED_ONLY_TEXT = "speed only"  # the accuracy of a configuration the benchmark times, untrained
# A claim's verdicts, as `stats.verdict` names them (readers compare with R.HELD etc.).
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE, NOT_TESTABLE)
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
PAPER_START, PAPER_END = "<!-- paper-commands:start -->", "<!-- paper-commands:end -->"
# Benchmark size the speed table and the cost claims use: the paper's 600x1000 input. The
# smoke preset (CI) benchmarks only its own small size, so `bench_size` falls back to it.
BENCH_SIZE = "paper"


def bench_size(bench: Mapping[str, Any]) -> str:
    """BENCH_SIZE when the benchmark has it, else the preset's own size."""
    results = bench.get("results") or {}
    return BENCH_SIZE if BENCH_SIZE in results or "preset" not in results else "preset"

class MissingResultError(FileNotFoundError):
    """A file the report needs is absent; the message names it and the command that makes it."""


def _need(path: Path, command: str) -> Path:
    if not path.is_file():
        raise MissingResultError(f"{path}: missing; it is made by `{command}`")
    return path


def _read_json(path: Path, command: str) -> Any:
    with open(_need(path, command), encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc


# --------------------------------------------------------------------------------------------
# Loading the runs
# --------------------------------------------------------------------------------------------
def run_dirs(runs: Path) -> list[tuple[str, int, Path]]:
    """(run name, seed, dir) of every `<run>/seed<k>` folder under a preset's runs root."""
    runs = Path(runs)
    if not runs.is_dir():
        raise MissingResultError(
            f"{runs}: no runs folder; make it with `lsts report --preset {runs.name}`")
    found = []
    for d in sorted(runs.glob("*/seed*")):
        m = re.fullmatch(r"seed(\d+)", d.name)
        # The shared stage-1 model (rundir.SHARED_STAGE1) is where runs start, not a run.
        if d.is_dir() and m and d.parent.name != rundir.SHARED_STAGE1:
            found.append((d.parent.name, int(m.group(1)), d))
    if not found:
        raise MissingResultError(
            f"{runs}: holds no <run>/seed<k> folders; train them with "
            f"`lsts report --preset {runs.name} --only train detect`")
    return sorted(found, key=lambda t: (_run_order(t[0]), t[1]))


def run_label(run: str, model: Mapping[str, Any] | None = None) -> str:
    """Reader-facing name of a run (the catalogue's label); a run whose label names its
    offsets ("LSTS (uniform, N=81)") names them as its resolved config has them."""
    text = label(run)
    model = model or {}
    if run in VARIANTS and "N=" in text and "offsets_init" in model:
        init = model["offsets_init"]
        n = model.get("grid_size", 0) ** 2 if init == "uniform" else model.get("num_points")
        return f"{text.split(' (')[0]} ({init}, N={n})"
    return text


def _run_order(run: str) -> tuple[int, str]:
    order = list(VARIANTS)
    return (order.index(run) if run in order else len(order), run)


def _percent(value: Any) -> float:
    """An AP from eval.json (a fraction in [0, 1]) as percent; None/NaN stay NaN."""
    if value is None:
        return math.nan
    v = float(value)
    return 100.0 * v if math.isfinite(v) else math.nan


def eval_row(eval_json: Mapping[str, Any]) -> dict[str, float]:
    """The accuracy columns of one run from its `lsts evaluate` JSON."""
    motion = eval_json.get("motion") or {}
    coco = eval_json.get("coco") or {}
    if "mAP" not in eval_json:
        raise ValueError("eval.json has no 'mAP' key")
    return {
        "mAP": _percent(eval_json["mAP"]),
        "slow": _percent(_motion_value(motion, "slow")),
        "medium": _percent(_motion_value(motion, "medium")),
        "fast": _percent(_motion_value(motion, "fast")),
        "coco_AP": _percent(coco.get("AP")),
        "coco_AP50": _percent(coco.get("AP50")),
    }


def _motion_value(motion: Mapping[str, Any], name: str) -> Any:
    v = motion.get(name)
    if isinstance(v, Mapping):  # {"mAP": ..., "num_gt": ...} style
        v = v.get("mAP")
    return v


def load_runs(runs: Path, bench: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per (run, seed): accuracy from eval.json, cost from the CPU benchmark.

    Columns: run, variant, seed, mAP, slow, medium, fast, coco_AP, coco_AP50 (percent),
    cpu_ms (amortised per-frame ms at the key interval, paper size), gflops (per frame,
    amortised the same way). A run folder without eval.json is an error naming the file.
    """
    preset = Path(runs).name
    rows = []
    for run, seed, d in run_dirs(runs):
        ev = _read_json(d / "eval.json", f"lsts report --preset {preset} --only detect")
        model: dict[str, Any] = {}
        cfg_path = d / "config.yaml"
        if cfg_path.is_file():
            model = (yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}).get("model") or {}
        rows.append({"run": run, "variant": str(model.get("variant", run)), "seed": seed,
                     "label": run_label(run, model), **eval_row(ev)})
    return with_costs(pd.DataFrame(rows), bench)


# --------------------------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------------------------
# What a time in the report is, named wherever one is printed. Every frame cost (the speed
# tables, claims 2 and 5, the README) is STAGE_SUM, the headline (`timing_measures_markdown`
# says why); WHOLE_FRAME checks it; notebook 02's backbone and cut tables are BLOCK_SUM.
STAGE_SUM = "sum of per-stage medians"
WHOLE_FRAME = "median of whole frames"
BLOCK_SUM = "sum of per-block medians"
# Stages `lsts bench` times once per size for every variant (the same numbers in each).
SHARED_STAGES = ("preprocess", "low", "high", "head")


def repeats_range(entry: Mapping[str, Any], key: str = "ms_repeats"
                  ) -> tuple[float, float] | None:
    """(fastest, slowest) of a timed entry's calls; None when the benchmark kept none."""
    reps = entry.get(key) if isinstance(entry, Mapping) else None
    return (float(min(reps)), float(max(reps))) if reps else None


def frame_range(frame: Mapping[str, Any]) -> tuple[float, float] | None:
    """The range of a frame's STAGE_SUM over the repeats: the sum of its stages' fastest
    calls to the sum of their slowest; None when a stage's calls were not kept."""
    ranges = [repeats_range(st) for st in frame.get("stages", {}).values()]
    if not ranges or any(r is None for r in ranges):
        return None
    return sum(r[0] for r in ranges), sum(r[1] for r in ranges)


def _amortised(key: float, nonkey: float, k: int) -> float:
    return (key + (k - 1) * nonkey) / k


def amortised_ranges(result: Mapping[str, Any]
                     ) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """A variant's amortised per-frame range over the repeats as STAGE_SUM (`frame_range` of
    its key and non-key frame) and as WHOLE_FRAME (fastest to slowest whole frame); each None
    when the benchmark kept no repeats."""
    k = int(result.get("key_interval", 1))
    out = []
    for get in (frame_range, lambda f: repeats_range(f, "ms_measured_repeats")):
        key, nonkey = get(result.get("key") or {}), get(result.get("nonkey") or {})
        out.append(None if key is None or nonkey is None else
                   (_amortised(key[0], nonkey[0], k), _amortised(key[1], nonkey[1], k)))
    return out[0], out[1]


def range_text(r: tuple[float, float] | None, nd: int = 0) -> str:
    """'1790-1920' (an en dash), or 'not recorded' for a benchmark without repeats."""
    return "not recorded" if r is None else f"{r[0]:.{nd}f}–{r[1]:.{nd}f}"


BENCH_COLUMNS = ("variant", "model_variant", "label", "speed_only", "size", "input_hw",
                 "key_ms", "key_peak", "nonkey_peak", "nonkey_ms", "amortised_ms", "gflops",
                 "feature_gflops", "flow_gflops", "peak_mb", "speedup", "amortised_lo",
                 "amortised_hi", "whole_ms", "whole_lo", "whole_hi")
# Key-frame stages of the feature network (the backbone) and the non-key stage of a flow net.
FEATURE_STAGES, FLOW_STAGE = ("low", "high"), "flow"


def bench_table(bench: Mapping[str, Any], size: str | None = None) -> pd.DataFrame:
    """One row per benchmarked configuration at one input size of a `lsts bench` JSON.

    Times are STAGE_SUM (`ms`, the basis of the benchmark's own speed-up column): key frame,
    non-key frame and their amortised mean over the key interval, with its range over the
    repeats (`amortised_lo`, `amortised_hi`: `amortised_ranges`); `whole_ms` (and its range)
    the same amortised mean as WHOLE_FRAME. GFLOPs are amortised the
    same way; `feature_gflops` is the key frame's backbone (low + high), `flow_gflops` a
    non-key frame's flow network (NaN without one). Speed-only configurations (never
    trained) carry their own `label` and `speed_only`. Raises ValueError when the size was
    not benchmarked.
    """
    size = size or bench_size(bench)
    results = bench.get("results") or {}
    if size not in results:
        raise ValueError(f"benchmark JSON has no results at size {size!r} "
                         f"(has: {', '.join(results) or 'none'})")
    hw = (bench.get("sizes") or {}).get(size, {}).get("input_hw")
    rows = []
    for name, e in results[size].items():
        stages, whole = amortised_ranges(e)
        rows.append({
            "variant": name,
            "model_variant": e.get("variant", name),
            "label": e.get("label") or run_label(name),
            "speed_only": bool(e.get("speed_only", False)),
            "size": size,
            "input_hw": "x".join(map(str, hw)) if hw else "",
            "key_ms": _get(e, ("key", "ms")),
            "key_peak": _get(e, ("key", "fraction_of_peak")),
            "nonkey_peak": _get(e, ("nonkey", "fraction_of_peak")),
            "nonkey_ms": _get(e, ("nonkey", "ms")),
            "amortised_ms": _get(e, "amortised_ms"),
            "gflops": _get(e, "amortised_gflops"),
            "feature_gflops": sum(_get(e, ("key", "stages", st, "flops"))
                                  for st in FEATURE_STAGES) / 1e9,
            "flow_gflops": _get(e, ("nonkey", "stages", FLOW_STAGE, "flops")) / 1e9,
            "peak_mb": _get(e, "peak_mb"),
            "speedup": _get(e, "speedup_vs_single_frame"),
            "amortised_lo": stages[0] if stages else math.nan,
            "amortised_hi": stages[1] if stages else math.nan,
            "whole_ms": _get(e, "amortised_ms_measured"),
            "whole_lo": whole[0] if whole else math.nan,
            "whole_hi": whole[1] if whole else math.nan,
        })
    return pd.DataFrame(rows, columns=list(BENCH_COLUMNS))


def _get(entry: Mapping[str, Any], *keys: str | tuple[str, ...]) -> float:
    """The first of `keys` (a key or a path of keys) present in `entry`, as float; else NaN."""
    for key in keys:
        node: Any = entry
        for part in (key,) if isinstance(key, str) else key:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            return float(node)
    return math.nan


def with_costs(df: pd.DataFrame, bench: Mapping[str, Any] | None) -> pd.DataFrame:
    """A copy of the runs `df` with the benchmark's cost of each run: cpu_ms (amortised
    per-frame ms) and gflops, NaN for a run the benchmark (or a missing one) has no row for."""
    out = df.copy()
    out["cpu_ms"] = math.nan
    out["gflops"] = math.nan
    cost = bench_table(bench) if bench is not None else None
    if cost is None or cost.empty:
        return out
    for i, r in out.iterrows():
        hit = _bench_lookup(cost, r["run"], r["variant"])
        if hit is not None:
            out.loc[i, "cpu_ms"] = hit["amortised_ms"]
            out.loc[i, "gflops"] = hit["gflops"]
    return out


def _bench_lookup(cost: pd.DataFrame, run: str, variant: str) -> pd.Series | None:
    """Benchmark row for a run: by run name first (lsts_gaussian), then by model variant."""
    for name in (run, variant):
        hit = cost[cost["variant"] == name]
        if len(hit):
            return hit.iloc[0]
    return None


def _command_line(argv: Sequence[str]) -> str:
    """`lsts ...` with repository paths made relative (as the executed notebooks show them)."""
    return "`lsts " + " ".join(a.replace(f"{paths.REPO}/", "") for a in argv) + "`"


def made_by(preset: str, *outputs: str, variant: str | None = None) -> str:
    """One Markdown line naming the exact `lsts` commands `lsts report --preset <preset>`
    runs to make `outputs` (keys of `report.MADE_BY`: "bench", "bench_lsts", "claims",
    "evaluate", ...), built by the code that runs them (`Report.commands`), so the line
    cannot drift from what the report does. A per-run output names the commands of the
    plan's first such run (of `variant`, when given: the runs a figure of one variant
    shows) and how many runs repeat them."""
    from lsts_lib import report  # here, not above: report imports this module

    rep = report.Report(preset, None, set(), 1)
    parts = []
    for out in outputs:
        lines = " then ".join(_command_line(a) for a in rep.commands(out, variant))
        runs = rep.runs_of(out, variant)
        if not lines:
            lines = "not run by this preset"
        elif out == "detect_options":
            modes = [m.name for m in report.speed_options().modes()]
            lines = (f"for each of its {len(runs)} runs and each speed option "
                     f"({', '.join(modes)}; {runs[0].variant} seed {runs[0].seed} with "
                     f"{modes[0]} shown) {lines}")
        elif runs:
            lines = (f"for each of its {len(runs)} runs ({runs[0].variant} seed "
                     f"{runs[0].seed} shown) {lines}")
        parts.append(f"stage *{report.MADE_BY[out]}*: {lines}")
    return f"Made by `lsts report --preset {preset}`, " + "; ".join(parts) + "."


def plan_overrides(preset: str) -> dict[str, str]:
    """Per compared variant of the preset's plan: the config overrides `lsts report` gives
    its train command (Orchestrator.run_overrides of its first seed's run: variant, stage,
    the FlowNet it starts from, ...), the seed and the data root left out (they vary)."""
    from lsts_lib import report  # here, not above: report imports this module

    rep = report.Report(preset, None, set(), 1)
    out: dict[str, str] = {}
    for run in rep.runs_of("train") or []:
        if run.variant not in out:
            out[run.variant] = " ".join(
                f"{k}={v}".replace(f"{paths.REPO}/", "")  # repository-relative paths
                for k, v in rep.orchestrator.run_overrides(run).items()
                if k not in ("train.seed", "data.root"))
    return out


def load_bench(runs: Path, device: str = "cpu") -> dict[str, Any] | None:
    """The `lsts bench` JSON of a preset: CPU must exist; CUDA returns None when absent."""
    runs = Path(runs)
    path = runs / f"bench_{device}.json"
    if device != "cpu" and not path.is_file():
        return None
    return _read_json(path, f"lsts bench --config {runs.name} --device {device} --json {path}")


BENCH_LSTS_FILE = "bench_lsts_cpu.json"  # runs/<preset>/, written by `lsts bench-lsts`


def load_bench_lsts(runs: Path) -> dict[str, Any] | None:
    """The `lsts bench-lsts` JSON of a preset, None when absent (the smoke preset's CI runs
    may not make it)."""
    path = Path(runs) / BENCH_LSTS_FILE
    return _read_json(path, f"lsts bench-lsts --json {path}") if path.is_file() else None


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------
def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per run: mean and sample std (ddof=1) of each metric over seeds, and n seeds.

    Columns `<metric>` (mean), `<metric>_std`, `n`, `seeds`, plus cpu_ms and gflops (one
    benchmark per variant, so no spread). Rows in the report's order.
    """
    out = []
    for run, g in sorted(df.groupby("run", sort=False), key=lambda kv: _run_order(kv[0])):
        label = g["label"].iloc[0] if "label" in g else run_label(run)
        row: dict[str, Any] = {"run": run, "label": label,
                               "variant": g["variant"].iloc[0], "n": len(g),
                               "seeds": ",".join(str(s) for s in sorted(g["seed"]))}
        for m in METRICS:
            row[m] = g[m].mean()
            row[f"{m}_std"] = g[m].std(ddof=1) if len(g) > 1 else math.nan
        for c in COSTS:
            row[c] = g[c].mean() if c in g else math.nan
        out.append(row)
    return pd.DataFrame(out).set_index("run")


# --------------------------------------------------------------------------------------------
# The paper's claims
# --------------------------------------------------------------------------------------------
# The thresholds of the claim rules, fixed before the final run (the interval rule itself is
# `lsts_lib.eval.stats.verdict`; `lsts claims`, lsts_lib/claims.py, applies them).
CONFIDENCE = 0.95  # of every interval
CLOSE_MAP_POINTS = 2.0  # "close to per-frame accuracy": single_frame - lsts at most this (mAP points)
COST_FRACTION = 0.5  # "a fraction of the cost": amortised time at most this share of per-frame
SPEED_MARGIN = 0.95  # "faster": time ratio below this (5% allowance for timing noise)
# "learnable sampling" is testable only when the offsets p_n moved: the Euclidean distance
# ||p_n - p_n(init)|| averaged over the points and the lsts seeds at least this many feature cells (a tenth of the 0.5-cell
# bilinear footprint would not change what is sampled).
OFFSETS_ENGAGED_CELLS = 0.05
# The test split is large enough when the bootstrap half-width of single_frame's seed-mean mAP
# over its videos is at most this many points.
TEST_NOISE_TARGET_POINTS = 2.0
# What each claim asserts about its paired difference a - b (mAP points): "above" a bound
# (a beats b; the default, bound 0) or "below" it (single_frame - lsts small: LSTS close to
# per-frame accuracy). The bounds are the rules' own constants, applied by `lsts claims`.
CLAIMED_SIDE: dict[str, tuple[float, str]] = {"per_frame": (CLOSE_MAP_POINTS, "below")}

CLAIMS_FILE = "claims.json"  # runs/<preset>/claims.json, written by `lsts claims`
_INTERVAL = (f"{100 * CONFIDENCE:.0f} % interval of the seed-mean paired mAP difference "
             "(t over seeds and paired bootstrap over test videos, half-widths in quadrature)")
ACCURACY_RULE = f"{_INTERVAL} of a - b above 0: held; below 0: not held; else inconclusive"


@dataclass(frozen=True)
class ClaimSpec:
    """One claim of the paper: its statement and the two runs it compares (a vs b)."""

    key: str
    statement: str
    a: str
    b: str
    rule: str


CLAIM_SPECS: tuple[ClaimSpec, ...] = (
    ClaimSpec("learnable_sampling", "Learnable sampling locations beat fixed ones",
              "lsts", "lsts_fixed",
              f"{ACCURACY_RULE}; not testable when the lsts offsets moved less than "
              f"{OFFSETS_ENGAGED_CELLS} feature cells on average"),
    ClaimSpec("beats_flow", "LSTS beats flow-warp feature propagation in accuracy and speed",
              "lsts", "flow_warp",
              f"accuracy: {ACCURACY_RULE}; speed: amortised CPU ms ratio lsts/flow_warp < "
              f"{SPEED_MARGIN}; held when both hold, not held when either does not"),
    ClaimSpec("srfu", "SRFU (recursive memory update at key frames) adds accuracy",
              "lsts", "lsts_no_srfu", ACCURACY_RULE),
    # lsts_no_dfa keeps DFA's alignment of the memory and drops only its fusion with the
    # non-key frame's own (low2high) feature: the claim tested is the fusion's.
    ClaimSpec("dfa", "DFA's fusion of the aligned memory with the non-key frame's own "
              "feature adds accuracy",
              "lsts", "lsts_no_dfa", ACCURACY_RULE),
    ClaimSpec("per_frame", "LSTS is close to per-frame accuracy at a fraction of the cost",
              "single_frame", "lsts",
              f"accuracy: {_INTERVAL} of single_frame - lsts, upper end <= {CLOSE_MAP_POINTS} "
              f"points: held, lower end > {CLOSE_MAP_POINTS}: not held, else inconclusive; "
              f"cost: amortised CPU ms ratio lsts/single_frame <= {COST_FRACTION}; held when "
              "both hold, not held when either does not"),
)


@dataclass
class Claim:
    """One claim of the paper, the numbers it was judged on and the verdict.

    Accuracy numbers are mAP points (percent) on the test split: per-seed mAP of each run
    (`per_seed`, in `seeds` order), the seed-mean difference a - b and its intervals (t over
    seeds, bootstrap over test videos, both combined). `numbers` holds the rest (CPU times,
    their ratio, how far the offsets moved).
    """

    key: str
    statement: str
    rule: str
    runs: tuple[str, ...]
    verdict: str = NOT_TESTABLE
    reason: str = ""
    seeds: list[int] = field(default_factory=list)
    per_seed: dict[str, list[float]] = field(default_factory=dict)
    difference: float | None = None
    t_interval: Interval | None = None
    bootstrap: Interval | None = None
    combined: Interval | None = None
    numbers: dict[str, float | None] = field(default_factory=dict)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def __str__(self) -> str:
        return f"{self.statement}: {self.verdict.upper()} -- {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runs"] = list(self.runs)
        d["n_seeds"] = self.n_seeds
        d["numbers"] = {k: _finite_or_none(v) for k, v in self.numbers.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Claim:
        def interval(x: Mapping[str, Any] | None) -> Interval | None:
            return None if x is None else Interval(**x)

        return cls(key=d["key"], statement=d["statement"], rule=d["rule"],
                   runs=tuple(d["runs"]), verdict=d["verdict"], reason=d["reason"],
                   seeds=list(d["seeds"]), per_seed={k: list(v) for k, v in d["per_seed"].items()},
                   difference=d["difference"], t_interval=interval(d["t_interval"]),
                   bootstrap=interval(d["bootstrap"]), combined=interval(d["combined"]),
                   numbers={k: math.nan if v is None else v for k, v in d["numbers"].items()})


def _finite_or_none(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _fmt(x: float | None, nd: int = 1) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    text = f"{x:.{nd}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def claims_command(runs: Path, data: str | Path = "<data root>", split: str = "<test split>"
                   ) -> str:
    """The command that writes a preset's claims.json."""
    runs = Path(runs)
    return f"lsts claims --runs {runs} --data {data} --split {split} --json {runs / CLAIMS_FILE}"


def load_claims(runs: Path) -> tuple[list[Claim], dict[str, Any]]:
    """The claims of a preset from its claims.json, and the file's other entries (split,
    resamples, seeds, test_noise)."""
    path = Path(runs) / CLAIMS_FILE
    obj = _read_json(path, claims_command(runs))
    if not isinstance(obj, dict) or not isinstance(obj.get("claims"), list):
        raise ValueError(f"{path}: not a claims file of `lsts claims` (no 'claims' list)")
    meta = {k: v for k, v in obj.items() if k != "claims"}
    cs = [Claim.from_dict(c) for c in obj["claims"]]
    # The wording is the spec's (a file judged before a rewording reads as it is now); the
    # verdict, the rule and the numbers stay the file's.
    statements = {spec.key: spec.statement for spec in CLAIM_SPECS}
    return [dataclasses.replace(c, statement=statements.get(c.key, c.statement))
            for c in cs], meta


def _interval_text(iv: Interval | None) -> str:
    return "n/a" if iv is None else f"{iv.estimate:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]"


def claims_table(cs: Sequence[Claim]) -> pd.DataFrame:
    """One row per claim: verdict, the difference with its combined interval (the bootstrap
    one when only one seed was run), seeds, the one-line reason and the rule."""
    return pd.DataFrame([{
        "claim": c.statement, "verdict": c.verdict,
        "difference (mAP points)": _interval_text(c.combined or c.bootstrap),
        "seeds": c.n_seeds, "reason": c.reason, "rule": c.rule} for c in cs])


def t_half_width(values: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student-t interval on the mean of `values` (NaN with < 2 values)."""
    from scipy import stats as scipy_stats

    x = [float(v) for v in values if math.isfinite(float(v))]
    if len(x) < 2:
        return math.nan
    sd = pd.Series(x).std(ddof=1)
    return float(scipy_stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * sd / math.sqrt(len(x))


def interval_table(df: pd.DataFrame, metric: str = "mAP",
                   confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per run (report order): mean of `metric` over seeds, the half-width of its t-interval
    over seeds (training noise; NaN with one seed) and n seeds. `df` from `load_runs`."""
    rows = []
    for run, g in sorted(df.groupby("run", sort=False), key=lambda kv: _run_order(kv[0])):
        rows.append({"run": run, "label": g["label"].iloc[0] if "label" in g else run_label(run),
                     metric: g[metric].mean(),
                     f"{metric}_t_half": t_half_width(list(g[metric]), confidence),
                     "n": len(g)})
    return pd.DataFrame(rows).set_index("run")


def split_noise_line(meta: Mapping[str, Any]) -> str:
    """One sentence on the test split's own noise, from claims.json's `test_noise`."""
    tn = meta.get("test_noise")
    if not tn:
        return "Test-set noise: not measured (no single_frame run)."
    iv = Interval(**tn["interval"])
    ok = iv.half_width <= TEST_NOISE_TARGET_POINTS
    return (f"Test-set noise: the {100 * iv.confidence:.0f} % bootstrap interval of "
            f"{label(tn['variant'])}'s seed-mean mAP over the {meta.get('num_videos', '?')} "
            f"{meta.get('split', '')} videos is ± {iv.half_width:.2f} points "
            f"({'within' if ok else 'above'} the {TEST_NOISE_TARGET_POINTS} point target).")


def seed_scope(df: pd.DataFrame, run: str = "single_frame") -> str:
    """What the seed intervals cover under a shared stage 1 (the report's plan), with `run`'s
    own seed spread (`df`: `load_runs`) as both a standard deviation and the half-width of
    the interval the claims use, each named."""
    text = ("What the seeds vary: every run of every seed starts stage 2 from one shared "
            "stage-1 model (the analogue of the paper's one ImageNet initialisation) with the "
            "backbone frozen, so a seed changes the fresh temporal modules, the sampled "
            "frames and the head's fine-tuning, not the base detector. The t-intervals over "
            "seeds therefore measure stage-2 noise; retraining the base detector would add "
            "its own")
    maps = df.loc[df["run"] == run, "mAP"] if "run" in df else pd.Series(dtype=float)
    if len(maps) < 2:
        return text + "."
    return (text + f"; {run}'s mAP varies little over its {len(maps)} seeds because its "
            f"stage 2 barely moves it: sample standard deviation {maps.std():.2f} points, "
            f"{100 * CONFIDENCE:.0f} % t half-width ± {t_half_width(list(maps)):.2f} points "
            "(the half-width is what the claims' seed intervals use).")


# --------------------------------------------------------------------------------------------
# The paper's numbers and the speed table
# --------------------------------------------------------------------------------------------
PAPER_SOURCE = ("published results, each from the paper or official README its row names: "
                "ImageNet VID val, ResNet-101")


# The publications behind `paper_numbers` (authors, venue, year, arXiv id where there is one;
# none was found for MANet). The README's related-work section cites the same ones.
CITATIONS: dict[str, str] = {
    "R-FCN (single frame)": "Jifeng Dai, Yi Li, Kaiming He and Jian Sun, *R-FCN: Object "
                            "Detection via Region-based Fully Convolutional Networks*, NIPS "
                            "2016, arXiv:1605.06409",
    "DFF": "Xizhou Zhu, Yuwen Xiong, Jifeng Dai, Lu Yuan and Yichen Wei, *Deep Feature Flow for "
           "Video Recognition*, CVPR 2017, arXiv:1611.07715",
    "FGFA": "Xizhou Zhu, Yujie Wang, Jifeng Dai, Lu Yuan and Yichen Wei, *Flow-Guided Feature "
            "Aggregation for Video Object Detection*, ICCV 2017, arXiv:1703.10025",
    "MANet": "Shiyao Wang, Yucong Zhou, Junjie Yan and Zhidong Deng, *Fully Motion-Aware "
             "Network for Video Object Detection*, ECCV 2018",
    "SELSA": "Haiping Wu, Yuntao Chen, Naiyan Wang and Zhaoxiang Zhang, *Sequence Level "
             "Semantics Aggregation for Video Object Detection*, ICCV 2019, arXiv:1907.06390",
    "MEGA": "Yihong Chen, Yue Cao, Han Hu and Liwei Wang, *Memory Enhanced Global-Local "
            "Aggregation for Video Object Detection*, CVPR 2020, arXiv:2003.12063",
    "LSTS": "Zhengkai Jiang et al., *Learning Where to Focus for Efficient Video Object "
            "Detection*, ECCV 2020, arXiv:1911.05253",
    # Related work without an ImageNet VID row (a still-image operator).
    "Deformable ConvNets": "Jifeng Dai, Haozhi Qi, Yuwen Xiong, Yi Li, Guodong Zhang, Han Hu "
                           "and Yichen Wei, *Deformable Convolutional Networks*, ICCV 2017, "
                           "arXiv:1703.06211",
}


def references_markdown(methods: Sequence[str] | None = None) -> str:
    """The publications of `methods` (default: every row of `paper_numbers`), one line each."""
    methods = list(paper_numbers()["method"]) if methods is None else methods
    return "References:\n\n" + "\n".join(f"- **{m}**: {CITATIONS[m]}." for m in methods)


def paper_numbers() -> pd.DataFrame:
    """ImageNet VID val results published for the paper and its peers (ResNet-101).

    mAP is the VID devkit mAP in percent; s/img where the source gives it (Maxwell Titan X).
    """
    nan = math.nan
    rows = [
        ("R-FCN (single frame)", 74.1, nan, nan, nan, 0.133, "DFF README"),
        ("DFF", 73.0, nan, nan, nan, 0.034, "DFF README"),
        # The official MXNet code's README (one-phase DET+VID training), not the ICCV paper's
        # table (two-phase, the authors' internal Caffe code): the README says they differ.
        ("FGFA", 77.1, 85.9, 75.7, 56.1, nan, "FGFA README (official code)"),
        ("MANet", 78.1, nan, nan, nan, nan, "MANet paper"),
        ("SELSA", 80.3, nan, nan, nan, nan, "SELSA paper"),
        ("MEGA", 82.9, nan, nan, nan, nan, "MEGA paper"),
        ("LSTS", 77.2, nan, nan, nan, nan, "LSTS paper (ECCV 2020)"),
    ]
    df = pd.DataFrame(rows, columns=["method", "mAP", "slow", "medium", "fast", "s_per_img",
                                     "source"])
    df.attrs["source"] = PAPER_SOURCE
    return df


# The GPU recipe runs the paper preset's plan: its seeds (a claim needs paired seeds: one seed is
# "not testable"; three give a t-interval with 2 degrees of freedom at 3x one seed's GPU time)
# and its variants (null: the whole catalogue).
PAPER_PLAN = load_plan("paper")
PAPER_SEEDS = PAPER_PLAN.seeds
PAPER_VARIANTS: tuple[str, ...] = PAPER_PLAN.variants or tuple(VARIANTS)


def not_trained_in_report(names: Sequence[str]) -> list[str]:
    """The variants of `names` the report preset's plan does not train (it has no SynthVID
    number for them)."""
    trained = load_plan("report").variants or tuple(VARIANTS)
    return [n for n in names if n not in trained]


def paper_commands(data_root: str = "/path/to/ILSVRC2015", gpus: int = 8,
                   runs: Sequence[str] = PAPER_VARIANTS,
                   seeds: Sequence[int] = PAPER_SEEDS) -> list[str]:
    """The commands that fill the "ours on ImageNet VID" column on a GPU machine, as the lines
    of one bash script (the README and notebook 05 show the same lines).

    One loop over `seeds` and `runs` (default: the paper preset's plan) trains each run with
    the paper preset (`lsts_lib/configs/paper.yaml`) and its variant overrides, on `gpus` GPUs
    through torchrun, in one stage from ImageNet weights as the official code (no
    `--init-from`), then detects and evaluates it on all val frames; `lsts bench --device
    cuda` adds the GPU timing, `lsts claims` the paired intervals and verdicts of the claims
    these runs cover, and papermill reruns notebook 05 on runs/paper. A comment names the
    variants the CPU report never trained. The preset's lr assumes 8 GPUs.
    """
    untrained = not_trained_in_report(runs)
    out = [f"# on a machine with {gpus} GPUs and ImageNet VID unpacked at {data_root}",
           f"DATA={shlex.quote(data_root)}",
           'python data_prep/check_imagenet_vid.py --root "$DATA"',
           "# every run in one stage from ImageNet weights (the paper preset, "
           "lsts_lib/configs/paper.yaml)"]
    if untrained:
        out.append(f"# ({', '.join(untrained)}: never trained in the CPU report, so there "
                   "is no SynthVID number to set beside it)")
    out += [
        f"for seed in {' '.join(map(str, seeds))}; do",
        f"  for variant in {' '.join(runs)}; do",
        "    out=runs/paper/$variant/seed$seed",
        f"    torchrun --nproc_per_node {gpus} -m lsts_lib train --config paper "
        '--variant "$variant" --out "$out" seed=$seed data.root="$DATA"',
        '    lsts detect --checkpoint "$out/model.pt" --data "$DATA" --split val '
        '--out "$out/detections"',
        '    lsts evaluate --data "$DATA" --split val --detections '
        '"$out/detections/detections.txt" --json "$out/eval.json"',
        "  done",
        "done",
        "lsts bench --config paper --device cuda --json runs/paper/bench_cuda.json",
        "lsts bench --config paper --device cpu --json runs/paper/bench_cpu.json",
        'lsts claims --runs runs/paper --data "$DATA" --split val '
        "--json runs/paper/claims.json",
        "papermill notebooks/05_results.ipynb notebooks/05_results.ipynb --cwd notebooks "
        '-k python3 -p PRESET paper -p DATA_ROOT "$DATA"']
    return out


def speed_table(bench_cpu: Mapping[str, Any], bench_gpu: Mapping[str, Any] | None = None,
                summary: pd.DataFrame | None = None, size: str | None = None) -> pd.DataFrame:
    """Runtime per frame at the paper's size: CPU ms, GPU ms, GFLOPs and SynthVID accuracy.

    Times are amortised over a key interval (one key frame, k-1 non-key frames). The CPU ms
    columns are STAGE_SUM (the headline: every ratio and claim reads them), with their range
    over the repeats (`amortised_ranges`), then the same frames as WHOLE_FRAME and its range.
    GPU columns read "not measured" unless a CUDA benchmark JSON is given. The speed-up over
    the single-frame detector is set beside the FLOP ratio: their quotient is the share of the
    design's saving the implementation realises (1 = time falls as the FLOPs do). "% of peak"
    is the achieved GFLOP/s of a key / non-key frame against the machine's measured fp32 peak.
    The feature network's (backbone's) GFLOPs of a key frame stand beside a flow variant's flow
    network GFLOPs per non-key frame. Speed-only configurations of the benchmark (never
    trained) follow the run they are a size of, with "speed only" as their accuracy.
    """
    size = size or bench_size(bench_cpu)
    cpu = bench_table(bench_cpu, size)
    gpu = bench_table(bench_gpu, size) if bench_gpu is not None else None
    runs = (list(summary.index) if summary is not None
            else list(cpu.loc[~cpu["speed_only"], "variant"]))
    for _, only in cpu[cpu["speed_only"]].iterrows():  # after the run of the architecture
        at = [i for i, r in enumerate(runs) if r == only["model_variant"]
              or (summary is not None and summary.loc[r, "variant"] == only["model_variant"])]
        runs.insert(at[-1] + 1 if at else len(runs), only["variant"])
    sf = _bench_lookup(cpu, "single_frame", "single_frame")
    rows = []
    for run in runs:
        trained = summary is not None and run in summary.index
        variant = summary.loc[run, "variant"] if trained else run
        c = _bench_lookup(cpu, run, variant)
        g = _bench_lookup(gpu, run, variant) if gpu is not None else None
        flop_ratio = (sf["gflops"] / c["gflops"] if c is not None and sf is not None
                      and c["gflops"] > 0 else math.nan)
        row: dict[str, Any] = {
            "variant": (summary.loc[run, "label"] if trained
                        else c["label"] if c is not None else run_label(run)),
            "CPU ms (key)": c["key_ms"] if c is not None else math.nan,
            "CPU ms (non-key)": c["nonkey_ms"] if c is not None else math.nan,
            "CPU ms (amortised)": c["amortised_ms"] if c is not None else math.nan,
            "CPU ms range (amortised)": range_text(
                None if c is None or math.isnan(c["amortised_lo"]) else
                (c["amortised_lo"], c["amortised_hi"])),
            "CPU ms, whole frames (amortised)": c["whole_ms"] if c is not None else math.nan,
            "whole-frame range": range_text(
                None if c is None or math.isnan(c["whole_lo"]) else
                (c["whole_lo"], c["whole_hi"])),
            "GPU ms (amortised)": g["amortised_ms"] if g is not None else NOT_MEASURED,
            "GFLOPs": c["gflops"] if c is not None else math.nan,
            "feature net GFLOPs": c["feature_gflops"] if c is not None else math.nan,
            "flow net GFLOPs": c["flow_gflops"] if c is not None else math.nan,
            "speed-up vs single frame": c["speedup"] if c is not None else math.nan,
            "FLOP ratio vs single frame": flop_ratio,
            "speed-up / FLOP ratio": (c["speedup"] / flop_ratio
                                      if c is not None and flop_ratio > 0 else math.nan),
            "% of peak (key)": 100 * c["key_peak"] if c is not None else math.nan,
            "% of peak (non-key)": 100 * c["nonkey_peak"] if c is not None else math.nan,
            "peak MB": c["peak_mb"] if c is not None else math.nan,
        }
        if summary is not None:
            row[SYNTH_MAP] = (round(float(summary.loc[run, "mAP"]), 1) if trained
                                   else SPEED_ONLY_TEXT)  # a mixed column: pre-rounded
        rows.append(row)
    return pd.DataFrame(rows)


def flow_cost_line(bench: Mapping[str, Any], size: str | None = None) -> str | None:
    """Each flow network's GFLOPs as a share of the feature network's (ResNet-101 at the
    paper's size), the ratio DFF's speed-up rests on; None without a flow variant."""
    cost = bench_table(bench, size)
    flows = cost[cost["flow_gflops"] > 0]
    if flows.empty:
        return None
    parts = [f"{r['label']}: {r['flow_gflops']:.1f} GFLOPs = 1/{r['feature_gflops'] / r['flow_gflops']:.1f}"
             for _, r in flows.iterrows()]
    feature = flows["feature_gflops"].iloc[0]
    return (f"Flow network per non-key frame against the feature network's {feature:.1f} GFLOPs "
            f"({bench['sizes'][cost['size'].iloc[0]].get('backbone', 'backbone')}): "
            + "; ".join(parts) + ".")


MODE_VARIANTS = ("single_frame", "lsts")  # the runs the speed-option table compares


def load_detect_options(runs: Path) -> dict[str, Any] | None:
    """runs/<preset>/detect_options.json (each speed option's mAP change), None when absent."""
    path = Path(runs) / rundir.DETECT_OPTIONS
    return _read_json(path, "lsts report --only detect") if path.is_file() else None


def mode_results(bench: Mapping[str, Any], size: str | None = None
                 ) -> dict[str, dict[str, Any]]:
    """{mode: {variant: result}} of the benchmark at `size`: the default (fp32 NCHW) first,
    then each speed mode timed at that size."""
    size = size or bench_size(bench)
    return {inference.DEFAULT_MODE: (bench.get("results") or {}).get(size, {})} | {
        name: e["results"][size] for name, e in (bench.get("modes") or {}).items()
        if size in e.get("results", {})}


def mode_table(bench: Mapping[str, Any], detect_options: Mapping[str, Any] | None = None,
               size: str | None = None, variants: Sequence[str] = MODE_VARIANTS
               ) -> pd.DataFrame:
    """Per speed mode of the benchmark (the fp32 NCHW default first): each variant's amortised
    CPU ms and speed-up over the default, each non-single-frame variant's speed-up over the
    single-frame detector of the same mode divided by its FLOP ratio, and, from
    `detect_options`, the change of each variant's test mAP (points) under that mode. Options
    the device cannot run natively get a row saying why (from the benchmark's capability
    probe; bf16, what `--amp` asks for). Empty when no mode was timed at the size."""
    size = size or bench_size(bench)
    modes = mode_results(bench, size)
    default = modes[inference.DEFAULT_MODE]
    if len(modes) == 1:
        return pd.DataFrame()
    detected = (detect_options or {}).get("rows", [])
    deltas = {(r["variant"], r["mode"]): r["mAP_change"] for r in detected}
    rows = []
    for mode, res in modes.items():
        row: dict[str, Any] = {"mode": mode}
        for v in variants:
            e = res.get(v)
            row[f"{v} ms"] = _get(e, "amortised_ms") if e else math.nan
            row[f"{v} speed-up"] = (1.0 if mode == inference.DEFAULT_MODE
                                    else _get(e, SPEEDUP) if e else math.nan)
            if v != STAGE1:  # its speed-up over single_frame (same mode) / FLOP ratio
                sf = default.get(STAGE1)
                flop_ratio = (_get(sf, "amortised_gflops") / _get(e, "amortised_gflops")
                              if e and sf else math.nan)
                row[f"{v} speed-up / FLOP ratio"] = (
                    _get(e, "speedup_vs_single_frame") / flop_ratio if e else math.nan)
            if detect_options is not None:
                change = deltas.get((v, mode))
                row[f"{v} mAP change"] = 100 * change if change is not None else math.nan
        # What --fold-bn found in the detected (trained) models: their norm layers may differ
        # from the benchmarked size's (e.g. GroupNorm: nothing to fold, no mAP change).
        folds = dict.fromkeys(r.get("notes", {}).get("fold_bn") for r in detected
                              if r["mode"] == mode)
        row["note"] = "; ".join(f"detected models: {n}" for n in folds if n)
        rows.append(row)
    for amp, why in (bench.get("amp_support") or {}).items():
        if why and amp == inference.DEFAULT_AMP:  # the precision `--amp` asks for
            rows.append({"mode": f"amp_{amp}", "note": f"{amp}: {why}"})
    return pd.DataFrame(rows)


def mode_markdown(modes: pd.DataFrame, variant: str = "lsts") -> str:
    """One reading of `mode_table`: the mode with the fastest `variant`, its speed-ups over
    the default, `variant`'s speed-up / FLOP ratio under it against the default's, and the
    largest mAP change any mode caused."""
    col = f"{variant} speed-up"
    timed = modes[modes[col].notna()] if col in modes else pd.DataFrame()
    if len(timed) < 2:
        return "No speed option was timed at this size."
    default, best = timed.iloc[0], timed.loc[timed[col].idxmax()]
    quotient = f"{variant} speed-up / FLOP ratio"
    parts = ", ".join(f"{label(c.removesuffix(' speed-up'))} {best[c]:.2f}x"
                      for c in timed.columns if c.endswith(" speed-up"))
    text = (f"The fastest mode for {label(variant)} is `{best['mode']}` ({parts} over "
            f"`{default['mode']}`)")
    if quotient in timed and best["mode"] != default["mode"]:
        text += (f"; under it the speed-up of {label(variant)} over the single-frame detector "
                 f"is {best[quotient]:.2f} of its FLOP ratio, against {default[quotient]:.2f} "
                 "by default")
    text += "."
    changes = modes[[c for c in modes.columns if c.endswith(" mAP change")]].abs()
    if not changes.empty and changes.notna().any().any():
        worst = float(changes.max().max())
        text += (" The options left every detected test mAP unchanged (to 0.01 points)."
                 if worst < 0.005 else
                 f" The largest change of a detected test mAP under an option is {worst:.2f} "
                 "points.")
    if "note" in modes and modes["note"].fillna("").str.contains(" 0 BatchNorm").any():
        text += (" The trained models here use GroupNorm, so `--fold-bn` folds nothing in them "
                 "and their mAP cannot test it; its speed-up is the benchmark's ResNet-101 with "
                 "frozen BatchNorm.")
    return text


def stage_rate_table(bench: Mapping[str, Any], variant: str = "lsts",
                     size: str | None = None) -> pd.DataFrame:
    """Where a variant's key and non-key frame time goes: per stage, median ms, its fastest and
    slowest call (NaN when the benchmark kept no repeats), GFLOPs, achieved GFLOP/s and its
    share of the measured peak (stages without counted FLOPs: NaN)."""
    size = size or bench_size(bench)
    res = (bench.get("results") or {}).get(size, {})
    if variant not in res:
        raise ValueError(f"benchmark JSON has no {variant!r} at size {size!r} "
                         f"(has: {', '.join(res) or 'none'})")
    rows = []
    for kind, title in (("key", "key frame"), ("nonkey", "non-key frame")):
        for stage, e in res[variant][kind].get("stages", {}).items():
            frac = e.get("fraction_of_peak")
            lo, hi = repeats_range(e) or (math.nan, math.nan)
            rows.append({"frame": title, "stage": stage, "ms": _get(e, "ms"), "min ms": lo,
                         "max ms": hi,
                         "GFLOPs": _get(e, "flops") / 1e9, "GFLOP/s": _get(e, "gflop_per_s"),
                         "% of peak": 100 * frac if frac is not None else math.nan})
    return pd.DataFrame(rows)


def stage_category_table(bench: Mapping[str, Any], size: str | None = None) -> pd.DataFrame:
    """Every variant's key and non-key frame ms by category (`engine.bench.CATEGORY`), each
    a sum of the per-stage medians `stage_rate_table` lists; every column names the stages
    it sums (e.g. "non-key fusion (low2high + dfa_fuse)"), so a category is never read as
    one of its stages."""
    size = size or bench_size(bench)
    res = (bench.get("results") or {}).get(size, {})
    cols: dict[str, dict[str, float]] = {}
    for kind, title in (("key", "key"), ("nonkey", "non-key")):
        for cat in BENCH_CATEGORIES:
            # Stages of this category in any variant, in the order the benchmark ran them.
            stages = list(dict.fromkeys(n for e in res.values() for n in e[kind]["stages"]
                                        if BENCH_CATEGORY[n] == cat))
            if not stages:
                continue
            col = f"{title} {cat} ({' + '.join(stages)})"
            cols[col] = {name: sum(e[kind]["stages"].get(n, {}).get("ms", 0.0)
                                   for n in stages) for name, e in res.items()}
    return pd.DataFrame(cols)


def alignment_timing_markdown(bench_lsts: Mapping[str, Any], bench: Mapping[str, Any],
                              variant: str = "lsts") -> str:
    """The LSTS alignment's times from its two benchmarks, each with what it measures and its
    spread over the repeats: the module alone (`lsts bench-lsts`, both forms) and the same
    efficient module as a stage of the paper-size detector (`lsts bench`: srfu_align at a key
    frame, dfa_align at a non-key frame); how far apart the two medians are against the
    spread within each run; the share of a key frame from `lsts bench` alone, so both sides
    of that ratio come from one benchmark."""
    size = bench_size(bench)
    shape, r = bench_lsts["shape"], bench["results"][size][variant]
    key, nonkey = r["key"]["stages"], r["nonkey"]["stages"]
    hw = backbone_blocks(bench, size)[-1]["out_hw"]
    input_hw_ = "x".join(map(str, bench["sizes"][size]["input_hw"]))
    same = [shape["height"], shape["width"]] == list(hw)
    alone = bench_lsts["efficient_ms"]
    align, dense = key["srfu_align"]["ms"], nonkey["dfa_align"]["ms"]

    def spread(entry: Mapping[str, Any], field: str = "ms_repeats") -> str:
        rng = repeats_range(entry, field)
        return "" if rng is None else f", calls {range_text(rng, 1)} ms"

    within = [rng[1] / rng[0] for rng in (repeats_range(bench_lsts, "efficient_ms_repeats"),
                                          repeats_range(key["srfu_align"]),
                                          repeats_range(nonkey["dfa_align"])) if rng]
    between = max(alone, align, dense) / min(alone, align, dense)
    if not same:
        gap = ("The map sizes differ (the JSON of `lsts bench-lsts` predates the detector's "
               "padded size): rerun it to compare like with like. ")
    elif len(within) == 3:
        gap = (f"Both time the same computation (the same module, map and FLOPs) in separate "
               f"runs, yet their medians differ by up to {between:.2f}x, while within any one "
               f"run the slowest call is at most {max(within):.2f}x the fastest: the machine "
               "(shared with other jobs) ran at another speed when each was timed, and every "
               "single time in this report carries an uncertainty of that size beyond the "
               "spread its repeats show. ")
    else:
        gap = (f"Both time the same computation (the same module, map and FLOPs) in separate "
               f"runs, yet their medians differ by up to {between:.2f}x: the machine ran at "
               "another speed when each was timed (the repeats of these runs were not kept, "
               "so their own spread is unknown). ")
    return (
        f"Two measurements of the same alignment. `lsts bench-lsts` times `LSTSAlign` alone "
        f"(embeddings f, g and the aggregation) on a {shape['height']}x{shape['width']} map, "
        f"median of {bench_lsts['repeats']}: efficient form {alone:.1f} ms"
        f"{spread(bench_lsts, 'efficient_ms_repeats')}, naive form "
        f"{bench_lsts['naive_ms']:.1f} ms{spread(bench_lsts, 'naive_ms_repeats')}. "
        f"`lsts bench` times the efficient module as a stage of the {variant} detector at "
        f"{input_hw_} ({hw[0]}x{hw[1]} map), median of {bench['repeats']}: srfu_align "
        f"{align:.1f} ms{spread(key['srfu_align'])} at a key frame, dfa_align {dense:.1f} ms"
        f"{spread(nonkey['dfa_align'])} at a non-key frame. "
        + gap
        + f"Within `lsts bench`, the alignment is {100 * align / r['key']['ms']:.1f}% of an "
        f"LSTS key frame ({r['key']['ms']:.0f} ms, {STAGE_SUM}); the fusion columns below are "
        "the quality network, and at a non-key frame also low2high.")


def same_work_table(bench: Mapping[str, Any], size: str | None = None) -> pd.DataFrame:
    """Stages that do the same work in several variants (the same stage of the same frame
    kind with the same counted FLOPs), each timed in its own variant's pass of `lsts bench`:
    per such stage the variants, the fastest and slowest median, their ratio ("between
    passes") and the largest ratio of slowest to fastest call within one pass (NaN when the
    repeats were not kept). The stages timed once for every variant (SHARED_STAGES) are left
    out: their numbers are one measurement."""
    size = size or bench_size(bench)
    res = (bench.get("results") or {}).get(size, {})
    groups: dict[tuple[str, str, int], dict[str, Mapping[str, Any]]] = {}
    for name, e in res.items():
        if e.get("speed_only"):
            continue
        for kind in ("key", "nonkey"):
            for stage, st in e[kind].get("stages", {}).items():
                if stage not in SHARED_STAGES and st.get("flops"):
                    groups.setdefault((kind, stage, int(st["flops"])), {})[name] = st
    rows = []
    for (kind, stage, flops), by in groups.items():
        if len(by) < 2:
            continue
        ms = {n: float(st["ms"]) for n, st in by.items()}
        within = [hi / lo for lo, hi in filter(None, map(repeats_range, by.values()))]
        rows.append({"frame": "key frame" if kind == "key" else "non-key frame",
                     "stage": stage, "GFLOPs": flops / 1e9, "variants": ", ".join(by),
                     "fastest ms": min(ms.values()), "slowest ms": max(ms.values()),
                     "between passes": max(ms.values()) / min(ms.values()),
                     "within one pass": max(within) if len(within) == len(by) else math.nan})
    return pd.DataFrame(rows, columns=["frame", "stage", "GFLOPs", "variants", "fastest ms",
                                       "slowest ms", "between passes", "within one pass"])


def same_work_markdown(table: pd.DataFrame) -> str:
    """Reads `same_work_table`: how far the same work's time moves between the benchmark's
    passes against within one, and so how large a difference between variants' times must
    be to be a measured one."""
    if table.empty:
        return "No stage does the same work in two benchmarked variants."
    worst = table.loc[table["between passes"].idxmax()]
    text = (f"The same module timed in different variants' passes of `lsts bench` differs by up "
            f"to {worst['between passes']:.2f}x ({worst['stage']} at a {worst['frame']}, "
            f"{worst['GFLOPs']:.1f} GFLOPs in each of {worst['variants']}: "
            f"{worst['fastest ms']:.1f} to {worst['slowest ms']:.1f} ms)")
    within = table["within one pass"]
    if within.notna().all():
        text += (f", while within one pass a stage's slowest call is at most "
                 f"{within.max():.2f}x its fastest. The machine (shared with other jobs) "
                 "changed speed between passes, which the repeats of one pass do not see")
    else:
        text += (". The calls within a pass were not kept, so how much of that one pass's "
                 "own repeats would show is unknown")
    return (text + f"; a difference between two variants' times smaller than "
            f"{100 * (worst['between passes'] - 1):.0f} % is therefore not a measured "
            "difference.")


def timing_measures_markdown(bench: Mapping[str, Any], variant: str = "lsts",
                             size: str | None = None) -> str:
    """Which of the benchmark's timings is the headline, and why, with `variant`'s amortised
    frame under the two measures of a frame."""
    size = size or bench_size(bench)
    r = bench["results"][size][variant]
    whole = r.get("amortised_ms_measured")
    calls = len(r["key"].get("ms_measured_repeats") or [None])  # once before bench code 6
    whole_calls = "once" if calls == 1 else f"{calls} times"
    both = (f" (for {label(variant)} at {'x'.join(map(str, bench['sizes'][size]['input_hw']))}: "
            f"{r['amortised_ms']:.0f} ms per amortised frame as the {STAGE_SUM}, "
            f"{whole:.0f} ms as the {WHOLE_FRAME})" if whole else "")
    return (f"Which time is the headline: every frame cost in this report (the speed tables, "
            f"claims 2 and 5, the README) is the {STAGE_SUM}, each stage of the frame timed "
            f"{bench.get('repeats', '?')} times after a warm-up call; the {WHOLE_FRAME} (each "
            f"frame timed {whole_calls} as one call) checks it{both}, and "
            f"notebook 02's backbone and cut tables are a {BLOCK_SUM}. The {STAGE_SUM} is the "
            "headline because the claims' cost rules were fixed on it before the final run and "
            "because it splits into stages, so a difference between variants can be traced to "
            "the stage that makes it.")


# Cuts of ResNet-101 notebook 02 compares: res4a (the first block at stride 16), res4b3 (the
# paper's "Conv4_3", the official cut), res4b10 (about halfway) and res4b22 (the end of res4).
CUTS = ("res4a", "res4b3", "res4b10", "res4b22")


def backbone_blocks(bench: Mapping[str, Any], size: str | None = None) -> list[dict[str, Any]]:
    """The benchmark's per-block backbone entries at `size` (conv1 .. feat_conv, in order)."""
    size = size or bench_size(bench)
    blocks = (bench.get("blocks") or {}).get(size)
    if not blocks:
        raise ValueError(f"benchmark JSON has no per-block backbone cost at size {size!r} "
                         "(made before `lsts bench` recorded it: rerun `lsts bench`)")
    return list(blocks)


def configured_cut(blocks: Sequence[Mapping[str, Any]]) -> str:
    """The block the benchmarked low part ends at (its last "low" block)."""
    return [b["name"] for b in blocks if b["part"] == "low"][-1]


def backbone_stage_table(bench: Mapping[str, Any], size: str | None = None) -> pd.DataFrame:
    """The per-block entries grouped into the backbone's stages: conv1, res2, res3, res4's low
    blocks, res4's high blocks, res5, feat_conv. Per stage: output channels, stride, size and
    receptive field, GFLOPs and ms (sums over its blocks), part, achieved GFLOP/s."""
    blocks = backbone_blocks(bench, size)
    res4 = {p: [b["name"] for b in blocks if b["name"].startswith("res4") and b["part"] == p]
            for p in ("low", "high")}
    def stage(b: Mapping[str, Any]) -> str:
        names = res4[b["part"]] if b["name"].startswith("res4") else []
        if not names:
            return b["name"]
        return f"{names[0]}..{names[-1]} ({b['part']})" if len(names) > 1 else names[0]
    rows: dict[str, dict[str, Any]] = {}
    for b in blocks:
        row = rows.setdefault(stage(b), {"GFLOPs": 0.0, "ms": 0.0})
        row |= {"channels": b["channels"], "stride": b["stride"],
                "size": "x".join(map(str, b["out_hw"])), "receptive_field": b["receptive_field"],
                "part": b["part"], "GFLOPs": row["GFLOPs"] + b["flops"] / 1e9,
                "ms": row["ms"] + b["ms"]}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "stage"
    df["GFLOP/s"] = df["GFLOPs"] / df["ms"] * 1e3
    return df[["channels", "stride", "size", "receptive_field", "part", "GFLOPs", "ms",
               "GFLOP/s"]]


def cut_cost(bench: Mapping[str, Any], cut: str, size: str | None = None) -> dict[str, Any]:
    """What cutting the backbone after res4 block `cut` costs, from the per-block medians.

    low = conv1 .. cut (a non-key frame's backbone), high = the rest (key frames only); ms
    and GFLOPs are sums over blocks. `nonkey_share` = low / (low + high) time: a non-key
    frame's backbone against a key frame's. `amortised_share` = (1 + (k-1) nonkey_share) / k:
    the backbone time per frame at the benchmark's key interval k against running the whole
    backbone on every frame, and `speedup` its inverse (`speedup_flops`: the same in FLOPs). Backbone only: the non-key frame's
    low2high, alignment and the head come on top (the same at every res4 cut: every res4
    block gives the same shape). Raises ValueError for a name that is not a res4 block.
    """
    blocks = backbone_blocks(bench, size)
    names = [b["name"] for b in blocks]
    if cut not in names or not cut.startswith("res4"):
        res4 = [n for n in names if n.startswith("res4")]
        raise ValueError(f"cannot cut the backbone at {cut!r}: not one of its res4 blocks "
                         f"({', '.join(res4)})")
    n_low = names.index(cut) + 1
    low, high = blocks[:n_low], blocks[n_low:]
    low_ms, high_ms = sum(b["ms"] for b in low), sum(b["ms"] for b in high)
    low_flops, high_flops = sum(b["flops"] for b in low), sum(b["flops"] for b in high)
    k = int(bench["key_interval"])
    share = low_ms / (low_ms + high_ms)
    share_flops = low_flops / (low_flops + high_flops)
    amortised = (1 + (k - 1) * share) / k
    return {"cut": cut, "official": cut == configured_cut(blocks),
            "low_ms": low_ms, "low_gflops": low_flops / 1e9,
            "high_ms": high_ms, "high_gflops": high_flops / 1e9,
            "receptive_field": blocks[n_low - 1].get("receptive_field"),
            "nonkey_share": share, "nonkey_share_flops": share_flops,
            "key_interval": k, "amortised_share": amortised, "speedup": 1 / amortised,
            "speedup_flops": k / (1 + (k - 1) * share_flops)}


def cut_table(bench: Mapping[str, Any], cuts: Sequence[str] | None = None,
              size: str | None = None) -> pd.DataFrame:
    """`cut_cost` of each of `cuts`, one row per cut (default: the `CUTS` this backbone has,
    its configured cut and the end of its res4, in block order); `official` marks the
    configured cut."""
    if cuts is None:
        blocks = backbone_blocks(bench, size)
        res4 = [b["name"] for b in blocks if b["name"].startswith("res4")]
        cuts = [n for n in res4 if n in CUTS or n in (configured_cut(blocks), res4[-1])]
    rows = [cut_cost(bench, cut, size) for cut in cuts]
    df = pd.DataFrame(rows).set_index("cut")
    return df.rename(columns={
        "low_ms": "low ms", "low_gflops": "low GFLOPs", "high_ms": "high ms",
        "high_gflops": "high GFLOPs", "receptive_field": "RF (px)",
        "nonkey_share": "non-key/key (ms)", "nonkey_share_flops": "non-key/key (FLOPs)",
        "amortised_share": "amortised share", "speedup": "backbone speed-up",
        "speedup_flops": "speed-up (FLOPs)"}
    ).drop(columns="key_interval")


def block_sums_markdown(bench: Mapping[str, Any], size: str | None = None) -> str:
    """Why the per-block times of the low (and high) part do not add up to the stage's time:
    both numbers and how `lsts bench` measured each (`bench_blocks` against the `low` and
    `high` stages of `bench_size`)."""
    size = size or bench_size(bench)
    blocks = backbone_blocks(bench, size)
    res = bench["results"][size]
    stages = (res.get(STAGE1) or next(iter(res.values())))["key"]["stages"]
    repeats = bench.get("repeats", "?")
    parts = {p: [b for b in blocks if b["part"] == p] for p in ("low", "high")}
    sums = {p: sum(b["ms"] for b in bs) for p, bs in parts.items()}

    def versus(p: str) -> str:
        diff = sums[p] / stages[p]["ms"] - 1
        return f"{sums[p]:.0f} ms, {abs(diff):.1%} {'more' if diff >= 0 else 'less'} than"

    low = parts["low"]
    span = f"{low[0]['name']} … {low[-1]['name']}"
    flops_agree = all(sum(b["flops"] for b in parts[p]) == stages[p]["flops"] for p in parts)
    flops = (f"Their FLOPs, which no timing affects, agree exactly "
             f"({stages['low']['flops'] / 1e9:.1f} and {stages['high']['flops'] / 1e9:.1f} "
             "GFLOPs)." if flops_agree else
             "Their FLOPs differ too, so the two do not describe the same network: rerun "
             "`lsts bench`.")
    return (f"The per-block times of the low part ({span}) add up to {versus('low')} the "
            f"{stages['low']['ms']:.0f} ms the low stage measures as a whole (high part: "
            f"{versus('high')} {stages['high']['ms']:.0f} ms). These are two separate "
            f"measurements, not one split in two: `lsts bench` times each block on its own "
            f"(the median of {repeats} calls of that block alone, on the previous block's "
            f"output), and, earlier in the same run, the low stage as one call that runs "
            f"{span} back to back (the median of {repeats} such calls after a warm-up call). "
            f"A sum of {len(low)} medians is not the median of {repeats} totals, and the two "
            f"were timed at different moments on the same machine. {flops} The cut table "
            "prices every cut from the per-block times, so that all cuts are priced the same "
            "way; the frame costs further down, like notebook 05's speed table and the "
            "README, add up stage medians.")


# The cut comparison's tuning runs (stage 2 of a variant from the shared stage-1 model with
# the backbone split at another res4 block, model.cut): S2_<variant>_cut_<block>_s<seed>.
CUT_RUN = re.compile(r"^S2_(?P<variant>\w+?)_cut_(?P<cut>res4\w+)_s(?P<seed>\d+)$")


def cut_commands(path: Path, variant: str = "lsts") -> str:
    """One Markdown line naming the commands behind the cut comparison's rows (`CUT_RUN`, the
    `commands` each row records), one row of each cut shown; OUT stands for the row's folder."""
    shown: dict[str, tuple[str, list[str]]] = {}
    with open(_need(Path(path), "the tuning runs (see notebook 06)"), encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line) if line.strip() else {}
            m = CUT_RUN.match(str(r.get("name", "")))
            if m and m["variant"] == variant and r.get("commands"):
                shown.setdefault(m["cut"], (r["name"], list(r["commands"])))
    if not shown:
        return f"The rows of the cut comparison for {variant} record no commands."
    parts = [f"{name}: " + " then ".join(f"`{c}`" for c in cmds)
             for name, cmds in shown.values()]
    return ("Made by (tuning/" + Path(path).name + ", one row of each cut shown; OUT is the "
            "row's folder): " + "; ".join(parts) + ".")


def seed_std(claims: Sequence[Claim], run: str = "lsts") -> tuple[float, int] | None:
    """(standard deviation over seeds of `run`'s test mAP in points, number of seeds) from
    the first claim that lists `run` per seed; None when no claim has two seeds of it."""
    for c in claims:
        values = [v for v in c.per_seed.get(run, []) if math.isfinite(v)]
        if len(values) > 1:
            return float(pd.Series(values).std(ddof=1)), len(values)
    return None


def cut_accuracy(tuning: pd.DataFrame, noise: tuple[float, int] | None = None,
                 variant: str = "lsts", dev_videos: int | None = None
                 ) -> tuple[pd.DataFrame, str]:
    """Dev mAP of `variant` at each cut, from the `tuning_table` rows named `CUT_RUN`, and a
    sentence. One row per cut (the default first: the cut whose rows set no model.cut), one
    column per seed, their mean, and the mean over seeds of the paired difference to the
    default cut (same seed, same stage-1 model). `noise`: `seed_std` of the variant's test
    mAP, the yardstick the sentence holds the difference against; `dev_videos`: how many
    videos the dev split has (for the sentence)."""
    rows = []
    for _, r in tuning.iterrows():
        m = CUT_RUN.match(str(r["name"]))
        if m and m["variant"] == variant:
            rows.append({"cut": m["cut"], "seed": int(m["seed"]), "dev mAP": r["dev mAP"],
                         "default": "model.cut=" not in str(r["what changed"])})
    if not rows:
        raise ValueError(f"no tuning row of the cut comparison for {variant!r} (named like "
                         f"S2_{variant}_cut_res4b1_s0)")
    runs = pd.DataFrame(rows)
    defaults = sorted(set(runs.loc[runs["default"], "cut"]))
    if len(defaults) != 1:
        raise ValueError(f"the cut comparison needs rows of exactly one default cut (no "
                         f"model.cut override), found {defaults or 'none'}")
    default = defaults[0]
    table = runs.pivot_table(index="cut", columns="seed", values="dev mAP", aggfunc="last")
    table = table.reindex([default, *sorted(c for c in table.index if c != default)])
    seeds = list(table.columns)
    table.columns = [f"seed {s}" for s in seeds]
    paired = table.sub(table.loc[default], axis=1)
    table["mean"] = table[[f"seed {s}" for s in seeds]].mean(axis=1)
    table["vs default (paired)"] = paired.mean(axis=1)
    table.insert(0, "default", [c == default for c in table.index])

    parts = []
    for cut in table.index[1:]:
        diffs = paired.loc[cut].dropna()
        if diffs.empty:
            parts.append(f"{cut} has no seed in common with the default cut {default}")
            continue
        per = ", ".join(f"{s}: {d:+.1f}" for s, d in diffs.items())
        ci = ""
        if len(diffs) > 1:  # the paired t-interval over the seeds both cuts ran
            both = table.loc[[cut, default], list(diffs.index)]
            iv = paired_t_interval(both.loc[cut].tolist(), both.loc[default].tolist())
            ci = (f", 95 % paired t-interval [{iv.low:+.1f}, {iv.high:+.1f}]"
                  + (" (excludes zero)" if iv.low > 0 or iv.high < 0 else ""))
        parts.append(f"cut after {cut}: {table.loc[cut, 'mean']:.1f} % against "
                     f"{table.loc[default, 'mean']:.1f} % at the default {default}, "
                     f"{diffs.mean():+.1f} points ({per}){ci}")
    text = (f"Dev mAP of {label(variant)} after stage 2 from the shared stage-1 model, "
            f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}: " + "; ".join(parts) + ".")
    if noise is None:
        return table, text + " No seed spread of its test mAP is recorded to compare with."
    std, n = noise
    alt = paired.drop(index=default)
    # A cut is told apart only when its mean difference exceeds the seed noise and every
    # seed agrees on the sign.
    mixed = [(d > 0).any() and (d < 0).any() for d in (alt.loc[c].dropna() for c in alt.index)]
    large = [abs(m) >= std for m in alt.mean(axis=1)]
    dev = f"{dev_videos} dev videos" if dev_videos else "the dev split"
    text += (f" Its test mAP in the report varies by {std:.1f} points (standard deviation "
             f"over {n} seeds): {len(seeds)} seed{'s' if len(seeds) != 1 else ''} on "
             f"{dev} cannot separate differences smaller than that")
    if any(g and not x for g, x in zip(large, mixed, strict=True)):
        text += ("; a difference as large with every seed agreeing on its sign is still, "
                 "with so few seeds and no interval, an indication, not a verdict.")
    elif any(large):
        text += ("; this difference is not smaller, but the seeds disagree on its sign, so "
                 "these runs do not tell the cuts apart.")
    else:
        text += (", so these runs do not tell the cuts apart"
                 + (" (nor do the seeds agree on the sign)." if any(mixed) else "."))
    return table, text


def peak_line(bench: Mapping[str, Any]) -> str:
    """The machine's measured peak, as `lsts bench` recorded it (or that it did not)."""
    peak = (bench.get("machine_peak") or {}).get("fp32")
    if not peak:
        return "machine peak: not measured (benchmark made before `lsts bench` measured it)"
    best = max(peak["kernels"].items(), key=lambda kv: kv[1]["gflop_per_s"])
    return (f"machine peak (fp32, the benchmark's threads): "
            f"{peak['gflop_per_s']:.0f} GFLOP/s (best kernel: {best[0]})")


def over_peak_note(bench: Mapping[str, Any], variant: str = "lsts") -> str | None:
    """A sentence for the stages of `variant` whose rate exceeded the measured peak (None if
    none did): the peak is the best median of a few probe kernels, an estimate, not a bound."""
    table = stage_rate_table(bench, variant)
    over = table[table["% of peak"] > 100].drop_duplicates("stage")
    if over.empty:
        return None
    names = ", ".join(f"{r.stage} ({r['% of peak']:.1f} %)" for _, r in over.iterrows())
    return (f"Above 100 % of the peak: {names}. The peak is the fastest of a few probe kernels "
            "(a GEMM and ResNet-101's 3x3 convolutions, each the median of 3 calls), measured "
            "once in the same run; it estimates what dense float32 work reaches here and is "
            "not an upper bound, so a stage made of large convolutions can exceed it by a few "
            "per cent.")


# --------------------------------------------------------------------------------------------
# Environment of a run
# --------------------------------------------------------------------------------------------
def run_environment(runs: Path) -> dict[str, Any]:
    """env.json of the first run (versions, hardware) and the seeds found."""
    dirs = run_dirs(runs)
    env = _read_json(dirs[0][2] / "env.json", f"lsts train ... --out {dirs[0][2]}")
    return {"env": env, "seeds": sorted({s for _, s, _ in dirs}), "runs": len(dirs)}


def hardware_line(env: Mapping[str, Any]) -> str:
    """'CPU model, N cores, GPU, versions' from a run's env.json (flat, as `lsts train`
    writes it; a nested {hardware, versions} form is read too). Threads are
    `threads_statement`'s, the one place the report states them."""
    hw = env.get("hardware", env)
    versions = env.get("versions", env)
    parts = []
    for key in ("cpu", "cpu_model", "processor"):
        if hw.get(key):
            parts.append(str(hw[key]))
            break
    for key in ("cpu_cores", "cpu_count", "cores"):
        if hw.get(key):
            parts.append(f"{hw[key]} cores")
            break
    gpu = hw.get("gpu") or hw.get("cuda_device")
    parts.append(f"GPU {gpu}" if gpu else "no GPU")
    for lib in ("python", "torch", "torchvision"):
        if versions.get(lib):
            parts.append(f"{lib} {versions[lib]}")
    return ", ".join(parts)


def bench_device_line(bench: Mapping[str, Any]) -> str:
    """Where a benchmark ran, from its JSON's `device` entry (its threads: in
    `threads_statement`)."""
    dev = bench.get("device") or {}
    if not isinstance(dev, Mapping):
        return str(dev)
    parts = [str(dev.get("name") or dev.get("cpu") or dev.get("type", "?"))]
    if dev.get("torch"):
        parts.append(f"torch {dev['torch']}")
    return ", ".join(parts)


def _counts_text(values: Sequence[int]) -> str:
    """'1' for one value, '1 to 2' for several."""
    vals = sorted(set(values))
    return str(vals[0]) if len(vals) == 1 else f"{vals[0]} to {vals[-1]}"


def threads_statement(runs: Path, bench: Mapping[str, Any] | None = None,
                      bench_lsts: Mapping[str, Any] | None = None,
                      notebook_threads: int | None = None) -> str:
    """The report's one statement of torch intra-op threads, each read from the file its
    process recorded: the compared runs' and the shared stage-1 model's env.json, the
    FlowNet pretraining summary, the detections' timing.json, the two benchmark JSONs; and,
    when given, the notebook's own (`torch.get_num_threads()` of its kernel)."""
    runs = Path(runs)
    parts = []
    train = [int(e["torch_threads"]) for _, _, d in run_dirs(runs)
             if (d / rundir.ENV).is_file()
             and (e := atomic.read_json(d / rundir.ENV)).get("torch_threads")]
    if train:
        parts.append(f"training {_counts_text(train)} per process ({len(train)} runs)")
    stage1 = [int(e["torch_threads"]) for f in sorted(runs.glob(f"{rundir.SHARED_STAGE1}/seed*/"
                                                               f"{rundir.ENV}"))
              if (e := atomic.read_json(f)).get("torch_threads")]
    if stage1:
        parts.append(f"the shared stage-1 model {_counts_text(stage1)}")
    flow = load_flow_pretrain(runs)
    if flow and flow.get("torch_threads"):
        parts.append(f"FlowNet pretraining {flow['torch_threads']}")
    detect = [int(t["torch_threads"]) for _, _, d in run_dirs(runs)
              if (d / rundir.DETECTIONS / "timing.json").is_file()
              and (t := atomic.read_json(d / rundir.DETECTIONS / "timing.json")
                   ).get("torch_threads")]
    if detect:
        parts.append(f"detection {_counts_text(detect)} per process")
    timed = []
    if bench and (bench.get("device") or {}).get("torch_threads"):
        timed.append(f"`lsts bench` {bench['device']['torch_threads']}")
    if bench_lsts and bench_lsts.get("threads"):
        timed.append(f"`lsts bench-lsts` {bench_lsts['threads']}")
    if timed:
        parts.append(" and ".join(timed) + " (every time in this report comes from them)")
    if notebook_threads is not None:
        parts.append(f"this notebook {notebook_threads} (it times nothing)")
    return ("Torch threads, as each process recorded them: " + "; ".join(parts) + "."
            if parts else "Torch threads: not recorded.")


# --------------------------------------------------------------------------------------------
# Markdown (no tabulate dependency)
# --------------------------------------------------------------------------------------------
def markdown_table(df: pd.DataFrame, left: Sequence[str] = ()) -> str:
    """df as a markdown table: the first column and those named in `left` left-aligned, the
    rest right-aligned; cells in full (the renderer wraps them)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" if i == 0 or c in left else "---:"
                          for i, c in enumerate(df.columns)) + "|"
    def cell(v: Any) -> str:  # a missing number (NaN: not applicable) shows as an empty cell
        return "" if isinstance(v, float) and math.isnan(v) else str(v)

    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def mean_std(mean: float, std: float, nd: int = 1) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{nd}f}" if not math.isfinite(std) else f"{mean:.{nd}f} ± {std:.{nd}f}"


def results_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as display strings: 'mean ± std' per metric, costs, n seeds."""
    rows = []
    for _, r in summary.iterrows():
        row = {"Variant": r["label"]}
        for m, title in METRICS.items():
            row[title] = mean_std(r[m], r[f"{m}_std"])
        row[COSTS["cpu_ms"]] = _fmt(r["cpu_ms"], 0)
        row[COSTS["gflops"]] = _fmt(r["gflops"], 1)
        row["seeds"] = int(r["n"])
        rows.append(row)
    return pd.DataFrame(rows)


def _speed_display(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    for col in out.columns[1:]:
        nd = (2 if "speed-up" in col or "ratio" in col or "change" in col
              else 1 if "GFLOP" in col or "mAP" in col else 0)
        out[col] = [v if isinstance(v, str) else _fmt(v, nd) for v in out[col]]
    return out


def _test_split(runs: Path) -> str:
    """The split the preset's compared runs were detected and evaluated on."""
    for _, _, d in run_dirs(runs):
        if (d / rundir.EVAL).is_file():
            return str(json.loads((d / rundir.EVAL).read_text()).get("split", "?"))
    return "?"


# What the speed table's less obvious columns mean (README; notebook 05 says it in prose).
SPEED_COLUMNS = (
    f"Columns: *CPU ms* (key, non-key, amortised) are each a {STAGE_SUM} (every stage of the "
    "frame timed `repeats` times after a warm-up call), *CPU ms range* the sum of the stages' "
    "fastest to slowest calls; *whole frames* the same amortised frame as the "
    f"{WHOLE_FRAME} (each key and non-key frame timed `repeats` times as one call), with its "
    "fastest to slowest; *GFLOPs* per amortised frame; *feature net GFLOPs* the key frame's "
    "backbone (every variant runs it at its key frames), *flow net GFLOPs* a non-key frame's "
    "flow network; "
    "*speed-up / FLOP ratio* the measured speed-up over the single-frame detector divided by "
    "the one its FLOPs predict (1 = the saved FLOPs turn fully into time); *% of peak* the "
    "frame's counted GFLOP/s against the machine's measured fp32 peak; *peak MB* the largest "
    "live tensor memory during a frame, weights excluded; *speed only*: timed with random "
    "weights, never trained (DFF's FlowNet-S at its size, half-resolution input).")


# What the alignment table's columns mean (README; notebook 05 says it in prose).
ALIGNMENT_COLUMNS = (
    "Columns: *EPE* (end-point error) the distance in pixels between the displacement a "
    "propagation implies at a stride-16 feature cell on an object of a non-key frame and the "
    "true one (copy-propagation implies none; "
    "LSTS's is its weighted displacement sum_n S_n(p0) p_n), for all cells and per motion "
    "class; *feature rel. L2* the propagated feature's L2 distance to the current frame's own "
    "high-level feature, relative to that feature's norm; for LSTS, *S entropy* the mean "
    "entropy of its weights S_n(p0) over the N sampling points, beside *uniform: log N*, the "
    "entropy of equal weights, and *max S_n* the mean of the largest weight (1: all weight on "
    "one point); *seeds* how many seeds each mean ± std is over.")


def readme_sources(runs: Path) -> str:
    """The files `readme_block` reads, as a markdown list of paths (the ones present)."""
    root = f"runs/{Path(runs).name}"
    per_run = [rundir.EVAL, rundir.CONFIG, rundir.ENV, rundir.ALIGNMENT, rundir.DEV_LOG]
    top = ["bench_cpu.json", "bench_cuda.json", CLAIMS_FILE, rundir.DETECT_OPTIONS,
           f"{FLOWNET_DIR}/{FLOWNET_SUMMARY}"]
    seen = [f"`{root}/*/seed*/{name}`" for name in per_run
            if any((d / name).is_file() for _, _, d in run_dirs(runs))]
    seen += [f"`{root}/{name}`" for name in top if (Path(runs) / name).is_file()]
    return _listing(seen)


def readme_block(runs: Path) -> str:
    """The README's results section, generated from the JSON files of one preset's runs."""
    runs = Path(runs)
    bench = load_bench(runs, "cpu")
    bench_gpu = load_bench(runs, "cuda")
    df = load_runs(runs, bench)
    summary = summary_table(df)
    envinfo = run_environment(runs)
    n_seeds = sorted(set(summary["n"].astype(int)))
    k = bench.get("key_interval", "k")
    lines = [
        f"_Generated by `lsts report --preset {runs.name}` from {readme_sources(runs)}; do "
        "not edit by hand._",
        "",
        f"Preset **{runs.name}** (SynthVID {_test_split(runs)} split), seeds "
        f"{', '.join(map(str, envinfo['seeds']))} "
        f"({'/'.join(map(str, n_seeds))} per variant, {envinfo['runs']} runs); "
        f"hardware: {hardware_line(envinfo['env'])}. "
        f"{threads_statement(runs, bench, load_bench_lsts(runs))} "
        f"mAP in percent (VID devkit rule), mean ± sample std over seeds, of the preset's "
        f"trained network; CPU time and GFLOPs are the paper's network (ResNet-101, random "
        f"weights) at its 600x1000 input, amortised over a key interval of {k}, from the "
        f"benchmark below ({bench_device_line(bench)}; each frame a {STAGE_SUM}).",
        "",
        markdown_table(results_frame(summary)),
        "",
        f"**Speed at the paper's input size** (ResNet-101 at 600x1000, random weights, key "
        f"interval {k}; CPU: "
        f"{bench_device_line(bench)}; GPU: "
        f"{bench_device_line(bench_gpu) if bench_gpu else 'not measured'}):",
        "",
        markdown_table(_speed_display(speed_table(bench, bench_gpu, summary))),
        "",
        SPEED_COLUMNS,
        "",
        timing_measures_markdown(bench) if "lsts" in (
            (bench.get("results") or {}).get(bench_size(bench)) or {}) else "",
        "",
    ]
    flow_line = flow_cost_line(bench)
    if flow_line:
        lines += [flow_line, ""]
    modes = mode_table(bench, load_detect_options(runs))
    if not modes.empty:
        lines += [
            f"**Speed options** (`lsts bench`/`lsts detect` flags; same benchmark: amortised "
            f"CPU ms and speed-up over {inference.DEFAULT_MODE}; speed-up over the single-"
            "frame detector of the same mode / FLOP ratio; test mAP change in points of the "
            "first seed's runs under the option):",
            "",
            markdown_table(_speed_display(modes)),
            "",
            mode_markdown(modes),
            "",
        ]
    if "lsts" in ((bench.get("results") or {}).get(bench_size(bench)) or {}):
        lines += [
            f"Where LSTS's time goes (same benchmark; {peak_line(bench)}):",
            "",
            markdown_table(stage_rate_table(bench).round(1)),
            "",
            *([note, ""] if (note := over_peak_note(bench)) else []),
            same_work_markdown(same_work_table(bench)),
            "",
        ]
    align = alignment_table(runs)
    if not align.empty:
        lines += [
            f"**Alignment against the true motion** (`lsts alignment`, test split, "
            f"{_seeds_text(align)}: end-point error in pixels of the displacement each "
            "propagation implies at the stride-16 cells on objects of non-key frames; "
            "copy-propagation implies none; feature error relative to the current frame's own "
            "high-level feature):",
            "",
            markdown_table(alignment_display(align)),
            "",
            ALIGNMENT_COLUMNS,
            "",
        ]
    flow_pre = load_flow_pretrain(runs)
    if flow_pre is not None:
        flow_tab = flow_pretrain_table(flow_pre, align)
        lines += [
            "**The flow baseline's FlowNet, pretrained on SynthVID's true flow** (`lsts "
            "flow-pretrain`; end-point error in pixels on objects of the test split's non-key "
            "frames):",
            "",
            markdown_table(flow_tab.round(2).reset_index()),
            "",
            flow_pretrain_markdown(flow_pre, flow_tab),
            "",
        ]
    if not (runs / CLAIMS_FILE).is_file():
        lines.append(f"**The paper's claims on this data**: not computed yet "
                     f"(`{claims_command(runs)}`).")
        return "\n".join(lines)
    cs, meta = load_claims(runs)
    lines += [
        f"**The paper's claims on this data** ({meta.get('split', '?')} split, "
        f"{meta.get('num_videos', '?')} videos; intervals {100 * CONFIDENCE:.0f} %, seeds "
        f"paired, {meta.get('resamples', '?')} bootstrap resamples of the test videos; each "
        "claim with what the paper itself reports and its thresholds, which are this "
        "reproduction's; the rules are CLAIM_SPECS in `lsts_lib/results.py`):",
        "",
    ]
    for i, c in enumerate(cs, 1):
        lines.append(f"{i}. {c.statement}: {claim_line_markdown(c)}.")
        if c.key in CLAIM_SOURCES:
            lines.append(f"   {claim_source_markdown(c.key)}")
    travel = _offsets_travel(runs, cs)
    lines += ["", split_noise_line(meta), "",
              f"**Did every variant finish learning?** {plateau_markdown(runs)}", "",
              f"**The next experiment.** {next_experiment_markdown(runs, travel=travel and travel[:2])}"]
    return "\n".join(lines)


def _replace_between(readme: Path, start_marker: str, end_marker: str, block: str) -> None:
    """Put `block` between the two marker lines of `readme` (written only if it changes).

    Raises ValueError when the markers are missing, repeated or out of order.
    """
    text = readme.read_text(encoding="utf-8")
    if text.count(start_marker) != 1 or text.count(end_marker) != 1:
        raise ValueError(f"{readme}: needs exactly one '{start_marker}' and one '{end_marker}' "
                         "line around its generated section")
    start, end = text.index(start_marker), text.index(end_marker)
    if end < start:
        raise ValueError(f"{readme}: '{end_marker}' comes before '{start_marker}'")
    new = text[: start + len(start_marker)] + "\n" + block + "\n" + text[end:]
    if new != text:
        atomic.write_text(readme, new)


def update_readme(readme: Path, runs: Path) -> str:
    """Replace the text between the results markers of README.md with `readme_block(runs)`.

    Raises ValueError when the markers are missing, repeated or out of order. Returns the
    generated block. Running it twice on the same runs changes nothing the second time.
    """
    block = readme_block(runs)
    _replace_between(Path(readme), README_START, README_END, block)
    return block


def readme_paper_block() -> str:
    """The README's GPU recipe: `paper_commands()` as a bash block, the lines notebook 05
    prints."""
    return "```bash\n" + "\n".join(paper_commands()) + "\n```"


def update_readme_paper(readme: Path) -> str:
    """Replace the text between the paper-commands markers of README.md with
    `readme_paper_block()`; returns the block (idempotent, as `update_readme`)."""
    block = readme_paper_block()
    _replace_between(Path(readme), PAPER_START, PAPER_END, block)
    return block


# --------------------------------------------------------------------------------------------
# Alignment against the true motion (`lsts alignment`, report stage "alignment")
# --------------------------------------------------------------------------------------------
MOTION_CLASSES = ("all", "slow", "medium", "fast")


def alignment_rows(runs: Path) -> pd.DataFrame:
    """One row per (run, seed) with an alignment.json: the end-point error (pixels, mean over
    the stride-16 cells on objects of every non-key frame) of the displacement its propagation
    implies, per motion class, and the relative L2 error of the propagated feature against the
    current frame's own high-level feature; for LSTS also the mean entropy and the mean largest
    weight of S_n(p0) at those cells. Empty when no run was measured."""
    rows = []
    for run, seed, d in run_dirs(runs):
        path = d / rundir.ALIGNMENT
        if not path.is_file():
            continue
        res = _read_json(path, f"lsts alignment --run {d} --json {path}")
        per_class = res["methods"][res["method"]]
        row: dict[str, Any] = {"run": run_label(run), "seed": seed,
                               "cells": per_class["all"]["cells"]}
        for c in MOTION_CLASSES:
            row[f"EPE {c} (px)"] = per_class[c]["epe_mean_px"]
        row["feature rel. L2"] = per_class["all"]["feature_rel_l2"]
        if "s_entropy_nats" in per_class["all"]:  # LSTS: how peaked S_n(p0) is on objects
            row["S entropy (nats)"] = per_class["all"]["s_entropy_nats"]
            row["uniform: log N"] = per_class["all"]["s_uniform_entropy_nats"]
            row["max S_n"] = per_class["all"]["s_max"]
        rows.append(row)
    return pd.DataFrame(rows)


# The alignment measures a table gives per run as mean ± std over its seeds.
ALIGNMENT_MEASURES = (*(f"EPE {c} (px)" for c in MOTION_CLASSES), "feature rel. L2",
                      "S entropy (nats)", "max S_n")
ALIGNMENT_STD = " std"  # suffix of a measure's sample standard deviation over the seeds


def alignment_table(runs: Path) -> pd.DataFrame:
    """`alignment_rows` per run (report order): each measure's mean over the run's seeds, its
    sample std (column + ALIGNMENT_STD; NaN with one seed), the range of "EPE all (px)" over
    the seeds (`EPE all min`, `EPE all max`), the number of seeds and their ids. Empty when no
    run was measured."""
    rows = alignment_rows(runs)
    if rows.empty:
        return rows
    out = []
    for run, g in rows.groupby("run", sort=False):  # run_dirs' order: the report's
        row: dict[str, Any] = {"run": run, "seeds": len(g),
                               "seed ids": ", ".join(str(int(s)) for s in sorted(g["seed"])),
                               "cells": g["cells"].mean()}
        for m in (*ALIGNMENT_MEASURES, "uniform: log N"):
            if m not in g or g[m].isna().all():
                continue
            row[m] = g[m].mean()
            if m != "uniform: log N":
                row[m + ALIGNMENT_STD] = g[m].std() if len(g) > 1 else math.nan
        row["EPE all min"], row["EPE all max"] = g["EPE all (px)"].min(), g["EPE all (px)"].max()
        out.append(row)
    return pd.DataFrame(out)


def alignment_display(align: pd.DataFrame, nd: int = 2) -> pd.DataFrame:
    """`alignment_table` as display strings: each measure "mean ± std" over the seeds (the
    mean alone with one seed), then the number of seeds."""
    rows = []
    for _, r in align.iterrows():
        row = {"run": r["run"]}
        for m in ALIGNMENT_MEASURES:
            if m in r and math.isfinite(r[m]):
                row[m] = mean_std(r[m], r.get(m + ALIGNMENT_STD, math.nan), nd)
        if "uniform: log N" in r and math.isfinite(r["uniform: log N"]):
            row["uniform: log N"] = _fmt(r["uniform: log N"], nd)
        row["seeds"] = int(r["seeds"])
        rows.append(row)
    cols = ["run", *(m for m in ALIGNMENT_MEASURES if m in align), "uniform: log N", "seeds"]
    return pd.DataFrame(rows).reindex(columns=[c for c in cols if c in align or c in
                                               ("run", "seeds")]).fillna("")


def _seeds_text(align: pd.DataFrame) -> str:
    """'mean ± sample std over 5 seeds' (or 'seed 0 only' / 'over 1 to 5 seeds') for an
    alignment table."""
    n = sorted(set(align["seeds"].astype(int))) if "seeds" in align else [1]
    if n == [1]:
        ids = sorted(set(align["seed ids"])) if "seed ids" in align else ["?"]
        return f"seed {', '.join(ids)} only"
    span = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
    return f"mean ± sample std over {span} seeds"


def load_flow_pretrain(runs: Path) -> dict[str, Any] | None:
    """runs/<preset>/flownet/flow_pretrain.json (`lsts flow-pretrain`), or None."""
    path = Path(runs) / FLOWNET_DIR / FLOWNET_SUMMARY
    return atomic.read_json(path) if path.is_file() else None


def flow_pretrain_table(summary: Mapping[str, Any], align: pd.DataFrame | None = None
                        ) -> pd.DataFrame:
    """End-point error (pixels) on objects per motion class of the pretrained FlowNet and of
    the zero flow (copy-propagation) on the same cells, and, when `align` has the flow run,
    of its FlowNet after end-to-end training in the detector (`lsts alignment`)."""
    ev = summary["eval"]
    rows = [{"flow": "pretrained on true flow", **{f"EPE {c} (px)": ev["epe_px"].get(c)
                                                    for c in MOTION_CLASSES}},
            {"flow": "zero (copy-propagation)",
             **{f"EPE {c} (px)": ev["zero_flow_epe_px"].get(c) for c in MOTION_CLASSES}}]
    if align is not None and not align.empty:
        flow_runs = align[align["run"] == run_label("flow_warp")]
        if not flow_runs.empty:
            r = flow_runs.iloc[0]
            n = int(r.get("seeds", 1))
            which = (f"mean of {n} seeds" if n > 1 else
                     f"seed {r['seed ids'] if 'seed ids' in r else int(r['seed'])}")
            rows.append({"flow": f"after detection training ({which})",
                         **{f"EPE {c} (px)": r[f"EPE {c} (px)"] for c in MOTION_CLASSES}})
    return pd.DataFrame(rows).set_index("flow")


def flow_pretrain_markdown(summary: Mapping[str, Any] | None, table: pd.DataFrame | None = None
                           ) -> str:
    """What the flow pretraining did: its recipe and cost, and whether the pretrained flow
    beats the zero flow on objects (`table`: `flow_pretrain_table`)."""
    if summary is None:
        return ("The flow baseline's FlowNet was not pretrained on true flow in this run "
                "(no `plan.flow_pretrain`): it starts from zero flow, so before detection "
                "training it is copy-propagation.")
    ev = summary["eval"]
    head = (f"The FlowNet was pretrained for {summary['steps']} steps ({summary['batch_size']} "
            f"pairs a step, {summary['train_seconds']:.0f} s) on the train split's true flow, "
            f"and measured on the {ev['split']} split's non-key frames "
            f"({ev['cells']['all']} object cells).")
    parts = []
    for c in ("slow", "medium", "fast"):
        flow, zero = ev["epe_px"].get(c), ev["zero_flow_epe_px"].get(c)
        if flow is None or zero is None:
            continue
        parts.append(f"{c} {flow:.2f} px against {zero:.2f} px for zero flow "
                     f"({'better' if flow < zero else 'not better'})")
    out = [head, "On objects: " + "; ".join(parts) + "." if parts else ""]
    if table is not None and len(table) > 2:
        out.append(_tuned_flow_sentence(table.iloc[0], table.iloc[2], table.index[2]))
    return " ".join(x for x in out if x)


def _tuned_flow_sentence(pre: pd.Series, tuned: pd.Series, name: str) -> str:
    """How detection training changed the pretrained FlowNet's error, every motion class
    (a change under 0.05 px is 'kept')."""
    moves: dict[str, list[str]] = {"raised": [], "lowered": [], "kept": []}
    for c in MOTION_CLASSES:
        a, b = pre.get(f"EPE {c} (px)"), tuned.get(f"EPE {c} (px)")
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        verb = "lowered" if b - a < -0.05 else "raised" if b - a > 0.05 else "kept"
        moves[verb].append(f"{c} {a:.2f} -> {b:.2f} px")
    done = [(verb, items) for verb, items in moves.items() if items]
    if not done:
        return ""
    n = sum(len(items) for _, items in done)
    who = f"Detection training {name.removeprefix('after detection training ')}"
    if len(done) == 1:
        verb, items = done[0]
        return (f"{who} then {verb} its error on "
                f"{'every' if n == len(MOTION_CLASSES) else 'each'} motion class measured: "
                f"{', '.join(items)}.")
    return (f"{who} then " + "; ".join(f"{verb} its error on {', '.join(items)}" for verb, items in done)
            + ".")


# --------------------------------------------------------------------------------------------
# The training recipe of a config, and the tuning runs (notebooks 04 and 06)
# --------------------------------------------------------------------------------------------
def _num_text(x: float) -> str:
    return f"{x:g}"


def _stage_lines(name: str, st: Any, train: Any) -> list[str]:
    length = (f"{train.steps} steps (train.steps overrides the stage)" if train.steps
              else f"{st.steps} steps" if st.steps is not None else f"{_num_text(st.epochs)} epochs")
    if st.lr_schedule == "cosine":
        schedule = "cosine decay to 0 over the run"
    else:
        drops = ", ".join(f"{_num_text(f)}" for f in st.lr_steps)
        schedule = f"step decay: x{_num_text(st.lr_factor)} at {drops} of the run"
    warm = (f"linear warm-up over {st.warmup_steps} steps (from 0.1 x lr)" if st.warmup_steps
            else "no warm-up")
    frozen = sorted(k for k, v in st.lr_mult.items() if float(v) == 0.0)
    scaled = {k: v for k, v in st.lr_mult.items() if float(v) != 0.0}
    mult = ", ".join(f"{k} x{_num_text(v)}" for k, v in scaled.items()) or "none"
    lines = [f"- **{name}**: {length}, lr {_num_text(st.lr)}, {schedule}, {warm}; "
             f"lr multipliers: {mult}; frozen (multiplier 0): {', '.join(frozen) or 'none'}"]
    if st.init_from:
        lines[-1] += f"; starts from `{st.init_from}`"
    if st.low2high_warmup:
        lines.append(f"  - LSTS variants from single-frame weights first warm up low2high alone "
                     f"for {st.low2high_warmup} steps (regression onto the frozen high-level "
                     "part's output, no labels; this reproduction's step, not the paper's)")
    return lines


def flow_pretrain_recipe(plan: PlanConfig | None) -> str | None:
    """The recipe line of `plan.flow_pretrain` (None when the plan has none)."""
    if plan is None or not plan.flow_pretrain:
        return None
    fp = plan.flow_pretrain
    extra = ", ".join(f"{k.replace('_', ' ')} {_num_text(fp[k])}"
                      for k in FLOW_PRETRAIN_KEYS if k != "steps" and k in fp)
    return (f"- flow variants: the FlowNet is first pretrained once on SynthVID's true flow "
            f"(`lsts flow-pretrain`, {fp['steps']} steps"
            + (f", {extra}" if extra else "") + f", seed {plan.stage1_seed}; the analogue of "
            "DFF's FlowNet trained on Flying Chairs), and every flow run starts from it")


def recipe_markdown(run: RunConfig, plan: PlanConfig | None = None) -> str:
    """The training recipe of a resolved config as Markdown, every value read from `run`
    (notebooks 04 and 06 show it instead of typing it); with the preset's `plan`, also how
    the plan prepares the runs' starting weights (the flow pretraining). Without a plan or a
    stage-2 `init_from` (or with a one-stage plan) nothing chains the stages: they are named as the single-frame and the
    temporal variants' one-stage schedules (the paper protocol)."""
    t, d, e = run.train, run.data, run.eval
    if t.optimizer == "adamw":
        opt = f"AdamW (betas {', '.join(_num_text(b) for b in t.betas)})"
    else:
        opt = f"SGD with momentum {_num_text(t.momentum)}"
    clip = (f"gradient norm clipped at {_num_text(t.grad_clip)}" if t.grad_clip is not None
            else "no gradient clipping")
    splits = ", ".join(f"data.{f.name} `{getattr(d, f.name)}`"
                       + (" (the dev split: tuning)" if f.name == "val_split" else "")
                       for f in dataclasses.fields(d) if f.name.endswith("_split"))
    # Stage 2 starts from the stage-1 model only when a plan chains them (`run_plan`, shared
    # or per seed, not one_stage) or the config names a start; else, as the paper preset run by
    # `paper_commands`, stage1/stage2 are just the schedules of single-frame and temporal
    # variants, each trained in one stage from the model's own initial weights.
    if (plan is not None and not plan.one_stage) or t.stage2.init_from:
        s1, s2 = "stage 1 (single frame)", "stage 2 (temporal)"
        s1_short, s2_short = "stage 1", "stage 2"
    else:
        start = "ImageNet weights" if run.model.pretrained else "a random initialisation"
        s1 = f"single-frame variant's schedule (train.stage1; one stage, from {start})"
        s2 = (f"temporal variants' schedule (train.stage2; each in one stage from {start}, "
              "not from the single-frame model)")
        s1_short, s2_short = "the single-frame schedule", "the temporal schedule"
    root = Path(d.root)
    if root.is_absolute() and paths.REPO in root.parents:  # the repository's own data folder
        root = root.relative_to(paths.REPO)
    lines = [
        f"**Recipe of config `{run.name or '?'}`** (read from its resolved values):",
        "",
        f"- optimizer: {opt}, weight decay {_num_text(t.weight_decay)} (none on the offsets "
        f"p_n); {clip}",
        *_stage_lines(s1, t.stage1, t),
        *_stage_lines(s2, t.stage2, t),
        *filter(None, [flow_pretrain_recipe(plan)]),
        f"- offsets p_n: lr x{_num_text(t.stage1.offsets_mult(t))} of {s1_short}'s lr, "
        f"x{_num_text(t.stage2.offsets_mult(t))} of {s2_short}'s",
        f"- batch size {t.batch_size} per process; horizontal flip: "
        f"{'yes' if t.flip else 'no'}",
        f"- key frames in training: old key from [t{t.old_key_range[0]:+d}, "
        f"t{t.old_key_range[1]:+d}), new key from [t{t.new_key_range[0]:+d}, "
        f"t{t.new_key_range[1]:+d}), clipped to the snippet",
        f"- inference: key interval {e.key_interval}, {e.mode} mode",
        f"- data: `{root}`"
        + (f" (SynthVID preset `{d.preset}`, seed {d.synth_seed})" if d.preset else "")
        + f"; splits: {splits}; DET stills {'mixed in' if d.use_det else 'not used'}"
        + (f"; at most {d.max_videos} videos a split" if d.max_videos else ""),
    ]
    return "\n".join(lines)


TUNING_COLUMNS = ("name", "what changed", "data", "steps", "dev videos", "dev mAP", "slow",
                  "medium", "fast", "train s", "note")

# Where a tuning row records how many dev videos its dev mAP was scored on (`_dev_scored_on`):
# the stage's dev_max_videos override, the data's "first N dev videos (F frames)", or a note
# that says it scored (or drew the curve) on all N dev videos. A note's "3-video dev curve"
# is not enough: a row's dev mAP need not be that curve's last point.
_DEV_MAX_VIDEOS = re.compile(r"^train\.stage[12]\.dev_max_videos=(\w+)$")
_DEV_FIRST = re.compile(r"first (\d+) dev videos(?: \((\d+) frames\))?")
_DEV_ALL = re.compile(r"(?:scored|[Dd]ev curve) on all (\d+) dev videos")
DEV_NOT_RECORDED = "not recorded"


def _dev_scored_on(r: Mapping[str, Any]) -> str:
    """How many dev videos a tuning row's dev mAP was scored on, from what the row records:
    a `dev_videos` (and `dev_frames`) field, else `_DEV_MAX_VIDEOS`/`_DEV_FIRST`/`_DEV_ALL`;
    "all" for dev_max_videos=null with no count given, DEV_NOT_RECORDED when nothing says, ""
    when the row has no dev mAP."""
    if r.get("dev_mAP") is None:
        return ""
    frames = r.get("dev_frames")
    videos = r.get("dev_videos")
    capped = [m.group(1) for o in r.get("overrides") or []
              if (m := _DEV_MAX_VIDEOS.match(str(o).strip()))]
    if videos is None and capped and capped[-1] != "null":
        videos = capped[-1]
    if videos is None and (m := _DEV_FIRST.search(r.get("data") or "")):
        videos, frames = m.group(1), frames or m.group(2)
    if videos is None and (m := _DEV_ALL.search(r.get("note") or "")):
        videos = m.group(1)
    if videos is None:
        return "all" if capped else DEV_NOT_RECORDED
    return f"{videos}" + (f" ({frames} frames)" if frames else "")


# A stage has plateaued on the dev split when its last interval changed the seed-mean dev mAP
# by less than this many points (fixed before the final run).
PLATEAU_POINTS = 1.0


def dev_curve_table(dev: pd.DataFrame) -> pd.DataFrame:
    """Per variant (mean over seeds) of dev.csv rows: dev mAP at the first and last evaluation,
    the change over the last interval, and whether that is a plateau (< PLATEAU_POINTS); and
    the spread of that change over the seeds (each seed's own change between the same two
    evaluations, for the seeds scored at both), so a reader can judge how noisy it is."""
    rows = []
    for variant, g in dev.groupby("variant", sort=False):
        m = 100 * g.groupby("step")["mAP"].mean()
        if len(m) < 2:
            continue
        last = float(m.iloc[-1] - m.iloc[-2])
        by_seed = 100 * g.pivot_table(index="step", columns="seed", values="mAP")
        per_seed = (by_seed.loc[m.index[-1]] - by_seed.loc[m.index[-2]]).dropna()
        rows.append({"variant": variant, "seeds": g["seed"].nunique(),
                     "first step": int(m.index[0]), "dev mAP first": float(m.iloc[0]),
                     "last step": int(m.index[-1]), "dev mAP last": float(m.iloc[-1]),
                     "last interval (steps)": int(m.index[-1] - m.index[-2]),
                     "change over it": last, "plateau": abs(last) < PLATEAU_POINTS,
                     "seed change min": float(per_seed.min()),
                     "seed change max": float(per_seed.max()),
                     "seeds rising": int((per_seed > 0).sum()), "seeds compared": len(per_seed)})
    return pd.DataFrame(rows)


def _seed_spread(row: Mapping[str, Any]) -> str:
    """" (seeds -1.0 to +5.3; 4 of 5 rising)" from a dev_curve_table row; "" for one seed."""
    n = int(row["seeds compared"])
    if n < 2:
        return ""
    return (f" (seeds {row['seed change min']:+.1f} to {row['seed change max']:+.1f}; "
            f"{int(row['seeds rising'])} of {n} rising)")


def dev_test_table(dev: pd.DataFrame, runs_df: pd.DataFrame) -> pd.DataFrame:
    """Per variant: the seed-mean dev mAP at stage 2's last dev evaluation (dev.csv rows with
    variant, seed, step, mAP as a fraction) beside its seed-mean test mAP (`load_runs` rows,
    percent), and the variant's rank on each (1 = best)."""
    last = dev[dev["step"] == dev.groupby("variant")["step"].transform("max")]
    dev_map = 100 * last.groupby("variant", sort=False)["mAP"].mean()
    test_map = runs_df.groupby("run")["mAP"].mean()
    rows = [{"variant": v, "dev mAP": float(dev_map[v]), "test mAP": float(test_map[v])}
            for v in dev_map.index if v in test_map.index]
    out = pd.DataFrame(rows, columns=["variant", "dev mAP", "test mAP"])
    for col in ("dev", "test"):
        out[f"{col} rank"] = out[f"{col} mAP"].rank(ascending=False, method="min").astype(int)
    return out


def dev_test_markdown(table: pd.DataFrame, dev_frames: int) -> str:
    """Whether the dev frames the stage-2 curves are read on order the variants as the test
    split does (`dev_test_table`), naming the pairs they swap."""
    if len(table) < 2:
        return "Fewer than two variants have both a dev curve and a test score: nothing to compare."
    swaps = []
    rows = list(table.itertuples(index=False))
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            d, t = a[1] - b[1], a[2] - b[2]
            if d * t < 0:
                hi, lo = (a, b) if d > 0 else (b, a)
                swaps.append((abs(d) + abs(t), f"{hi[0]} above {lo[0]} on dev ({hi[1]:.1f} vs "
                                               f"{lo[1]:.1f} %) but below it on test "
                                               f"({hi[2]:.1f} vs {lo[2]:.1f} %)"))
    head = (f"The stage-2 dev curves are read on {dev_frames} dev frames (a few videos, to keep "
            "stage 2 cheap).")
    if not swaps:
        return head + " On them the variants rank as on the test split."
    swaps.sort(reverse=True)
    listed = "; ".join(text for _, text in swaps[:3])
    largest = f"the {min(3, len(swaps))} largest: " if len(swaps) > 3 else ""
    return (f"{head} They do not rank the variants as the test split does: {len(swaps)} of "
            f"{len(rows) * (len(rows) - 1) // 2} pairs swap ({largest}{listed}). So these few dev frames "
            "show whether a variant is still learning, not which variant is better; the "
            "comparisons are read on the test split, with their intervals (notebook 05).")


def dev_frames_markdown(dev1: pd.DataFrame, dev2: pd.DataFrame,
                        videos: tuple[int | None, int | None] = (None, None),
                        reference: str = "single_frame") -> str:
    """Whether notebook 04's two dev panels are read on the same frames, and the same model's
    score on each: the stage-1 detector at its last evaluation (`dev1`: its dev.csv rows) and
    `reference`'s stage-2 step 0 (`dev2`: dev.csv rows with variant and seed), which is that
    detector unchanged (the single-frame variant adds no module). `videos`: each stage's
    train.<stage>.dev_max_videos (None: all the dev videos)."""
    def where(frames: int, max_videos: int | None) -> str:
        videos = ("all the dev videos" if max_videos is None else "the first dev video"
                  if max_videos == 1 else f"the first {max_videos} dev videos")
        return f"{frames} dev frames ({videos})"

    last1 = dev1.sort_values("step").iloc[-1]
    n1, n2 = int(last1["frames"]), int(dev2["frames"].iloc[0])
    start = dev2[(dev2["variant"] == reference) & (dev2["step"] == 0)]
    if n1 == n2 and videos[0] == videos[1]:
        return f"Both panels are read on the same {where(n1, videos[0])}."
    head = (f"The two panels are read on different frames: stage 1 on {where(n1, videos[0])}, "
            f"stage 2 on {where(n2, videos[1])}, so a level on one panel does not compare "
            "with a level on the other.")
    if start.empty:
        return head
    return (f"{head} The same model scores {100 * float(last1['mAP']):.1f} % on the "
            f"{n1} frames and {100 * float(start['mAP'].mean()):.1f} % on the {n2}: the "
            f"stage-1 detector at its last evaluation (step {int(last1['step'])}) and "
            f"{reference}'s stage-2 step 0, which is that detector unchanged.")


def low2high_markdown(warmup: pd.DataFrame, dev: pd.DataFrame | None = None,
                      reference: str = "copy_prop") -> str:
    """What the low2high warm-up did (low2high.csv rows + variant, seed columns): the relative
    error at its first step and over its last tenth (mean over runs), and, from the dev
    curves, where stage 2 then started for each warmed-up variant against `reference`."""
    if warmup.empty:
        return "No run of this preset warmed up low2high (`train.stage2.low2high_warmup` is 0)."
    runs = warmup.groupby(["variant", "seed"])
    first = float(runs["rel_mse"].first().mean())
    last = float(runs["rel_mse"].apply(lambda r: r.tail(max(1, len(r) // 10)).mean()).mean())
    steps = int(warmup["step"].max())
    seeds = warmup["seed"].nunique()
    # The LSTS variants of one seed warm up on the same frames from the same start (the warm-up
    # touches low2high only), so their curves coincide: count seeds, not runs.
    same = all(g.pivot(index="step", columns="variant", values="rel_mse").nunique(axis=1)
               .le(1).all() for _, g in warmup.groupby("seed"))
    text = (f"Over {steps} steps the warm-up took low2high's relative error from {first:.2f} "
            f"(1 means predicting nothing) to {last:.2f} (last tenth of the steps, mean over "
            f"{seeds} seed{'s' if seeds != 1 else ''})"
            + ("; the variants of a seed warm up identically (same frames, same start), so "
               "their curves coincide." if same and warmup["variant"].nunique() > 1 else "."))
    if dev is not None and not dev.empty:
        start = 100 * dev[dev["step"] == 0].groupby("variant")["mAP"].mean()
        warmed = [v for v in dict.fromkeys(warmup["variant"]) if v in start.index]
        if warmed and reference in start.index:
            parts = [f"{start[v]:.1f} % for {label(v)}" for v in warmed]
            joined = (" and ".join(parts) if len(parts) < 3
                      else "; ".join(parts[:-1]) + "; and " + parts[-1])
            text += (f" Stage 2 then started (dev mAP at step 0) at {joined}, against "
                     f"{start[reference]:.1f} % for {label(reference)}.")
    return text


def tuning_table(path: Path) -> pd.DataFrame:
    """Every tuning run of a JSON-lines file (one run a line: name, overrides (list), data,
    steps, dev_mAP, motion {slow, medium, fast} or null, train_s, note; optional train_mAP
    for a run that measured the training frames, dev_videos / dev_frames for what its dev mAP
    was scored on). mAP columns in percent, NaN when absent; "dev videos" as
    `_dev_scored_on` reads it (rows scored on different dev subsets do not compare)."""
    path = Path(path)
    rows = []
    with open(_need(path, "the tuning runs (see notebook 06)"), encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc})") from None
            if not isinstance(r, dict) or "name" not in r:
                raise ValueError(f"{path}:{lineno}: a tuning run needs at least a 'name'")
            motion = r.get("motion") or {}
            note = r.get("note") or ""
            if r.get("train_mAP") is not None:
                note = f"train mAP {_percent(r['train_mAP']):.1f} (not dev); {note}".rstrip("; ")
            rows.append({
                "name": r["name"], "what changed": " ".join(r.get("overrides") or []) or "-",
                "data": r.get("data") or "", "steps": r.get("steps"),
                "dev videos": _dev_scored_on(r), "dev mAP": _percent(r.get("dev_mAP")),
                **{k: _percent(motion.get(k)) for k in ("slow", "medium", "fast")},
                "train s": r.get("train_s"), "note": note})
    return pd.DataFrame(rows, columns=list(TUNING_COLUMNS))


def _md_text(text: str) -> str:
    """Free text for a markdown table cell: no pipe ends the cell, no '<' opens an HTML tag,
    no '*', '_' or backquote starts formatting."""
    for ch in "\\`*_|":
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def tuning_markdown(tuning: pd.DataFrame) -> str:
    """`tuning_table` as a markdown table with every cell in full: the notes and overrides are
    what say what a run means, so they are wrapped by the renderer (Jupyter, the nbconvert HTML
    edition) instead of cut. mAP columns with one decimal, steps and times whole."""
    digits = {"steps": 0, "dev mAP": 1, "slow": 1, "medium": 1, "fast": 1, "train s": 0}

    def cell(col: str, x: Any) -> str:
        if col not in digits:
            return _md_text(str(x))
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else (
            f"{x:.{digits[col]}f}")

    out = pd.DataFrame({c: [cell(c, x) for x in tuning[c]] for c in tuning.columns})
    return markdown_table(out, left=[c for c in out.columns if c not in digits])


# --------------------------------------------------------------------------------------------
# Where it learns to focus: offsets, S(p_n), detection strips
# --------------------------------------------------------------------------------------------
def load_offsets(run_dir: Path) -> tuple[Any, Any]:
    """(initial, learned) sampling offsets p_n of an LSTS run, numpy (N, 2) as (dx, dy) cells."""
    path = _need(Path(run_dir) / "model.pt", f"lsts train ... --out {run_dir}")
    ck = load_checkpoint(path)
    if OFFSETS_KEY not in ck["model"]:
        raise ValueError(f"{path}: no '{OFFSETS_KEY}' (not an LSTS variant)")
    init = ck.get("offsets_init", {}).get(OFFSETS_KEY)
    if init is None:
        raise ValueError(f"{path}: no initial offsets saved under offsets_init")
    return init.numpy(), ck["model"][OFFSETS_KEY].numpy()


def run_config(run_dir: Path) -> RunConfig:
    """The resolved config a run was trained with (its config.yaml)."""
    path = _need(Path(run_dir) / "config.yaml", f"lsts train ... --out {run_dir}")
    return RunConfig.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def _flow_init_from(run_dir: Path) -> str | None:
    """A run's train.flow_init_from, read from its config.yaml as written (a partial config,
    as a hand-made run folder may have, reads as None)."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    return (cfg.get("train") or {}).get("flow_init_from")


def variant_summaries(runs: Path) -> dict[str, str]:
    """Every catalogue variant's summary (notebook 05's "What was run"); a flow variant that
    was run also says how its FlowNet was trained, from its first seed's config (every seed of
    a run shares the recipe)."""
    dirs = {run: d for run, _, d in reversed(run_dirs(runs))}  # the lowest seed wins
    out = {}
    for name, v in VARIANTS.items():
        text = v.summary
        if v.nonkey == "flow" and name in dirs:
            text += " " + flow_training(_flow_init_from(dirs[name]))
        out[name] = text
    return out


def load_run_detector(run_dir: Path) -> VideoDetector:
    """The trained VideoDetector of a run, in eval mode."""
    path = _need(Path(run_dir) / "model.pt", f"lsts train ... --out {run_dir}")
    return load_detector(path)[0]


def focus_weights(model: VideoDetector, key_frame, targets) -> dict[str, Any]:
    """S_n(p0) of DFA's alignment for each target frame, as at inference (the key frame's
    high-level feature is the memory), with the offsets p (N, 2) and the image-pixel size of
    one feature cell; `image_cells` (x, y) is how far the picture itself reaches in feature
    cells and `pad_to` the multiple the input transform pads the resized frame to, so the
    feature map (S's h, w) may reach past the picture. key_frame and targets are (3, H, W)
    float images of one video."""
    S = model.dfa_focus(key_frame, targets)
    _, sizes, orig = model.preprocess([key_frame])
    # A feature cell is `stride` pixels of the resized image; back to original pixels.
    cell = (model.stride * orig[0][1] / sizes[0][1], model.stride * orig[0][0] / sizes[0][0])
    return {"p": model.sampling_offsets().numpy(), "S": S.numpy(), "cell_px": cell,
            "image_cells": (sizes[0][1] / model.stride, sizes[0][0] / model.stride),
            "pad_to": int(model.transform.size_divisible)}


FAST_MOTION_IOU = 0.7  # FGFA: motion IoU below this is "fast"


def fast_segment(videos, key_interval: int, n: int = 4, mode: str = "offline"
                 ) -> tuple[int, int, int]:
    """(video index, key frame, track id): the key frame and the n-1 frames after it, all in
    the key's segment (so all detected from that key at inference), following the fastest
    track (lowest mean motion IoU, every frame < FAST_MOTION_IOU) visible in all n frames."""
    import numpy as np

    from lsts_lib.models.detector import key_frame_indices

    best: tuple[float, int, int, int] | None = None
    for vi, v in enumerate(videos):
        keys = key_frame_indices(len(v.frames), key_interval, mode)
        for k in keys:
            frames = v.frames[k:k + n]
            same_key = all(keys[i // key_interval] == k for i in range(k, k + len(frames)))
            if len(frames) < n or not same_key or any(f.motion_iou is None for f in frames):
                continue
            common = set(frames[0].track_ids.tolist())
            for f in frames[1:]:
                common &= set(f.track_ids.tolist())
            for t in common:
                m = [float(f.motion_iou[f.track_ids == t][0]) for f in frames]
                if max(m) < FAST_MOTION_IOU and (best is None or np.mean(m) < best[0]):
                    best = (float(np.mean(m)), vi, k, int(t))
    if best is None:
        raise ValueError(f"no track with motion IoU < {FAST_MOTION_IOU} over {n} frames of one "
                         f"key frame's segment (key interval {key_interval}) in these videos")
    return best[1], best[2], best[3]


# --------------------------------------------------------------------------------------------
# Complexity formulas (notebooks 03 and 06): one LSTS setting, one count
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LSTSSetting:
    """One detector's LSTS at one input size: what the complexity counts are for."""

    cfg: ModelConfig
    image_hw: tuple[int, int]
    input_hw: tuple[int, int]  # after the transform's resize and padding
    feature_hw: tuple[int, int]  # H x W cells of the stride-16 map LSTS aligns
    p: torch.Tensor  # the offsets at initialisation, (N, 2)

    @property
    def macs(self) -> LSTSMacs:
        return lsts_macs(self.p, *self.feature_hw, self.cfg.feat_channels,
                         self.cfg.embed_channels)

    def describe(self) -> str:
        """E.g. "ResNet-101 at 600x1000 (padded to 608x1024) -> 38x64 cells, C = 1024, ..."."""
        cfg, (h, w), (ph, pw), (H, W) = self.cfg, self.image_hw, self.input_hw, self.feature_hw
        arch = cfg.backbone.replace("resnet", "ResNet-")
        grid = (f"a {cfg.grid_size}x{cfg.grid_size} grid over [-{cfg.grid_range:g}, "
                f"{cfg.grid_range:g}]" if cfg.offsets_init == "uniform" else
                f"{cfg.offsets_init} initialisation")
        pad = f" (padded to {ph}x{pw})" if (ph, pw) != (h, w) else ""
        return (f"{arch} at {h}x{w}{pad} -> {H}x{W} cells, C = {cfg.feat_channels}, "
                f"C_e = {cfg.embed_channels}, N = {self.macs.N} offsets on {grid}, "
                f"D = {self.macs.D} integer shifts")


def lsts_setting(cfg: ModelConfig | None = None,
                 image_hw: tuple[int, int] = PAPER_INPUT) -> LSTSSetting:
    """`cfg`'s LSTS (default: the paper's, `paper_config`) on a frame of `image_hw` (default
    the paper's 600x1000): the feature map is `feature_map_hw`'s, i.e. what the detector
    computes, padding included (38x64 at the paper's size)."""
    cfg = paper_config() if cfg is None else cfg
    offsets = LSTSOffsets(cfg.offsets_init, cfg.grid_size, cfg.grid_range, cfg.num_points,
                          generator=torch.Generator().manual_seed(0))  # gaussian: one draw
    return LSTSSetting(cfg, tuple(image_hw), input_hw(cfg, image_hw),
                       feature_map_hw(cfg, image_hw), offsets().detach())


def gradient_bins(size: Any, dist: Any, edges: Sequence[float] = (0, 1, 2, 4, 6, 8)
                  ) -> pd.DataFrame:
    """Notebook 03's toy: the gradient lengths |ds/dp| (`size`) of points at distance `dist`
    (cells) from the true shift, per bin [lo, hi) of `edges`: min, median, max and the count
    (bins without a point are left out)."""
    import numpy as np

    size, dist = np.asarray(size, dtype=float), np.asarray(dist, dtype=float)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        near = (dist >= lo) & (dist < hi)
        if near.any():
            rows.append({"cells from the shift": f"{lo:g}-{hi:g}", "min": size[near].min(),
                         "median": float(np.median(size[near])), "max": size[near].max(),
                         "points": int(near.sum())})
    return pd.DataFrame(rows).set_index("cells from the shift")


def gradient_reach_markdown(bins: pd.DataFrame) -> str:
    """Reads `gradient_bins`: where the gradient is weak (at the peak, where it must vanish,
    and in the farthest bin) against where it is strongest."""
    first, last = bins.iloc[0], bins.iloc[-1]
    top = bins["max"].idxmax()
    return (f"Near the peak ({bins.index[0]} cells from the shift) |ds/dp| is "
            f"{first['min']:.1f} to {first['max']:.1f}; it is steepest {top} cells away (up to "
            f"{bins.loc[top, 'max']:.1f}); at the farthest points ({bins.index[-1]} cells) it is "
            f"{last['min']:.1f} to {last['max']:.1f}, at most "
            f"{last['max'] / bins['max'].max():.0%} of its largest.")


def complexity_table(setting: LSTSSetting | None = None) -> pd.DataFrame:
    """FLOPs and extra activation memory (float32) of LSTS, SRFU and DFA at `setting`
    (default: the paper's, `lsts_setting()`): the one table notebooks 03 and 06 print.

    GFLOPs count a multiply-accumulate as two FLOPs, as `torch.utils.flop_counter` and so
    `lsts bench` count them, so the efficient form's count is the one the benchmark's
    srfu_align / dfa_align stages report. Each row twice: with the embeddings f and g (1x1
    convs, the same in both forms) and without them. LSTS's counts are `models.lsts.lsts_macs`
    (embeddings + either form). A k x k conv from a to b channels on H x W costs k^2 a b H W
    MACs: the quality network 2 (C q_h + 9 q_h q_m + 9 q_m) HW for two candidates plus the
    weighting 2 C HW; low2high (C_low h + 9 h^2 + 9 h C) HW. Naive memory holds the N sampled
    copies of f(F) and F: N (C_e + C) HW floats. The efficient form keeps correlations and
    weights per integer shift and per offset: (2 D + 2 N) HW floats, independent of C.
    """
    setting = lsts_setting() if setting is None else setting
    cfg, m = setting.cfg, setting.macs
    H, W = setting.feature_hw
    C, C_e, N, D, hw = cfg.feat_channels, cfg.embed_channels, m.N, m.D, H * W
    qh, qm, lh = cfg.quality_hidden, cfg.quality_mid, cfg.low2high_hidden
    quality = 2 * (C * qh + 9 * qh * qm + 9 * qm) * hw + 2 * C * hw
    low2high = (low_channels(cfg.backbone) * lh + 9 * lh ** 2 + 9 * lh * C) * hw
    eff_mem = (2 * D + 2 * N) * hw * 4
    rows = [
        ("LSTS alignment, naive form", m.naive_total, N * (C_e + C) * hw * 4),
        ("LSTS alignment, efficient form", m.efficient_total, eff_mem),
        ("SRFU (key frame): LSTS + quality-net fusion", m.efficient_total + quality,
         eff_mem + C * hw * 4),
        ("DFA (non-key frame): low2high + LSTS + fusion",
         low2high + m.efficient_total + quality, eff_mem),
    ]
    df = pd.DataFrame(rows, columns=["part", "MACs", "extra memory (bytes)"])
    df[GFLOPS_WITH] = (2 * df["MACs"] / 1e9).round(3)
    df[GFLOPS_WITHOUT] = (2 * (df["MACs"] - m.embeddings) / 1e9).round(3)
    df["extra memory (MB)"] = (df["extra memory (bytes)"] / 2 ** 20).round(1)
    return df[["part", GFLOPS_WITH, GFLOPS_WITHOUT, "extra memory (MB)"]]


GFLOPS_WITH = "GFLOPs (with embeddings f, g)"
GFLOPS_WITHOUT = "GFLOPs (without f, g)"


# --------------------------------------------------------------------------------------------
# Discussion and conclusion (notebook 05, README): sentences chosen by the verdicts and filled
# with the numbers of the runs, so the text cannot drift from them
# --------------------------------------------------------------------------------------------
# The interval of an inconclusive claim is mostly one noise source when its half-width is
# this share of the combined one or more (quadrature: the other is then below 0.6 of it).
_DOMINANT_SHARE = 0.8
# S is "peaked" when its mean entropy on objects is below this share of a uniform S's (log N).
PEAKED_ENTROPY_SHARE = 0.5


def _claim_sentence(c: Claim) -> str:
    """A claim's verdict and reason, and, where its accuracy interval contains zero, which
    noise source (seeds or test videos) would have to shrink to decide it."""
    reason = c.reason if c.reason.startswith("mAP") else c.reason[:1].upper() + c.reason[1:]
    text = f"**{c.statement}: {c.verdict}.** {reason}."
    on, n = seeds_on_claimed_side(c)
    if n > 1:
        bound, side = CLAIMED_SIDE.get(c.key, (0.0, "above"))
        text += (f" {on} of {n} seeds' paired differences lie on the claimed side ({side} "
                 f"{bound:g} points).")
    iv, seeds, videos = c.combined, c.t_interval, c.bootstrap
    if (c.verdict == NOT_TESTABLE or c.key == "per_frame" or iv is None or seeds is None
            or videos is None or not iv.low < 0 < iv.high):
        return text
    total = iv.half_width
    if videos.half_width >= _DOMINANT_SHARE * total:
        why = (f"the test videos make most of its width (± {videos.half_width:.2f} of "
               f"± {total:.2f}; the seeds alone give ± {seeds.half_width:.2f})")
    elif seeds.half_width >= _DOMINANT_SHARE * total:
        why = (f"the seeds make most of its width (± {seeds.half_width:.2f} of ± {total:.2f}; "
               f"the test videos alone give ± {videos.half_width:.2f})")
    else:
        why = (f"seeds (± {seeds.half_width:.2f}) and test videos (± {videos.half_width:.2f}) "
               "share its width")
    return f"{text} The accuracy interval contains zero; {why}."


def _alignment_sentences(align: pd.DataFrame) -> list[str]:
    """What the alignment table says about where LSTS focuses."""
    if align.empty:
        return ["No alignment was measured (`lsts alignment`), so where LSTS focuses is not "
                "known from this run."]
    by = {r["run"]: r for _, r in align.iterrows()}
    copy, lsts = by.get(run_label("copy_prop")), by.get(run_label("lsts"))
    if copy is None or lsts is None:
        return ["The alignment table lacks copy-propagation or LSTS; no comparison is made."]
    e_copy, e_lsts = copy["EPE all (px)"], lsts["EPE all (px)"]
    col = "EPE all (px)"
    out = [f"On object cells (every motion class; {_seeds_text(align)}), LSTS's S-weighted "
           f"displacement sum_n S_n(p0) p_n is {_epe_text(lsts, col)} from the true motion on "
           f"average, against {_epe_text(copy, col)} for not moving at all (copy-propagation): "
           + ("LSTS aligns better than copying" if e_lsts < e_copy else
              "LSTS aligns worse than copying, so its weights do not point to where the "
              "objects went")
           + _seed_agreement(lsts, copy) + "."]
    flow = by.get(run_label("flow_warp"))
    if flow is not None:
        out.append(f"The flow network's flow errs by {_epe_text(flow, col)}.")
    fast = "EPE fast (px)"
    if fast in lsts and math.isfinite(lsts[fast]) and math.isfinite(copy[fast]):
        out.append(f"On fast objects, where alignment matters most: LSTS "
                   f"{_epe_text(lsts, fast)}, copy {_epe_text(copy, fast)}.")
    if "S entropy (nats)" in lsts and math.isfinite(lsts["S entropy (nats)"]):
        ent, uni, top = lsts["S entropy (nats)"], lsts["uniform: log N"], lsts["max S_n"]
        ent_sd = lsts.get("S entropy (nats)" + ALIGNMENT_STD, math.nan)
        if ent < PEAKED_ENTROPY_SHARE * uni:
            where = ("not on the ones the objects moved to (the end-point error above)"
                     if e_lsts >= e_copy else
                     "on points that follow the motion better than copying (the end-point "
                     "error above)")
            out.append(
                f"Its weights are peaked: entropy {mean_std(ent, ent_sd, 2)} nats against "
                f"{uni:.2f} for uniform "
                f"weights, largest weight {top:.2f} on average. The softmax over raw dot "
                f"products (the official form, no scaling) has concentrated on a few of the N "
                f"points, {where}.")
        else:
            out.append(f"Its weights stay spread: entropy {ent:.2f} nats of {uni:.2f} for "
                       f"uniform weights, largest weight {top:.2f}: LSTS averages over many "
                       "points rather than choosing one.")
    return out


def _epe_text(row: Mapping[str, Any], col: str) -> str:
    """'48.3 ± 3.1 px' (mean ± seed std; the mean alone with one seed)."""
    return f"{mean_std(row[col], row.get(col + ALIGNMENT_STD, math.nan))} px"


def _seed_agreement(run: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """', in every one of its 5 seeds' when all of `run`'s seeds lie on the side of the
    reference's mean that its mean does (else how many do not is unknown here: ''); '' with
    one seed."""
    n = int(run.get("seeds", 1))
    if n < 2 or "EPE all min" not in run:
        return ""
    e_ref = ref["EPE all (px)"]
    same = (run["EPE all min"] > e_ref) if run["EPE all (px)"] > e_ref else (
        run["EPE all max"] < e_ref)
    return (f", in every one of its {n} seeds (range {run['EPE all min']:.1f} to "
            f"{run['EPE all max']:.1f} px)" if same else
            f" on average; its {n} seeds range from {run['EPE all min']:.1f} to "
            f"{run['EPE all max']:.1f} px")


# How far the offsets moved, wherever the report says it (claim 1, notebooks 04 and 05).
OFFSETS_MEASURE = "mean L2 distance of a point p_n from its initial position, in feature cells"


def offsets_moved(init: Any, learned: Any) -> float:
    """How far one run's offsets moved (OFFSETS_MEASURE), from (N, 2) initial and learned."""
    import numpy as np

    return float(np.linalg.norm(np.asarray(learned) - np.asarray(init), axis=1).mean())


def offsets_moved_by_seed(runs: Path, run: str = "lsts") -> dict[int, float]:
    """offsets_moved of every seed of `run` (claim 1 reads their mean)."""
    return {seed: offsets_moved(*load_offsets(d)) for r, seed, d in run_dirs(runs) if r == run}


def offsets_moved_table(runs: Path) -> pd.DataFrame:
    """Per LSTS run with learnable offsets: offsets_moved_by_seed's mean, std and seeds
    (OFFSETS_MEASURE, of the final model: the number claim 1 reads)."""
    rows = []
    for run in dict.fromkeys(r for r, _, _ in run_dirs(runs)):
        v = VARIANTS.get(run)
        if v is None or not v.uses_lsts or not v.learnable_offsets:
            continue
        moved = pd.Series(offsets_moved_by_seed(runs, run))
        rows.append({"run": run, "offsets moved (cells)": moved.mean(),
                     "std": moved.std(), "seeds": len(moved)})
    return pd.DataFrame(rows, columns=["run", "offsets moved (cells)", "std", "seeds"])


@dataclass(frozen=True)
class OffsetsAgreement:
    """Whether the seeds of one LSTS run moved each sampling point the same way
    (`offsets_agreement`); distances in feature cells."""

    seeds: int
    points: int
    per_seed: float  # mean over seeds and points of |dp_n|: what OFFSETS_MEASURE averages
    seed_mean: float  # mean over points of |mean over seeds of dp_n|
    null_mean: float  # seed_mean expected if each seed moved each point in a random direction
    null_low: float  # the central CONFIDENCE range of that null
    null_high: float
    p_value: float  # share of null draws with seed_mean at least the observed (one-sided)
    cosine: float  # mean over points and seed pairs of cos(dp_n(seed a), dp_n(seed b))
    cosine_null_high: float  # upper end of the null's central CONFIDENCE range of `cosine`
    shared: float  # share of the mean squared |dp_n| common to the seeds (see below)
    shift: tuple[float, float]  # mean dp over seeds and points: a shift of the whole set
    shift_share: float  # |shift|^2 / mean |dp_n|^2
    draws: int

    @property
    def beyond_noise(self) -> bool:
        return self.p_value < 1 - CONFIDENCE


def offsets_agreement(inits: Sequence[Any], learned: Sequence[Any], draws: int = 2000,
                      seed: int = 0) -> OffsetsAgreement | None:
    """How much of the offsets' movement dp_n = p_n - p_n(init) the seeds share.

    AdamW moves a parameter by about its learning rate per step whatever its gradient
    (`offsets_travel_bound`), so each seed's |dp_n| can be large while its direction is the
    seed's own. Two statistics say how much the seeds agree on where point n goes: the mean
    pairwise cosine of dp_n between seeds, and the length of the seed-mean displacement
    |mean_s dp_n| against what it would be if every seed had moved every point by its own
    |dp_n| in an independent uniformly random direction (the null: each dp_n rotated by a
    random angle, `draws` times; `p_value` the share of draws at least as long, plus one
    over draws + 1). `shared` = mean over seed pairs of <dp_n(a), dp_n(b)> / mean |dp_n|^2:
    an unbiased estimate of the share of the squared displacement that is common to the
    seeds (dp = common + own, own independent with mean 0). None with fewer than 2 seeds or
    when the seeds did not start from the same offsets (no point to compare).
    """
    import numpy as np

    if len(inits) < 2 or len(inits) != len(learned):
        return None
    p0 = np.stack([np.asarray(x, dtype=np.float64) for x in inits])
    if not np.allclose(p0, p0[0]):
        return None
    d = np.stack([np.asarray(x, dtype=np.float64) for x in learned]) - p0  # (S, N, 2)
    S, N = d.shape[:2]
    r = np.linalg.norm(d, axis=2)  # (S, N)
    pairs = [(a, b) for a in range(S) for b in range(a + 1, S)]

    def cosine(v: Any) -> float:
        u = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
        return float(np.mean([(u[..., a, :, :] * u[..., b, :, :]).sum(-1).mean(-1)
                              for a, b in pairs], axis=0).mean())

    seed_mean = float(np.linalg.norm(d.mean(0), axis=1).mean())
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.0, 2 * np.pi, size=(draws, S, N))
    null = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)  # (draws, S, N, 2)
    null_means = np.linalg.norm(null.mean(1), axis=-1).mean(-1)
    u = null / np.maximum(np.linalg.norm(null, axis=-1, keepdims=True), 1e-12)
    null_cos = np.mean([(u[:, a] * u[:, b]).sum(-1).mean(-1) for a, b in pairs], axis=0)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(null_means, [tail, 1 - tail])
    inner = np.mean([(d[a] * d[b]).sum(-1).mean() for a, b in pairs])
    shift = d.mean(axis=(0, 1))
    return OffsetsAgreement(
        seeds=S, points=N, per_seed=float(r.mean()), seed_mean=seed_mean,
        null_mean=float(null_means.mean()), null_low=float(low), null_high=float(high),
        p_value=float((1 + (null_means >= seed_mean).sum()) / (draws + 1)),
        cosine=cosine(d), cosine_null_high=float(np.quantile(null_cos, 1 - tail)),
        shared=float(inner / (r ** 2).mean()), shift=(float(shift[0]), float(shift[1])),
        shift_share=float((shift ** 2).sum() / (r ** 2).mean()), draws=draws)


def offsets_agreement_of(runs: Path, run: str = "lsts") -> OffsetsAgreement | None:
    """`offsets_agreement` of every seed of `run` (its final models)."""
    loaded = [load_offsets(d) for r, _, d in run_dirs(runs) if r == run]
    return offsets_agreement([a for a, _ in loaded], [b for _, b in loaded])


def offsets_agreement_markdown(a: OffsetsAgreement | None) -> str:
    """What the seeds agree on about where the points went: the reading of claim 1's
    mechanism beside its precondition (which only asks that the points moved)."""
    if a is None:
        return ("The seeds' offsets cannot be compared point by point (fewer than two seeds, "
                "or seeds that started from different offsets).")
    pct = 100 * CONFIDENCE
    reached = round(a.p_value * (a.draws + 1)) - 1
    p_text = (f"none of {a.draws} random draws reached it, p <= {a.p_value:.4f}" if reached == 0
              else f"{reached} of {a.draws} random draws reached it, p = {a.p_value:.4f}")
    head = (
        f"Do the {a.seeds} seeds move a point the same way? The mean pairwise cosine between "
        f"seeds of a point's displacement dp_n = p_n - p_n(init) is {a.cosine:.2f} (0 for "
        f"independent directions; at most {a.cosine_null_high:.2f} in {pct:.0f} % of random "
        f"draws), and the seed-mean displacement |mean_s dp_n| is {a.seed_mean:.2f} cells, "
        f"against {a.per_seed:.2f} per seed and {a.null_mean:.2f} ({a.null_low:.2f} to "
        f"{a.null_high:.2f}, {pct:.0f} %) if each seed had moved each point as far in a "
        f"random direction ({p_text}).")
    if not a.beyond_noise:
        return (head + " The learned locations do not differ from the initial grid in any way "
                "the seeds agree on: each seed's movement, the number claim 1's precondition "
                "reads, is its own, as the optimiser's steps of about one learning rate "
                "produce whatever the gradient.")
    most = " (most of the common part)" if a.shift_share > a.shared / 2 else ""
    return (head + f" So the seeds share a displacement beyond seed noise, "
            f"{'a small one' if a.shared < 0.5 else 'most of it'}: {100 * a.shared:.0f} % of "
            f"the mean squared displacement is common to the seeds, and a shift of the whole "
            f"set by ({a.shift[0]:+.2f}, {a.shift[1]:+.2f}) cells (the mean dp over seeds and "
            f"points) makes {100 * a.shift_share:.0f} % of it{most}. The rest of each seed's "
            f"{a.per_seed:.2f} cells, the number claim 1's precondition reads, is that seed's "
            "own"
            + (": claim 1 compares detectors whose sampling locations differ from the grid "
               "mostly by seed-specific movement." if a.shared < 0.5 else "."))


# The offsets "were held by the recipe" when they moved at most this share of its bound.
OFFSETS_BOUND_SHARE = 0.1


def offsets_travel_bound(run: RunConfig) -> float:
    """How far (feature cells) the optimizer can move one offset coordinate in `run`'s stage:
    AdamW's update of a parameter is about lr in size whatever its gradient (m / sqrt(v) is
    near +-1 for a steady gradient), so over the stage it moves at most about the sum of the
    offsets' learning rates, the stage's offsets multiplier x lr x sum_s lr_factor(s). Only for AdamW with a
    fixed step count (SGD's step scales with the gradient: no such bound)."""
    sched = run.schedule
    steps = run.train.steps or sched.steps
    if run.train.optimizer != "adamw" or not steps:
        return math.nan
    rate = sched.lr * sched.offsets_mult(run.train)
    return float(sum(rate * lr_factor(s, steps, sched) for s in range(steps)))


def mode_cost_ratios(bench: Mapping[str, Any], a: str = "lsts", b: str = STAGE1
                     ) -> dict[str, float]:
    """Per speed mode of the benchmark (default first): the amortised time ratio a / b."""
    return {m: _get(r[a], "amortised_ms") / _get(r[b], "amortised_ms")
            for m, r in mode_results(bench).items() if r.get(a) and r.get(b)}


def _offsets_travel(runs: Path, cs: Sequence[Claim]) -> tuple[float, float, RunConfig] | None:
    """(how far the lsts offsets moved as claim 1 measured it, offsets_travel_bound of the
    lsts recipe, that recipe); None without claim 1, an lsts run or an AdamW bound."""
    claim = next((c for c in cs if c.key == "learnable_sampling"), None)
    lsts_dir = next((d for run, _, d in run_dirs(runs) if run == "lsts"), None)
    if claim is None or lsts_dir is None or not (lsts_dir / "config.yaml").is_file():
        return None
    run = run_config(lsts_dir)
    bound = offsets_travel_bound(run)
    if math.isnan(bound):
        return None
    return claim.numbers.get("offsets_moved_cells", math.nan), bound, run


def _learnable_sampling_sentence(runs: Path, cs: Sequence[Claim]) -> str | None:
    """How far the offsets could travel under the recipe that ran, and how far they did."""
    travel = _offsets_travel(runs, cs)
    if travel is None:
        return None
    moved, bound, run = travel
    sched = run.schedule
    text = (f"How far the offsets could move: with AdamW a parameter moves by about its "
            f"learning rate per step whatever its gradient, so in this recipe ({sched.steps} "
            f"steps, offsets lr {sched.lr * sched.offsets_mult(run.train):g}, "
            f"{sched.lr_schedule} schedule) an offset coordinate can travel at most about "
            f"{bound:.2f} cells, so a point at most about {bound * math.sqrt(2):.2f} cells in L2 "
            f"(the grid's points are 1 cell apart); they moved {moved:.3f} cells "
            f"({OFFSETS_MEASURE}, averaged over the seeds).")
    if moved < OFFSETS_ENGAGED_CELLS:
        text += (" The recipe, not only the data, keeps claim 1 untestable: testing it needs "
                 "a stage 2 whose offsets can travel at least a cell (a higher offsets "
                 "learning rate or more steps), chosen on the dev split.")
    return text


def cost_part_sentence(cost: Claim, bench: Mapping[str, Any]) -> str | None:
    """How firmly claim 5's cost part is decided: its ratio under the default mode (the sum
    of stage medians the rule reads), under the fastest speed option, and timed as whole
    frames; None without speed options to compare."""
    ratios = mode_cost_ratios(bench)
    if len(ratios) < 2:
        return None
    default = ratios.pop(inference.DEFAULT_MODE, math.nan)
    best = min(ratios, key=ratios.get)
    rule = f"the rule's {COST_FRACTION:g}"
    text = (f"The cost part of claim 5 is read under the default mode (LSTS / single-frame "
            f"time {default:.2f}, each a {STAGE_SUM}); it depends on the "
            f"implementation: under `{best}` the ratio is {ratios[best]:.2f} "
            f"({'within' if ratios[best] <= COST_FRACTION else 'above'} {rule}).")
    res = (bench.get("results") or {}).get(bench_size(bench), {})
    whole = [res.get(v, {}).get("amortised_ms_measured") for v in ("lsts", "single_frame")]
    if all(whole):
        measured = whole[0] / whole[1]
        text += (f" As the {WHOLE_FRAME} instead (the same benchmark), the ratio is "
                 f"{measured:.2f}")
        text += (f": the two timings of the same frames fall on either side of {rule}, so the "
                 "cost part is within the benchmark's own spread, not decided by it."
                 if (measured <= COST_FRACTION) != (default <= COST_FRACTION) else ".")
    if cost.verdict != HELD:
        text += " The verdict does not change with it while the accuracy part fails."
    return text


def _flow_pretrained(runs: Path, run: str = "flow_warp") -> bool:
    """Whether every seed of `run` started its FlowNet from pretrained weights."""
    dirs = [d for r, _, d in run_dirs(runs) if r == run and (d / "config.yaml").is_file()]
    return bool(dirs) and all(_flow_init_from(d) for d in dirs)


def findings_sentences(runs: Path, df: pd.DataFrame, align: pd.DataFrame) -> list[str]:
    """The main findings, each written only when its runs exist and worded by the numbers:
    the LSTS variants against copy-propagation (accuracy, alignment), the flow baseline
    against copy-propagation (paired over seeds), and what claim 2 compares."""
    summary = summary_table(df)
    if "copy_prop" not in summary.index:
        return []
    copy = summary.loc["copy_prop"]
    epe = {r["run"]: r["EPE all (px)"] for _, r in align.iterrows()} if not align.empty else {}
    e_copy = epe.get(run_label("copy_prop"))
    out = []
    lsts = [r for r in summary.index if r in VARIANTS and VARIANTS[r].uses_lsts]
    if lsts:
        maps = summary.loc[lsts, "mAP"]
        below = int((maps < copy["mAP"]).sum())
        who = (f"all {len(lsts)} LSTS variants score below" if below == len(lsts) else
               f"none of the {len(lsts)} LSTS variants scores below" if below == 0 else
               f"{below} of the {len(lsts)} LSTS variants score below")
        out.append(f"On this data {who} copy-propagation ({maps.min():.1f} to {maps.max():.1f} "
                   f"% mAP against {copy['mAP']:.1f} %).")
        e_lsts = [epe[run_label(r)] for r in lsts if run_label(r) in epe]
        if e_copy and e_lsts:
            worse = sum(e > e_copy for e in e_lsts)
            ratio = f"{min(e_lsts) / e_copy:.1f} to {max(e_lsts) / e_copy:.1f} times"
            out.append(
                f"On object cells ({_seeds_text(align)}) the {len(e_lsts)} measured LSTS "
                f"variants' alignment errs by "
                f"{min(e_lsts):.1f} to {max(e_lsts):.1f} px against {e_copy:.1f} px for not "
                f"moving at all ({ratio} copy's error; {worse} of {len(e_lsts)} worse than "
                "copying)." if worse else
                f"On object cells the {len(e_lsts)} measured LSTS variants align better than "
                f"not moving at all ({min(e_lsts):.1f} to {max(e_lsts):.1f} px against "
                f"{e_copy:.1f} px).")
    if "flow_warp" in summary.index:
        flow = summary.loc["flow_warp"]
        paired = df.pivot_table(index="seed", columns="run", values="mAP")
        diffs = (paired["flow_warp"] - paired["copy_prop"]).dropna()
        d, hw = diffs.mean(), t_half_width(list(diffs))
        same = math.isfinite(hw) and abs(d) <= hw
        text = (f"The flow baseline scores {flow['mAP']:.1f} % against copy-propagation's "
                f"{copy['mAP']:.1f} % (paired over {len(diffs)} seeds {d:+.2f} ± "
                f"{hw:.2f}: {'within' if same else 'beyond'} seed noise)")
        e_flow = epe.get(run_label("flow_warp"))
        if e_flow and e_copy:
            text += (f", {'although' if same and e_flow < e_copy else 'and'} its flow aligns "
                     f"objects {'better' if e_flow < e_copy else 'worse'} than not moving "
                     f"({e_flow:.1f} vs {e_copy:.1f} px)")
        higher = [f"{c} {flow[c]:.1f} vs {copy[c]:.1f}" for c in ("slow", "medium", "fast")
                  if math.isfinite(flow[c]) and math.isfinite(copy[c]) and flow[c] > copy[c]]
        text += (f"; it scores above copying on {', '.join(higher)} % mAP only." if higher
                 else "; it scores above copying on no motion class.")
        out.append(text)
        if _flow_pretrained(runs):
            out.append("Claim 2 compares a baseline whose alignment was supervised by "
                       "the true flow (its FlowNet pretrained on it) with LSTS, whose alignment "
                       "gets no supervision besides the detection loss.")
    return out


def recipe_suspect_sentence(runs: Path, summary: pd.DataFrame) -> str | None:
    """When every LSTS variant scores below copy-propagation and the recipe's stage 2 freezes
    modules: that stage 2 as a main suspect, read from the lsts runs' resolved config (None
    otherwise)."""
    lsts = [r for r in summary.index if r in VARIANTS and VARIANTS[r].uses_lsts]
    found = _recipe(runs)
    if "copy_prop" not in summary.index or not lsts or found is None:
        return None
    if not (summary.loc[lsts, "mAP"] < summary.loc["copy_prop", "mAP"]).all():
        return None
    st = found[1].train.stage2
    if not any(float(v) == 0.0 for v in st.lr_mult.values()):
        return None
    return (f"A main suspect for LSTS scoring below copy-propagation is the recipe's stage 2 "
            f"(its departures from the paper are listed under *What was run*): the temporal "
            f"modules train for {_stage_length(st)} with {_module_rates(st)}, on features "
            "learnt for single-frame detection, where the paper trains every module jointly "
            "from ImageNet weights for its whole schedule. The suspected mechanism: the "
            "embeddings whose raw dot products make S did not learn to match across frames "
            "here, and the alignment measured above does not follow the motion.")


def discussion_markdown(runs: Path) -> str:
    """Notebook 05's discussion, conclusion and next experiment, written from one preset's
    result files and its tuning record."""
    runs = Path(runs)
    df = load_runs(runs, load_bench(runs, "cpu"))
    summary = summary_table(df)
    split = _test_split(runs)
    lines = ["### The base detector", ""]
    if "single_frame" in summary.index:
        sf = summary.loc["single_frame"]
        paper = paper_numbers().set_index("method")
        lines.append(
            f"The single-frame R-FCN every variant starts from reaches "
            f"{mean_std(sf['mAP'], sf['mAP_std'])} % VID mAP on the SynthVID {split} split "
            f"({int(sf['n'])} seeds); the paper's ResNet-101 R-FCN, from ImageNet weights, "
            f"reaches {paper.loc['R-FCN (single frame)', 'mAP']:.1f} % on ImageNet VID. The "
            "two are not comparable (other data, a CPU-sized network from scratch); what "
            "matters here is that every temporal variant is measured against this same start.")
    cs, meta = load_claims(runs) if (runs / CLAIMS_FILE).is_file() else ([], {})
    travel = _offsets_travel(runs, cs)
    lines += ["", "### Did every variant finish learning?", "", plateau_markdown(runs)]
    lines += ["", "### What held and what did not", ""]
    if (runs / CLAIMS_FILE).is_file():
        lines += [f"- {_claim_sentence(c)}" for c in cs]
        lines += ["", split_noise_line(meta), "", seed_scope(df)]
        bound_text = _learnable_sampling_sentence(runs, cs)
        if bound_text:
            lines += ["", bound_text]
        lsts_dirs = [d for r, _, d in run_dirs(runs) if r == "lsts"]
        if lsts_dirs and all((d / rundir.MODEL).is_file() for d in lsts_dirs):
            # Beside claim 1's precondition (the points moved): did the seeds move them alike?
            lines += ["", offsets_agreement_markdown(offsets_agreement_of(runs))]
        cost = next((c for c in cs if c.key == "per_frame"), None)
        bench = load_bench(runs, "cpu")
        text = cost_part_sentence(cost, bench) if cost is not None and bench else None
        if text:
            lines += ["", text]
    else:
        lines.append(f"No claims were judged yet (`{claims_command(runs)}`).")
    align = alignment_table(runs)
    lines += ["", "### Where LSTS focuses", "", " ".join(_alignment_sentences(align))]
    flow_pre = load_flow_pretrain(runs)
    lines += ["", "### The flow baseline", "", flow_pretrain_markdown(
        flow_pre, flow_pretrain_table(flow_pre, align) if flow_pre else None)]
    suspect = recipe_suspect_sentence(runs, summary)
    lines += [
        "", "### Conclusion", "",
        f"The paper's {len(cs)} claims on this data: {verdict_tally(cs)}. "
        + "".join(f"{x} " for x in findings_sentences(runs, df, align))
        + (f"{suspect} " if suspect else "")
        + "These verdicts are about LSTS as trained here: a ResNet-18 from scratch on a small "
        "synthetic dataset, on a CPU, with the recipe listed under *What was run*. They are "
        "not a verdict on the paper's ImageNet VID result, which this machine cannot rerun.",
        "",
        held_out_split_markdown(runs),
        "",
        dev_ranking_markdown(runs),
        "", "### The next experiment", "",
        next_experiment_markdown(runs, travel=travel and travel[:2],
                                 bound_ref=" (the bound above)"),
        "",
        imagenet_markdown(runs),
        "",
        gpu_first_markdown(),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Notebook 05's pictures (a moving object's strip, S_n(p0) at one of its pixels) and the one
# sentence that reads each table and figure, written from the numbers it shows
# --------------------------------------------------------------------------------------------
STRIP_MOTION_IOU = 0.5  # the strip's object: motion IoU below this (else the lowest available)
STRIP_MIN_SHIFT_CELLS = 1.0  # ... and its box centre moves at least this many cells over the strip
SATURATED_S = 0.5  # S_n(p0) "saturated": one of the N points takes more than half the weight
NEGLIGIBLE_SHARE = 0.01  # a share of S's weight too small to change the aligned feature
STRIP_HIT_IOU = 0.5  # a drawn box is "on" an object: IoU at least this with its box
STRIP_SAME_IOU = 0.9  # two boxes are "the same" box (moved by less than rounding)
STRIP_BETTER_IOU = 0.1  # "follows the object better": mean IoU at least this above the reference


@dataclass(frozen=True)
class MovingSegment:
    """A key frame and the n-1 frames after it (one key segment), following one track."""

    video: int  # index into the videos
    key: int  # frame index of the key frame in the video
    track: int
    motion_iou: float  # the track's largest FGFA motion IoU over the strip's frames
    shift_px: float  # how far its box centre moves from the key to the strip's last frame
    strip_iou: float  # IoU of its key-frame box with its last-frame box

    def title(self, video_name: str = "") -> str:
        """Says why this track was chosen: its motion IoU against the rule's bound."""
        video = f" of {video_name}" if video_name else ""
        rule = (f"< {STRIP_MOTION_IOU:g}" if self.motion_iou < STRIP_MOTION_IOU
                else f"the lowest available; none below {STRIP_MOTION_IOU:g}")
        return (f"track #{self.track}{video}: motion IoU {self.motion_iou:.2f} ({rule}), "
                f"its box moves {self.shift_px:.0f} px over the strip (IoU key/last "
                f"{self.strip_iou:.2f})")


def _box_iou(a: Any, b: Any) -> Any:
    """IoU matrix of (A, 4) and (B, 4) x1 y1 x2 y2 boxes (torchvision.ops.box_iou), numpy."""
    import numpy as np
    import torch
    from torchvision.ops import box_iou

    ta = torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(-1, 4))
    tb = torch.as_tensor(np.asarray(b, dtype=np.float64).reshape(-1, 4))
    return box_iou(ta, tb).numpy()


def moving_segment(videos, key_interval: int, n: int = 5, mode: str = "offline",
                   cell_px: float = 16.0, prefer: Callable[[int, int, int], bool] | None = None
                   ) -> MovingSegment:
    """The strip of notebook 05: a key frame and the n-1 frames after it in its segment (all
    detected from that key), following a track visible in all n frames that moves. Among the
    tracks whose motion IoU stays below STRIP_MOTION_IOU and whose box centre moves at least
    STRIP_MIN_SHIFT_CELLS cells of `cell_px` pixels, the one whose last box overlaps its key
    box least; without one, the moving track of lowest motion IoU; without a moving track, the
    track of lowest motion IoU. `prefer(video, key, track)`, when given, narrows the first
    choice to the tracks it accepts where there are any (notebook 05: those copy-propagation
    detects at the key frame, so the strip shows what propagation does with a found object).
    Ties go to the first in video, frame and track order."""
    import numpy as np

    from lsts_lib.models.detector import key_frame_indices

    cands: list[MovingSegment] = []
    for vi, v in enumerate(videos):
        keys = key_frame_indices(len(v.frames), key_interval, mode)
        for k in keys:
            frames = v.frames[k:k + n]
            if (len(frames) < n or any(keys[i // key_interval] != k for i in range(k, k + n))
                    or any(f.motion_iou is None for f in frames)):
                continue
            common = set(frames[0].track_ids.tolist())
            for f in frames[1:]:
                common &= set(f.track_ids.tolist())
            for t in sorted(common):
                m = max(float(f.motion_iou[f.track_ids == t][0]) for f in frames)
                first, last = (f.boxes[f.track_ids == t][0] for f in (frames[0], frames[-1]))
                shift = float(np.hypot((last[0] + last[2] - first[0] - first[2]) / 2,
                                       (last[1] + last[3] - first[1] - first[3]) / 2))
                cands.append(MovingSegment(vi, k, int(t), m, shift,
                                           float(_box_iou(first, last)[0, 0])))
    if not cands:
        raise ValueError(f"no track visible over {n} frames of one key frame's segment (key "
                         f"interval {key_interval}) in these videos")
    moving = [c for c in cands if c.shift_px >= STRIP_MIN_SHIFT_CELLS * cell_px]
    fast = [c for c in moving if c.motion_iou < STRIP_MOTION_IOU]
    if fast:
        chosen = [c for c in fast if prefer(c.video, c.key, c.track)] if prefer else []
        return min(chosen or fast, key=lambda c: c.strip_iou)
    return min(moving or cands, key=lambda c: c.motion_iou)


def top_detections(frame_ids: Any, scores: Any, frame_id: int, k: int = 3) -> Any:
    """Indices of the k highest-scoring detections of one frame (any score), best first."""
    import numpy as np

    idx = np.flatnonzero(np.asarray(frame_ids) == frame_id)
    return idx[np.argsort(-np.asarray(scores)[idx], kind="stable")][:k]


def best_overlap(boxes: Any, gt_box: Any) -> float:
    """The largest IoU of any of `boxes` with the ground-truth box (0 when there are none)."""
    return float(_box_iou(boxes, gt_box).max()) if len(boxes) else 0.0


def _same_boxes(a: Any, b: Any) -> bool:
    """Two sets of boxes are the same: each box of either lies within STRIP_SAME_IOU of one of
    the other's (two empty sets are the same)."""
    if not len(a) or not len(b):
        return len(a) == len(b)
    iou = _box_iou(a, b)
    return bool((iou.max(axis=1) >= STRIP_SAME_IOU).all()
                and (iou.max(axis=0) >= STRIP_SAME_IOU).all())


def strip_reading(boxes: Mapping[str, Sequence[Any]], gt: Sequence[Any], others: Sequence[Any],
                  key_frame: int = 0, reference: str = "copy_prop",
                  labels: Mapping[str, Sequence[Any]] | None = None,
                  object_label: int | None = None) -> pd.DataFrame:
    """What the strip shows, per run and non-key frame. `boxes[run][i]`: the (k, 4) boxes drawn
    for the run at the strip's frame i (0: the key frame); `gt[i]`: the object's box;
    `others[i]`: the (m, 4) boxes of the other annotated objects. Columns: run, frame (its
    index in the video, `key_frame` + i), object IoU (the best of the run's boxes with the
    object), other IoU (the best with any other object), kept (the run's boxes are those it
    drew at the key frame: `_same_boxes`) and as reference (they are `reference`'s); with
    `labels[run][i]` (the drawn boxes' classes) and the object's class, also class right (the
    box that overlaps the object most has its class; None without labels)."""
    import numpy as np

    def class_right(run: str, i: int) -> bool | None:
        if labels is None or object_label is None:
            return None
        drawn = np.asarray(boxes[run][i], dtype=np.float64).reshape(-1, 4)
        if not len(drawn):
            return False
        best = int(np.argmax([best_overlap(b[None], gt[i]) for b in drawn]))
        return int(np.asarray(labels[run][i]).reshape(-1)[best]) == int(object_label)

    rows = []
    for run, drawn in boxes.items():
        for i in range(1, len(gt)):
            other = np.asarray(others[i], dtype=np.float64).reshape(-1, 4)
            rows.append({"run": run, "frame": key_frame + i,
                         "object IoU": best_overlap(drawn[i], gt[i]),
                         "other IoU": max((best_overlap(drawn[i], o) for o in other),
                                          default=0.0),
                         "kept": _same_boxes(drawn[i], drawn[0]),
                         "as reference": (reference in boxes
                                          and _same_boxes(drawn[i], boxes[reference][i])),
                         "class right": class_right(run, i)})
    return pd.DataFrame(rows, columns=["run", "frame", "object IoU", "other IoU", "kept",
                                       "as reference", "class right"])


def _of(count: int, n: int) -> str:
    """'all 4', 'none of the 4', '2 of 4'; 'both', 'neither of the 2' for two."""
    if n == 2 and count in (0, 2):
        return "both" if count else "neither of the 2"
    return f"all {n}" if count == n else f"none of the {n}" if count == 0 else f"{count} of {n}"


def _strip_counts(g: pd.DataFrame) -> tuple[int, int, int, int, int]:
    """(frames, kept, as reference, on the object, only on other objects) of one run's rows."""
    on = g["object IoU"] >= STRIP_HIT_IOU
    elsewhere = ~on & (g["other IoU"] >= STRIP_HIT_IOU)
    return (len(g), int(g["kept"].sum()), int(g["as reference"].sum()), int(on.sum()),
            int(elsewhere.sum()))


def _strip_run_sentence(run: str, g: pd.DataFrame, reference: str) -> str:
    """One run's line of `strip_markdown`: did its boxes move off its key frame's (are they
    the reference's), and where are they: on the object, only on other objects."""
    n, kept, same, on, elsewhere = _strip_counts(g)
    if kept == n:
        moved = f"keeps its key frame's boxes on {_of(kept, n)} non-key frames"
    elif kept == 0:
        moved = f"moves its boxes off its key frame's on {_of(n, n)} non-key frames"
    else:
        moved = (f"moves its boxes off its key frame's on {n - kept} of the {n} non-key frames "
                 f"and keeps them on the other {kept}")
    if run != reference and same:
        moved += f", the same as {run_label(reference)}'s on {_of(same, n)}"
    first, last = g.iloc[0], g.iloc[-1]
    where = (f"Its best IoU with the object: {first['object IoU']:.2f} at frame "
             f"{int(first['frame'])}, {last['object IoU']:.2f} at frame {int(last['frame'])}; "
             f"at least {STRIP_HIT_IOU:g} on {_of(on, n)}")
    if elsewhere:
        where += (f", and on {_of(elsewhere, n)} its boxes are only on other annotated objects "
                  f"(IoU at least {STRIP_HIT_IOU:g} with one of them)")
    return f"- {run_label(run)} {moved}. {where}."


def _strip_outcome(run: str, g: pd.DataFrame, reference: str) -> str:
    """What became of a run's key-frame boxes, in a few words."""
    n, kept, same, on, elsewhere = _strip_counts(g)
    if same == n:
        return f"{run_label(run)} left the key frame's boxes where {run_label(reference)} has them"
    if kept == n:
        return f"{run_label(run)} did not move its key frame's boxes"
    if elsewhere and not on:
        return f"{run_label(run)} moved its boxes onto other objects"
    return f"{run_label(run)} moved its boxes (onto the object on {_of(on, n)} frames)"


def top_score_scale(frame_ids: Any, scores: Any) -> tuple[float, float, float]:
    """(median, 10th, 90th percentile) over the frames with a detection of each frame's highest
    score: the scale a reader needs to judge one frame's scores (softmax probabilities)."""
    import numpy as np

    ids, scores = np.asarray(frame_ids), np.asarray(scores, dtype=float)
    if not len(ids):
        raise ValueError("no detections to take a score scale from")
    order = np.lexsort((-scores, ids))  # per frame, its highest score first
    first = np.r_[True, ids[order][1:] != ids[order][:-1]]
    q10, med, q90 = np.quantile(scores[order][first], [0.1, 0.5, 0.9])
    return float(med), float(q10), float(q90)


def strip_markdown(reading: pd.DataFrame, top_scores: Mapping[str, float], k: int,
                   reference: str = "copy_prop",
                   scale: Mapping[str, tuple[float, float, float]] | None = None) -> str:
    """Reads the strips from what they show (`strip_reading`): the mean over the non-key frames
    of each run's best IoU with the object, then per run whether its boxes moved off the key
    frame's (or are `reference`'s: copy-propagation draws the key frame's boxes) and whether
    they landed on the object, on another object or on none; last, which runs follow the
    object better than `reference` (at the two decimals printed). `scale`: per run, its
    `top_score_scale` over the whole split, so the strip's scores can be read against it."""
    runs = list(dict.fromkeys(reading["run"]))
    if reference not in runs or len(runs) < 2:
        return "Too few runs were drawn to compare them on this object."
    mean = reading.groupby("run", sort=False)["object IoU"].mean()
    frames = reading["frame"]
    parts = ", ".join(f"{run_label(r)} {mean[r]:.2f}" for r in runs)
    lines = [_strip_run_sentence(r, reading[reading["run"] == r], reference) for r in runs]
    classes = reading["class right"].notna().all() if "class right" in reading else False
    right = (reading.groupby("run", sort=False)["class right"].mean() if classes
             else pd.Series(1.0, index=mean.index))
    ahead = [r for r in runs if r != reference
             and round(float(mean[r] - mean[reference]), 2) >= STRIP_BETTER_IOU]
    better = [run_label(r) for r in ahead if right[r] >= 0.5]
    if better:
        verdict = (f"{_listing(better)} {_verb(len(better), 'follows', 'follow')} the moving "
                   "object better than reusing the key frame's feature")
    else:
        verdict = (f"no method follows the object clearly better than reusing the key frame's "
                   f"feature (a mean IoU at least {STRIP_BETTER_IOU:g} above "
                   f"{run_label(reference)}'s {mean[reference]:.2f}"
                   + (" with the object's class on most frames)" if classes else ")"))
        wrong = [f"{run_label(r)}'s on {int(round((1 - right[r]) * (reading['run'] == r).sum()))}"
                 for r in ahead]
        if wrong:
            verdict += (f"; the boxes that overlap it most carry another class than the "
                        f"object's: {_listing(wrong)} of the frames")
    if not classes:
        verdict += "; box classes not compared"
    scores = ", ".join(f"{run_label(r)} {s:.2f}" for r, s in top_scores.items())
    outcomes = _listing([_strip_outcome(r, reading[reading["run"] == r], reference)
                         for r in runs if r != reference])
    return (f"On the non-key frames {frames.min()}-{frames.max()}, the best of each method's "
            f"top {k} boxes overlaps the object with a mean IoU of {parts} (highest scores on "
            f"these frames: {scores}). " + _score_scale_sentence(top_scores, scale)
            + "Two sets of boxes count as the same when each box lies "
            f"within IoU {STRIP_SAME_IOU:g} of one of the other set.\n\n" + "\n".join(lines)
            + f"\n\nSo on this object {outcomes}: {verdict}.")


def _score_scale_sentence(top_scores: Mapping[str, float],
                          scale: Mapping[str, tuple[float, float, float]] | None) -> str:
    """For scale: each run's typical highest score of a frame, and where the strip's falls."""
    if not scale:
        return ""
    runs = [r for r in top_scores if r in scale]
    parts = ", ".join(f"{run_label(r)} {scale[r][0]:.2f} ({scale[r][1]:.2f}-{scale[r][2]:.2f})"
                      for r in runs)
    low = [r for r in runs if top_scores[r] < scale[r][1]]
    where = (f"; on this strip {_listing([run_label(r) for r in low])} "
             f"{_verb(len(low), 'stays', 'stay')} below its 10th percentile, so the object's "
             "frames are among its hardest" if low else "")
    return (f"For scale, a test frame's highest score (a softmax probability) has the median "
            f"and 10th-90th percentile {parts}{where}. ")


def focus_pixel(truth: Any, track: Any, track_id: int, min_cells: float = 1.0
                ) -> tuple[tuple[int, int], bool]:
    """The cell p0 = (x, y) of a moving object where S_n(p0) is drawn: among the cells of
    `track_id` (track (h, w), `cell_flow`'s) whose true displacement truth (2, h, w) is known
    and at least `min_cells` long, the one nearest their mean position; (p0, True). Without
    such a cell: the object's cell that moves most, (p0, False)."""
    import numpy as np

    d = np.hypot(truth[0], truth[1])
    on = (np.asarray(track) == track_id) & np.isfinite(d)
    if not on.any():
        raise ValueError(f"track {track_id} covers no cell with a known displacement")
    moving = on & (d >= min_cells)
    if not moving.any():
        y, x = np.unravel_index(np.argmax(np.where(on, d, -1.0)), d.shape)
        return (int(x), int(y)), False
    ys, xs = np.nonzero(moving)
    i = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
    return (int(xs[i]), int(ys[i])), True


def focus_stats_at(S_p0: Any, p: Any) -> dict[str, float | tuple[float, float]]:
    """Entropy (nats), largest weight and the S-weighted expected displacement
    sum_n S_n(p0) p_n (`models.lsts.expected_displacement`) of one pixel's weights (N,)."""
    import numpy as np
    import torch

    from lsts_lib.models.lsts import expected_displacement

    S = torch.as_tensor(np.asarray(S_p0, dtype=np.float32))
    d = expected_displacement(S.view(1, -1, 1, 1), torch.as_tensor(np.asarray(p, np.float32)))
    w = S.double()
    entropy = float(-(w * torch.log(torch.where(w > 0, w, torch.ones_like(w)))).sum())
    return {"entropy": entropy, "uniform": math.log(len(w)), "max": float(w.max()),
            "expected": (float(d[0, 0, 0, 0]), float(d[0, 1, 0, 0]))}


def focus_markdown(d_true: tuple[float, float], stats: Mapping[str, Any], cell_px: float,
                   moving: bool = True) -> str:
    """Reads the S_n(p0) picture: how far the expected displacement lands from the true one
    (against not moving at all) and whether the raw dot-product softmax saturated."""
    dx, dy = stats["expected"]
    err = math.hypot(dx - d_true[0], dy - d_true[1])
    still = math.hypot(*d_true)
    where = ("closer to the true displacement than not moving at all"
             if err < still else
             "no closer to the true displacement than not moving at all "
             f"({still * cell_px:.0f} px)")
    lead = "" if moving else ("No cell of the object moved a whole cell; this is the one that "
                              "moved most. ")
    text = (f"{lead}The pixel's content moved {still:.2f} cells ({still * cell_px:.0f} px) "
            f"since the key frame; LSTS's expected displacement sum_n S_n(p0) p_n = "
            f"({dx:+.2f}, {dy:+.2f}) cells lands {err:.2f} cells ({err * cell_px:.0f} px) from "
            f"it, {where}. ")
    if stats["max"] > SATURATED_S:
        text += (f"The softmax over raw dot products has saturated: one of the "
                 f"{round(math.exp(stats['uniform']))} points takes {stats['max']:.2f} of the "
                 f"weight (entropy {stats['entropy']:.2f} nats against {stats['uniform']:.2f} "
                 "for uniform weights), so LSTS copies one sampled point rather than averaging.")
    else:
        text += (f"No point takes more than {SATURATED_S:g} of the weight (largest "
                 f"{stats['max']:.2f}, entropy {stats['entropy']:.2f} of {stats['uniform']:.2f} "
                 "nats): LSTS averages over several points.")
    return text


def _listing(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _verb(count: int, one: str, many: str) -> str:
    """The verb form that agrees with a count ('lies' for 1, 'lie' otherwise)."""
    return one if count == 1 else many


def focus_border(S_p0: Any, p: Any, p0: tuple[int, int], map_hw: Sequence[int],
                 image_cells: tuple[float, float] | None = None, pad_to: int | None = None
                 ) -> dict[str, Any]:
    """Where the sampling points p0 + p_n of one pixel fall against the h x w feature map and
    the weight S_n(p0) (N,) gives them. LSTS samples bilinearly with zeros outside the map
    (`models.lsts`): a point reads the four taps floor(p0 + p_n) + {0, 1}^2, and `inside`
    (N,) is the bilinear weight of those that fall in the map (1: inside; 0: wholly outside,
    where the sampled embedding is 0, so s_n = 0 exactly, and the sampled feature is 0).
    With `image_cells` (the picture's extent in cells, `focus_weights`) it also counts the
    points drawn beyond the picture, and how many of those are inside the map (the cells the
    input transform's padding to a multiple of `pad_to` adds)."""
    import numpy as np

    S = np.asarray(S_p0, dtype=np.float64)
    pos = np.asarray(p0, dtype=np.float64) + np.asarray(p, dtype=np.float64)  # (N, 2) as (x, y)
    h, w = int(map_hw[0]), int(map_hw[1])
    # LSTS's own sampler over a map of ones: the bilinear weight of the taps inside the map.
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    inside = grid_sample_offsets(ones, torch.as_tensor(p, dtype=torch.float64))[
        0, :, 0, int(p0[1]), int(p0[0])].numpy()
    eps = 1e-9
    out, edge = inside <= eps, (inside > eps) & (inside < 1 - eps)
    b: dict[str, Any] = {
        "n": len(S), "p0": tuple(p0), "map_hw": (h, w), "pad_to": pad_to,
        "reach": float(np.abs(np.asarray(p, dtype=np.float64)).max()),
        "outside": int(out.sum()), "outside_total": float(S[out].sum()),
        "outside_each": (float(S[out].min()), float(S[out].max())) if out.any() else None,
        "edge": int(edge.sum()), "edge_total": float(S[edge].sum()),
        "zero_share": float((S * (1 - inside)).sum()),
        "beyond": None, "beyond_in_map": None, "past": {}}
    if image_cells is not None:
        ix, iy = image_cells
        # Cell centres sit at c + 0.5 cells from the picture's top-left corner.
        centre = pos + 0.5
        beyond = ((centre[:, 0] < 0) | (centre[:, 0] > ix) | (centre[:, 1] < 0)
                  | (centre[:, 1] > iy))
        b |= {"beyond": int(beyond.sum()),
              "beyond_in_map": int((beyond & (inside >= 1 - eps)).sum()),
              "past": {side: extra for side, extra in (("bottom", h - iy), ("right", w - ix))
                       if extra > eps}}
    return b


def focus_border_markdown(b: Mapping[str, Any]) -> str:
    """Reads `focus_border`: why some sampling points of the focus figure lie beyond the
    picture, how many leave the feature map, and what weight S gives the zeros read there."""
    n, (h, w) = b["n"], b["map_hw"]
    text = ""
    if b["beyond"]:
        text += f"{b['beyond']} of the {n} sampling points of p0 are drawn outside the picture. "
    elif b["beyond"] == 0:
        text += f"All {n} sampling points of p0 are drawn inside the picture. "
    if not b["outside"] and not b["edge"]:
        text += (f"None of the {n} points leaves the {h} × {w} feature map, so none reads the "
                 "zero padding around it. ")
    else:
        k = b["outside"] + b["edge"]
        share = b["zero_share"]
        text += (f"The offsets reach up to {b['reach']:.2f} cells from p0 = cell {b['p0']} of "
                 f"the {h} × {w} feature map, so {k} of the points read the zero padding around "
                 "it with some or all of their bilinear taps (as in the official code), and S "
                 f"gives them {share:.2g} of its weight in all"
                 + (": negligible here. " if share < NEGLIGIBLE_SHARE else
                    ", a share the aligned feature F'(p0) loses (the softmax is not "
                    "renormalised over the points inside). "))
    if b["beyond_in_map"]:
        past = _listing([f"{extra:.2f} cells past its {side} edge"
                         for side, extra in b["past"].items()])
        pad = (f"the input transform pads the resized frame to a multiple of {b['pad_to']} "
               "pixels" if b["pad_to"] else "the input transform pads the resized frame")
        text += (f"{b['beyond_in_map']} of the dots beyond the picture "
                 f"{_verb(b['beyond_in_map'], 'lies', 'lie')} wholly inside the map: {pad}, so the map "
                 f"reaches {past}, and its cells there hold features of the padded input and "
                 "are compared like any other cell.")
    return text.rstrip()


def focus_real_markdown(weights: Sequence[Any], p: Any, p0: tuple[int, int]) -> str:
    """Reads the S_n(p0) pictures of real frames (one (N,) weight vector per frame) drawn by a
    model trained on SynthVID only: the largest weight and entropy of each, whether the softmax
    saturated (SATURATED_S), which offset takes the most weight, and what the picture shows."""
    import numpy as np

    stats = [focus_stats_at(S, p) for S in weights]
    top = sorted({int(np.argmax(S)) for S in weights})
    T, N = len(stats), len(np.asarray(weights[0]))
    sat = sum(s["max"] > SATURATED_S for s in stats)
    state = (f"saturated in all {T} real frames" if sat == T else
             f"not saturated in any of the {T} real frames" if sat == 0 else
             f"saturated (one point above {SATURATED_S:g} of the weight) in {sat} of the "
             f"{T} real frames")
    text = (f"At p0 = cell {tuple(p0)}, S is {state}: its largest weight is "
            f"{_listing([format(s['max'], '.2f') for s in stats])} (entropy "
            f"{_listing([format(s['entropy'], '.2f') for s in stats])} nats, against "
            f"{stats[0]['uniform']:.2f} for uniform weights over the {N} points)")
    if len(top) == 1:
        dx, dy = np.asarray(p)[top[0]]
        text += f", always on the same point, p_n = ({dx:+.2f}, {dy:+.2f}) cells"
    else:
        text += f", on {len(top)} different points"
    text += "."
    if sat:
        text += (" Where one point takes that much of the weight, LSTS copies one sampled "
                 "location instead of averaging several.")
    return text + (" The model was trained on SynthVID only, its backbone from random "
                   "initialisation, so it has never seen a photograph, and these frames have "
                   "no known true motion: the picture shows the mechanism (one set of offsets "
                   "shared by every pixel, one softmax over raw dot products at each pixel), "
                   "not a learned correspondence between real frames.")


def accuracy_markdown(summary: pd.DataFrame, reference: str = "single_frame") -> str:
    """Reads the accuracy table: the best propagating variant and LSTS against the
    single-frame detector (mean mAP over seeds) and the time each saves per frame."""
    if reference not in summary.index or len(summary) < 2:
        return "Only one variant was run; there is nothing to compare it with."
    ref = summary.loc[reference]
    others = summary.drop(index=reference)
    best = others["mAP"].idxmax()

    def gap(run: str) -> str:
        d = summary.loc[run, "mAP"] - ref["mAP"]
        side = "above" if d > 0 else "below"
        time = summary.loc[run, "cpu_ms"]
        cost = (f" at 1/{ref['cpu_ms'] / time:.1f} of its CPU time per frame"
                if math.isfinite(time) and math.isfinite(ref["cpu_ms"]) and time > 0 else "")
        return f"{summary.loc[run, 'label']}, {abs(d):.1f} points {side} it{cost}"

    text = (f"The single-frame detector reaches {ref['mAP']:.1f} % mAP; the most accurate "
            f"propagating variant is {gap(best)}")
    if "lsts" in summary.index and best != "lsts":
        text += f", and {gap('lsts')}"
    return text + "."


def interval_markdown(intervals: pd.DataFrame) -> str:
    """Reads the interval table: the widest seed interval, the resolution of seed noise."""
    widths = intervals["mAP_t_half"].dropna()
    if widths.empty:
        return "With one seed per variant the training noise is not measured (n/a)."
    run = widths.idxmax()
    return (f"The widest seed interval is ± {widths[run]:.2f} points "
            f"({intervals.loc[run, 'label']}), the narrowest ± {widths.min():.2f}: mAP differences smaller than the "
            "interval of the runs compared are training noise.")


def seeds_on_claimed_side(c: Claim) -> tuple[int, int]:
    """(how many seeds' paired differences a - b lie on the claimed side, how many seeds)."""
    a, b = c.runs
    if not c.per_seed.get(a) or not c.per_seed.get(b):
        return 0, 0
    bound, side = CLAIMED_SIDE.get(c.key, (0.0, "above"))
    diffs = [x - y for x, y in zip(c.per_seed[a], c.per_seed[b], strict=True)]
    return sum((d > bound) if side == "above" else (d <= bound) for d in diffs), len(diffs)


def claim_figure_markdown(c: Claim) -> str:
    """Reads one claim's figure: how many seeds' paired differences lie on the claimed side
    and where the seed mean's interval lies against the claim's bound."""
    a, b = c.runs
    iv = c.combined or c.bootstrap
    if not c.seeds or iv is None:
        return "No paired difference to draw."
    bound, side = CLAIMED_SIDE.get(c.key, (0.0, "above"))
    on, n = seeds_on_claimed_side(c)
    if (iv.low > bound) if side == "above" else (iv.high <= bound):
        where = "lies wholly on the claimed side"
    elif (iv.high <= bound) if side == "above" else (iv.low > bound):
        where = "lies wholly off the claimed side"
    else:
        where = f"straddles {bound:g}"
    return (f"{on} of {n} seeds put {run_label(a)} − {run_label(b)} on the claimed "
            f"side ({side} {bound:g} points); the seed mean is {iv.estimate:+.2f} and its "
            f"interval [{iv.low:+.2f}, {iv.high:+.2f}] {where}.")


def verdict_tally(cs: Sequence[Claim]) -> str:
    """'2 not held, 3 not testable': how many claims got each verdict (none: 'none judged')."""
    counts = {v: sum(c.verdict == v for c in cs) for v in VERDICTS}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "none judged"


def claims_table_markdown(cs: Sequence[Claim]) -> str:
    """Reads the claims table: the tally, and whether any claim was decided in its favour."""
    held = [c for c in cs if c.verdict == HELD]
    text = f"Of the {len(cs)} claims: {verdict_tally(cs)}. "
    if held:
        return text + ("The claims that held: " + "; ".join(c.statement for c in held) + ".")
    return text + "None of the paper's claims held on these runs."


def alignment_table_markdown(align: pd.DataFrame, reference: str = "copy_prop") -> str:
    """Reads the alignment table: each propagating method's end-point error on objects against
    zero motion (copy-propagation), which an alignment must beat to be one."""
    if align.empty:
        return "No alignment was measured."
    col = "EPE all (px)"
    by = {r["run"]: r for _, r in align.iterrows()}
    ref = by.get(run_label(reference))
    if ref is None:
        return "Copy-propagation was not measured; the errors have no reference."
    others = {r: row for r, row in by.items() if r != run_label(reference)}
    better = [r for r, row in others.items() if row[col] < ref[col]]
    parts = ", ".join(f"{r} {_epe_text(row, col)}" for r, row in others.items())
    verdict = (f"only {' and '.join(better)} align{'s' if len(better) == 1 else ''} objects "
               "better than copying" if better else "none aligns objects better than copying")
    return (f"Against the {_epe_text(ref, col)} of not moving at all (copy-propagation), the "
            f"end-point errors on object cells ({_seeds_text(align)}) are {parts}: {verdict}.")


def cost_markdown(summary: pd.DataFrame, reference: str = "single_frame",
                  bench: Mapping[str, Any] | None = None) -> str:
    """Reads the speed table: the cheapest variant per frame, and LSTS against the flow warp
    (the claim's pair), from the amortised CPU times of the summary; with `bench`, why, from
    the two non-key frames' stages (`nonkey_split_sentence`)."""
    ms = summary["cpu_ms"].dropna()
    if reference not in ms.index or len(ms) < 2:
        return "The benchmark lacks the single-frame detector; no speed-up is computed."
    cheap = ms.drop(index=reference).idxmin()
    text = (f"Amortised over a key interval, {summary.loc[cheap, 'label']} is the cheapest, "
            f"at 1/{ms[reference] / ms[cheap]:.1f} of the single-frame detector's CPU time per "
            f"frame ({STAGE_SUM})")
    if "lsts" in ms.index and "flow_warp" in ms.index:
        r = ms["lsts"] / ms["flow_warp"]
        text += (f"; LSTS takes {r:.2f}x the flow warp's time per frame"
                 + (" (faster)" if r < 1 else " (slower)"))
    text += "."
    why = nonkey_split_sentence(bench) if bench is not None else None
    return f"{text} {why}" if why else text


# How a stage of `lsts bench` is named in a sentence.
STAGE_TEXT = {"preprocess": "preprocessing", "low": "low backbone", "high": "high backbone",
              "low2high": "low2high", "dfa_align": "LSTS alignment",
              "dfa_fuse": "quality-net fusion", "srfu_align": "SRFU alignment",
              "srfu_fuse": "SRFU fusion", "flow": "flow network", "warp": "warp",
              "head": "head"}


def nonkey_split_sentence(bench: Mapping[str, Any], a: str = "lsts", b: str = "flow_warp",
                          size: str | None = None) -> str | None:
    """Why `a`'s frame costs what it does against `b`'s: both non-key frames (k-1 of every k
    frames) split into their stages, from the benchmark's stage medians; None when either
    was not benchmarked."""
    size = size or bench_size(bench)
    res = (bench.get("results") or {}).get(size, {})
    if a not in res or b not in res:
        return None
    blocks = (bench.get("blocks") or {}).get(size)
    cut = f" conv1–{configured_cut(blocks)}" if blocks else ""

    def parts(stages: Mapping[str, Any]) -> str:
        ordered = sorted(stages.items(), key=lambda kv: -kv[1]["ms"])
        return ", ".join(f"{STAGE_TEXT.get(n, n)}{cut if n == 'low' else ''} {st['ms']:.0f}"
                         for n, st in ordered)

    sa, sb = res[a]["nonkey"], res[b]["nonkey"]
    k = res[a]["key_interval"]
    text = (f"Why: on a non-key frame ({k - 1} of every {k} frames) {label(a)} spends "
            f"{sa['ms']:.0f} ms ({parts(sa['stages'])}) and {label(b)} {sb['ms']:.0f} ms "
            f"({parts(sb['stages'])}), each a {STAGE_SUM}")
    low = sa["stages"].get("low")
    if low and "low" not in sb["stages"]:
        text += (f": the low backbone alone, which {label(b)} does not run, takes "
                 f"{low['ms'] / sb['ms']:.1f}x {label(b)}'s whole non-key frame")
    return text + " (notebook 02 splits the backbone block by block)."


def saving_sentence(bench: Mapping[str, Any], variant: str = "lsts",
                    size: str | None = None) -> str:
    """How far `variant`'s per-frame FLOPs and time fall below the single-frame detector's at
    the benchmark's key interval: the FLOP ratio, the measured speed-up under both measures
    of a frame, and the share of the FLOP saving the time realises."""
    size = size or bench_size(bench)
    res = bench["results"][size]
    v, sf = res[variant], res[STAGE1]
    flops = sf["amortised_gflops"] / v["amortised_gflops"]
    speed = sf["amortised_ms"] / v["amortised_ms"]
    whole = ""
    if v.get("amortised_ms_measured") and sf.get("amortised_ms_measured"):
        whole = (f"; 1/{sf['amortised_ms_measured'] / v['amortised_ms_measured']:.2f} as the "
                 f"{WHOLE_FRAME}")
    return (f"At k = {v['key_interval']} the {label(variant)} detector's per-frame FLOPs fall "
            f"to 1/{flops:.2f} of the single-frame detector's ({v['amortised_gflops']:.1f} "
            f"against {sf['amortised_gflops']:.1f} GFLOPs) and its CPU time to 1/{speed:.2f} "
            f"({v['amortised_ms']:.0f} against {sf['amortised_ms']:.0f} ms, {STAGE_SUM}"
            f"{whole}): the time realises {speed / flops:.2f} of the speed-up the FLOPs "
            "predict.")


def paper_markdown(paper: pd.DataFrame, method: str = "LSTS") -> str:
    """Reads the published table: which methods LSTS's ImageNet VID mAP is above and below."""
    maps = paper.set_index("method")["mAP"].astype(float)
    own = maps[method]
    above = [m for m, v in maps.items() if m != method and v > own]
    below = [m for m, v in maps.items() if m != method and v <= own]
    return (f"As published, LSTS ({own:.1f} %) is at or above {', '.join(below) or 'no method'} "
            f"and below {', '.join(above) or 'no method'}; none of these numbers was "
            "measured by this code.")


def offsets_markdown(shifts: Sequence[float]) -> str:
    """Reads the offsets figure from each seed's offsets_moved (OFFSETS_MEASURE): their mean,
    the number claim 1 reads, against OFFSETS_ENGAGED_CELLS (its precondition)."""
    if not len(shifts):
        return "No LSTS run was made: there are no learned offsets to read."
    mean, top = sum(shifts) / len(shifts), max(shifts)
    text = (f"The offsets moved {mean:.3f} feature cells averaged over the {len(shifts)} "
            f"seed runs (the number claim 1 reads; {OFFSETS_MEASURE}), at most {top:.3f} in "
            "one run")
    if mean < OFFSETS_ENGAGED_CELLS:
        return (text + ": too little to change where LSTS samples, so claim 1 is not testable "
                "on these runs. The discussion below bounds how far the recipe lets them "
                "travel.")
    return text + ": the sampling locations did change during training."


# ---- notebook 04: the early rise of stage 1's loss curves --------------------------------------

LOSS_TERMS = ("loss", "loss_rpn_cls", "loss_rpn_box", "loss_rfcn_cls", "loss_rfcn_box")
# A rise of the running-mean loss by at least this share of its level gets explained; the
# running mean of single-image losses wanders by less than that once training has settled.
RISE_MIN = 0.1


def loss_rise(log: pd.DataFrame, window: int, within: float = 0.25,
              min_rise: float = RISE_MIN) -> dict[str, Any] | None:
    """The early rise of a stage's loss curve (log.csv rows), the curve notebook 04 draws: the
    running mean of the last `window` steps, from the first full window on. Over the first
    `within` of the steps: from the curve's lowest point before its highest to that highest.
    None when it rises by less than `min_rise` of the lower level. Returns the two steps
    ("low", "peak"), every logged term's running mean at each ("at_low", "at_peak"), the
    first later step where the curve is back at its low level ("back", None if never), and
    the base rate's least and largest value over the steps the rise adds to the window
    ("lr"), with the stage's largest ("peak_lr")."""
    terms = [t for t in LOSS_TERMS if t in log]
    per_step = log.set_index("step")
    curve = per_step[terms].rolling(window, min_periods=window).mean().dropna()
    early = curve[curve.index <= within * float(per_step.index.max())]
    if early.empty:
        return None
    peak = int(early["loss"].idxmax())
    before = early["loss"].loc[:peak]
    low = int(before.index[before == before.min()][-1])  # the last of equal lows: where it starts
    level, top = float(early["loss"][low]), float(early["loss"][peak])
    if top - level < min_rise * level:
        return None
    after = curve["loss"].loc[peak:]
    back = after[after <= level]
    lr = per_step["lr"].loc[low + 1:peak]
    return {"window": int(window), "low": low, "peak": peak,
            "at_low": curve.loc[low].to_dict(), "at_peak": curve.loc[peak].to_dict(),
            "back": int(back.index[0]) if len(back) else None,
            "lr": (float(lr.min()), float(lr.max())), "peak_lr": float(per_step["lr"].max())}


def step_boxes(run: RunConfig, steps: int) -> pd.Series:
    """The annotated boxes of each training step's image(s) (mean over the batch) of a
    one-process run, by log step (1-based): the stream's deterministic order
    (`engine.data.TrainStream`), read from the annotations without loading an image."""
    from lsts_lib.engine.data import build_stream

    stream = build_stream(run, progress=False)
    batch = run.train.batch_size
    counts = []
    for step in range(steps):
        n = 0
        for pos in stream.positions(step, 0, 1, batch):
            kind, a, b = stream.entry_at(pos)
            ann = stream.det[a] if kind == "det" else stream.vid.videos[a].frames[b]
            n += len(ann.labels)
        counts.append(n / batch)
    return pd.Series(counts, index=pd.RangeIndex(1, steps + 1, name="step"), name="boxes")


def loss_rise_markdown(rise: dict[str, Any] | None, run: RunConfig,
                       log: pd.DataFrame | None = None, boxes: pd.Series | None = None) -> str:
    """What notebook 04 can say about the early rise of a stage's loss curves (`loss_rise`)
    from the run's log.csv rows (`log`), its recipe (`run`: the stage's warm-up and schedule)
    and, optionally, the boxes of each step's image (`step_boxes`): whether the learning rate
    changed over it, which loss terms rose and which fell, and whether the images that entered
    the running mean over the rise held more boxes than those that left it, the number of
    boxes being what a single image's loss grows with most."""
    stage = "Stage 1" if run.stage == "stage1" else "Stage 2"
    if rise is None:
        return (f"{stage}'s loss curve shows no early rise (none of at least "
                f"{RISE_MIN:.0%} of its level).")
    low, peak, w = rise["low"], rise["peak"], rise["window"]
    lo, hi = rise["at_low"]["loss"], rise["at_peak"]["loss"]
    text = (f"{stage}'s curves rise early: the running mean of `loss` goes from {lo:.2f} at "
            f"step {low} to {hi:.2f} at step {peak} (+{(hi - lo) / lo:.0%})"
            + (f" and is back at {lo:.2f} by step {rise['back']}." if rise["back"] else "."))
    sched = run.schedule
    lr_lo, lr_hi = (v / sched.lr for v in rise["lr"])
    if sched.warmup_steps <= low and lr_lo >= 0.9:
        text += (f" It is not the learning rate: the warm-up ended at step "
                 f"{sched.warmup_steps}, and over steps {low + 1}-{peak} the {sched.lr_schedule} "
                 f"schedule keeps the base rate at {100 * lr_lo:.0f}-{100 * lr_hi:.0f} % of its "
                 f"peak, {sched.lr:g}.")
    else:
        text += (f" The learning rate changes over it: the warm-up ends at step "
                 f"{sched.warmup_steps} and over steps {low + 1}-{peak} the base rate runs "
                 f"from {100 * lr_lo:.0f} to {100 * lr_hi:.0f} % of its peak.")
    delta = {t: rise["at_peak"][t] - rise["at_low"][t] for t in rise["at_low"] if t != "loss"}
    up = [f"{t} {d:+.3f}" for t, d in delta.items() if d > 0.01 * rise["at_low"][t]]
    down = [f"{t} {d:+.3f}" for t, d in delta.items() if d < -0.01 * rise["at_low"][t]]
    if up:
        text += f" The terms that rise: {', '.join(up)}"
        text += f"; those that keep falling: {', '.join(down)}." if down else "."
    if boxes is not None and log is not None:
        per_step = log.set_index("step")["loss"]
        by_count = per_step.groupby(boxes.reindex(per_step.index)).mean()
        entered = boxes.loc[low + 1:peak].mean()  # the samples the window takes in over the rise
        left = boxes.loc[low - w + 1:peak - w].mean()  # and those it lets go
        # Loss per box over the whole stage (least squares through the per-step points).
        valid = boxes.reindex(per_step.index).notna()
        x, y = boxes.reindex(per_step.index)[valid], per_step[valid]
        slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
        owed = slope * (entered - left)
        counts = ", ".join(f"{v:.2f} with {int(k)}" for k, v in by_count.items()
                           if float(k).is_integer())
        share = owed / (hi - lo)
        text += (f" Over the whole stage an image's loss grows with its annotated boxes "
                 f"({counts}; {slope:.2f} a box least-squares), and the images the window "
                 f"takes in over the rise (steps {low + 1}-{peak}) hold {entered:.2f} boxes "
                 f"each against {left:.2f} in those it lets go (steps "
                 f"{max(1, low - w + 1)}-{peak - w}): worth {owed:+.2f} of the "
                 f"{hi - lo:+.2f}, {share:.0%} of the rise")
        text += (": the rest is the detector's own course at its peak learning rate."
                 if share < 0.5 else ": most of it is the images'.")
    text += (" log.csv records nothing finer (not how many of the RoIs OHEM keeps are "
             "foreground, for instance), so the curves cannot say more about the cause.")
    return text


# ---- notebook 03: the toy shift ------------------------------------------------------------------

def toy_shift_markdown(history: Mapping[str, Any], shift: tuple[float, float],
                       near: float = 0.5) -> str:
    """What notebook 03's toy run (`models.lsts.fit_toy_shift`'s history: offsets (steps+1,
    N, 2), mean_S (steps+1, N)) did with its points: how many end within `near` cells of the
    true `shift`, where they started and what softmax weight they hold; how far the others
    moved and what weight they keep."""
    import numpy as np

    offsets = np.asarray(history["offsets"], dtype=float)
    weight = np.asarray(history["mean_S"], dtype=float)
    steps, n = offsets.shape[0] - 1, offsets.shape[1]
    start = np.linalg.norm(offsets[0] - np.asarray(shift, dtype=float), axis=1)
    end = np.linalg.norm(offsets[-1] - np.asarray(shift, dtype=float), axis=1)
    moved = np.linalg.norm(offsets[-1] - offsets[0], axis=1)
    found = end < near
    k = int(found.sum())
    if k == 0:
        text = (f"After {steps} steps none of the {n} points lies within {near:g} cell of the "
                f"shift (the nearest ends {end.min():.2f} cells from it).")
    else:
        nearest = set(np.argsort(start)[:k]) == set(np.flatnonzero(found))
        mass = weight[:, found].sum(axis=1)
        half = int(np.argmax(mass >= 0.5 * mass[-1]))
        text = (f"After {steps} steps {k} of the {n} points {'lies' if k == 1 else 'lie'} "
                f"within {near:g} cell of the "
                f"shift: {'the ' + str(k) + ' that started nearest to it, ' if nearest else ''}"
                f"{start[found].min():.2f} to {start[found].max():.2f} cells away. Together "
                f"they hold {mass[-1]:.0%} of the pixel-averaged softmax weight (at step 0: "
                f"{mass[0]:.0%}), half of that by step {half}.")
    if k < n:
        rest = ~found
        text += (f" {f'The other {n - k}' if k else f'All {n}'}, which started "
                 f"{start[rest].min():.2f} to "
                 f"{start[rest].max():.2f} cells from the shift, move too (the grey paths): "
                 f"by a median {np.median(moved[rest]):.2f} cells from start to end, at most "
                 f"{moved[rest].max():.2f}, but none onto the shift, and together they end with "
                 f"{weight[-1, rest].sum():.0%} of the weight.")
    return text


# --------------------------------------------------------------------------------------------
# The report's prose: the introduction and related work (README and notebook 01), each claim
# beside what the paper itself reports, the recipe's departures from the paper's protocol,
# and the next experiment as the tuning record argues it (notebooks 05 and 06, README)
# --------------------------------------------------------------------------------------------
INTRO_START, INTRO_END = "<!-- introduction:start -->", "<!-- introduction:end -->"
RELATED_START, RELATED_END = "<!-- related-work:start -->", "<!-- related-work:end -->"
DIFFERENCES_START, DIFFERENCES_END = "<!-- differences:start -->", "<!-- differences:end -->"
# The works the related-work section discusses, in its order (each a key of CITATIONS).
RELATED_WORK = ("R-FCN (single frame)", "DFF", "FGFA", "MANet", "SELSA", "MEGA",
                "Deformable ConvNets", "LSTS")


def tuning_path(preset: str) -> Path:
    """The committed dev-split tuning record of a preset (tuning/<preset>_dev.jsonl)."""
    return paths.REPO / "tuning" / f"{preset}_dev.jsonl"


def _short_cite(key: str) -> str:
    """'Zhu et al., CVPR 2017' from CITATIONS[key] (first author's surname, venue and year)."""
    text = CITATIONS[key]
    authors, rest = text.split(", *", 1)
    first = authors.split(",")[0].split(" and ")[0].removesuffix(" et al.").split()[-1]
    venue = rest.split("*, ", 1)[1].split(", arXiv")[0]
    return f"{first} et al., {venue}"


def _lower_first(text: str) -> str:
    """`text` with its first letter lower-cased, unless its first word is an acronym (LSTS)."""
    word = text.split()[0]
    return text[0].lower() + text[1:] if word[1:] == word[1:].lower() else text


def _pct(paper: pd.DataFrame, method: str, col: str = "mAP") -> str:
    return f"{float(paper.loc[method, col]):.1f} %"


def introduction_markdown() -> str:
    """The problem, the paper's three contributions (two sentences each) and what this
    reproduction can and cannot test (the claims' pairs read from CLAIM_SPECS); the README's
    and notebook 01's introduction."""
    claims = "; ".join(f"{_lower_first(s.statement)} ({label(s.a)} against {label(s.b)})"
                       for s in CLAIM_SPECS)
    ours = [label(v) for v, e in VARIANTS.items() if e.summary.endswith(OWN_ABLATION)]
    return "\n".join([
        "Running a still-image detector on every frame of a video is slow, and video frames "
        "are often worse than photographs: motion blur, occlusion and defocus hide an object "
        "in some frames while the neighbouring frames show it clearly. Video detectors "
        "therefore reuse features across frames, both to save computation and to borrow "
        f"evidence from better frames. The paper ({_short_cite('LSTS')}) contributes three "
        "pieces:",
        "",
        "- **LSTS** (Learnable Spatio-Temporal Sampling) finds where a pixel's content was in "
        "another frame without optical flow. It compares the pixel with the other frame's "
        "feature at a set of sampling offsets and averages those samples with softmax weights; "
        "the offsets are parameters learned from the detection loss through the bilinear "
        "sampler.",
        "- **SRFU** (Sparsely Recursive Feature Updating) keeps a memory feature across key "
        "frames. At each new key frame the memory is aligned to it by LSTS and fused with the "
        "key frame's own feature by a small quality network, so the memory accumulates "
        "evidence over the video.",
        "- **DFA** (Dense Feature Aggregation) gives every non-key frame a full-quality feature "
        "cheaply. The frame's low-level feature is lifted by `low2high`, the memory is aligned "
        "to it by LSTS, and the two are fused by a second quality network before the "
        "detection head.",
        "",
        "**What this reproduction can test, and what it cannot.** The paper trains ResNet-101 "
        "from ImageNet weights on ImageNet VID and DET on GPUs. This project has neither the "
        "dataset nor pretrained weights nor a GPU, so accuracy is measured on SynthVID (a "
        "generated dataset in the ImageNet VID layout, with the motion that makes propagation "
        "matter; notebook 01) with a ResNet-18 trained from scratch on a CPU, and cost with "
        "the paper's ResNet-101 at the paper's input size, on a CPU. That can test the "
        f"paper's {len(CLAIM_SPECS)} claims as comparisons between variants trained the same "
        f"way on the same data: {claims}. "
        + (f"{_listing(ours)} {'is' if len(ours) == 1 else 'are'} this project's own "
           "switches (the official code has none). " if ours else "")
        + "It cannot test the paper's absolute ImageNet VID numbers, nor how LSTS does from "
        "ImageNet features: those are shown beside ours (notebook 05), not rerun, and the "
        "same commands run the full setting on a GPU box.",
    ])


def related_work_markdown() -> str:
    """The related work, a paragraph per family, with the published ImageNet VID numbers of
    `paper_numbers()` and the publications of CITATIONS (README and notebook 01)."""
    p = paper_numbers().set_index("method")
    rfcn, lsts = "R-FCN (single frame)", "LSTS"

    def secs(m: str) -> str:
        return f"{float(p.loc[m, 's_per_img']):g} s per image"

    gap = float(p.loc[lsts, "mAP"]) - float(p.loc["FGFA", "mAP"])
    higher = [m for m in ("SELSA", "MEGA") if p.loc[m, "mAP"] > p.loc[lsts, "mAP"]]
    return "\n".join([
        f"**Flow-based propagation.** Deep Feature Flow (DFF; {_short_cite('DFF')}) runs the "
        "backbone only on sparse key frames and warps their features to the frames in between "
        "along optical flow predicted by a second network (FlowNet), trained end to end with "
        f"the detector: {_pct(p, 'DFF')} mAP at {secs('DFF')}, against {_pct(p, rfcn)} at "
        f"{secs(rfcn)} for the per-frame R-FCN ({_short_cite(rfcn)}; both from "
        f"{p.loc['DFF', 'source']}). FGFA ({_short_cite('FGFA')}) uses flow the other way "
        "round: it warps the features of several nearby frames to the current one and averages "
        f"them with adaptive weights, which gains accuracy ({_pct(p, 'FGFA')}, "
        f"{_pct(p, 'FGFA', 'fast')} on fast objects; {p.loc['FGFA', 'source']}) but runs the "
        "backbone on every frame. LSTS keeps DFF's sparse key frames and replaces the flow "
        f"network by learned sampling; its published {_pct(p, lsts)} is {gap:+.1f} points "
        "from FGFA's.",
        "",
        f"**MANet** ({_short_cite('MANet')}) calibrates features at two levels, per pixel "
        "along optical flow as FGFA does and per instance by the motion of the boxes, and "
        f"combines the two by the motion pattern it infers ({_pct(p, 'MANet')}).",
        "",
        f"**Attention over frames.** SELSA ({_short_cite('SELSA')}) aggregates the proposal "
        "features of frames drawn from the whole video by their semantic similarity, "
        f"whatever their order ({_pct(p, 'SELSA')}); MEGA ({_short_cite('MEGA')}) adds a "
        "memory that carries aggregated local and global features along the video "
        f"({_pct(p, 'MEGA')}). Neither aligns feature maps spatially: both attend over object "
        "proposals and run the backbone on every frame they use"
        + (f"; {_listing(higher)} {'reaches' if len(higher) == 1 else 'reach'} a higher "
           "published accuracy than LSTS." if higher else "."),
        "",
        f"**Deformable convolution** ({_short_cite('Deformable ConvNets')}) also samples "
        "features at learned fractional offsets through a bilinear kernel, but it predicts a "
        "separate offset for every pixel from the input with an extra convolution, within one "
        "image. LSTS learns one global set of offsets, shared by every pixel, frame and video; "
        "what adapts to the input is only the softmax weight of each offset.",
        "",
        f"The numbers are {PAPER_SOURCE}, VID devkit mAP in percent; none was measured by "
        "this code.",
        "",
        references_markdown(list(RELATED_WORK)),
    ])


@dataclass(frozen=True)
class ClaimSource:
    """What the paper itself reports behind one claim (its main table and abstract), where the claim's
    wording departs from it, and the thresholds that make it a rule: format templates whose
    fields are `_paper_values()` (numbers read from `paper_numbers()` and the rule
    constants), so no number is typed twice."""

    paper: str
    departs: str
    thresholds: tuple[str, ...] = ()


_ABOVE_ZERO = "'{word}': the whole interval of the paired mAP difference above 0 (no margin)"
CLAIM_SOURCES: dict[str, ClaimSource] = {
    "learnable_sampling": ClaimSource(
        "the abstract, in substance: the sampling locations are randomly initialised, then "
        "updated iteratively, guided by the detection loss, to find spatial correspondences "
        "between frames. The paper's numbers this reproduction works from (its main table) hold none comparing them with fixed locations",
        "'beat fixed ones' is this reproduction's test of that sentence; the frozen-offsets "
        "run it compares with (LSTS, frozen offsets) is its own ablation",
        (_ABOVE_ZERO.replace("{word}", "beat"), "testable only when the offsets moved at "
         "least {engaged:g} feature cells on average")),
    "beats_flow": ClaimSource(
        "the abstract argues that flow-based propagation is slow; the table gives LSTS "
        "{LSTS} against DFF {DFF} and FGFA {FGFA} mAP (ImageNet VID val, ResNet-101), and a "
        "time for DFF ({DFF_s} s per image, from DFF's README); this reproduction has no published LSTS time to set beside it",
        "the paper compares with the published DFF and FGFA; this reproduction compares with "
        "its own DFF-style flow warp on the same data. Against FGFA the published margin is "
        "{LSTS_FGFA} points",
        (_ABOVE_ZERO.replace("{word}", "beats") + " for accuracy",
         "'faster': amortised time ratio below {speed:g} (a 5 % margin, chosen before the final run; the benchmark's own spread, notebook 06, is larger)")),
    "srfu": ClaimSource(
        "one of the paper's three contributions (the abstract: it models temporal relations "
        "at key frames). The paper's numbers this reproduction works from hold none with and without it, and the official "
        "code has no switch to remove it",
        "'adds accuracy' is this reproduction's reading; the run without SRFU is its own "
        "definition",
        (_ABOVE_ZERO.replace("{word}", "adds accuracy"),)),
    "dfa": ClaimSource(
        "one of the paper's three contributions (the abstract: it enhances the per-frame "
        "features). The paper's numbers this reproduction works from hold none with and without it, and the official code "
        "has no switch to remove it",
        "'adds accuracy' is this reproduction's reading; its run without DFA keeps DFA's "
        "alignment and drops only the fusion, its own definition",
        (_ABOVE_ZERO.replace("{word}", "adds accuracy"),)),
    "per_frame": ClaimSource(
        "the table gives LSTS {LSTS} against {RFCN} for the per-frame R-FCN (ImageNet VID val, "
        "ResNet-101): LSTS better than per-frame detection, by {LSTS_RFCN} points; R-FCN's time "
        "({RFCN_s} s per image) is DFF README's, and no published LSTS time is at hand here",
        "the wording departs from the paper: the paper reports LSTS above per-frame accuracy, "
        "'close to' is a weaker test; 'a fraction of the cost' is this reproduction's reading "
        "of 'efficient'",
        ("'close': the interval of single-frame minus LSTS mAP ends at most {close:g} points "
         "above 0", "'a fraction of the cost': amortised time ratio at most {cost:g}")),
}


def _paper_values() -> dict[str, Any]:
    """The fields of CLAIM_SOURCES' templates: published numbers and the rule constants."""
    p = paper_numbers().set_index("method")
    m = {k: float(p.loc[k, "mAP"]) for k in ("LSTS", "DFF", "FGFA", "R-FCN (single frame)")}
    return {"LSTS": f"{m['LSTS']:.1f} %", "DFF": f"{m['DFF']:.1f} %",
            "FGFA": f"{m['FGFA']:.1f} %", "RFCN": f"{m['R-FCN (single frame)']:.1f} %",
            "LSTS_FGFA": f"{m['LSTS'] - m['FGFA']:+.1f}",
            "LSTS_RFCN": f"{m['LSTS'] - m['R-FCN (single frame)']:+.1f}",
            "DFF_s": f"{float(p.loc['DFF', 's_per_img']):g}",
            "RFCN_s": f"{float(p.loc['R-FCN (single frame)', 's_per_img']):g}",
            "confidence": CONFIDENCE, "close": CLOSE_MAP_POINTS, "cost": COST_FRACTION,
            "speed": SPEED_MARGIN, "engaged": OFFSETS_ENGAGED_CELLS}


def claim_source_markdown(key: str) -> str:
    """One claim's 'The paper: ... Wording: ... Thresholds (this reproduction's ...): ...'."""
    src = CLAIM_SOURCES[key]
    v = _paper_values()
    text = (f"*The paper:* {src.paper.format(**v)}. *This claim:* {src.departs.format(**v)}.")
    if src.thresholds:
        text += (" *Thresholds, this reproduction's operationalisation (not the paper's):* "
                 + "; ".join(t.format(**v) for t in src.thresholds) + ".")
    return text


def thresholds_markdown() -> str:
    """The rule constants, each labelled as this reproduction's (notebook 05's claims)."""
    v = _paper_values()
    rows = [("interval confidence", f"{CONFIDENCE:g}", "every claim"),
            ("'faster'", f"time ratio < {SPEED_MARGIN:g}", "claim 2"),
            ("'close to per-frame accuracy'",
             f"single-frame minus LSTS at most {CLOSE_MAP_POINTS:g} mAP points", "claim 5"),
            ("'a fraction of the cost'", f"time ratio <= {COST_FRACTION:g}", "claim 5"),
            ("learnable sampling engaged",
             f"offsets moved at least {OFFSETS_ENGAGED_CELLS:g} feature cells", "claim 1"),
            ("test split large enough", f"bootstrap half-width of the single-frame mAP <= "
             f"{TEST_NOISE_TARGET_POINTS:g} points", "the test-noise line")]
    table = markdown_table(pd.DataFrame(rows, columns=["threshold", "value", "used by"]),
                           left=["value", "used by"])
    return ("Every threshold below is this reproduction's operationalisation of the paper's "
            "words, fixed before the final run; the paper states none of them (it reports "
            f"LSTS {v['LSTS']} against R-FCN {v['RFCN']}, DFF {v['DFF']} and FGFA {v['FGFA']} "
            "on ImageNet VID, not a rule).\n\n" + table)


def claim_line_markdown(c: Claim) -> str:
    """A claim's verdict and numbers in the reader's names (labels, not run names): the two
    runs' mean mAP, the paired difference with its interval and noise sources, and the cost
    ratio or the offsets' movement where the claim reads them."""
    a, b = c.runs
    parts = [f"**{c.verdict}**"]
    if c.per_seed.get(a) and c.per_seed.get(b):
        ma = sum(c.per_seed[a]) / len(c.per_seed[a])
        mb = sum(c.per_seed[b]) / len(c.per_seed[b])
        parts.append(f"{run_label(a)} {ma:.1f} % vs {run_label(b)} {mb:.1f} % mAP")
    iv = c.combined or c.bootstrap
    if iv is not None:
        noise = (f" (seeds ± {c.t_interval.half_width:.2f}, test videos ± "
                 f"{c.bootstrap.half_width:.2f})" if c.t_interval and c.bootstrap else "")
        parts.append(f"difference {iv.estimate:+.2f} points, {100 * iv.confidence:.0f} % "
                     f"interval [{iv.low:+.2f}, {iv.high:+.2f}]{noise}")
    moved = c.numbers.get("offsets_moved_cells")
    if moved is not None and math.isfinite(moved):
        parts.append(f"offsets moved {moved:.2f} cells")
    ratio = c.numbers.get("time_ratio")
    if ratio is not None and math.isfinite(ratio):
        # `lsts claims` divides LSTS's time by the other run's (per_frame: lsts is its b).
        num, den = (b, a) if c.key == "per_frame" else (a, b)
        parts.append(f"CPU time ratio {run_label(num)} / {run_label(den)} {ratio:.2f}")
    if len(parts) == 1:
        parts.append(c.reason)
    return "; ".join(parts)


def _stage_length(st: Any) -> str:
    return f"{st.steps} steps" if st.steps is not None else f"{_num_text(st.epochs)} epochs"


def _module_rates(st: Any) -> str:
    """'backbone frozen, head at x0.1 the lr' from a stage's lr_mult ('every module at the
    stage's lr' when it has none)."""
    frozen = [k for k, v in st.lr_mult.items() if float(v) == 0.0]
    scaled = [f"{k} at x{_num_text(v)} the lr" for k, v in st.lr_mult.items() if float(v) != 0.0]
    parts = ([f"{_listing(frozen)} frozen"] if frozen else []) + scaled
    return ", ".join(parts) or "every module at the stage's lr"


def _protocol_text(run: RunConfig, plan: PlanConfig | None) -> str:
    start = "ImageNet weights" if run.model.pretrained else "a random initialisation"
    if (plan is None and not run.train.stage2.init_from) or (plan is not None and plan.one_stage):
        return f"every variant trains in one stage from {start}"
    if plan is not None and plan.shared_stage1:
        return (f"one single-frame model is trained first from {start} "
                f"({_stage_length(run.train.stage1)}); every variant of every seed, the "
                "single-frame one included, then trains a stage 2 from it")
    return ("each seed's single-frame model is trained first; the seed's other variants "
            "start their stage 2 from it")


def protocol_differences(run: RunConfig, paper: RunConfig, plan: PlanConfig | None = None,
                         paper_plan: PlanConfig | None = None) -> pd.DataFrame:
    """Where `run`'s recipe departs from `paper`'s (both resolved configs; the plans say how
    runs start), one row per aspect that differs, the largest departures first: aspect,
    this run's value, the paper's. Every value is read from the configs."""
    def opt(t: Any) -> str:
        name = ("AdamW" if t.optimizer == "adamw" else
                f"SGD with momentum {_num_text(t.momentum)}")
        clip = (f", gradient norm clipped at {_num_text(t.grad_clip)}"
                if t.grad_clip is not None else "")
        return f"{name}, weight decay {_num_text(t.weight_decay)}{clip}"

    def schedule(t: Any) -> str:
        st = t.stage2
        return f"{_stage_length(st)}, lr {_num_text(st.lr)}, {st.lr_schedule} schedule"

    def backbone(m: Any) -> str:
        return (f"{m.backbone}, {'ImageNet weights' if m.pretrained else 'random initialisation'}"
                f", {'frozen BatchNorm' if m.freeze_bn else m.norm.upper()}")

    def data(d: Any) -> str:
        return (f"SynthVID (preset `{d.preset}`)" if d.preset else
                "ImageNet VID" + (" + DET stills" if d.use_det else ""))

    def flow(p: PlanConfig | None) -> str:
        if p is not None and p.flow_pretrain:
            return (f"pretrained on SynthVID's true flow ({p.flow_pretrain['steps']} steps), "
                    "then trained with the detector")
        return "learnt from the detection loss alone"

    aspects: list[tuple[str, Callable[[RunConfig, PlanConfig | None], str]]] = [
        ("optimizer", lambda r, _: opt(r.train)),
        ("temporal variants (train.stage2): which modules learn",
         lambda r, _: _module_rates(r.train.stage2)),
        ("temporal variants (train.stage2): schedule", lambda r, _: schedule(r.train)),
        ("offsets p_n: lr multiplier (train.stage2)",
         lambda r, _: f"x{_num_text(r.train.stage2.offsets_mult(r.train))}"),
        ("how runs start", lambda r, p: _protocol_text(r, p)),
        ("low2high warm-up before stage 2",
         lambda r, _: (f"{r.train.stage2.low2high_warmup} steps" if r.train.stage2.low2high_warmup
                       else "none")),
        ("flow baseline's FlowNet", lambda _, p: flow(p)),
        ("backbone", lambda r, _: backbone(r.model)),
        ("input size", lambda r, _: f"shorter side {r.model.min_size}, longer at most "
                                    f"{r.model.max_size}"),
        ("data", lambda r, _: data(r.data)),
    ]
    rows = [(name, ours, theirs) for name, f in aspects
            if (ours := f(run, plan)) != (theirs := f(paper, paper_plan))]
    return pd.DataFrame(rows, columns=["aspect", f"this report (`{run.name or '?'}`)",
                                       f"the paper's protocol (`{paper.name or '?'}`)"])


# Tuning rows of the stage-2 offsets multiplier: S2_lsts_offsets_x<mult>_s<seed>; each row's note
# names the run it is paired with ("Paired with <row> (x<mult>, ...").
OFFSETS_RUN = re.compile(r"^S2_(?P<variant>\w+?)_offsets_x(?P<mult>[\d.]+)_s(?P<seed>\d+)$")
_PAIRED_WITH = re.compile(r"Paired with (\S+) \(x([\d.]+)")
_MOVED = re.compile(r"offsets moved ([\d.]+) cells")


def offsets_choice_markdown(tuning: pd.DataFrame, chosen: float, official: float,
                            noise: tuple[float, int] | None = None) -> str:
    """How the stage-2 offsets multiplier `chosen` was picked, from the tuning rows named
    OFFSETS_RUN and the row each is paired with: how many seeds, the dev mAP against the
    pair's, and whether the gain exceeds the noise (`noise`: `seed_std` of LSTS's test mAP,
    notebook 02's yardstick, and the spread of the pair's own seeds on the same dev videos)."""
    by = tuning.set_index("name")
    rows = [(m, r) for _, r in tuning.iterrows() if (m := OFFSETS_RUN.match(str(r["name"])))]
    if chosen == official:
        return f"The offsets learn at the official x{_num_text(official)} in every stage."
    pick = [(m, r) for m, r in rows if float(m["mult"]) == chosen]
    if not pick:
        return (f"The stage-2 offsets multiplier x{_num_text(chosen)} (the official code's is "
                f"x{_num_text(official)}) has no tuning row named like "
                f"S2_lsts_offsets_x{_num_text(chosen)}_s0 to say how it was chosen.")
    m, r = pick[0]
    paired = _PAIRED_WITH.search(r["note"] or "")
    if paired is None or paired.group(1) not in by.index:
        return (f"The stage-2 offsets multiplier x{_num_text(chosen)} was chosen on "
                f"{r['name']} ({r['dev mAP']:.1f} % dev mAP); its note names no paired run "
                "to compare with.")
    base_name, base_mult = paired.group(1), float(paired.group(2))
    base = by.loc[base_name]
    dev = float(r["dev mAP"])
    gain = dev - float(base["dev mAP"])
    seeds = sorted({int(mm["seed"]) for mm, _ in pick})
    others = [f"x{mm['mult']} {rr['dev mAP']:.1f} % ({rr['name']})"
              for mm, rr in rows if float(mm["mult"]) != chosen and mm["seed"] == m["seed"]]
    text = (f"The stage-2 offsets multiplier x{_num_text(chosen)} (the official code's is "
            f"x{_num_text(official)}) was chosen on "
            f"{'one seed' if len(seeds) == 1 else f'{len(seeds)} seeds'}: "
            f"{r['name']} reached {dev:.2f} % dev mAP on {r['dev videos']} dev videos against "
            f"{float(base['dev mAP']):.2f} % for its pair at x{_num_text(base_mult)} "
            f"({base_name}), {gain:+.2f} points"
            + (f"; {_listing(others)}" if others else "") + ".")
    # The pair's own recipe at another seed: how much two seeds differ on the same dev videos.
    stem = re.sub(r"_s\d+$", "", base_name)
    twins = [n for n in by.index if re.fullmatch(rf"{re.escape(stem)}_s\d+", str(n))]
    spread = (float(by.loc[twins, "dev mAP"].max() - by.loc[twins, "dev mAP"].min())
              if len(twins) > 1 else None)
    yardsticks = []
    if noise is not None:
        yardsticks.append(f"the report's LSTS test mAP varies by {noise[0]:.1f} points over "
                          f"{noise[1]} seeds (standard deviation, the yardstick of notebook "
                          "02's cut comparison)")
    if spread is not None:
        yardsticks.append(f"two seeds of the x{_num_text(base_mult)} recipe differ by "
                          f"{spread:.1f} points on the same dev videos ({_listing(twins)})")
    if yardsticks:
        within = all(abs(gain) < y for y in ([noise[0]] if noise else [])
                     + ([spread] if spread is not None else []))
        text += (f" Against that, {'; '.join(yardsticks)}: the x{_num_text(chosen)} choice was "
                 + ("within dev noise." if within else "larger than these yardsticks, on one "
                    "seed."))
    moved = _MOVED.search(r["note"] or "")
    moved_base = _MOVED.search(str(base["note"]))
    if moved and moved_base:
        text += (f" What it bought is offsets that move ({moved.group(1)} cells against "
                 f"{moved_base.group(1)}, {OFFSETS_MEASURE}), which claim 1 needs; the paper "
                 f"preset keeps x{_num_text(official)}.")
    return text


def _report_run_dir(runs: Path, run: str = "lsts") -> Path | None:
    """The first seed's folder of `run` that has a config.yaml (None without one)."""
    return next((d for r, _, d in run_dirs(runs) if r == run and (d / "config.yaml").is_file()),
                None)


def _recipe(runs: Path, run: str = "lsts") -> tuple[Path, RunConfig] | None:
    """(folder, resolved config) of `run`'s first seed; None without a complete config.yaml."""
    d = _report_run_dir(runs, run)
    if d is None:
        return None
    try:
        return d, run_config(d)
    except (KeyError, TypeError, ValueError):  # a partial config.yaml
        return None


def _preset_plan(name: str) -> PlanConfig | None:
    try:
        return load_plan(name)
    except (FileNotFoundError, ValueError):
        return None


def differences_markdown(runs: Path, tuning: pd.DataFrame | None = None) -> str:
    """The recipe behind a preset's numbers against the paper's protocol: `protocol_differences`
    of the lsts runs' resolved config and the paper config as a table, then how the stage-2
    offsets multiplier was chosen (`offsets_choice_markdown`, from the preset's tuning record)."""
    from lsts_lib.engine.config import load_config

    runs = Path(runs)
    found = _recipe(runs)
    if found is None:
        return "No LSTS run with a config.yaml: the recipe cannot be compared with the paper's."
    d, run = found
    paper = RunConfig.from_dict(load_config("paper", {"model.variant": run.model.variant}))
    table = protocol_differences(run, paper, _preset_plan(runs.name), PAPER_PLAN)
    text = (f"How the recipe behind these numbers (`runs/{runs.name}/{d.relative_to(runs)}/"
            "config.yaml`) "
            "departs from the paper's protocol (`lsts_lib/configs/paper.yaml`, the official "
            "code's values), the largest departures first; every cell is read from the two "
            "configs:\n\n" + markdown_table(table, left=list(table.columns)))
    if tuning is None and tuning_path(runs.name).is_file():
        tuning = tuning_table(tuning_path(runs.name))
    if tuning is not None:
        cs = load_claims(runs)[0] if (runs / CLAIMS_FILE).is_file() else []
        text += "\n\n" + offsets_choice_markdown(
            tuning, run.train.stage2.offsets_mult(run.train),
            paper.train.stage2.offsets_mult(paper.train), seed_std(cs))
    return text


# --------------------------------------------------------------------------------------------
# Did stage 2 finish, what the tuning record says to do next, what the dev split can rank
# --------------------------------------------------------------------------------------------
def _last_changes(dev: pd.DataFrame) -> dict[str, pd.Series]:
    """Per variant of dev.csv rows: each seed's dev mAP change (points) between the last two
    evaluations of the seed-mean curve (the interval `dev_curve_table` reads)."""
    out = {}
    for variant, g in dev.groupby("variant", sort=False):
        steps = sorted(g["step"].unique())
        if len(steps) < 2:
            continue
        by_seed = 100 * g.pivot_table(index="step", columns="seed", values="mAP")
        out[variant] = (by_seed.loc[steps[-1]] - by_seed.loc[steps[-2]]).dropna()
    return out


def _stage2_dev(runs: Path) -> tuple[pd.DataFrame, int | None, int | None]:
    """The compared runs' stage-2 dev.csv rows, the number of dev frames they were read on
    (None when not recorded) and the stage's dev_max_videos (None: all, or unknown)."""
    found = run_dirs(runs)
    try:
        dev = load_logs(runs, list(dict.fromkeys(r for r, _, _ in found)),
                        sorted({s for _, s, _ in found}), name=rundir.DEV_LOG)
    except FileNotFoundError:
        return pd.DataFrame(), None, None
    frames = int(dev["frames"].iloc[0]) if "frames" in dev.columns else None
    videos = None
    d = next((d for _, _, d in found if (d / rundir.DEV_LOG).is_file()), None)
    if d is not None:
        try:
            videos = run_config(d).train.stage2.dev_max_videos
        except (KeyError, TypeError, ValueError):  # a partial config.yaml
            videos = None
    return dev, frames, videos


def _dev_where(frames: int | None, videos: int | None) -> str:
    what = f"{frames} dev frames" if frames else "the dev frames"
    if not videos:
        return what
    return what + (" of the first dev video" if videos == 1 else f" of the first {videos} dev videos")


def _plateau_sentence(runs: Path) -> str:
    """Whether each compared variant's stage-2 dev curve had plateaued by the plateau rule
    (`dev_curve_table`, PLATEAU_POINTS), in the reader's names, and whether that verdict
    stands out of the noise: a rising variant is decided only when the t-interval of its
    seeds' changes over the last interval lies wholly above PLATEAU_POINTS."""
    dev, frames, videos = _stage2_dev(runs)
    table = dev_curve_table(dev) if not dev.empty else pd.DataFrame()
    if table.empty:
        return "No dev-split curves were recorded (`train.<stage>.dev_every`), so it is not known."
    rule = (f"The plateau rule (this reproduction's, fixed before the final run) counts a "
            f"stage as finished when its last dev evaluation interval changed the seed-mean dev "
            f"mAP by less than {PLATEAU_POINTS:g} point.")
    rising = table[~table["plateau"]]
    if rising.empty:
        return (f"Yes. {rule} Every variant's dev-split mAP changed by less than that over its "
                f"last evaluation interval (notebook 04, on {_dev_where(frames, videos)}).")
    changes = _last_changes(dev)
    parts = "; ".join(f"{label(r['variant'])} {r['change over it']:+.1f} points"
                      f"{_seed_spread(r)} over its last {r['last interval (steps)']} steps "
                      f"(dev mAP {r['dev mAP last']:.1f} %)" for _, r in rising.iterrows())
    n = len(rising)
    which = "it" if n == 1 else "both" if n == 2 else f"all {n}"
    decided = []
    for _, r in rising.iterrows():
        hw = t_half_width(list(changes.get(r["variant"], [])))
        decided.append(math.isfinite(hw) and r["change over it"] - hw >= PLATEAU_POINTS)
    lo = min(float(changes[v].min()) for v in rising["variant"] if v in changes)
    hi = max(float(changes[v].max()) for v in rising["variant"] if v in changes)
    text = (f"{rule} By it, {n} variant{'s were' if n > 1 else ' was'} still rising at the "
            f"end of stage 2 (notebook 04's dev curves, on {_dev_where(frames, videos)}): "
            f"{parts}.")
    if all(decided):
        return "No. " + text + (f" For {which}, the t-interval of the seeds' changes lies above "
                                f"{PLATEAU_POINTS:g} point: still learning.")
    noisy = [label(v) for v, ok in zip(rising["variant"], decided, strict=True) if not ok]
    whose = which if len(noisy) == n else _listing(noisy)
    return ("Not known from these curves. " + text
            + f" But over that interval the seeds' own changes range from {lo:+.1f} to "
            f"{hi:+.1f} points, and the {100 * CONFIDENCE:.0f} % t-interval of the seed-mean "
            f"change of {whose} reaches below {PLATEAU_POINTS:g} point: on so few frames the "
            "plateau test is within noise, and says neither that "
            f"{'it was' if len(noisy) == 1 else 'they were'} still learning nor that "
            f"{'it' if len(noisy) == 1 else 'they'} had finished.")


def plateau_markdown(runs: Path) -> str:
    """Whether stage 2 finished learning, by the plateau rule and against its noise (the
    sentence notebooks 04 and 05 and the README give)."""
    return _plateau_sentence(runs)


# The tuning rows the next-experiment advice reads (tuning/report_dev.jsonl), by role.
# This report's own LSTS models scored on all dev videos (the cut comparison's default cut).
CURRENT_LSTS_ROWS = r"S2_lsts_cut_res4a_s\d+"
NEXT_ROWS = {"longer": "S2_lsts_600_s1_3600", "copy": "S2_copy_prop_150_s1_3600",
             "short": "S2_lsts_150_s1_3600", "low2high": "S2_lsts_l2h300_150",
             "align": "S2_lsts_l2h300_alignwarm200_150"}
_NUM = r"(\d+(?:\.\d+)?)"
_CURVE = re.compile(r"dev curve(?: \(step: mAP %\))? ((?:\d+: \d+(?:\.\d+)?(?:, (?=\d+:))?)+)")
_PLATEAU_FROM = re.compile(r"plateau from step (\d+)")
_EPE_NOTE = re.compile(rf"EPE {_NUM} px against {_NUM} px")
_ENTROPY_NOTE = re.compile(rf"entropy {_NUM} of {_NUM} nats")
_FIRST_VIDEOS = re.compile(r"first (\d+) dev videos")


def note_curve(note: str) -> dict[int, float]:
    """The dev curve a tuning note records ('dev curve (step: mAP %) 0: 1.4, 75: 20.0, ...'),
    step -> mAP %; {} when the note has none."""
    m = _CURVE.search(note or "")
    if not m:
        return {}
    return {int(k): float(v) for k, v in (p.split(": ") for p in m.group(1).split(", "))}


def _lead_int(text: Any) -> int | None:
    m = re.match(r"\s*(\d+)", str(text))
    return int(m.group(1)) if m else None


def next_experiment_markdown(runs: Path, tuning: pd.DataFrame | None = None,
                             travel: tuple[float, float] | None = None,
                             bound_ref: str = "") -> str:
    """What to run next, argued from the tuning record's rows NEXT_ROWS (a longer stage 2
    against copy-propagation on the same dev videos; the alignment warm-up's effect on the
    alignment) and the recipe that ran (frozen modules of stage 2); asks for offsets that can
    travel when `travel` (moved, offsets_travel_bound) says the bound held them."""
    runs = Path(runs)
    if tuning is None and tuning_path(runs.name).is_file():
        tuning = tuning_table(tuning_path(runs.name))
    held = travel is not None and travel[0] <= OFFSETS_BOUND_SHARE * travel[1]
    offsets = f", with offsets that can travel{bound_ref}" if held else ""
    found = _recipe(runs)
    st = found[1].train.stage2 if found is not None else None
    frozen = (f" (in this recipe: {_module_rates(st)})"
              if st is not None and any(float(v) == 0.0 for v in st.lr_mult.values()) else "")
    by = tuning.set_index("name") if tuning is not None else pd.DataFrame()
    if not all(n in by.index for n in NEXT_ROWS.values()):
        return (f"The tuning record has no longer stage-2 run to say more; a longer stage 2, "
                f"the same for every variant{offsets}, is the next experiment.")
    L, C, S, W, A = (by.loc[NEXT_ROWS[k]] for k in ("longer", "copy", "short", "low2high",
                                                    "align"))
    curve = note_curve(L["note"])
    plateau = _PLATEAU_FROM.search(L["note"])
    same = L["dev videos"] == C["dev videos"] == S["dev videos"]
    where = "the same" if same else "other (not comparable)"
    start = f", starting from {curve[0]:.1f} % dev mAP at step 0" if 0 in curve else ""
    ours = f" instead of this recipe's {st.steps}" if st is not None and st.steps else ""
    longer = (
        f"A longer stage 2 alone does not close the gap to copy-propagation. "
        f"{NEXT_ROWS['longer']} trained LSTS's stage 2 for {int(L['steps'])} steps{ours}{start}"
        f": its dev mAP {'stopped rising from step ' + plateau.group(1) + ' and ' if plateau else ''}"
        f"ended at {L['dev mAP']:.1f} % on {L['dev videos']} dev videos, "
        f"{'below' if L['dev mAP'] < C['dev mAP'] else 'above'} copy-propagation's "
        f"{C['dev mAP']:.1f} % after {int(C['steps'])} steps on {where} videos "
        f"({NEXT_ROWS['copy']}), against {S['dev mAP']:.1f} % for LSTS after "
        f"{int(S['steps'])} steps ({NEXT_ROWS['short']}).")
    # Those rows ran an older recipe (their notes in notebook 06 say which); the cut
    # comparison's default-cut rows are this report's own LSTS models on the same dev videos.
    now = by[by.index.str.fullmatch(CURRENT_LSTS_ROWS)] if len(by) else by
    if len(now) and all(_lead_int(v) == _lead_int(L["dev videos"]) for v in now["dev videos"]):
        longer += (f" Those LSTS rows ran an older recipe (their notes say which); this "
                   f"report's own LSTS models score {now['dev mAP'].min():.1f} to "
                   f"{now['dev mAP'].max():.1f} % after {int(now['steps'].iloc[0])} steps on "
                   f"the same dev videos ({', '.join(now.index)}), "
                   f"{'still below' if now['dev mAP'].max() < C['dev mAP'] else 'not below'} "
                   f"copy-propagation's {C['dev mAP']:.1f} %.")
    epe_a, epe_w = _EPE_NOTE.search(A["note"]), _EPE_NOTE.search(W["note"])
    ent_a, ent_w = _ENTROPY_NOTE.search(A["note"]), _ENTROPY_NOTE.search(W["note"])
    ca, cw = note_curve(A["note"]), note_curve(W["note"])
    videos = _FIRST_VIDEOS.search(A["note"])
    align = ""
    if epe_a and epe_w:
        align = (f"The one change in the record that moved LSTS's alignment towards the true "
                 f"motion is the alignment warm-up of {NEXT_ROWS['align']}: before stage 2, "
                 "both alignments (f, g and p_n) learn to reconstruct the target frame's own "
                 "high-level feature, without labels. After it the end-point error was "
                 f"{float(epe_a.group(1)):.1f} px against {float(epe_w.group(1)):.1f} px after "
                 f"the low2high warm-up alone ({NEXT_ROWS['low2high']})"
                 + (f" on the first {videos.group(1)} dev videos" if videos else "")
                 + f", still above the {float(epe_a.group(2)):.1f} px of not moving at all")
        if ent_a and ent_w:
            align += (f", and S spread out (entropy {float(ent_a.group(1)):.2f} of "
                      f"{float(ent_a.group(2)):.2f} nats, against {float(ent_w.group(1)):.2f})")
        last = max(set(ca) & set(cw), default=None)
        if last is not None:
            gain = ca[last] - cw[last]
            align += (f". In a {int(A['steps'])}-step stage 2 on the frozen backbone it "
                      + (f"gained no dev mAP ({ca[last]:.1f} % against {cw[last]:.1f} % at step "
                         f"{last}, on {_lead_int(A['dev videos'])} dev videos)" if gain <= 0 else
                         f"gained {gain:.1f} dev mAP points at step {last} (on "
                         f"{_lead_int(A['dev videos'])} dev videos, within their noise)"))
        align += "."
    advice = ("So the next experiment is not a longer stage 2 on the frozen backbone but that "
              f"alignment warm-up followed by a stage 2 that also trains the backbone{frozen}, "
              f"the same for every variant{offsets}, its length set where the dev mAP of "
              "several seeds on all dev videos stops rising.")
    return " ".join(x for x in (longer, align, advice) if x)


def imagenet_markdown(runs: Path) -> str:
    """What ImageNet weights and real video would change, argued from the recipe that ran and
    the tuning rows NEXT_ROWS (when the record has them)."""
    runs = Path(runs)
    found = _recipe(runs)
    run = found[1] if found is not None else None
    recorded = (tuning_path(runs.name).is_file() and all(
        n in set(tuning_table(tuning_path(runs.name))["name"]) for n in NEXT_ROWS.values()))
    if run is None:
        return ("With ImageNet weights and real video the embeddings f and g would start from "
                "features that already tell objects apart, which a raw dot-product similarity "
                "needs; the paper also trains every module jointly for the whole schedule.")
    st = run.train.stage2
    start = "ImageNet weights" if run.model.pretrained else "scratch"
    text = (
        "With ImageNet weights and real video, two things this run lacks would change at once: "
        "the features whose raw dot products make S would already tell objects apart (here "
        f"they come from a {run.model.backbone} trained from {start} for single-frame "
        f"detection{', then frozen' if st.lr_mult.get('backbone') == 0 else ''}), and every "
        "module would train jointly for the whole schedule (here the temporal modules get "
        f"{_stage_length(st)}).")
    if recorded:
        text += (" The tuning record cannot separate the two: a longer stage 2 on the frozen "
                 f"backbone ({NEXT_ROWS['longer']}) still ended below copy-propagation, and "
                 f"the alignment warm-up ({NEXT_ROWS['align']}) moved the alignment towards "
                 "the motion without a dev gain. The paper's one-stage training from ImageNet "
                 "weights changes both at once.")
    return text


def gpu_first_markdown() -> str:
    """What a reader with a GPU box should run first: the GPU commands cut to claim 5's runs."""
    spec = next(s for s in CLAIM_SPECS if s.key == "per_frame")
    return (f"A reader with a GPU box should run first the GPU commands (the README's and "
            f"notebook 05's, the same lines) with the variant loop cut to `{spec.a} {spec.b}`: "
            f"{len(PAPER_SEEDS)} seeds each test claim 5, the headline, on the paper's data and "
            "under its one-stage protocol, which this experiment departs from; the papermill "
            "line at their end reruns notebook 05 on those runs.")


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def dev_ranking_markdown(runs: Path, tuning: pd.DataFrame | None = None,
                         reference: str = "single_frame") -> str:
    """Whether the dev frames stage 2 is read on can rank the variants: how many pairs order
    differently there than on the test split (`dev_test_table`), where `reference` ranks on
    each, and which stage-2 tuning rows were scored on as few dev videos."""
    runs = Path(runs)
    dev, frames, videos = _stage2_dev(runs)
    if dev.empty:
        return "No stage-2 dev curves were recorded: the dev split's ranking is not known."
    table = dev_test_table(dev, load_runs(runs))
    rows = list(table.itertuples(index=False))
    swaps = sum((a[1] - b[1]) * (a[2] - b[2]) < 0 for i, a in enumerate(rows) for b in rows[i + 1:])
    pairs = len(rows) * (len(rows) - 1) // 2
    if swaps == 0:
        return (f"On {_dev_where(frames, videos)} the variants rank as on the test split "
                f"(notebook 04).")
    text = (f"The dev measure stage 2 is read on ({_dev_where(frames, videos)}) cannot rank "
            f"the variants: {swaps} of {pairs} pairs order differently on it than on the test "
            "split (notebook 04)")
    ref = table.set_index("variant")
    if reference in ref.index:
        r = ref.loc[reference]
        text += (f", and {label(reference)}, {_ordinal(int(r['test rank']))} on the test split "
                 f"({r['test mAP']:.1f} %), ranks {_ordinal(int(r['dev rank']))} on those "
                 f"frames ({r['dev mAP']:.1f} %)")
    text += ". Choices read on so few dev frames are indications, not rankings"
    if tuning is None and tuning_path(runs.name).is_file():
        tuning = tuning_table(tuning_path(runs.name))
    if tuning is not None and videos:
        names = [str(n) for n, v in zip(tuning["name"], tuning["dev videos"], strict=True)
                 if str(n).startswith("S2_") and _lead_int(v) == videos]
        if names:
            text += (f": the stage-2 dev curves, and the tuning rows scored on the same "
                     f"{videos} dev videos ({_listing(names)})")
    return text + "."


def held_out_split_markdown(runs: Path) -> str:
    """The test split as the experiment's main limit: its size (data_stats_<split>.json when
    the report wrote it) and the bootstrap half-width of the single-frame mAP over its videos
    (claims.json), with the claims it leaves inconclusive."""
    runs = Path(runs)
    split = _test_split(runs)
    stats_path = runs / f"data_stats_{split}.json"
    size = ""
    if stats_path.is_file():
        s = json.loads(stats_path.read_text(encoding="utf-8"))
        per = (f" of {s['frames'] // s['videos']} frames" if s["videos"]
               and s["frames"] % s["videos"] == 0 else "")
        size = (f": {s['videos']} SynthVID videos{per} ({s['frames']} frames, {s['objects']} "
                "objects)")
    text = (f"The main limit of this experiment is its {split} split, the one every number "
            f"above is read on{size}.")
    if not (runs / CLAIMS_FILE).is_file():
        return text
    cs, meta = load_claims(runs)
    tn = meta.get("test_noise")
    if tn:
        iv = Interval(**tn["interval"])
        text += (f" Over its videos the {100 * iv.confidence:.0f} % bootstrap interval of "
                 f"{label(tn['variant'])}'s seed-mean mAP is ± {iv.half_width:.1f} points "
                 f"({iv.half_width / TEST_NOISE_TARGET_POINTS:.1f} times the "
                 f"{TEST_NOISE_TARGET_POINTS:g} points this report aimed for).")
    open_ = [(i, c) for i, c in enumerate(cs, 1) if c.verdict == INCONCLUSIVE and c.combined]
    if open_:
        text += (f" Claim{'s' if len(open_) > 1 else ''} "
                 f"{_listing([str(i) for i, _ in open_])} "
                 f"{'stay' if len(open_) > 1 else 'stays'} inconclusive with intervals of "
                 f"{_listing([f'± {c.combined.half_width:.1f}' for _, c in open_])} points.")
    return text


def untrained_markdown(runs: Path, bench: Mapping[str, Any] | None = None) -> str:
    """The configurations a reader meets in the catalogue or the benchmark that this preset
    never trained, and why they have no accuracy ('' when there is none)."""
    runs = Path(runs)
    trained = {r for r, _, _ in run_dirs(runs)}
    items = [f"{label(v)} (`{v}`: in the catalogue and the GPU recipe, not in this preset's "
             "plan, so it has no SynthVID number)" for v in VARIANTS if v not in trained]
    if bench is not None:
        cost = bench_table(bench)
        items += [f"{r['label']} (`{r['variant']}`: a benchmark configuration, timed with "
                  "random weights, never trained)" for _, r in cost.iterrows()
                  if r["speed_only"] and r["variant"] not in trained]
    if not items:
        return ""
    return f"Never trained in this report: {'; '.join(items)}."


def update_readme_prose(readme: Path, runs: Path,
                        tuning: pd.DataFrame | None = None) -> dict[str, str]:
    """Fill the README's introduction, related-work and differences blocks (between their
    markers) from `introduction_markdown`, `related_work_markdown` and
    `differences_markdown(runs, tuning)` (tuning: the preset's record by default); returns the
    blocks (idempotent, as `update_readme`)."""
    blocks = {"introduction": introduction_markdown(), "related-work": related_work_markdown(),
              "differences": differences_markdown(runs, tuning)}
    for (start, end), block in zip(((INTRO_START, INTRO_END), (RELATED_START, RELATED_END),
                                    (DIFFERENCES_START, DIFFERENCES_END)), blocks.values(),
                                   strict=True):
        _replace_between(Path(readme), start, end, block)
    return blocks
