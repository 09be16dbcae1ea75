"""`lsts detect` writes both detection formats the evaluator reads; `lsts bench` returns every
stage, total and key for each variant (tiny smoke size)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from lsts_lib.data.vid import VIDDataset
from lsts_lib.engine.bench import CATEGORIES, bench
from lsts_lib.engine.detect import detect
from lsts_lib.engine.plan import Orchestrator, run_plan
from lsts_lib.engine.rundir import run_dir
from lsts_lib.eval.detections_io import frame_ids, read_coco_results, read_vid_detections
from lsts_lib.eval.vid_eval import evaluate_dataset


@pytest.fixture(scope="module")
def lsts_model(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    plan = run_plan(runs, [0], ["lsts"])
    assert [(r.variant, r.init_from) for r in plan] == [
        ("single_frame", None), ("lsts", run_dir(runs, "single_frame", 0) / "model.pt")]
    orchestrator = Orchestrator("smoke", data_root, progress=False,
                                overrides={"train.steps": 1, "train.threads": 1})
    stage1, model = orchestrator.train(plan)
    assert stage1.is_file() and model.is_file()
    return model


def test_detect_writes_devkit_and_coco_files_the_evaluator_reads(
    lsts_model: Path, data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "det"
    timing = detect(lsts_model, data_root, out, mode="online", key_interval=3, progress=False)
    ds = VIDDataset(data_root, "val")
    n_frames = sum(len(v.frames) for v in ds.videos)
    assert timing["frames"] == n_frames and timing["fps_model"] > 0
    assert timing["settings"]["mode"] == "online" and timing["settings"]["key_interval"] == 3
    ids = frame_ids(ds.videos)
    txt = read_vid_detections(out / "detections.txt", ds.classes.num_classes, ids)
    coco = read_coco_results(out / "detections.json", ds.classes.num_classes, ids)
    assert len(txt) == len(coco) == timing["detections"] > 0
    np.testing.assert_allclose(np.sort(txt.scores), np.sort(coco.scores), atol=1e-5)
    result = evaluate_dataset(ds, txt)
    assert result["num_detections"] == len(txt) and 0.0 <= result["mAP"] <= 1.0
    # Same settings again: reused, not recomputed.
    mtime = (out / "detections.txt").stat().st_mtime_ns
    detect(lsts_model, data_root, out, mode="online", key_interval=3, progress=False)
    assert (out / "detections.txt").stat().st_mtime_ns == mtime


def test_detect_reuse_is_keyed_on_content(
    lsts_model: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 12 item 3: data or weights changed in place are detected again; reuse says so."""
    data = tmp_path / "data"
    shutil.copytree(data_root, data)
    model = tmp_path / "model.pt"
    shutil.copy2(lsts_model, model)
    out = tmp_path / "det"
    first = detect(model, data, out, key_interval=2, progress=False)
    capsys.readouterr()
    detect(model, data, out, key_interval=2, progress=False)
    assert "reused" in capsys.readouterr().out
    # A frame rewritten in place (same path, size and checkpoint): not reused.
    jpeg = sorted((data / "Data" / "VID" / "val").rglob("*.JPEG"))[0]
    image = Image.open(jpeg)
    ImageOps.invert(image.convert("RGB")).save(jpeg, format="JPEG")
    again = detect(model, data, out, key_interval=2, progress=False)
    assert "reused" not in capsys.readouterr().out
    assert again["settings"]["data_sha256"] != first["settings"]["data_sha256"]
    # The same weights rewritten in place (new mtime, same content): reused; other weights: not.
    shutil.copy(lsts_model, model)
    detect(model, data, out, key_interval=2, progress=False)
    assert "reused" in capsys.readouterr().out
    raw = model.read_bytes()
    model.write_bytes(raw + b"\0")  # other content (torch.load ignores trailing bytes)
    detect(model, data, out, key_interval=2, progress=False)
    assert "reused" not in capsys.readouterr().out
    # A damaged output is never reused.
    (out / "detections.txt").write_text("")
    detect(model, data, out, key_interval=2, progress=False)
    assert "reused" not in capsys.readouterr().out
    assert (out / "detections.txt").stat().st_size > 0


