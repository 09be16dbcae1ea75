"""Run directories, stamps, the run plan and the run config under careless input and stale
state (issue 12 items 3, 5, 6, 8, 9): nothing stale is reused, nothing foreign overwritten."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lsts_lib import atomic
from lsts_lib.cli import main as cli_main
from lsts_lib.engine import rundir
from lsts_lib.engine.bench import bench
from lsts_lib.engine.checkpoint import load_checkpoint
from lsts_lib.engine.config import RunConfig, load_config, load_plan
from lsts_lib.engine.plan import Orchestrator, flownet_dir, preset_plan, run_plan
from lsts_lib.engine.train import train
from lsts_lib.models.variants import VARIANTS, Variant
from lsts_lib.results import PAPER_SEEDS, load_runs, recipe_markdown, summary_table


def overrides(root: Path, steps: int = 1) -> dict:
    return {"data.root": str(root), "train.steps": steps, "train.threads": 1}


@pytest.fixture(scope="module")
def stage1(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stage1") / "single_frame"
    return train("smoke", out, overrides(data_root), progress=False)


# ------------------------------------------------------------------ item 6: numbers
@pytest.mark.parametrize("override,key", [
    ("train.steps=-5", "train.steps=-5"), ("train.steps=0", "train.steps=0"),
    ("train.batch_size=0", "train.batch_size=0"), ("eval.key_interval=0", "eval.key_interval=0"),
    ("train.stage1.lr=-0.1", "train.stage1.lr=-0.1"), ("train.checkpoint_every=0", "every=0"),
    ("train.grad_clip=0", "train.grad_clip=0"), ("data.max_videos=0", "data.max_videos=0"),
    ("train.stage2.warmup_steps=-1", "warmup_steps=-1"), ("eval.bench_repeats=0", "repeats=0"),
])
def test_every_numeric_option_is_validated(override: str, key: str) -> None:
    with pytest.raises(ValueError, match=key) as err:
        load_config("smoke", [override])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override,key", [
    ("model.anchor_sizes=[]", "model.anchor_sizes=[]"),
    ("model.anchor_sizes=[0]", "model.anchor_sizes=[0]"),
    ("model.aspect_ratios=[-1.0]", "model.aspect_ratios"),
    ("model.detections_per_img=0", "model.detections_per_img=0"),
    ("model.head_extra.rpn_post_nms_top_n_test=0", "model.head_extra.rpn_post_nms_top_n_test=0"),
    ("train.stage1.lr_steps=[2.0]", "train.stage1.lr_steps=[2.0]"),
    ("model.grid_range=-1", "model.grid_range=-1"),
    ("model.min_size=200", "model.min_size=200: must be <= model.max_size"),
    ("train.betas=[2,3]", "train.betas=[2, 3]"),
])
def test_model_and_schedule_values_are_validated(override: str, key: str) -> None:
    with pytest.raises(ValueError) as err:
        load_config("smoke", [override])
    assert key in str(err.value) and "\n" not in str(err.value)


def test_missing_init_from_names_the_option(data_root: Path, tmp_path: Path, capsys) -> None:
    code = cli_main(["train", "--config", "smoke", "--out", str(tmp_path / "r"),
                     "--init-from", str(tmp_path / "nope.pt"), f"data.root={data_root}"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"--init-from {tmp_path / 'nope.pt'}: no such checkpoint file" in err
    assert not (tmp_path / "r").exists()


def test_bad_numbers_on_the_command_line_are_one_line_errors(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = cli_main(["train", "--config", "smoke", "--out", str(tmp_path / "r"),
                     f"data.root={data_root}", "train.steps=-5"])
    err = capsys.readouterr().err
    assert code == 1 and "train.steps=-5" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "model.pt").exists()  # no "finished" untrained model
    for argv in (["detect", "--checkpoint", "m.pt", "--data", "d", "--out", "o",
                  "--key-interval", "0"],
                 ["bench", "--repeats", "0"], ["report", "--jobs", "0"],
                 ["data-stats", "--data", "d", "--max-videos", "0"]):
        with pytest.raises(SystemExit) as exc:
            cli_main(argv)
        assert exc.value.code == 2
        assert "must be >= 1, got 0" in capsys.readouterr().err


# ------------------------------------------------------------------ item 5: paths
def test_relative_paths_are_taken_from_the_current_directory(
    stage1: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    shutil.copy(stage1, work / "models" / "stage1.pt")
    shutil.copytree(data_root, work / "synth")
    monkeypatch.chdir(work)
    train("smoke", "out", {**overrides(Path("synth")), "model.variant": "copy_prop"},
          init_from="models/stage1.pt", progress=False)
    env = json.loads((work / "out" / "env.json").read_text())
    assert env["init_from"] == {"path": str(work / "models" / "stage1.pt"),
                                "sha256": rundir.sha256_file(stage1)}
    assert env["data"]["root"] == str(work / "synth")
    assert env["data"]["sha256"] == rundir.dataset_fingerprint(data_root)


# ------------------------------------------------------------------ item 9: user's files
def test_out_folder_of_someone_else_is_refused(data_root: Path, tmp_path: Path) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a run of `lsts train`"):
        train("smoke", mine, overrides(data_root), progress=False)
    with pytest.raises(ValueError, match="not a run of `lsts train`"):
        train("smoke", mine, overrides(data_root), redo=True, progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("config", ["x\n", "data: {}\nmodel: {}\ntrain: {}\neval: {}\n",
                                    "data: [\n"])
def test_folder_with_a_users_own_config_yaml_is_refused(data_root: Path, tmp_path: Path,
                                                        config: str) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "config.yaml").write_text(config)  # the last two without env.json / stamps
    (mine / "notes.txt").write_text("keep me")
    for redo in (False, True):
        with pytest.raises(ValueError, match="not a run of `lsts train`: its config.yaml"):
            train("smoke", mine, overrides(data_root), redo=redo, progress=False)
    assert (mine / "config.yaml").read_text() == config
    assert sorted(p.name for p in mine.iterdir()) == ["config.yaml", "notes.txt"]


def test_finished_run_without_config_or_with_other_init_is_refused(
    stage1: Path, data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    ov = {**overrides(data_root), "model.variant": "copy_prop"}
    train("smoke", out, ov, init_from=stage1, progress=False)
    other = tmp_path / "other.pt"
    other.write_bytes(stage1.read_bytes() + b"\0")  # another file, other content
    with pytest.raises(ValueError, match=r"other inputs \(another init_from\)"):
        train("smoke", out, ov, init_from=other, progress=False)
    (out / "config.yaml").unlink()
    with pytest.raises(ValueError, match="holds a model.pt but no config.yaml"):
        train("smoke", out, ov, init_from=stage1, progress=False)
    with pytest.raises(ValueError, match="holds a model.pt but no config.yaml"):
        train("smoke", out, {**ov, "model.variant": "flow_warp"}, init_from=stage1,
              progress=False)


# ------------------------------------------------------------------ item 8: artefacts
def test_atomic_write_leaves_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stats.json"
    atomic.write_json(path, {"a": 1})

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_stamp_rejects_other_inputs_and_damaged_outputs(tmp_path: Path) -> None:
    out = tmp_path / "data_stats_val.json"
    atomic.write_json(out, {"frames": 3})
    stamp = rundir.Stamp(tmp_path, "stats_val")
    stamp.mark({"data_sha256": "abc"}, [out])
    assert stamp.done({"data_sha256": "abc"})
    assert not stamp.done({"data_sha256": "abd"})
    out.write_text("")  # a full disk's 0-byte JSON
    assert not stamp.done({"data_sha256": "abc"})
    atomic.write_json(out, {"frames": 3})
    assert stamp.done({"data_sha256": "abc"})
    stamp.path.write_text("")  # a damaged stamp proves nothing
    assert not stamp.done({"data_sha256": "abc"})
    with pytest.raises(ValueError, match="not valid JSON"):
        atomic.read_json(stamp.path)


# ------------------------------------------------------------------ the plan
def test_retraining_stage1_redoes_what_depends_on_it(data_root: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plan = run_plan(runs, [0], ["single_frame", "copy_prop"])
    orch = Orchestrator("smoke", data_root, overrides=overrides(data_root), progress=False)
    orch.train(plan)
    evals = orch.detect(plan)
    detections = plan[1].dir / rundir.DETECTIONS / "detections.txt"
    assert detections.stat().st_size > 0  # scores that other weights change
    before = {"model": plan[1].model.stat().st_mtime_ns,
              "eval": evals[1].stat().st_mtime_ns,
              "detections_sha256": rundir.sha256_file(detections)}
    orch.train(plan)
    orch.detect(plan)
    assert plan[1].model.stat().st_mtime_ns == before["model"]  # done: nothing redone
    assert evals[1].stat().st_mtime_ns == before["eval"]
    # Stage 1 retrained with another step count: copy_prop starts from other weights, so it
    # is retrained, detected and evaluated again without being asked.
    train("smoke", plan[0].dir, overrides(data_root, steps=2), redo=True, progress=False)
    orch.train(plan[1:])
    assert plan[1].model.stat().st_mtime_ns != before["model"]
    orch.detect(plan)
    det = rundir.Stamp(plan[1].dir / rundir.DETECTIONS, "detect").recorded_inputs()
    assert det["checkpoint_sha256"] == rundir.sha256_file(plan[1].model)
    ev = rundir.Stamp(plan[1].dir, "evaluate").recorded_inputs()
    assert ev["detections_sha256"] == rundir.sha256_file(detections)
    # eval.json was recomputed from the new detections: its stamp names their hash, not the
    # old one, and the file was written again.
    assert ev["detections_sha256"] != before["detections_sha256"]
    assert evals[1].stat().st_mtime_ns != before["eval"]
    assert rundir.Stamp(plan[1].dir, "evaluate").outputs_intact()


def test_a_new_catalogue_entry_flows_through_train_detect_bench_and_tables(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new architecture (no `base`): LSTS alignment at non-key frames without SRFU and
    # without DFA fusion, a combination no other entry has. The detector, the training
    # stream, the benchmark and the tables read it from its flags alone.
    dummy = Variant("lsts_bare", "Dummy bare LSTS", "LSTS-aligned memory only.",
                    nonkey="lsts", srfu=False, dfa_fusion=False)
    monkeypatch.setitem(VARIANTS, "lsts_bare", dummy)
    runs = tmp_path / "smoke"
    plan = run_plan(runs, [0], ["single_frame", "lsts_bare"])
    orch = Orchestrator("smoke", data_root, overrides=overrides(data_root), progress=False)
    orch.train(plan)
    orch.detect(plan)
    model = load_checkpoint(plan[1].model)
    assert model["model_config"]["variant"] == "lsts_bare"
    assert any(k.startswith("dfa.") for k in model["model"])
    assert not any(k.startswith(("srfu.", "dfa.quality.")) for k in model["model"])
    rep = bench("smoke", "cpu", ("preset",), ["single_frame", "lsts_bare"], repeats=1,
                progress=False)
    res = rep["results"]["preset"]["lsts_bare"]
    assert res["variant"] == "lsts_bare"
    assert "srfu_align" not in res["key"]["stages"]
    assert "dfa_align" in res["nonkey"]["stages"] and "dfa_fuse" not in res["nonkey"]["stages"]
    summary = summary_table(load_runs(runs, rep))
    assert summary.loc["lsts_bare", "label"] == "Dummy bare LSTS"
    assert list(summary.index) == ["single_frame", "lsts_bare"]


def test_the_plan_detects_and_evaluates_the_configs_test_split(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lsts_lib.engine import plan as plan_mod

    seen: list[tuple[str, str]] = []

    def fake_detect(checkpoint: Path, data: Path, out: Path, split: str, **kw: object) -> None:
        seen.append(("detect", split))
        out.mkdir(parents=True, exist_ok=True)
        (out / "detections.txt").write_text("")

    def fake_evaluate(data: Path, split: str, detections: Path, out: Path) -> None:
        seen.append(("evaluate", split))
        out.write_text("{}")

    monkeypatch.setattr(plan_mod, "detect", fake_detect)
    monkeypatch.setattr(plan_mod, "evaluate", fake_evaluate)
    [run] = run_plan(tmp_path / "runs", [0], ["single_frame"])
    # The smoke preset reports on `test`; the dev split (val) is never what the plan reads.
    assert load_config("smoke")["data"]["test_split"] == "test"
    orch = Orchestrator("smoke", data_root, overrides={"data.test_split": "val"})
    orch.detect([run])
    assert seen == [("detect", "val"), ("evaluate", "val")]
    assert rundir.Stamp(run.dir, "evaluate").recorded_inputs()["split"] == "val"


@pytest.mark.parametrize("key", ["data.val_split", "data.test_split"])
def test_dev_and_test_splits_must_be_evaluable(key: str) -> None:
    with pytest.raises(ValueError, match=f"{key}='train': choose one of val, test"):
        load_config("smoke", {key: "train"})


def test_shared_stage1_plan_trains_every_variant_from_one_model(tmp_path: Path) -> None:
    plan = run_plan(tmp_path, [3, 4], ["single_frame", "lsts"], shared_stage1=True,
                    stage1_seed=7)
    first, *rest = plan
    assert (first.variant, first.seed, first.stage, first.compared) == (
        "single_frame", 7, "stage1", False)
    assert first.dir == rundir.run_dir(tmp_path.resolve(), rundir.SHARED_STAGE1, 7)
    # Every compared run, single_frame included, is stage 2 from the one stage-1 model.
    assert [(r.variant, r.seed, r.stage, r.init_from) for r in rest] == [
        (v, s, "stage2", first.model) for s in (3, 4) for v in ("single_frame", "lsts")]
    # The report preset's plan is this protocol, with at least 5 paired seeds.
    spec = load_plan("report")
    assert spec.shared_stage1 and len(spec.seeds) >= 5


def test_one_stage_plan_starts_no_run_from_another(tmp_path: Path) -> None:
    plan = run_plan(tmp_path, [0, 2], ["single_frame", "lsts", "flow_warp"], one_stage=True,
                    flow_pretrain=True)
    assert [(r.variant, r.seed) for r in plan] == [
        (v, s) for s in (0, 2) for v in ("single_frame", "lsts", "flow_warp")]
    # No run starts from the single-frame model; each is a compared run with its own schedule.
    assert all(r.init_from is None and r.stage == "auto" and r.compared for r in plan)
    assert [r.flow_init is not None for r in plan] == [False, False, True] * 2
    with pytest.raises(ValueError, match="choose one"):
        run_plan(tmp_path, [0], ["lsts"], one_stage=True, shared_stage1=True)
    # The paper preset's plan is the official protocol, and the README's GPU recipe uses its
    # seeds; its recipe names no chained stages.
    spec = load_plan("paper")
    assert spec.one_stage and not spec.shared_stage1
    assert PAPER_SEEDS == spec.seeds
    assert all(r.init_from is None for r in preset_plan(tmp_path, "paper"))
    recipe = recipe_markdown(RunConfig.from_dict(load_config("paper")), spec)
    assert "not from the single-frame model" in recipe and "stage 2 (temporal)" not in recipe


def test_flow_runs_start_from_the_pretrained_flownet(tmp_path: Path) -> None:
    plan = run_plan(tmp_path, [0, 1], ["copy_prop", "flow_warp"], shared_stage1=True,
                    flow_pretrain=True)
    flownet = flownet_dir(tmp_path.resolve()) / "flownet.pt"
    assert [(r.variant, r.flow_init) for r in plan] == [
        ("single_frame", None), ("copy_prop", None), ("flow_warp", flownet),
        ("copy_prop", None), ("flow_warp", flownet)]
    assert all(r.flow_init is None for r in run_plan(tmp_path, [0], ["flow_warp"]))
    orch = Orchestrator("smoke", tmp_path, flow_pretrain={"steps": 2}, flow_seed=3)
    flow_run = plan[2]
    assert orch.run_overrides(flow_run)["train.flow_init_from"] == str(flownet)
    assert "train.flow_init_from" not in orch.run_overrides(plan[1])
    # Without settings the orchestrator cannot make the FlowNet the plan needs.
    with pytest.raises(ValueError, match="plan.flow_pretrain"):
        Orchestrator("smoke", tmp_path, flow_pretrain={}).pretrain_flow(flownet)


def test_plan_section_is_validated(tmp_path: Path) -> None:
    cfg = tmp_path / "p.yaml"
    for bad, match in (("plan: {seeds: [0, 0]}", "distinct"),
                       ("plan: {variants: [nope]}", "unknown variant"),
                       ("plan: {speed: 1}", "unknown key"),
                       ("plan: {shared_stage1: 1}", "true or false"),
                       ("plan: {one_stage: yes please}", "true or false"),
                       ("plan: {one_stage: true, shared_stage1: true}", "excludes"),
                       ("plan: {flow_pretrain: {lr: 0.1}}", "needs steps"),
                       ("plan: {flow_pretrain: {steps: 5, epochs: 1}}", "needs steps"),
                       ("plan: {flow_pretrain: {steps: 0}}", ">= 1"),
                       ("plan: {flow_pretrain: {steps: 5, lr: 0}}", "> 0")):
        cfg.write_text(bad + "\n")
        with pytest.raises(ValueError, match=match):
            load_plan(cfg)


# ------------------------------------------------------------------ resume: same inputs only
def _unfinished(run: Path) -> None:
    """Turn a finished run into an unfinished one: last.pt (of its last step) stays."""
    (run / rundir.MODEL).unlink()
    rundir.Stamp(run, "train").clear()


def test_resume_needs_the_data_and_init_from_its_last_pt_was_made_from(
    stage1: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "synth"
    shutil.copytree(data_root, data)
    run = tmp_path / "run"
    ov = {**overrides(data), "model.variant": "copy_prop"}
    train("smoke", run, ov, init_from=stage1, progress=False)
    _unfinished(run)
    other = tmp_path / "other.pt"
    other.write_bytes(stage1.read_bytes() + b"\0")  # other starting weights
    with pytest.raises(ValueError, match=r"other inputs \(another init_from\).*--redo") as err:
        train("smoke", run, ov, init_from=other, resume=True, progress=False)
    assert "\n" not in str(err.value)
    (data / "extra.txt").write_text("the dataset changed in place")
    with pytest.raises(ValueError, match=r"other inputs \(another data\).*--redo"):
        train("smoke", run, ov, init_from=stage1, resume=True, progress=False)
    assert not (run / rundir.MODEL).exists()
    # From the command line: one line, exit status 1.
    code = cli_main(["train", "--config", "smoke", "--out", str(run), "--resume",
                     "--init-from", str(other), "model.variant=copy_prop",
                     *(f"{k}={v}" for k, v in ov.items() if k != "model.variant")])
    err_text = capsys.readouterr().err
    assert code == 1 and "another data, init_from" in err_text
    assert len(err_text.strip().splitlines()) == 1


def test_orchestrator_resumes_only_a_last_pt_of_the_same_inputs(
    data_root: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    plan = run_plan(runs, [0], ["single_frame", "copy_prop"])
    orch = Orchestrator("smoke", data_root, overrides=overrides(data_root), progress=False)
    orch.train(plan)
    summary = plan[1].dir / rundir.SUMMARY
    # Same inputs: the unfinished run is resumed (at its last checkpoint).
    _unfinished(plan[1].dir)
    orch.train(plan[1:])
    assert json.loads(summary.read_text())["resumed_at"] == 1
    # Stage 1 retrained: copy_prop's last.pt starts from the old stage-1 weights, so the run is
    # trained again from the new ones, not resumed (which would mix the two).
    _unfinished(plan[1].dir)
    train("smoke", plan[0].dir, overrides(data_root, steps=2), redo=True, progress=False)
    orch.train(plan[1:])
    assert json.loads(summary.read_text())["resumed_at"] == 0
    env = json.loads((plan[1].dir / rundir.ENV).read_text())
    assert env["init_from"]["sha256"] == rundir.sha256_file(plan[0].model)
    assert rundir.Stamp(plan[1].dir, "train").recorded_inputs()["init_from"]["sha256"] \
        == rundir.sha256_file(plan[0].model)


def test_a_run_is_keyed_on_the_model_code_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # A code change that computes something else for the same config must not reuse old runs.
    import lsts_lib.engine.train as train_mod

    cfg = load_config("smoke")
    before = train_mod.train_inputs(cfg, None)
    monkeypatch.setattr(train_mod, "MODEL_CODE_VERSION", before["model_code"] + 1)
    assert train_mod.train_inputs(cfg, None) != before


def test_the_plan_aligns_only_compared_runs_that_propagate(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lsts_lib.engine import plan as plan_mod

    seen: list[tuple[str, str]] = []

    def fake_alignment(run: Path, data: Path, split: str) -> dict:
        seen.append((Path(run).parent.name, split))
        return {"methods": {}}

    monkeypatch.setattr(plan_mod, "alignment", fake_alignment)
    plan = run_plan(tmp_path / "runs", [0], ["single_frame", "copy_prop", "lsts"],
                    shared_stage1=True)
    for r in plan:  # alignment is keyed on the model's content: give each run one
        r.dir.mkdir(parents=True)
        r.model.write_bytes(r.variant.encode())
    orch = Orchestrator("smoke", data_root)
    outs = orch.align(plan)
    # Not the shared stage-1 model, not single_frame (every frame is a key frame).
    assert seen == [("copy_prop", "test"), ("lsts", "test")]
    assert all(p.is_file() for p in outs)
    orch.align(plan)  # done: stamped on model, split and data
    assert len(seen) == 2
