"""FlowNet pretraining on SynthVID's true flow, and starting flow_warp from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import stamped_config

from lsts_lib import cli
from lsts_lib.data.motion_truth import cell_flow, displacement, load_motion
from lsts_lib.data.vid import VIDDataset
from lsts_lib.engine.checkpoint import FORMAT, load_checkpoint, save_atomic
from lsts_lib.engine.config import RunConfig, load_config
from lsts_lib.engine.flow_pretrain import (
    CHECKPOINT,
    SUMMARY,
    PairBatch,
    epe_loss,
    flow_epe,
    flow_target,
    load_flownet,
    match_target,
    pair_batch,
    pretrain_loss,
)
from lsts_lib.engine.train import train
from lsts_lib.models import build_detector
from lsts_lib.models.detector import build_transform
from lsts_lib.models.flownet import FlowNetSmall, warp

SMOKE_MODEL = RunConfig.from_dict(load_config("smoke")).model


def _video(root: Path):
    video = VIDDataset(root, "val", max_videos=1).videos[0]
    return video, load_motion(root, video.name)


def test_targets_are_the_true_displacement_at_cell_centres(data_root: Path) -> None:
    _, motion = _video(data_root)
    scale = (0.625, 0.625)
    target, known, on_object = flow_target(motion, 14, 18, (7, 10), scale)
    flow, track, centres = cell_flow(motion, 14, 18, (7, 10), scale)
    shift, _ = displacement(motion, 14, 18, centres[known.numpy()])
    got = target.numpy()[:, known.numpy()].T * 16 / np.array(scale)
    assert np.allclose(got, shift, atol=1e-4)
    assert (track[known.numpy()] >= 0).any()  # objects as well as background
    assert torch.equal(on_object, known & torch.from_numpy(track >= 0))
    assert not known[-1].any() and (target[:, ~known] == 0).all()  # padding: unknown, 0
    # The cost volume's truth: the displacement at the stride-8 cell centres, in stride-8 cells.
    fine, fine_known, _ = flow_target(motion, 14, 18, (14, 20), scale, stride=8)
    _, _, centres8 = cell_flow(motion, 14, 18, (14, 20), scale, stride=8)
    shift8, _ = displacement(motion, 14, 18, centres8[fine_known.numpy()])
    got8 = fine.numpy()[:, fine_known.numpy()].T * 8 / np.array(scale)
    assert np.allclose(got8, shift8, atol=1e-4) and fine_known.sum() > 3 * known.sum()


def test_the_match_target_is_a_distribution_centred_on_the_truth() -> None:
    d, k = 3, 7
    target = torch.tensor([[[[0.0, 1.25, -2.5, 5.0]], [[0.0, -0.5, 3.0, -9.0]]]])  # (1, 2, 1, 4)
    label = match_target(target, d)
    assert label.shape == (1, k * k, 1, 4)
    assert torch.allclose(label.sum(1), torch.ones(1, 1, 4))
    dy, dx = torch.meshgrid(torch.arange(-d, d + 1.0), torch.arange(-d, d + 1.0), indexing="ij")
    mean = torch.stack([(label[0, :, 0] * dx.reshape(-1, 1)).sum(0),
                        (label[0, :, 0] * dy.reshape(-1, 1)).sum(0)])
    # Inside the window: the expected displacement is the target; outside: clamped.
    assert torch.allclose(mean, torch.tensor([[0.0, 1.25, -2.5, 3.0], [0.0, -0.5, 3.0, -3.0]]))
    assert (label[0, :, 0, 1] > 0).sum() == 4 and label[0, (0 + d) * k + d, 0, 0] == 1


def test_warping_with_the_true_flow_reproduces_the_current_frame(data_root: Path) -> None:
    # A feature whose value at a cell is the coordinate of its content -- in the scene for the
    # background (x + pan * t), relative to the object (x - cx) / w on an object -- is the same
    # in every frame for the same content, and linear, so bilinear warping is exact: the key
    # frame's feature warped by the true flow must equal the current frame's.
    _, motion = _video(data_root)
    hw, scale = (6, 10), (0.625, 0.625)

    def feature(t: int) -> tuple[torch.Tensor, np.ndarray]:
        _, track, c = cell_flow(motion, t, t, hw, scale)
        f = (c + motion.pan * t).transpose(2, 0, 1).copy()
        for tid, (cx, cy, w, h) in motion.frames[t].items():
            on = track == tid
            f[0][on], f[1][on] = (c[..., 0][on] - cx) / w, (c[..., 1][on] - cy) / h
        return torch.from_numpy(f)[None], track

    t, k = 15, 12
    f_cur, track_t = feature(t)
    f_key, track_k = feature(k)
    flow, _, _ = cell_flow(motion, t, k, hw, scale)
    warped = warp(f_key, torch.from_numpy(np.nan_to_num(flow))[None].double())[0]
    # Cells whose sample point falls among 4 key cells of the same content (no edge mixing).
    pos = np.stack(np.meshgrid(np.arange(hw[1]), np.arange(hw[0])), 0) + flow
    ok = np.isfinite(flow).all(0) & (pos[0] >= 0) & (pos[1] >= 0) & (pos[0] < hw[1] - 1) \
        & (pos[1] < hw[0] - 1)
    for i, j in zip(*np.nonzero(ok), strict=True):
        x0, y0 = np.floor(pos[:, i, j]).astype(int)
        ok[i, j] = (track_k[y0:y0 + 2, x0:x0 + 2] == track_t[i, j]).all()
    assert ok.sum() > 15 and (track_t[ok] >= 0).any()
    assert torch.allclose(warped[:, ok], f_cur[0][:, ok], atol=1e-6)
    # The opposite sign is wrong wherever there is motion.
    wrong = warp(f_key, -torch.from_numpy(np.nan_to_num(flow))[None].double())[0]
    assert not torch.allclose(wrong[:, ok], f_cur[0][:, ok], atol=1e-3)


def test_a_few_steps_fit_a_batch_of_the_pretraining(data_root: Path) -> None:
    video, motion = _video(data_root)
    torch.manual_seed(0)
    net = FlowNetSmall(SMOKE_MODEL.flownet_channels)
    before = flow_epe(net, data_root, "val", SMOKE_MODEL, key_interval=10, max_videos=1,
                      progress=False)
    # The detector's build is the identity warp: an untrained FlowNet is the zero flow.
    assert before["epe_px"] == pytest.approx(before["zero_flow_epe_px"])
    # One fixed batch of the pretraining's own making: a few AdamW steps fit it.
    net = FlowNetSmall(SMOKE_MODEL.flownet_channels, identity_init=False)
    batch = pair_batch(build_transform(SMOKE_MODEL), [video], [motion],
                       [(0, 12, 17), (0, 20, 15), (0, 16, 12)])
    assert batch.on_object.any() and (batch.on_object <= batch.known).all()
    assert batch.match_target.shape[-2:] == tuple(2 * n for n in batch.feature_hw)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    epes = []
    for _ in range(40):
        loss, epe = pretrain_loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        epes.append(epe.item())
    zero = float(batch.target.norm(dim=1)[batch.known].mean())
    assert min(epes[-5:]) < 0.7 * zero


def translating_pattern(generator: torch.Generator, n: int, hw: tuple[int, int] = (64, 96),
                        max_shift: int = 12) -> PairBatch:
    """`n` pairs of a random texture, the key frame the current one shifted by a random
    integer (dx, dy) in [-max_shift, max_shift] pixels: the true flow is (dx, dy) everywhere."""
    h, w, m = *hw, max_shift
    canvas = torch.rand(n, 3, h + 2 * m, w + 2 * m, generator=generator)
    canvas = F.avg_pool2d(canvas, 5, stride=1, padding=2)  # texture of a few pixels
    canvas = (canvas - canvas.mean()) / canvas.std()
    shift = torch.randint(-m, m + 1, (n, 2), generator=generator)
    # key(p + shift) = current(p): the current frame's content at p is at p + shift in the key.
    key = torch.stack([c[:, m - sy:m - sy + h, m - sx:m - sx + w]
                       for c, (sx, sy) in zip(canvas, shift.tolist(), strict=True)])
    hw16, hw8 = (-(-h // 16), -(-w // 16)), (-(-h // 8), -(-w // 8))
    s = shift.float()[:, :, None, None]
    return PairBatch(canvas[..., m:m + h, m:m + w], key, (1.0, 1.0), hw16,
                     (s / 16).expand(n, 2, *hw16), torch.ones(n, *hw16, dtype=torch.bool),
                     torch.zeros(n, *hw16, dtype=torch.bool), (s / 8).expand(n, 2, *hw8),
                     torch.ones(n, *hw8, dtype=torch.bool))


def test_pretraining_learns_to_follow_a_translating_pattern() -> None:
    # A hundred steps of the pretraining loss on fresh pairs leave the FlowNet well below the
    # zero flow on pairs it has not seen (FlowNetSmall's former early-fusion form stayed at
    # the zero flow on this, as on SynthVID).
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = FlowNetSmall((8, 16, 16, 16), identity_init=False)
    test = translating_pattern(g, 16)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(100):
        loss, _ = pretrain_loss(net, translating_pattern(g, 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        epe = epe_loss(net(test.current, test.key), test.target, test.known).item()
    zero = test.target.norm(dim=1).mean().item()
    assert epe < 0.75 * zero, (epe * 16, zero * 16)


def test_flow_warp_training_starts_from_the_pretrained_flownet(data_root: Path,
                                                              tmp_path: Path) -> None:
    rc = cli.main(["flow-pretrain", "--data", str(data_root), "--out", str(tmp_path / "fp"),
                   "--steps", "2", "--config", "smoke", "--batch-size", "1"])
    assert rc == 0
    ckpt = tmp_path / "fp" / CHECKPOINT
    pretrained = load_checkpoint(ckpt)["model"]
    assert "eval" in json.loads((tmp_path / "fp" / SUMMARY).read_text())
    # The FlowNet frozen (lr_mult 0): after training its weights are still the checkpoint's.
    over = {"data.root": str(data_root), "model.variant": "flow_warp", "train.steps": 1,
            "train.threads": 1, "train.flow_init_from": str(ckpt),
            "train.stage2.lr_mult": {"backbone": 0.0, "head": 0.1, "flownet": 0.0}}
    model_pt = train("smoke", tmp_path / "run", over, progress=False)
    state = load_checkpoint(model_pt)["model"]
    for name, value in pretrained.items():
        assert torch.equal(state[f"flownet.{name}"], value), name
    assert any(v.abs().sum() > 0 for k, v in pretrained.items() if k.startswith("predict"))
    assert pretrained["match_gain"] == 1  # held at 1 by the pretraining: the match is used

    # Bad uses: another variant, a missing file, a checkpoint that is not a FlowNet.
    with pytest.raises(ValueError, match="flow_init_from.*only a flow variant"):
        load_config("smoke", {"train.flow_init_from": str(ckpt)})
    with pytest.raises(FileNotFoundError, match="flow_init_from"):
        train("smoke", tmp_path / "run2", dict(over, **{"train.flow_init_from":
                                                       str(tmp_path / "none.pt")}))
    other = tmp_path / "other.pt"
    save_atomic({"format": FORMAT, "kind": "model", "model": {}}, other)
    detector = build_detector(SMOKE_MODEL.replace(variant="flow_warp", num_classes=3))
    with pytest.raises(ValueError, match="not a FlowNet checkpoint"):
        load_flownet(detector, other)


def test_the_orchestrator_pretrains_the_flownet_once(data_root: Path, tmp_path: Path) -> None:
    from lsts_lib.engine.plan import Orchestrator, flownet_dir, run_plan

    orch = Orchestrator("smoke", data_root, flow_pretrain={"steps": 2, "batch_size": 1,
                                                          "match_weight": 0.5},
                        progress=False)
    ckpt = flownet_dir(tmp_path) / CHECKPOINT
    orch.pretrain_flow(ckpt)
    summary = json.loads((ckpt.parent / SUMMARY).read_text())
    assert summary["steps"] == 2 and summary["batch_size"] == 1
    assert summary["match_weight"] == 0.5 and summary["object_weight"] == 3.0
    assert summary["eval"]["split"] == orch.eval_split  # the EPE is read on the tabled split
    made = ckpt.stat().st_mtime_ns
    orch.pretrain_flow(ckpt)  # same inputs: reused
    assert ckpt.stat().st_mtime_ns == made
    Orchestrator("smoke", data_root, flow_pretrain={"steps": 3, "batch_size": 1,
                                                    "match_weight": 0.5},
                 progress=False).pretrain_flow(ckpt)  # other settings: made again
    assert json.loads((ckpt.parent / SUMMARY).read_text())["steps"] == 3
    # A flow run of a plan with pretraining names the FlowNet in its training inputs.
    plan = run_plan(tmp_path, [0], ["flow_warp"], shared_stage1=True, flow_pretrain=True)
    assert orch.run_overrides(plan[1])["train.flow_init_from"] == str(ckpt.resolve())


def test_the_flownet_reach_is_an_input_only_of_flow_runs(data_root: Path) -> None:
    def inputs(variant: str, reach: int) -> dict:
        return stamped_config(data_root, variant, "model.flownet_max_displacement", reach)

    # Runs stamped before the setting existed keep their stamps: it is not in their inputs.
    for variant in ("single_frame", "copy_prop", "lsts"):
        assert inputs(variant, 4) == inputs(variant, 6), variant
        assert "flownet_max_displacement" not in inputs(variant, 4)["model"]
    assert inputs("flow_warp", 4) != inputs("flow_warp", 6)
    detector = build_detector(SMOKE_MODEL.replace(variant="flow_warp", num_classes=3,
                                                  flownet_max_displacement=2))
    assert detector.flownet.max_displacement == 2


def test_the_plan_may_set_the_pretraining_loss_weights() -> None:
    from lsts_lib import results as R
    from lsts_lib.engine.config import PlanConfig

    plan = PlanConfig(flow_pretrain={"steps": 600, "object_weight": 2, "match_weight": 0})
    plan.validate()
    assert "object weight 2, match weight 0" in R.flow_pretrain_recipe(plan)
    for bad in ({"object_weight": 0}, {"match_weight": -1}, {"cost_weight": 1}):
        with pytest.raises(ValueError, match="plan.flow_pretrain"):
            PlanConfig(flow_pretrain={"steps": 600, **bad}).validate()
