"""Alignment against SynthVID's true motion: constructed cases with known answers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from lsts_lib import cli
from lsts_lib.data.motion_truth import cell_flow, displacement, load_motion
from lsts_lib.data.vid import VIDDataset, load_frame
from lsts_lib.engine.alignment import ZERO, measure_alignment
from lsts_lib.engine.checkpoint import FORMAT, save_atomic
from lsts_lib.engine.config import load_config
from lsts_lib.eval.alignment import AlignmentStats, endpoint_errors, focus_stats, object_cells
from lsts_lib.models import build_detector
from lsts_lib.models.config import ModelConfig
from lsts_lib.models.detector import VideoDetector
from lsts_lib.models.lsts import expected_displacement, uniform_offsets

MAX_VIDEOS = 1


def smoke_detector(root: Path, variant: str, seed: int = 0) -> tuple[VideoDetector, dict]:
    cfg = load_config("smoke", {"model.variant": variant, "data.root": str(root)})
    classes = (root / "classes.txt").read_text().split("\n")
    mcfg = ModelConfig.from_dict(dict(cfg["model"], num_classes=len([c for c in classes if c])))
    torch.manual_seed(seed)
    return build_detector(mcfg).eval(), cfg


def run(model: VideoDetector, cfg: dict, root: Path) -> dict:
    return measure_alignment(model, root, "val", cfg["eval"]["mode"], cfg["eval"]["key_interval"],
                             max_videos=MAX_VIDEOS, progress=False)


# ------------------------------------------------------------------ units
def test_one_hot_weights_on_the_true_offset_give_zero_error() -> None:
    p = uniform_offsets(5, 2.0)  # integer offsets -2..2 cells
    g = torch.Generator().manual_seed(0)
    h, w = 6, 7
    pick = torch.randint(0, len(p), (h, w), generator=g)
    S = torch.nn.functional.one_hot(pick, len(p)).permute(2, 0, 1)[None].double()
    truth = p[pick].permute(2, 0, 1).double().numpy()  # (2, h, w): the picked offset per cell
    d = expected_displacement(S, p)[0].numpy()
    mask = np.ones((h, w), bool)
    assert np.allclose(endpoint_errors(d, truth, mask, (0.5, 2.0)), 0.0)
    # The zero displacement errs by the offset's length: cells of 16 / s pixels per axis.
    zero = endpoint_errors(np.zeros_like(truth), truth, mask, (0.5, 2.0))
    expect = np.hypot(truth[0] * 32, truth[1] * 8)[mask]
    assert np.allclose(zero, expect) and zero.max() > 0
    # Uniform weights over a symmetric grid average to no displacement.
    flat = torch.full((1, len(p), h, w), 1.0 / len(p))
    assert expected_displacement(flat, p).abs().max() < 1e-6


def test_stats_split_by_class_and_report_medians() -> None:
    stats = AlignmentStats()
    stats.add("m", np.array(["slow", "fast", "fast"]), np.array([1.0, 2.0, 6.0]),
              np.array([1.0, 0.0, 3.0]), np.array([4.0, 4.0, 4.0]), channels=2)
    s = stats.summary()["m"]
    assert s["all"]["cells"] == 3 and s["fast"]["epe_mean_px"] == 4.0
    assert s["slow"]["epe_median_px"] == 1.0 and s["medium"]["cells"] == 0
    assert s["medium"]["epe_mean_px"] is None
    assert s["all"]["feature_mse"] == pytest.approx(4.0 / 3 / 2)
    assert s["all"]["feature_rel_l2"] == pytest.approx(np.sqrt(4.0 / 12.0))


def test_focus_of_uniform_and_one_hot_weights() -> None:
    N, h, w = 9, 2, 3
    mask = np.array([[True, False, True], [False, True, False]])
    uniform = np.full((N, h, w), 1.0 / N)
    ent, top = focus_stats(uniform, mask)
    assert np.allclose(ent, np.log(N)) and np.allclose(top, 1.0 / N) and len(ent) == 3
    one_hot = np.zeros((N, h, w))
    one_hot[4] = 1.0
    ent, top = focus_stats(one_hot, mask)
    assert np.allclose(ent, 0.0) and np.allclose(top, 1.0)
    stats = AlignmentStats()
    stats.add("lsts", np.array(["slow", "fast"]), np.array([1.0, 2.0]),
              focus=(np.array([0.0, 2.0]), np.array([1.0, 0.5]), N))
    row = stats.summary()["lsts"]["all"]
    assert row["s_entropy_nats"] == pytest.approx(1.0) and row["s_max"] == pytest.approx(0.75)
    assert row["s_uniform_entropy_nats"] == pytest.approx(np.log(N))
    with pytest.raises(ValueError, match="must be"):
        focus_stats(uniform[0], mask)


def test_cell_flow_is_the_true_displacement_at_the_cell_centres(data_root: Path) -> None:
    video = VIDDataset(data_root, "val", max_videos=1).videos[0]
    motion = load_motion(data_root, video.name)
    scale = (0.625, 0.625)  # the smoke preset's resize: 256x144 -> 160x90
    flow, track, centres = cell_flow(motion, 12, 18, (7, 10), scale)  # 1 padded row
    inside = track > -2
    shift, tr = displacement(motion, 12, 18, centres[inside])
    assert np.array_equal(tr, track[inside]) and (tr >= 0).sum() > 3
    px = flow[:, inside].T * 16 / np.array(scale)
    ok = np.isfinite(shift).all(1)
    assert ok.sum() > 20 and np.allclose(px[ok], shift[ok], atol=1e-4)
    assert (track == -2).any()  # the padded last row lies outside the 144-pixel image
    assert np.isnan(flow[:, track == -2]).all()


# ------------------------------------------------------------------ end to end
def test_copy_prop_errs_by_the_true_displacement(data_root: Path) -> None:
    model, cfg = smoke_detector(data_root, "copy_prop")
    res = run(model, cfg, data_root)
    m, z = res["methods"]["copy_prop"], res["methods"][ZERO]
    assert m == z and res["frames"] > 0 and m["all"]["cells"] > 0
    # Independently: |true displacement| at the same cells, from motion_truth.displacement.
    video = VIDDataset(data_root, "val", max_videos=1).videos[0]
    motion = load_motion(data_root, video.name)
    k = cfg["eval"]["key_interval"]
    from lsts_lib.models.detector import key_frame_indices
    keys = key_frame_indices(len(video.frames), k, cfg["eval"]["mode"])
    x, sizes, orig = model.preprocess([load_frame(video.frames[0])])
    hw = tuple(model.extract_low(x).shape[-2:])
    scale = (sizes[0][1] / orig[0][1], sizes[0][0] / orig[0][0])
    norms = []
    for t, ann in enumerate(video.frames):
        key = keys[t // k]
        if t == key:
            continue
        truth, track, centres = cell_flow(motion, t, key, hw, scale)
        mask, _ = object_cells(truth, track, centres, ann)
        shift, _ = displacement(motion, t, key, centres[mask])
        norms.append(np.linalg.norm(shift, axis=1))
    norms = np.concatenate(norms)
    assert m["all"]["cells"] == len(norms)
    assert m["all"]["epe_mean_px"] == pytest.approx(norms.mean(), rel=1e-5)
    assert m["all"]["epe_median_px"] == pytest.approx(np.median(norms), rel=1e-5)
    assert sum(m[c]["cells"] for c in ("slow", "medium", "fast")) == m["all"]["cells"]


class OracleFlow(nn.Module):
    """A FlowNet that answers the true flow of the frame pair it is shown."""

    def __init__(self, model: VideoDetector, root: Path, video_name: str, frames) -> None:
        super().__init__()
        self.motion = load_motion(root, video_name)
        self.index: dict[str, int] = {}
        for t, ann in enumerate(frames):
            x, sizes, orig = model.preprocess([load_frame(ann)])
            self.index[self._key(x)] = t
        self.scale = (sizes[0][1] / orig[0][1], sizes[0][0] / orig[0][0])

    @staticmethod
    def _key(x: Tensor) -> str:
        return hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()

    def forward(self, current: Tensor, key: Tensor, out_size: tuple[int, int]) -> Tensor:
        t, k = self.index[self._key(current)], self.index[self._key(key)]
        flow, _, _ = cell_flow(self.motion, t, k, out_size, self.scale)
        return torch.from_numpy(np.nan_to_num(flow))[None]


def test_flow_equal_to_the_true_flow_has_no_end_point_error(data_root: Path) -> None:
    model, cfg = smoke_detector(data_root, "flow_warp")
    video = VIDDataset(data_root, "val", max_videos=1).videos[0]
    model.flownet = OracleFlow(model, data_root, video.name, video.frames)
    res = run(model, cfg, data_root)
    flow, zero = res["methods"]["flow_warp"]["all"], res["methods"][ZERO]["all"]
    assert flow["cells"] == zero["cells"] > 0
    assert flow["epe_mean_px"] < 1e-3 and zero["epe_mean_px"] > 1.0


def test_lsts_at_initialisation_is_close_to_copy_prop(data_root: Path) -> None:
    # f, g start at std 0.01: S is nearly uniform over a symmetric grid, so the expected
    # displacement is nearly zero and LSTS's error nearly copy-propagation's.
    model, cfg = smoke_detector(data_root, "lsts")
    res = run(model, cfg, data_root)
    lsts, zero = res["methods"]["lsts"]["all"], res["methods"][ZERO]["all"]
    assert lsts["cells"] == zero["cells"] > 0
    assert lsts["epe_mean_px"] == pytest.approx(zero["epe_mean_px"], rel=0.05)
    assert 0 < lsts["feature_rel_l2"] < 10
    # ... and its weights are spread over all N points, nearly log N nats.
    assert lsts["s_entropy_nats"] == pytest.approx(lsts["s_uniform_entropy_nats"], rel=0.01)
    assert "s_entropy_nats" not in zero


def test_cli_writes_json_and_rejects_data_without_motion(data_root: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    model, cfg = smoke_detector(data_root, "copy_prop")
    run_dir = tmp_path / "run"
    save_atomic({"format": FORMAT, "kind": "model", "config": cfg,
                 "model_config": model.cfg.to_dict(), "model": model.state_dict()},
                run_dir / "model.pt")
    out = tmp_path / "a.json"
    rc = cli.main(["alignment", "--run", str(run_dir), "--data", str(data_root), "--split", "val",
                   "--json", str(out), "--max-videos", "1"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["methods"]["copy_prop"]["all"]["cells"] > 0 and res["run"] == str(run_dir)
    no_motion = tmp_path / "nomotion"
    no_motion.mkdir()
    rc = cli.main(["alignment", "--run", str(run_dir), "--data", str(no_motion), "--json",
                   str(tmp_path / "b.json")])
    assert rc == 1 and "no true motion" in capsys.readouterr().err
    rc = cli.main(["alignment", "--run", str(tmp_path), "--data", str(data_root), "--json",
                   str(tmp_path / "c.json")])
    assert rc == 1 and "not a finished run" in capsys.readouterr().err
