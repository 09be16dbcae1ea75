"""Run configuration: YAML presets, dotted `key=value` overrides, resolution, dumping.

A config is a plain nested dict (YAML): sections `data`, `model`, `train` and `eval`, typed
and checked by `RunConfig` (the defaults of every key are stated there, once). Presets live
in `lsts_lib/configs/<name>.yaml`; `load_config("report")` and `load_config(path)` both work.
The compared variants are not part of a config: see `lsts_lib/models/variants.py`.

Overrides are type-checked against the value already in the config, so a typo in a key or
`train.lr=fast` fails loudly instead of silently training something else.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lsts_lib import paths
from lsts_lib.data.vid import EVAL_SPLITS
from lsts_lib.models.config import ModelConfig
from lsts_lib.models.variants import get_variant

SECTIONS = ("data", "model", "train", "eval")
# Short override names for the keys a user changes most (`lsts train ... seed=1`).
ALIASES = {"seed": "train.seed", "variant": "model.variant", "steps": "train.steps"}
OPTIMIZERS = ("sgd", "adamw")  # train.optimizer
LR_SCHEDULES = ("step", "cosine")  # train.stage<k>.lr_schedule
STAGES = ("stage1", "stage2")
# Config values that are paths (made absolute when the config is loaded).
PATH_KEYS = ("data.root", "train.stage1.init_from", "train.stage2.init_from",
             "train.flow_init_from")
DEVICES = ("auto", "cpu", "cuda")
MODES = ("offline", "online")  # eval.mode: where key frames sit (see key_frame_indices)


def config_path(name_or_path: str | Path) -> Path:
    """A preset name ('smoke', 'report', 'paper') or a YAML file path -> existing file."""
    p = Path(name_or_path)
    # A file wins; a folder of the same name as a preset (e.g. the HTML edition in report/)
    # must not shadow the preset.
    if p.suffix in {".yaml", ".yml"} or p.is_file():
        if not p.is_file():
            raise FileNotFoundError(f"{p}: config file not found")
        return p
    preset = paths.CONFIGS / f"{name_or_path}.yaml"
    if not preset.is_file():
        known = sorted(q.stem for q in paths.CONFIGS.glob("*.yaml"))
        raise FileNotFoundError(f"{preset}: no such config preset (known: {', '.join(known)})")
    return preset


def load_config(
    config: str | Path | Mapping[str, Any],
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Load a config (preset name, YAML path or dict), apply overrides and resolve it."""
    if isinstance(config, Mapping):
        cfg = copy.deepcopy(dict(config))
        source = "<dict>"
    else:
        path = config_path(config)
        source = str(path)
        with open(path, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh)
        if not isinstance(cfg, dict):
            raise ValueError(f"{path}: a config must be a YAML mapping")
    for section in SECTIONS:
        if not isinstance(cfg.get(section), dict):
            raise ValueError(f"{source}: missing section '{section}:'")
    cfg = resolve(cfg)
    _absolute_paths(cfg, PATH_KEYS, paths.REPO)
    if overrides:
        items = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
        apply_overrides(cfg, items)
        _absolute_paths(cfg, [ALIASES.get(k, k) for k in items], Path.cwd())
        cfg = resolve(cfg)
    return cfg


