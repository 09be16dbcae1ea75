"""`lsts train`: files written, determinism, kill-and-resume, atomic checkpoints, NaN stop,
config overrides and weights_only loading -- on a tiny SynthVID smoke dataset."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lsts_lib.data.vid import VIDDataset
from lsts_lib.engine import checkpoint as ckpt_mod
from lsts_lib.engine import train as train_mod
from lsts_lib.engine.checkpoint import load_checkpoint, save_atomic, state_hash
from lsts_lib.engine.config import RunConfig, StageConfig, TrainConfig, load_config
from lsts_lib.engine.optim import build_optimizer, lr_factor, total_steps
from lsts_lib.engine.train import NonFiniteLossError, train
from lsts_lib.engine.trainlog import read_log
from lsts_lib.models.variants import VARIANTS, run_overrides

STEPS = 4  # with checkpoint_every=2: checkpoints after steps 2 (and the end)


def overrides(root: Path, **extra: object) -> dict:
    o = {"data.root": str(root), "train.steps": STEPS, "train.threads": 1}
    o.update(extra)
    return o


@pytest.fixture(scope="module")
def stage1(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (very short) stage-1 single-frame model the temporal runs start from."""
    out = tmp_path_factory.mktemp("stage1") / "single_frame"
    return train("smoke", out, overrides(data_root, **{"train.steps": 2}), progress=False)


