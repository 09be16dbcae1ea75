"""model.cut: the res4 block the low part ends at (None: the paper's rule). Moving the cut
moves where the same weights are split, and runs made before the key existed keep their
stamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lsts_lib import results as R
from lsts_lib.engine import bench as bench_mod
from lsts_lib.engine.config import load_config
from lsts_lib.engine.train import _comparable
from lsts_lib.models.backbone import ResNetBackbone, cut_block, low_split_index
from lsts_lib.models.config import ModelConfig, tiny_config
from lsts_lib.models.detector import build_detector


def test_cut_is_validated_against_the_backbones_res4_blocks() -> None:
    assert cut_block("resnet18") == "res4a" and cut_block("resnet101") == "res4b3"
    assert low_split_index("resnet18", "res4b1") == 2
    assert low_split_index("resnet101", "res4b10") == 11
    assert ModelConfig(backbone="resnet18", cut="res4b1").cut == "res4b1"
    # ResNet-18's res4 has two blocks: res4b3 is ResNet-101's cut, not one of its blocks.
    with pytest.raises(ValueError, match=r"model\.cut='res4b3'.*\['res4a', 'res4b1'\].*res4a"):
        ModelConfig(backbone="resnet18", cut="res4b3")
    with pytest.raises(ValueError, match="model.cut='res5a'"):
        load_config("smoke", {"model.cut": "res5a"})
    with pytest.raises(ValueError, match="not a res4 block of resnet101"):
        ResNetBackbone("resnet101", pretrained=False, cut="layer3")
    assert load_config("smoke", {"model.cut": "res4b1"})["model"]["cut"] == "res4b1"


@pytest.mark.parametrize("arch,cut", [("resnet18", "res4b1"), ("resnet50", "res4b1"),
                                      ("resnet50", "res4b4")])
def test_another_cut_splits_the_same_weights_and_low_stays_at_stride_16(arch: str, cut: str
                                                                       ) -> None:
    torch.manual_seed(0)
    ref = ResNetBackbone(arch, 32, pretrained=False, freeze_bn=False).eval()
    net = ResNetBackbone(arch, 32, pretrained=False, freeze_bn=False, cut=cut).eval()
    state = net.resplit_state(ref.state_dict())
    assert set(state) == set(net.state_dict()) and set(state) != set(ref.state_dict())
    net.load_state_dict(state)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        low = net.low(x)
        assert low.shape == (1, net.low_channels, 4, 6)  # stride 16 at any res4 cut
        assert (low < 0).any()  # the cut block's sum before its ReLU
        assert not torch.equal(low, ref.low(x))  # a non-key frame sees another depth
        assert torch.equal(net(x), ref(x))
    assert net.cut == cut and ref.cut == cut_block(arch)
    assert len(net.low.layer3) == low_split_index(arch, cut)


def test_single_frame_detections_are_the_same_at_another_cut() -> None:
    torch.manual_seed(0)
    ref = build_detector(tiny_config("single_frame")).eval()
    det = build_detector(tiny_config("single_frame", cut="res4b1")).eval()
    det.load_checkpoint_state(ref.state_dict())  # a checkpoint of the default cut
    assert det.backbone.split_index == ref.backbone.split_index + 1
    frames = [torch.rand(3, 120, 200) for _ in range(2)]
    with torch.no_grad():
        a, b = (m.detect_video(frames, key_interval=1) for m in (ref, det))
    assert sum(len(d["boxes"]) for d in a) > 0
    for da, db in zip(a, b, strict=True):
        assert all(torch.equal(da[k], db[k]) for k in ("boxes", "scores", "labels"))


def test_lsts_at_another_cut_starts_from_a_default_cut_single_frame_model() -> None:
    # Stage 2 of the report: the shared stage-1 model (default cut) into LSTS at res4b1.
    sf = build_detector(tiny_config("single_frame"))
    lsts = build_detector(tiny_config("lsts", cut="res4b1"))
    fresh = lsts.load_checkpoint_state(sf.state_dict(), init_from_single_frame=True)
    assert fresh and not any(k.startswith(("backbone.", "head.")) for k in fresh)
    assert torch.equal(lsts.backbone.low.layer3[1].conv1.weight,
                       sf.backbone.high.layer3[0].conv1.weight)
    with torch.no_grad():
        low = lsts.extract_low(lsts.preprocess([torch.rand(3, 120, 200)])[0])
    assert low.shape[1] == lsts.dfa.low2high.net[0].in_channels  # low2high reads the cut


def test_the_default_cut_leaves_stamp_inputs_as_before_the_key_existed() -> None:
    cfg = load_config("report", {"model.variant": "lsts", "train.stage": "stage2"})
    assert cfg["model"]["cut"] is None
    before = {**cfg, "model": {k: v for k, v in cfg["model"].items() if k != "cut"}}
    assert _comparable(cfg) == _comparable(before) and "cut" not in _comparable(cfg)["model"]
    other = load_config("report", {"model.variant": "lsts", "train.stage": "stage2",
                                   "model.cut": "res4b1"})
    assert _comparable(other)["model"]["cut"] == "res4b1"
    assert _comparable(other) != _comparable(cfg)
    # res4a is ResNet-18's default cut named explicitly: another config, another run.
    assert _comparable(load_config("report", {"model.cut": "res4a"})) != _comparable(
        load_config("report"))
    models = bench_mod.bench_inputs("report", ("preset", "paper"))["models"]
    assert all("cut" not in m for m in models.values())


def _row(name: str, dev: float, cut: str | None = None) -> dict:
    over = ["model.variant=lsts", "train.stage=stage2"] + ([f"model.cut={cut}"] if cut else [])
    return {"name": name, "overrides": over, "data": "d", "steps": 150, "dev_mAP": dev,
            "motion": None, "train_s": 1.0, "note": "n"}


def test_cut_accuracy_pairs_seeds_and_holds_the_difference_against_the_seed_noise(
        tmp_path: Path) -> None:
    rows = [_row("S2_lsts_cut_res4a_s0", 0.30), _row("S2_lsts_cut_res4b1_s0", 0.33, "res4b1"),
            _row("S2_lsts_cut_res4a_s1", 0.28), _row("S2_lsts_cut_res4b1_s1", 0.27, "res4b1"),
            _row("S2_lsts_600", 0.9), _row("S2_copy_prop_cut_res4b1_s0", 0.1, "res4b1")]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    claims = [R.Claim("k", "s", "r", ("lsts", "lsts_fixed"),
                      per_seed={"lsts": [29.0, 31.0, 25.0], "lsts_fixed": [1.0, 2.0, 3.0]})]
    noise = R.seed_std(claims)
    assert noise == (pytest.approx(3.055, abs=1e-3), 3)
    table, text = R.cut_accuracy(R.tuning_table(path), noise, dev_videos=10)
    assert list(table.index) == ["res4a", "res4b1"] and table["default"].tolist() == [True, False]
    assert table.loc["res4b1", "seed 0"] == pytest.approx(33.0)
    assert table.loc["res4b1", "mean"] == pytest.approx(30.0)
    assert table.loc["res4b1", "vs default (paired)"] == pytest.approx(1.0)  # (+3 - 1) / 2
    assert "+1.0 points (seed 0: +3.0, seed 1: -1.0), 95 % paired t-interval [-24.4, +26.4]" \
        in text and "30.0 % against 29.0 %" in text and "excludes zero" not in text
    assert "3.1 points" in text and "2 seeds on 10 dev videos" in text
    assert text.endswith("do not tell the cuts apart (nor do the seeds agree on the sign).")
    # Above the noise, but the seeds disagree on the sign: still not told apart.
    _, text = R.cut_accuracy(R.tuning_table(path), (0.5, 5))
    assert "the seeds disagree on its sign, so these runs do not tell the cuts apart." in text
    assert "the dev split" in text
    agree = R.tuning_table(path).assign(**{"dev mAP": [30.0, 33.0, 28.0, 29.0, 0.0, 0.0]})
    _, text = R.cut_accuracy(agree, noise)  # +3 and +1: one sign, within the noise
    assert "[-10.7, +14.7]" in text  # 2 +- 12.706 * sqrt(2) / sqrt(2)
    assert "+2.0 points" in text and text.endswith("do not tell the cuts apart.")
    _, text = R.cut_accuracy(agree, (0.5, 5))
    assert "indication, not a verdict" in text
    assert R.seed_std([]) is None
    with pytest.raises(ValueError, match="exactly one default cut"):
        R.cut_accuracy(R.tuning_table(path).iloc[[1, 3]])
    with pytest.raises(ValueError, match="no tuning row"):
        R.cut_accuracy(R.tuning_table(path), variant="flow_warp")


def test_cut_commands_name_each_cuts_recorded_commands(tmp_path: Path) -> None:
    rows = [_row("S2_lsts_cut_res4a_s0", 0.30) | {"commands": ["lsts report --only train"]},
            _row("S2_lsts_cut_res4b1_s0", 0.33, "res4b1") | {"commands": ["lsts train a",
                                                                          "lsts detect b"]},
            _row("S2_lsts_cut_res4b1_s1", 0.27, "res4b1") | {"commands": ["lsts train c"]},
            _row("S2_lsts_cut_res4a_s0_offsets_x2.5", 0.3) | {"commands": ["old"]}]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = R.cut_commands(path)
    assert "S2_lsts_cut_res4a_s0: `lsts report --only train`" in text
    assert "S2_lsts_cut_res4b1_s0: `lsts train a` then `lsts detect b`" in text
    assert "lsts train c" not in text and "`old`" not in text  # one row a cut; renamed out
    assert "record no commands" in R.cut_commands(path, variant="flow_warp")