def _absolute_paths(cfg: dict[str, Any], keys: Iterable[str], base: Path) -> None:
    """Make the path values among `keys` absolute: a preset's relative paths are taken from
    the repository root (where its data lives), a command line's from the current directory."""
    for key in keys:
        if key not in PATH_KEYS:
            continue
        section, *rest = key.split(".")
        node = cfg[section]
        for part in rest[:-1]:
            node = node[part]
        value = node[rest[-1]]
        if value:
            node[rest[-1]] = str((base / Path(value).expanduser()).resolve())


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """['train.lr=0.01', 'model.variant=lsts'] -> {'train.lr': 0.01, ...} (YAML-typed)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override '{item}': expected key=value, e.g. train.lr=0.01")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key:
            raise ValueError(f"override '{item}': empty key")
        out[key] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _check_type(key: str, old: Any, new: Any) -> Any:
    """Return `new` converted to the type of `old`, or raise a clear ValueError."""
    if old is None or new is None:
        return new  # optional values take anything (and can be cleared)
    if isinstance(old, bool):
        if not isinstance(new, bool):
            raise ValueError(f"override {key}={new!r}: expected true/false like the current {old!r}")
        return new
    if isinstance(old, int):
        if isinstance(new, bool) or not isinstance(new, int):
            raise ValueError(f"override {key}={new!r}: expected an integer like the current {old!r}")
        return new
    if isinstance(old, float):
        if isinstance(new, bool) or not isinstance(new, int | float):
            raise ValueError(f"override {key}={new!r}: expected a number like the current {old!r}")
        return float(new)
    if isinstance(old, str):
        if not isinstance(new, str | int | float) or isinstance(new, bool):
            raise ValueError(f"override {key}={new!r}: expected a string like the current {old!r}")
        return str(new)
    if isinstance(old, list):
        if not isinstance(new, list):
            raise ValueError(f"override {key}={new!r}: expected a list like the current {old!r}")
        return new
    if isinstance(old, dict):
        if not isinstance(new, dict):
            raise ValueError(f"override {key}={new!r}: expected a mapping")
        return new
    return new


def apply_overrides(cfg: dict[str, Any], overrides: Iterable[str] | Mapping[str, Any]) -> None:
    """Set dotted keys in place; unknown keys and wrong types raise ValueError."""
    items = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    for key, value in items.items():
        key = ALIASES.get(key, key)
        parts = key.split(".")
        node: Any = cfg
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"override {key}: unknown key '{'.'.join(parts[: i + 1])}'")
            node = node[part]
        leaf = parts[-1]
        if not isinstance(node, dict) or leaf not in node:
            near = sorted(node) if isinstance(node, dict) else []
            raise ValueError(f"override {key}: unknown key (known here: {', '.join(map(str, near))})")
        node[leaf] = _check_type(key, node[leaf], value)


# ------------------------------------------------------------------- typed sections
# Each default is stated here once; the YAML presets override them. Every numeric value is
# checked where its section is built, so a bad value fails with one line naming the key.


def _fail(key: str, value: Any, need: str) -> None:
    raise ValueError(f"config: {key}={value!r}: {need}")


def _int(key: str, value: Any, low: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        _fail(key, value, f"must be an integer >= {low}" + (" or null" if optional else ""))


def _num(key: str, value: Any, low: float, strict: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
          and (value > low if strict else value >= low))
    if not ok:
        _fail(key, value, f"must be a number {'>' if strict else '>='} {low:g}"
              + (" or null" if optional else ""))


def _choice(key: str, value: Any, choices: Iterable[str]) -> None:
    if value not in tuple(choices):
        _fail(key, value, f"choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class DataConfig:
    root: str = "data/synthvid/report"  # relative: see `_absolute_paths`
    # SynthVID preset and seed `lsts report` generates into `root` (null: not SynthVID)
    preset: str | None = "report"
    synth_seed: int = 0
    train_split: str = "train"  # what `lsts train` reads
    # The dev split: every choice (recipe, sizes, steps) is tuned on it, never on test_split.
    val_split: str = "val"
    # What the run plan detects and evaluates, the numbers the report states. SynthVID has a
    # held-out `test` split; ImageNet VID's test has no boxes, so the paper reports on val.
    test_split: str = "val"
    use_det: bool = True  # VID+DET: DET stills are mixed in and train as single frames
    max_videos: int | None = None  # cap on videos read per split

    def validate(self) -> None:
        _int("data.synth_seed", self.synth_seed, 0)
        _int("data.max_videos", self.max_videos, 1, optional=True)
        _choice("data.val_split", self.val_split, EVAL_SPLITS)
        _choice("data.test_split", self.test_split, EVAL_SPLITS)


@dataclass(frozen=True)
class StageConfig:
    """The schedule of one training stage (stage1: single-frame, stage2: temporal)."""

    steps: int | None = None
    epochs: float | None = None  # instead of steps: whole passes over the data
    lr: float = 0.00025
    lr_schedule: str = "step"
    lr_steps: tuple[float, ...] = (0.75,)  # step schedule: fractions of the run
    lr_factor: float = 0.1
    warmup_steps: int = 0
    init_from: str | None = None
    lr_mult: dict[str, float] = field(default_factory=dict)  # {module prefix: multiplier}
    # The dev-split curve: VID mAP on data.val_split every `dev_every` steps and at the end
    # (and at step 0 when the run starts from other weights); 0 = off. Written to dev.csv.
    dev_every: int = 0
    dev_max_videos: int | None = None  # the first N dev videos only (null = all)
    # Steps of the low2high warm-up (engine.low2high_warmup) at the start of a run of an LSTS
    # variant from single-frame weights; 0 = off (official). Acts on no other run.
    low2high_warmup: int = 0
    # The offsets' lr multiplier in this stage (null: train.offsets_lr_mult). Acts only on a
    # run whose offsets learn (see train._comparable).
    offsets_lr_mult: float | None = None

    def offsets_mult(self, train: TrainConfig) -> float:
        """The offsets' lr multiplier this stage trains with."""
        return train.offsets_lr_mult if self.offsets_lr_mult is None else self.offsets_lr_mult

    def validate(self, name: str) -> None:
        _int(f"train.{name}.steps", self.steps, 1, optional=True)
        _num(f"train.{name}.offsets_lr_mult", self.offsets_lr_mult, 0, optional=True)
        _int(f"train.{name}.dev_every", self.dev_every, 0)
        _int(f"train.{name}.low2high_warmup", self.low2high_warmup, 0)
        _int(f"train.{name}.dev_max_videos", self.dev_max_videos, 1, optional=True)
        _num(f"train.{name}.epochs", self.epochs, 0, strict=True, optional=True)
        if self.steps is None and self.epochs is None:
            _fail(f"train.{name}.steps", None, "the stage needs steps or epochs")
        _num(f"train.{name}.lr", self.lr, 0, strict=True)
        _choice(f"train.{name}.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for frac in self.lr_steps:
            _num(f"train.{name}.lr_steps", frac, 0)
            if frac > 1:  # a fraction of the run: > 1 would never drop the rate
                _fail(f"train.{name}.lr_steps", list(self.lr_steps),
                      "fractions of the run, each in [0, 1]")
        _num(f"train.{name}.lr_factor", self.lr_factor, 0, strict=True)
        _int(f"train.{name}.warmup_steps", self.warmup_steps, 0)
        for module, mult in self.lr_mult.items():
            _num(f"train.{name}.lr_mult.{module}", mult, 0)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    stage: str = "auto"  # auto: single_frame -> stage1, other variants -> stage2
    steps: int | None = None  # overrides the stage's step count when set
    device: str = "auto"
    threads: int = 0  # torch threads per process; 0 = $LSTS_THREADS or cores / processes
    batch_size: int = 1
    flip: bool = True
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    weight_decay: float = 0.0001
    offsets_lr_mult: float = 2.5  # official lr_mult of the LSTS offsets p_n
    grad_clip: float | None = None
    checkpoint_every: int = 50
    old_key_range: tuple[int, int] = (-10, -5)
    new_key_range: tuple[int, int] = (-5, 5)
    # flow_warp only: a `lsts flow-pretrain` flownet.pt loaded into the FlowNet before training
    # (after --init-from), as DFF starts from a FlowNet pretrained on true flow.
    flow_init_from: str | None = None
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=StageConfig)

    def validate(self) -> None:
        _int("train.seed", self.seed, 0)
        _choice("train.stage", self.stage, ("auto", *STAGES))
        _int("train.steps", self.steps, 1, optional=True)
        _choice("train.device", self.device, DEVICES)
        _int("train.threads", self.threads, 0)
        _int("train.batch_size", self.batch_size, 1)
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        for b in self.betas:
            _num("train.betas", b, 0)
            if b >= 1:
                _fail("train.betas", list(self.betas), "each beta must be in [0, 1)")
        _num("train.momentum", self.momentum, 0)
        _num("train.weight_decay", self.weight_decay, 0)
        _num("train.offsets_lr_mult", self.offsets_lr_mult, 0)
        _num("train.grad_clip", self.grad_clip, 0, strict=True, optional=True)
        _int("train.checkpoint_every", self.checkpoint_every, 1)
        if self.flow_init_from is not None and (not isinstance(self.flow_init_from, str)
                                                or not self.flow_init_from):
            _fail("train.flow_init_from", self.flow_init_from, "must be a checkpoint path or null")
        for key in ("old_key_range", "new_key_range"):
            lo, hi = getattr(self, key)
            if not lo < hi:
                _fail(f"train.{key}", [lo, hi], "needs low < high")
        self.stage1.validate("stage1")
        self.stage2.validate("stage2")


