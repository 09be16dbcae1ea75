"""Run configuration: YAML presets, dotted `key=value` overrides, resolution, dumping.

A config is a plain nested dict (YAML): sections `data`, `model`, `train`, `eval` and
`variants` (named override sets, one per compared configuration). Presets live in
`lsts_lib/configs/<name>.yaml`; `load_config("report")` and `load_config(path)` both work.

Overrides are type-checked against the value already in the config, so a typo in a key or
`train.lr=fast` fails loudly instead of silently training something else.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lsts_lib import paths

SECTIONS = ("data", "model", "train", "eval")
# Short override names for the keys a user changes most (`lsts train ... seed=1`).
ALIASES = {"seed": "train.seed", "variant": "model.variant", "steps": "train.steps"}
OPTIMIZERS = ("sgd", "adamw")  # train.optimizer
LR_SCHEDULES = ("step", "cosine")  # train.stage<k>.lr_schedule


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
    cfg.setdefault("variants", {})
    cfg = resolve(cfg)
    if overrides:
        apply_overrides(cfg, overrides)
        cfg = resolve(cfg)
    return cfg


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


def _model_defaults() -> dict[str, Any]:
    """ModelConfig's defaults, so every model field can be overridden by name."""
    try:
        from lsts_lib.models.config import ModelConfig
    except ImportError:  # the model package is optional for config handling
        return {}
    return ModelConfig().to_dict()


def resolve(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and derived values; validate what a run depends on."""
    cfg = copy.deepcopy(cfg)
    model = _model_defaults()
    model.update(cfg["model"])
    cfg["model"] = model
    train = cfg["train"]
    for stage in ("stage1", "stage2"):
        if not isinstance(train.get(stage), dict):
            raise ValueError(f"config: train.{stage} must be a mapping of schedule values")
    if train.get("seed") is None or int(train["seed"]) < 0:
        raise ValueError("config: train.seed must be a non-negative integer")
    opt = train.get("optimizer", "sgd")
    if opt not in OPTIMIZERS:
        raise ValueError(f"config: train.optimizer={opt!r} is unknown; choose one of "
                         f"{', '.join(OPTIMIZERS)}")
    for stage in ("stage1", "stage2"):
        kind = train[stage].get("lr_schedule") or "step"
        if kind not in LR_SCHEDULES:
            raise ValueError(f"config: train.{stage}.lr_schedule={kind!r} is unknown; choose "
                             f"one of {', '.join(LR_SCHEDULES)}")
    for name, ov in cfg.get("variants", {}).items():
        if not isinstance(ov, dict):
            raise ValueError(f"config: variants.{name} must map dotted keys to values")
    return cfg


def stage_of(cfg: Mapping[str, Any]) -> str:
    """Which schedule a run uses: 'stage1' for the single-frame detector, else 'stage2'."""
    stage = cfg["train"].get("stage", "auto")
    if stage in ("stage1", "stage2"):
        return stage
    if stage != "auto":
        raise ValueError(f"config: train.stage must be auto, stage1 or stage2, not {stage!r}")
    return "stage1" if cfg["model"]["variant"] == "single_frame" else "stage2"


def variant_overrides(cfg: Mapping[str, Any], variant: str) -> dict[str, Any]:
    """The override set that turns the preset into one compared configuration."""
    variants = cfg.get("variants", {})
    if variant not in variants:
        raise ValueError(f"config: unknown variant '{variant}' (known: {', '.join(variants)})")
    return dict(variants[variant] or {})


def dump_config(cfg: Mapping[str, Any], path: Path) -> None:
    """Write a resolved config as YAML (plain types only, key order kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(dict(cfg), fh, sort_keys=False, default_flow_style=None)
