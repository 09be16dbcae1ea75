"""The low2high warm-up (engine.low2high_warmup, train.<stage>.low2high_warmup): it trains
low2high alone towards the high-level part, runs only where it can act, and is an input of
only the runs it acts on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import stamped_config

from lsts_lib.engine import rundir
from lsts_lib.engine.checkpoint import load_checkpoint
from lsts_lib.engine.config import RunConfig, load_config
from lsts_lib.engine.data import build_stream
from lsts_lib.engine.low2high_warmup import LOW2HIGH_PREFIX, relative_mse, warm_up_low2high
from lsts_lib.engine.train import build_model, init_from_checkpoint, train
from lsts_lib.engine.trainlog import read_log

WARMUP = 6


def overrides(root: Path, **extra: object) -> dict:
    return {"data.root": str(root), "train.steps": 2, "train.threads": 1, **extra}


@pytest.fixture(scope="module")
def stage1(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stage1") / "single_frame"
    return train("smoke", out, overrides(data_root), progress=False)


def test_relative_mse_is_one_for_the_mean_and_zero_for_the_target() -> None:
    target = torch.randn(1, 8, 5, 7, generator=torch.Generator().manual_seed(0))
    assert relative_mse(target, target).item() == 0.0
    mean = torch.full_like(target, target.mean().item())
    assert relative_mse(mean, target).item() == pytest.approx(1.0, rel=0.05)


def test_warm_up_trains_low2high_only_and_lowers_its_error(data_root: Path, stage1: Path) -> None:
    run = RunConfig.from_dict(load_config("smoke", {"data.root": str(data_root),
                                                    "model.variant": "lsts"}))
    stream = build_stream(run)
    torch.manual_seed(0)
    model = build_model(run.model.with_classes(stream.classes.num_classes))
    fresh = init_from_checkpoint(model, stage1)
    assert any(k.startswith(LOW2HIGH_PREFIX) for k in fresh)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    curve = warm_up_low2high(model, stream, 30, 2e-3, 0.0, torch.device("cpu"), progress=False)
    assert len(curve) == 30
    # The official N(0, 0.01) init predicts ~0: relative error ~1 at first, lower after.
    assert curve[0] > 0.9
    assert sum(curve[-5:]) / 5 < 0.8 * sum(curve[:5]) / 5
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(LOW2HIGH_PREFIX) for k in changed)


def test_warm_up_refuses_a_variant_without_dfa(data_root: Path) -> None:
    run = RunConfig.from_dict(load_config("smoke", {"data.root": str(data_root),
                                                    "model.variant": "copy_prop"}))
    stream = build_stream(run)
    model = build_model(run.model.with_classes(stream.classes.num_classes))
    with pytest.raises(ValueError, match="no DFA low2high"):
        warm_up_low2high(model, stream, 2, 1e-3, 0.0, torch.device("cpu"), progress=False)
    with pytest.raises(ValueError, match="low2high_warmup"):
        load_config("smoke", ["train.stage2.low2high_warmup=-1"])


def test_train_runs_the_warm_up_for_lsts_from_single_frame_weights(
        data_root: Path, stage1: Path, tmp_path: Path) -> None:
    key = {"train.stage2.low2high_warmup": WARMUP}
    lsts = train("smoke", tmp_path / "lsts", overrides(data_root, **{"model.variant": "lsts"},
                                                        **key), init_from=stage1, progress=False)
    rows = read_log(lsts.parent / rundir.LOW2HIGH_LOG)
    assert [int(r["step"]) for r in rows] == list(range(1, WARMUP + 1))
    assert all(r["rel_mse"] > 0 for r in rows)
    plain = train("smoke", tmp_path / "plain",
                  overrides(data_root, **{"model.variant": "lsts",
                                          "train.stage2.low2high_warmup": 0}),
                  init_from=stage1, progress=False)
    assert not (plain.parent / rundir.LOW2HIGH_LOG).exists()
    warmed, cold = load_checkpoint(lsts)["model"], load_checkpoint(plain)["model"]
    assert not torch.equal(warmed["dfa.low2high.net.0.weight"], cold["dfa.low2high.net.0.weight"])
    # A variant with no low2high runs no warm-up and writes no curve.
    copy = train("smoke", tmp_path / "copy", overrides(data_root, **{"model.variant": "copy_prop"},
                                                        **key), init_from=stage1, progress=False)
    assert not (copy.parent / rundir.LOW2HIGH_LOG).exists()


def test_the_setting_is_an_input_only_of_the_runs_it_acts_on(data_root: Path) -> None:
    def inputs(variant: str, warmup: int) -> dict:
        return stamped_config(data_root, variant, "train.stage2.low2high_warmup", warmup)

    for variant in ("single_frame", "copy_prop", "flow_warp"):
        assert inputs(variant, 0) == inputs(variant, 50), variant
    assert inputs("lsts", 0) != inputs("lsts", 50)
    assert inputs("lsts_fixed", 0) != inputs("lsts_fixed", 50)