@dataclass(frozen=True)
class EvalConfig:
    mode: str = "offline"  # offline: key frame in the middle of each segment (official)
    key_interval: int = 10  # frames per key frame, at detection and in the benchmark
    bench_repeats: int = 5  # timed repeats per stage in `lsts bench` (after one warm-up)

    def validate(self) -> None:
        _choice("eval.mode", self.mode, MODES)
        _int("eval.key_interval", self.key_interval, 1)
        _int("eval.bench_repeats", self.bench_repeats, 1)


TUPLES = {"lr_steps", "betas", "old_key_range", "new_key_range"}


def _section(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    """A typed section from a mapping: unknown keys and wrong types are errors."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ValueError(f"config: unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)} "
                         f"(known: {', '.join(names)})")
    defaults = cls()
    kw: dict[str, Any] = {}
    for name, value in raw.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, Mapping):
                _fail(f"{where}.{name}", value, "must be a mapping")
            kw[name] = _section(type(default), value, f"{where}.{name}")
            continue
        if default is not None and value is not None:
            value = _check_type(f"{where}.{name}", list(default) if name in TUPLES else default,
                                value)
        kw[name] = tuple(value) if name in TUPLES and value is not None else value
    return cls(**kw)


@dataclass(frozen=True)
class RunConfig:
    """A resolved run configuration, typed. `load_config` returns it as the plain dict
    (`to_dict`) that config.yaml and checkpoints hold."""

    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> RunConfig:
        run = cls(name=str(cfg.get("name", "")),
                  data=_section(DataConfig, cfg["data"], "data"),
                  model=ModelConfig.from_dict(cfg["model"]),
                  train=_section(TrainConfig, cfg["train"], "train"),
                  eval=_section(EvalConfig, cfg["eval"], "eval"))
        for section in (run.data, run.train, run.eval):
            section.validate()
        if run.train.flow_init_from and get_variant(run.model.variant).nonkey != "flow":
            _fail("train.flow_init_from", run.train.flow_init_from,
                  f"only a flow variant has a FlowNet to load (model.variant is "
                  f"{run.model.variant!r})")
        return run

    def to_dict(self) -> dict[str, Any]:
        def plain(obj: Any) -> Any:
            if isinstance(obj, dict):
                return {k: plain(v) for k, v in obj.items()}
            if isinstance(obj, list | tuple):
                return [plain(v) for v in obj]
            return obj

        return {"name": self.name, "data": plain(dataclasses.asdict(self.data)),
                "model": self.model.to_dict(), "train": plain(dataclasses.asdict(self.train)),
                "eval": plain(dataclasses.asdict(self.eval))}

    @property
    def stage(self) -> str:
        """Which schedule the run uses: 'stage1' for a single-frame detector (the variant's
        every frame is a key frame), else 'stage2'."""
        return run_stage(self.model.variant, self.train.stage)

    @property
    def schedule(self) -> StageConfig:
        return getattr(self.train, self.stage)


def run_stage(variant: str, stage: str = "auto") -> str:
    """The schedule a run of `variant` with train.stage `stage` uses ('auto': stage1 for a
    variant whose every frame is a key frame, else stage2)."""
    if stage != "auto":
        return stage
    return "stage1" if get_variant(variant).every_frame_key else "stage2"


# The settings `plan.flow_pretrain` may give (`flow_pretrain.pretrain`'s keyword arguments).
FLOW_PRETRAIN_KEYS = ("steps", "batch_size", "lr", "weight_decay", "object_weight",
                      "match_weight")


@dataclass(frozen=True)
class PlanConfig:
    """What `lsts report` runs: a preset's `plan:` section. Not part of a run's config (a run
    is the same run whichever plan it belongs to), so changing the seeds redoes nothing."""

    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] | None = None  # catalogue names; null = the whole catalogue
    # true: one single-frame model (stage 1, seed `stage1_seed`) is trained once and every
    # variant of every seed, single_frame included, trains stage 2 from it, so all compared
    # runs get the same budget from the same start (the paper's shared ImageNet init);
    # false: the single_frame run of seed s is stage 1 and the other variants start from it.
    shared_stage1: bool = False
    # true (the official protocol, the paper preset's): no run starts from another; every
    # variant of every seed trains in one stage from the model's own initial weights
    # (ImageNet), its stage being only the schedule it uses (train.stage auto).
    one_stage: bool = False
    stage1_seed: int = 0
    # The flow variants' FlowNet pretrained once on SynthVID's true flow (`lsts flow-pretrain`
    # with these keyword settings, seed `stage1_seed`), as DFF starts from a FlowNet trained on
    # Flying Chairs; every flow run then starts from it (train.flow_init_from). null: the
    # FlowNet starts from its zero-flow init and learns from the detection loss alone.
    flow_pretrain: Mapping[str, Any] | None = None

    def validate(self) -> None:
        if not self.seeds:
            _fail("plan.seeds", [], "needs at least one seed")
        for s in self.seeds:
            _int("plan.seeds", s, 0)
        if len(set(self.seeds)) != len(self.seeds):
            _fail("plan.seeds", list(self.seeds), "seeds must be distinct")
        for v in self.variants or ():
            get_variant(v)
        _int("plan.stage1_seed", self.stage1_seed, 0)
        if self.one_stage and self.shared_stage1:
            _fail("plan.one_stage", True, "excludes plan.shared_stage1 (one protocol a plan)")
        if self.flow_pretrain is not None:
            if not isinstance(self.flow_pretrain, Mapping):
                _fail("plan.flow_pretrain", self.flow_pretrain, "must be a mapping or null")
            unknown = sorted(set(self.flow_pretrain) - set(FLOW_PRETRAIN_KEYS))
            if unknown or "steps" not in self.flow_pretrain:
                _fail("plan.flow_pretrain", dict(self.flow_pretrain),
                      f"needs steps, and only {', '.join(FLOW_PRETRAIN_KEYS)}")
            _int("plan.flow_pretrain.steps", self.flow_pretrain["steps"], 1)
            _int("plan.flow_pretrain.batch_size", self.flow_pretrain.get("batch_size", 1), 1)
            for key in ("lr", "weight_decay", "object_weight", "match_weight"):
                if key in self.flow_pretrain:
                    _num(f"plan.flow_pretrain.{key}", self.flow_pretrain[key], 0,
                         strict=key in ("lr", "object_weight"))


def load_plan(config: str | Path) -> PlanConfig:
    """The `plan:` section of a preset or YAML file (defaults when absent), validated."""
    with open(config_path(config), encoding="utf-8") as fh:
        raw = (yaml.safe_load(fh) or {}).get("plan") or {}
    if not isinstance(raw, Mapping):
        _fail("plan", raw, "must be a mapping")
    known = {f.name for f in dataclasses.fields(PlanConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"config: unknown key(s) {', '.join(f'plan.{k}' for k in unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    kw = dict(raw)
    for key in ("seeds", "variants"):
        if key in kw and kw[key] is not None:
            if not isinstance(kw[key], list):
                _fail(f"plan.{key}", kw[key], "must be a list")
            kw[key] = tuple(kw[key])
    for key in ("shared_stage1", "one_stage"):
        if not isinstance(kw.get(key, False), bool):
            _fail(f"plan.{key}", kw[key], "must be true or false")
    plan = PlanConfig(**kw)
    plan.validate()
    return plan


def resolve(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill every default, check every value; the resolved plain dict."""
    if "variants" in cfg:
        raise ValueError("config: a `variants:` section is no longer read; the compared "
                         "variants are defined once in lsts_lib/models/variants.py")
    return RunConfig.from_dict(cfg).to_dict()


def dump_config(cfg: Mapping[str, Any], path: Path) -> None:
    """Write a resolved config as YAML (plain types only, key order kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(dict(cfg), fh, sort_keys=False, default_flow_style=None)