@pytest.fixture(scope="module")
def reference(data_root: Path, stage1: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted stage-2 LSTS run (the kill-and-resume and determinism reference)."""
    out = tmp_path_factory.mktemp("ref") / "lsts"
    train("smoke", out, overrides(data_root, **{"model.variant": "lsts"}), init_from=stage1,
          progress=False)
    return out


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "model.pt")["model"]


def loss_rows(run: Path) -> list[dict[str, float]]:
    timing = {"step_time", "step_cpu_time"}
    return [{k: v for k, v in r.items() if k not in timing} for r in read_log(run / "log.csv")]


def test_run_writes_every_file(reference: Path, stage1: Path) -> None:
    for name in ("config.yaml", "env.json", "log.csv", "last.pt", "model.pt", "summary.json"):
        assert (reference / name).is_file(), name
    cfg = yaml.safe_load((reference / "config.yaml").read_text())
    assert cfg["model"]["variant"] == "lsts" and cfg["train"]["steps"] == STEPS
    rows = read_log(reference / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    for col in ("loss", "loss_rpn_cls", "loss_rpn_box", "loss_rfcn_cls", "loss_rfcn_box", "lr",
                "lr_offsets", "step_time", "offsets_shift"):
        assert col in rows[0], col
    # The offsets train at 2.5x the base lr and move away from their initialisation.
    assert rows[0]["lr_offsets"] == pytest.approx(2.5 * rows[0]["lr"])
    assert rows[-1]["offsets_shift"] > 0
    # model.pt is a weights_only checkpoint with what `lsts detect` needs.
    raw = torch.load(reference / "model.pt", weights_only=True)
    assert raw["model_config"]["variant"] == "lsts" and raw["classes"]["names"]
    assert raw["init_from"] == str(stage1)
    env = (reference / "env.json").read_text()
    assert '"torch"' in env and '"cpu"' in env and '"seed": 0' in env


def test_same_seed_same_weights_other_seed_differs(
    reference: Path, stage1: Path, data_root: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    train("smoke", again, overrides(data_root, **{"model.variant": "lsts"}), init_from=stage1,
          progress=False)
    assert state_hash(weights(again)) == state_hash(weights(reference))
    assert loss_rows(again) == loss_rows(reference)
    other = tmp_path / "other"
    train("smoke", other, overrides(data_root, **{"model.variant": "lsts", "seed": 1}),
          init_from=stage1, progress=False)
    assert state_hash(weights(other)) != state_hash(weights(reference))


def test_dev_curve_measures_without_changing_training(
    reference: Path, stage1: Path, data_root: Path, tmp_path: Path
) -> None:
    """train.stage2.dev_every: dev-split mAP at step 0 (other weights), every 3 steps and at
    the end, in dev.csv; the trained weights are the same as without it."""
    run = tmp_path / "dev"
    train("smoke", run, overrides(data_root, **{"model.variant": "lsts",
                                                "train.stage2.dev_every": 3,
                                                "train.stage2.dev_max_videos": 1}),
          init_from=stage1, progress=False)
    assert state_hash(weights(run)) == state_hash(weights(reference))
    rows = read_log(run / "dev.csv")
    assert [int(r["step"]) for r in rows] == [0, 3, STEPS]
    one_video = len(VIDDataset(data_root, "val", max_videos=1).videos[0].frames)
    assert all(0.0 <= r["mAP"] <= 1.0 and r["frames"] == one_video for r in rows)
    with pytest.raises(ValueError, match="train.stage2.dev_every"):
        load_config("smoke", ["train.stage2.dev_every=-1"])


def test_sigkill_then_resume_matches_uninterrupted(
    reference: Path, stage1: Path, data_root: Path, tmp_path: Path
) -> None:
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "lsts_lib", "train", "--config", "smoke", "--out", str(run),
            "--init-from", str(stage1), "model.variant=lsts"]
    args += [f"{k}={v}" for k, v in overrides(data_root).items()]
    # SIGKILL itself after step 3: the checkpoint of step 2 survives, step 3 is lost.
    env = dict(os.environ, **{train_mod.KILL_ENV: "3"})
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (run / "model.pt").exists()
    assert load_checkpoint(run / "last.pt")["step"] == 2
    assert len(read_log(run / "log.csv")) == 3  # the lost step was logged before the kill

    # Without --resume the unfinished run is refused rather than silently overwritten.
    with pytest.raises(ValueError, match="unfinished run"):
        train("smoke", run, overrides(data_root, **{"model.variant": "lsts"}), init_from=stage1)
    train("smoke", run, overrides(data_root, **{"model.variant": "lsts"}), init_from=stage1,
          resume=True, progress=False)
    assert state_hash(weights(run)) == state_hash(weights(reference))
    assert loss_rows(run) == loss_rows(reference)


def test_resume_refuses_another_config(reference: Path, data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    for name in ("last.pt", "config.yaml"):
        (run / name).write_bytes((reference / name).read_bytes())
    with pytest.raises(ValueError, match="another config"):
        train("smoke", run, overrides(data_root, **{"model.variant": "lsts", "seed": 5}),
              resume=True)


def test_finished_run_is_reused(reference: Path, stage1: Path, data_root: Path,
                                capsys: pytest.CaptureFixture) -> None:
    before = (reference / "model.pt").stat().st_mtime_ns
    out = train("smoke", reference, overrides(data_root, **{"model.variant": "lsts"}),
                init_from=stage1)
    assert out == reference / "model.pt" and out.stat().st_mtime_ns == before
    assert "finished run reused" in capsys.readouterr().out


def test_atomic_save_keeps_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    good = {"format": ckpt_mod.FORMAT, "model": {"w": torch.ones(3)}, "step": 2}
    save_atomic(good, path)

    def crash(obj, fh, *a, **k):  # half a file, then the process "dies"
        fh.write(b"PK\x03\x04 partial checkpoint bytes")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({**good, "step": 4}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_weights_only_loading_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt_mod.FORMAT, "model": {}, "payload": Path("x")}, path)
    with pytest.raises(ValueError, match="weights-only"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"state": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not an LSTS checkpoint"):
        load_checkpoint(other)


def poison_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Models built by train() return a NaN loss on their `step`-th forward (1-based)."""
    real_build = train_mod.build_model

    def build_poisoned(mcfg):
        model = real_build(mcfg)
        forward = model.forward
        calls = {"n": 0}

        def poisoned(frames, target):
            calls["n"] += 1
            losses = forward(frames, target)
            if calls["n"] == step:
                losses["loss"] = losses["loss"] * float("nan")
            return losses

        model.forward = poisoned
        return model

    monkeypatch.setattr(train_mod, "build_model", build_poisoned)


def test_nan_loss_before_any_checkpoint_names_no_last_pt(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison_step(monkeypatch, 1)  # the first step diverges
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written") as exc:
        train("smoke", run, overrides(data_root), progress=False)
    assert "last.pt" not in str(exc.value) and not (run / "last.pt").exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison_step(monkeypatch, 3)  # step 3 diverges
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 3"):
        train("smoke", run, overrides(data_root), progress=False)
    assert load_checkpoint(run / "last.pt")["step"] == 2
    assert not (run / "model.pt").exists()
    # The CLI turns it into a clear message and a non-zero exit status.
    import argparse

    ns = argparse.Namespace(config="smoke", out=tmp_path / "nan_cli", resume=False, redo=False,
                            init_from=None, variant=None,
                            overrides=[f"{k}={v}" for k, v in overrides(data_root).items()])
    assert train_mod.main(ns) == train_mod.EXIT_NONFINITE


def test_overrides_are_type_checked() -> None:
    cfg = load_config("smoke", ["train.stage1.lr=0.5", "seed=3", "train.stage1.steps=7"])
    assert cfg["train"]["stage1"]["lr"] == 0.5 and cfg["train"]["seed"] == 3
    assert isinstance(load_config("smoke", ["train.stage1.lr=1"])["train"]["stage1"]["lr"], float)
    with pytest.raises(ValueError, match="unknown key"):
        load_config("smoke", ["train.stage1.lrr=0.5"])
    with pytest.raises(ValueError, match="unknown key"):
        load_config("smoke", ["nosection.x=1"])
    with pytest.raises(ValueError, match="expected a number"):
        load_config("smoke", ["train.stage1.lr=fast"])
    with pytest.raises(ValueError, match="expected an integer"):
        load_config("smoke", ["train.stage1.steps=2.5"])
    with pytest.raises(ValueError, match="expected true/false"):
        load_config("smoke", ["train.flip=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config("smoke", ["train.flip"])
    with pytest.raises(FileNotFoundError, match="no such config preset"):
        load_config("nonexistent_preset")


def test_presets_resolve_to_model_configs() -> None:
    from lsts_lib.models.config import ModelConfig

    for name in ("smoke", "report", "paper"):
        run = RunConfig.from_dict(load_config(name))
        assert run.model.with_classes(30).num_classes == 30  # 0: the dataset's count
        for variant, spec in VARIANTS.items():  # every catalogue entry is a valid override set
            model = load_config(name, run_overrides(variant))["model"]
            assert model["variant"] == spec.architecture
            assert all(model[k] == v for k, v in spec.model.items())
            # The overrides and `configure` apply a variant the same way.
            assert ModelConfig.from_dict(model) == spec.configure(run.model)
    with pytest.raises(ValueError, match="model.num_classes=30 but the dataset lists 3"):
        RunConfig.from_dict(load_config("paper")).model.with_classes(3)
    paper = load_config("paper")
    assert paper["model"]["backbone"] == "resnet101" and paper["train"]["offsets_lr_mult"] == 2.5


def test_paper_preset_is_the_official_update_under_ddp() -> None:
    # Official: 8 GPUs x 1 image, lr 2.5e-4 on the SUM of the 8 gradients, 4 epochs over a
    # roidb holding every image and its flipped copy, x0.1 after 2.33 epochs; every variant
    # in one stage from ImageNet weights. DDP averages the gradients.
    gpus, official_lr, official_epochs, images = 8, 2.5e-4, 4, 57_834 + 53_638
    official_iters = official_epochs * 2 * images // gpus
    train_cfg = RunConfig.from_dict(load_config("paper")).train
    for sched in (train_cfg.stage1, train_cfg.stage2):
        assert sched.init_from is None  # no stage starts from another model
        assert sched.lr * train_cfg.batch_size == pytest.approx(gpus * official_lr)
        steps = total_steps(train_cfg, sched, images, gpus)
        assert steps == official_iters
        assert sched.lr_steps == pytest.approx([2.333 / official_epochs], abs=1e-4)


def test_optimizer_and_lr_schedule_choices() -> None:
    from lsts_lib.models.config import tiny_config
    from lsts_lib.models.detector import build_detector

    # Unknown names fail at config time with a message naming the key, not mid-run.
    with pytest.raises(ValueError, match="train.optimizer='adam': choose one of sgd, adamw"):
        load_config("smoke", ["train.optimizer=adam"])
    with pytest.raises(ValueError, match="train.stage1.lr_schedule='poly': choose one of"):
        load_config("smoke", ["train.stage1.lr_schedule=poly"])
    with pytest.raises(ValueError, match="train.optimizer='rmsprop'"):
        TrainConfig(optimizer="rmsprop").validate()

    # AdamW and SGD both keep the LSTS offsets p_n in their own group (lr x mult, no decay).
    model = build_detector(tiny_config("lsts"))
    for name, cls in (("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)):
        run = RunConfig.from_dict(load_config("smoke", [f"train.optimizer={name}"]))
        opt = build_optimizer(model, run.train, StageConfig(lr=0.01, steps=1))
        assert type(opt) is cls
        groups = {g["name"]: g for g in opt.param_groups}
        assert groups["offsets"]["lr"] == pytest.approx(0.01 * run.train.offsets_lr_mult)
        assert groups["offsets"]["weight_decay"] == 0.0
        assert groups["base"]["weight_decay"] == run.train.weight_decay
        assert opt.defaults["fused"] is True

    # The fused update is the textbook one: three steps match the per-tensor loop's.
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(2)]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opts = [torch.optim.AdamW(ps, lr=0.01, fused=f, foreach=None if f else False)
            for ps, f in ((params, True), (ref, False))]
    for _ in range(3):
        for ps, o in zip((params, ref), opts, strict=True):
            o.zero_grad()
            sum((p ** 2).sum() for p in ps).backward()
            o.step()
    for p, r in zip(params, ref, strict=True):
        torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)

    # Cosine: 1 -> 0.5 at half way -> 0 at the end; warm-up still scales the first steps.
    cos = StageConfig(steps=100, lr_schedule="cosine", lr_steps=(0.5,))
    assert [lr_factor(s, 100, cos) for s in (0, 50, 100)] == pytest.approx([1, 0.5, 0])
    warm = StageConfig(steps=100, lr_schedule="cosine", warmup_steps=10)
    assert lr_factor(0, 100, warm) == pytest.approx(0.1)
    step = StageConfig(steps=100, lr_steps=(0.5,), lr_factor=0.1)
    assert [lr_factor(s, 100, step) for s in (49, 50)] == pytest.approx([1, 0.1])


def test_stage_lr_mult_freezes_and_scales_modules() -> None:
    """`train.stage<k>.lr_mult`: 0 freezes a module, another value scales its learning rate."""
    from lsts_lib.models.config import tiny_config
    from lsts_lib.models.detector import build_detector

    model = build_detector(tiny_config("lsts"))
    train_cfg = TrainConfig(optimizer="adamw")
    opt = build_optimizer(model, train_cfg, StageConfig(
        lr=0.01, steps=1, lr_mult={"backbone": 0.0, "head": 0.1}))
    groups = {g["name"]: g for g in opt.param_groups}
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert groups["head"]["lr"] == pytest.approx(0.001) and groups["base"]["lr"] == 0.01
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for p in model.backbone.parameters())
    # the fresh temporal modules (LSTS embeddings, low2high, quality nets) train at the base lr
    head_ids = {id(p) for p in model.head.parameters()}
    assert groups["base"]["params"] and not any(id(p) in head_ids for p in groups["base"]["params"])
    with pytest.raises(ValueError, match="no module 'neck'"):
        build_optimizer(build_detector(tiny_config("lsts")), train_cfg,
                        StageConfig(lr=0.01, steps=1, lr_mult={"neck": 0.0}))


def test_preset_name_not_shadowed_by_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make report` leaves a report/ folder; `--config report` must still find the preset."""
    from lsts_lib import paths
    from lsts_lib.engine.config import config_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "report").mkdir()
    assert config_path("report") == paths.CONFIGS / "report.yaml"
    with pytest.raises(FileNotFoundError, match="missing.yaml: config file not found"):
        config_path("missing.yaml")


def test_finished_run_with_another_config_is_refused(data_root: Path, tmp_path: Path) -> None:
    """A finished RUN_DIR is reused only for the same config; another one needs --redo."""
    out = tmp_path / "run"
    ov = overrides(data_root, **{"train.steps": 1})
    train("smoke", out, ov, progress=False)
    assert train("smoke", out, ov, progress=False) == out / "model.pt"  # same config: reused
    with pytest.raises(ValueError, match=r"finished run made from other inputs \(another config\)"):
        train("smoke", out, overrides(data_root, **{"train.steps": 2}), progress=False)


# ------------------------------------------------- stale state and failing disks (issue 12)
def cli_args(out: Path, root: Path, *extra: str, **over: object) -> list[str]:
    return ["train", "--config", "smoke", "--out", str(out), *extra,
            *[f"{k}={v}" for k, v in overrides(root, **over).items()]]


def error_lines(err: str) -> list[str]:
    """The CLI's error lines (tqdm also writes to stderr); never a traceback."""
    assert "Traceback" not in err, err[-2000:]
    # A progress bar left open by the error shares its line (tqdm redraws with \r).
    lines = err.replace("\r", "\n").splitlines()
    return [line[line.index("lsts train: error:"):] for line in lines if "lsts train: error:" in line]


def test_disk_full_during_a_checkpoint_write_is_one_line(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from lsts_lib.cli import main

    def full(obj, fh, *a, **k):  # the disk fills up halfway through the write
        fh.write(b"PK\x03\x04 partial checkpoint bytes")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt_mod.torch, "save", full)
    run = tmp_path / "full"
    assert main(cli_args(run, data_root, **{"train.steps": 2, "train.checkpoint_every": 1})) == 1
    [line] = error_lines(capsys.readouterr().err)
    assert "No space left on device" in line and str(run / "last.pt") in line
    assert not [p.name for p in run.iterdir() if p.suffix in (".pt", ".tmp")]


def test_disk_full_as_torch_zip_writer_runtime_error_is_one_line(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """torch's zip writer reports a full disk as a RuntimeError, not an OSError."""
    from lsts_lib.cli import main

    def full(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 partial checkpoint bytes")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos "
                           "1234 vs 1200")

    monkeypatch.setattr(ckpt_mod.torch, "save", full)
    run = tmp_path / "full"
    assert main(cli_args(run, data_root, **{"train.steps": 2, "train.checkpoint_every": 1})) == 1
    [line] = error_lines(capsys.readouterr().err)
    assert "could not write the checkpoint" in line and "disk full" in line
    assert str(run / "last.pt") in line and "inline_container" not in line
    assert not [p.name for p in run.iterdir() if p.suffix in (".pt", ".tmp")]


def test_orphaned_checkpoint_temps_are_removed_on_the_next_start(
    reference: Path, stage1: Path, data_root: Path
) -> None:
    orphans = [reference / ".last.pt.k1ll3d.tmp", reference / ".model.pt.x9x9x9.tmp"]
    for p in orphans:
        p.write_bytes(b"PK\x03\x04 what a SIGKILL left")
    (reference / "notes.tmp").write_text("the user's own file")
    train("smoke", reference, overrides(data_root, **{"model.variant": "lsts"}),
          init_from=stage1)  # the same inputs as the finished run: reused
    assert not any(p.exists() for p in orphans)
    assert (reference / "notes.tmp").read_text() == "the user's own file"


def test_a_bit_flip_inside_a_tensor_is_refused(tmp_path: Path) -> None:
    w = torch.arange(1000, dtype=torch.float32) + 12345.0
    path = tmp_path / "last.pt"
    save_atomic({"format": ckpt_mod.FORMAT, "model": {"w": w}, "step": 2}, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], w)
    raw = bytearray(path.read_bytes())
    at = bytes(raw).find(w.numpy().tobytes()[:64])
    assert at > 0
    raw[at + 2000] ^= 0x04  # one bit of w[500]: torch.load itself does not notice
    path.write_bytes(bytes(raw))
    assert not torch.equal(torch.load(path, weights_only=True)["model"]["w"], w)
    with pytest.raises(ValueError, match=f"{path}: content checksum mismatch"):
        load_checkpoint(path)


def test_resume_with_weights_of_another_architecture_is_one_line(
    reference: Path, stage1: Path, data_root: Path, tmp_path: Path, capsys
) -> None:
    from lsts_lib.cli import main

    run = tmp_path / "swapped"
    ckpt = load_checkpoint(reference / "last.pt")  # the LSTS run's resume point ...
    ckpt["model"] = load_checkpoint(stage1)["model"]  # ... holding single-frame weights
    save_atomic(ckpt, run / "last.pt")
    shutil.copy(reference / "config.yaml", run / "config.yaml")  # an unfinished run of ours
    assert main(cli_args(run, data_root, "--resume", "--init-from", str(stage1),
                         **{"model.variant": "lsts"})) == 1
    [line] = error_lines(capsys.readouterr().err)
    assert f"{run / 'last.pt'}: its weights do not fit this model" in line


def test_cuda_device_without_cuda_is_one_line(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from lsts_lib.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "gpu"
    assert main(cli_args(run, data_root, **{"train.device": "cuda"})) == 1
    [line] = error_lines(capsys.readouterr().err)
    assert "train.device=cuda but no CUDA device is available" in line
    assert not run.exists()


def test_checkpoint_without_checksum_loads_only_as_the_legacy_format(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"format": ckpt_mod.LEGACY_FORMATS[0], "model": {"w": torch.ones(2)}}, path)
    with pytest.warns(UserWarning, match="no content checksum; loaded unverified"):
        assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    torch.save({"format": ckpt_mod.FORMAT, "model": {"w": torch.ones(2)}}, path)
    with pytest.raises(ValueError, match="content checksum mismatch"):
        load_checkpoint(path)


def test_the_stream_reads_each_default_from_the_typed_config(data_root: Path) -> None:
    from lsts_lib.engine.config import DataConfig
    from lsts_lib.engine.data import TrainStream, build_stream

    raw = load_config("smoke", {"data.root": str(data_root)})
    for key in ("use_det", "max_videos", "train_split"):  # left to DataConfig's defaults
        del raw["data"][key]
    for key in ("flip", "old_key_range", "new_key_range"):  # left to TrainConfig's
        del raw["train"][key]
    stream = build_stream(RunConfig.from_dict(raw))
    assert (stream.det is not None) == DataConfig.use_det
    assert stream.flip == TrainConfig.flip
    assert (stream.old_range, stream.new_range) == (TrainConfig.old_key_range,
                                                    TrainConfig.new_key_range)
    assert not stream.temporal  # single_frame: every frame is a key frame
    # TrainStream's own defaults are TrainConfig's.
    bare = TrainStream(stream.vid, None, seed=0, temporal=True)
    assert (bare.flip, bare.old_range, bare.new_range) == (
        TrainConfig.flip, TrainConfig.old_key_range, TrainConfig.new_key_range)
    other = load_config("smoke", {"data.root": str(data_root), "data.use_det": False,
                                  "model.variant": "copy_prop", "train.new_key_range": [-3, 2]})
    stream = build_stream(RunConfig.from_dict(other))
    assert stream.det is None and stream.temporal and stream.new_range == (-3, 2)


def test_single_frame_is_the_variants_every_frame_key_not_its_name(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lsts_lib.engine.data import build_stream
    from lsts_lib.models.variants import Variant

    twin = Variant("per_frame_twin", "Per-frame twin", "Another single-frame detector.",
                   nonkey="key")
    monkeypatch.setitem(VARIANTS, "per_frame_twin", twin)
    run = RunConfig.from_dict(load_config("smoke", {"data.root": str(data_root),
                                                    "model.variant": "per_frame_twin"}))
    assert run.stage == "stage1"  # the single-frame schedule
    assert not build_stream(run).temporal  # one frame per sample


def test_a_stage_sets_its_own_offsets_lr_multiplier() -> None:
    from lsts_lib.models import build_detector, tiny_config

    def cfg(variant: str, mult: float | None) -> dict:
        over = {**run_overrides(variant), "train.stage": "stage2", "train.offsets_lr_mult": 2.5,
                "train.stage2.offsets_lr_mult": mult}
        return load_config("smoke", over)

    run = RunConfig.from_dict(cfg("lsts", 40.0))
    assert run.schedule.offsets_mult(run.train) == 40.0
    assert run.train.stage1.offsets_mult(run.train) == 2.5  # the other stage keeps the default
    model = build_detector(tiny_config("lsts"))
    groups = {g.get("name"): g for g in build_optimizer(model, run.train, run.schedule).param_groups}
    assert groups["offsets"]["lr"] == pytest.approx(40.0 * run.schedule.lr)
    # An input only of the runs whose offsets learn in that stage.
    assert train_mod._comparable(cfg("lsts", 40.0))["train"]["stage2"]["offsets_lr_mult"] == 40.0
    for variant in ("lsts_fixed", "copy_prop", "single_frame"):
        assert train_mod._comparable(cfg(variant, 40.0)) == train_mod._comparable(cfg(variant, None))
    with pytest.raises(ValueError, match="offsets_lr_mult"):
        load_config("smoke", {"train.stage2.offsets_lr_mult": -1})