def test_detect_refuses_an_out_that_is_not_its_own(data_root: Path, tmp_path: Path) -> None:
    """A user's folder holding a detections.txt, and a folder inside the dataset, are
    refused before anything is loaded or written."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "detections.txt").write_text("my own detections\n")
    (mine / "notes.txt").write_text("keep me")
    model = tmp_path / "model.pt"  # never read: the refusal comes first
    for redo in (False, True):
        with pytest.raises(ValueError, match="not an output of `lsts detect`"):
            detect(model, data_root, mine, redo=redo, progress=False)
    assert (mine / "detections.txt").read_text() == "my own detections\n"
    for inside in (data_root, data_root / "dets", data_root / "Data" / ".." / "dets"):
        with pytest.raises(ValueError, match="inside the --data folder"):
            detect(model, data_root, inside, progress=False)
    assert not (data_root / "dets").exists()
    (mine / "notes.txt").unlink()
    (mine / "detections.txt").unlink()
    with pytest.raises(FileNotFoundError):  # an empty folder is accepted
        detect(model, data_root, mine, progress=False)


def test_detect_refuses_a_dataset_with_other_classes(
    lsts_model: Path, tiny_vid: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="class indices would not match"):
        detect(lsts_model, tiny_vid, tmp_path / "d", progress=False)


def test_bench_reports_every_stage_and_key(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    rep = bench("smoke", "cpu", ("preset",), ["single_frame", "copy_prop", "flow_warp", "lsts"],
                repeats=2, json_out=out, progress=False)
    assert json.loads(out.read_text())["schema"] == "lsts-bench-v1"
    assert rep["device"]["name"] and rep["key_interval"] == 4
    # Provenance and the machine's peak, measured with the benchmark's threads.
    dev = rep["device"]
    assert dev["torch"] == torch.__version__ and dev["torch_threads"] == torch.get_num_threads()
    assert dev["cpu_capability"] and (dev["cpu_flags"] is None or isinstance(dev["cpu_flags"],
                                                                            list))
    peak = rep["machine_peak"]["fp32"]
    assert peak["threads"] == dev["torch_threads"] and peak["dtype"] == "float32"
    assert set(peak["kernels"]) == {"gemm_2048", "conv3x3_res2", "conv3x3_res3",
                                    "conv3x3_res4", "conv3x3_res5"}
    assert peak["kernels"]["gemm_2048"]["gflops"] == pytest.approx(2 * 2048**3 / 1e9, rel=1e-3)
    assert peak["gflop_per_s"] == max(k["gflop_per_s"] for k in peak["kernels"].values()) > 0
    res = rep["results"]["preset"]
    for name, r in res.items():
        for kind in ("key", "nonkey"):
            assert r[kind]["ms"] > 0 and r[kind]["flops"] > 0 and r[kind]["peak_mb"] > 0
            assert set(r[kind]["by_category_ms"]) == set(CATEGORIES)
        assert r["amortised_ms"] > 0 and r["amortised_gflops"] > 0, name
        # Every timed call is kept, so a reader can see the spread behind each median.
        for kind in ("key", "nonkey"):
            for stage in r[kind]["stages"].values():
                assert len(stage["ms_repeats"]) == 2
                assert stage["ms"] == pytest.approx(sum(stage["ms_repeats"]) / 2, abs=2e-3)
            whole = r[kind]["ms_measured_repeats"]
            assert len(whole) == 2
            assert r[kind]["ms_measured"] == pytest.approx(sum(whole) / 2, abs=2e-3)
    assert all(len(b["ms_repeats"]) == 2 for b in rep["blocks"]["preset"])
    k = rep["key_interval"]
    lsts = res["lsts"]
    assert set(lsts["key"]["stages"]) == {"preprocess", "low", "high", "srfu_align", "srfu_fuse",
                                          "head"}
    assert set(lsts["nonkey"]["stages"]) == {"preprocess", "low", "low2high", "dfa_align",
                                             "dfa_fuse", "head"}
    assert lsts["amortised_ms"] == pytest.approx(
        (lsts["key"]["ms"] + (k - 1) * lsts["nonkey"]["ms"]) / k, abs=2e-3)
    # Achieved rate = counted FLOPs / median ms, as a fraction of the measured peak.
    low = lsts["nonkey"]["stages"]["low"]
    assert low["gflop_per_s"] == pytest.approx(low["flops"] / low["ms"] / 1e6, rel=1e-2)
    assert low["fraction_of_peak"] == pytest.approx(low["gflop_per_s"] / peak["gflop_per_s"],
                                                    rel=1e-2)
    assert 0 < lsts["key"]["fraction_of_peak"] and lsts["key"]["gflop_per_s"] > 0
    assert lsts["key"]["stages"]["preprocess"]["fraction_of_peak"] is None  # no counted FLOPs
    # A non-key LSTS frame skips the high-level backbone: fewer FLOPs than a key frame.
    assert lsts["nonkey"]["flops"] < lsts["key"]["flops"]
    assert res["single_frame"]["amortised_gflops"] > lsts["amortised_gflops"]
    assert set(res["flow_warp"]["nonkey"]["stages"]) == {"preprocess", "flow", "warp", "head"}
    assert res["single_frame"]["speedup_vs_single_frame"] == 1.0
    with pytest.raises(ValueError, match="unknown variant"):
        bench("smoke", "cpu", ("preset",), ["nope"], repeats=1, progress=False)


def test_detect_on_the_train_split_keeps_every_frame(
    lsts_model: Path, data_root: Path, tmp_path: Path
) -> None:
    """Every train video starts at frame 0: detections are keyed on unique frame ids."""
    timing = detect(lsts_model, data_root, tmp_path / "d", split="train", max_videos=2,
                    progress=False)
    ds = VIDDataset(data_root, "train", max_videos=2)
    lengths = [len(v.frames) for v in ds.videos]
    ids = read_vid_detections(tmp_path / "d" / "detections.txt", ds.classes.num_classes,
                              frame_ids(ds.videos)).frame_ids
    assert timing["frames"] == sum(lengths) == len(frame_ids(ds.videos))
    # Frames of the second video carry ids after those of the first.
    assert ids.max() > lengths[0] and len(set(frame_ids(ds.videos))) == sum(lengths)


def test_detect_refuses_images_of_another_size(
    lsts_model: Path, data_root: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from lsts_lib.data.vid import DatasetError

    data = tmp_path / "data"
    shutil.copytree(data_root, data)
    ds = VIDDataset(data, "val", max_videos=1)
    img = ds.frame(0, 2).image
    with Image.open(img) as im:
        im.resize((2 * im.width, 2 * im.height)).save(img, format="JPEG")
    with pytest.raises(DatasetError, match=f"image {img} is .* but its annotation says"):
        detect(lsts_model, data, tmp_path / "d", max_videos=1, progress=False)
    assert not (tmp_path / "d" / "detections.txt").exists()


@pytest.mark.parametrize(("device", "why"), [("cuda", "no CUDA device"), ("gpu", "not a device")])
def test_detect_device_this_machine_lacks_is_one_line(
    lsts_model: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture, device: str, why: str
) -> None:
    from lsts_lib.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "d"
    args = ["detect", "--checkpoint", str(lsts_model), "--data", str(data_root), "--out",
            str(out), "--device", device]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--device {device}: {why}" in err
    assert not out.exists()


def test_cpu_flags_read_proc_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lsts_lib.engine import env

    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some Xeon\nflags\t\t: fpu sse4_2 avx2 fma avx512f amx_bf16 "
                    "amx_tile\n")
    real = Path

    def fake_path(p: str | Path) -> Path:
        return info if str(p) == "/proc/cpuinfo" else real(p)

    monkeypatch.setattr(env, "Path", fake_path)
    assert env.cpu_flags() == ["sse4_2", "avx2", "fma", "avx512f", "amx_tile", "amx_bf16"]
    assert env.cpu_model() == "Some Xeon"
    monkeypatch.setattr(env, "Path", lambda p: tmp_path / "absent")
    assert env.cpu_flags() is None  # no /proc/cpuinfo (macOS, Windows): not recorded


def test_detect_with_speed_options_matches_the_default(
    lsts_model: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture
) -> None:
    """Issue 10: --channels-last and --fold-bn give the default's detections (float
    tolerance); the options are in timing.json and in the reuse stamp; --amp on a CPU without
    native bf16 is refused in one line before anything is written."""
    from lsts_lib.cli import main
    from lsts_lib.engine import inference
    from lsts_lib.engine.inference import InferenceOptions

    ds = VIDDataset(data_root, "val", max_videos=2)
    ids = frame_ids(ds.videos)
    n = ds.classes.num_classes
    ref = detect(lsts_model, data_root, tmp_path / "ref", max_videos=2, progress=False)
    options = InferenceOptions(channels_last=True, fold_bn=True)
    fast = detect(lsts_model, data_root, tmp_path / "fast", max_videos=2, progress=False,
                  options=options)
    assert "options" not in ref["settings"] and ref["options"]["name"] == "fp32_nchw"
    assert fast["settings"]["options"] == fast["options"]["name"] == "channels_last+fold_bn"
    # The smoke model has GroupNorm: nothing to fold, and the note says why.
    assert "cannot be folded" in fast["option_notes"]["fold_bn"]
    a = read_vid_detections(tmp_path / "ref" / "detections.txt", n, ids)
    b = read_vid_detections(tmp_path / "fast" / "detections.txt", n, ids)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.frame_ids, b.frame_ids)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b.boxes, a.boxes, rtol=1e-3, atol=1e-2)
    # Other options than the finished run's: not reused.
    detect(lsts_model, data_root, tmp_path / "fast", max_videos=2, progress=False)
    assert "reused" not in capsys.readouterr().out
    monkeypatch.setattr(inference, "native_amp", lambda device, amp: False)
    out = tmp_path / "amp"
    assert main(["detect", "--checkpoint", str(lsts_model), "--data", str(data_root),
                 "--out", str(out), "--amp"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--amp bf16: this CPU" in err and not out.exists()


def test_bench_stamp_inputs_follow_the_bench_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new benchmark code version makes `lsts report` remeasure instead of reusing."""
    from lsts_lib.engine import bench as bench_mod

    before = bench_mod.bench_inputs("smoke", ["preset"])
    monkeypatch.setattr(bench_mod, "BENCH_CODE_VERSION", bench_mod.BENCH_CODE_VERSION + 1)
    after = bench_mod.bench_inputs("smoke", ["preset"])
    assert before != after and before["models"] == after["models"]
