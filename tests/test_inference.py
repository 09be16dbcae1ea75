"""Issue 10: the speed options of `lsts bench` and `lsts detect` (engine.inference) run, give
the detections of the default float32 NCHW model, and refuse what the machine cannot do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

from lsts_lib.engine import bench as bench_mod
from lsts_lib.engine import inference, measure
from lsts_lib.engine.bench import SPEEDUP, bench
from lsts_lib.engine.config import RunConfig, load_config
from lsts_lib.engine.inference import InferenceOptions, check_options, prepare
from lsts_lib.models.detector import build_detector

CPU = torch.device("cpu")


def smoke_config(**model: object) -> dict:
    cfg = load_config("smoke")
    cfg["model"].update(model)
    return cfg


def frozen_bn_detector(variant: str = "lsts"):
    """The smoke detector with the paper's frozen BN, its statistics away from identity."""
    cfg = RunConfig.from_dict(smoke_config(freeze_bn=True)).model
    torch.manual_seed(0)
    model = build_detector(cfg.with_classes(3).replace(variant=variant)).eval()
    for bn in model.modules():
        if isinstance(bn, FrozenBatchNorm2d):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.2)
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return model


def test_option_names_and_modes() -> None:
    assert InferenceOptions().name == inference.DEFAULT_MODE and InferenceOptions().is_default
    assert InferenceOptions().modes() == []
    both = InferenceOptions(channels_last=True, amp="bf16")
    assert both.name == "channels_last+amp_bf16"
    assert [m.name for m in both.modes()] == ["channels_last", "amp_bf16",
                                              "channels_last+amp_bf16"]
    assert [m.name for m in InferenceOptions(fold_bn=True).modes()] == ["fold_bn"]
    with pytest.raises(ValueError, match="--amp fp8"):
        InferenceOptions(amp="fp8")


def test_impossible_options_are_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "native_amp", lambda device, amp: False)
    with pytest.raises(ValueError, match="--amp bf16: this CPU .* no native bf16 kernels"):
        check_options(InferenceOptions(amp="bf16"), CPU)
    # Refused before anything is built or measured.
    with pytest.raises(ValueError, match="--amp fp16"):
        bench(smoke_config(), "cpu", ("preset",), ["single_frame"], repeats=1, progress=False,
              options=InferenceOptions(amp="fp16"))
    monkeypatch.setattr(inference.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="--compile on CPU needs a C\\+\\+ compiler"):
        check_options(InferenceOptions(compile=True), CPU)
    check_options(InferenceOptions(compile=True, compile_backend="eager"), CPU)
    check_options(InferenceOptions(channels_last=True, fold_bn=True), CPU)


def test_native_amp_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True,
                        raising=False)
    assert inference.native_amp(CPU, "bf16")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert not inference.native_amp(CPU, "bf16")


@pytest.mark.parametrize("options", [
    InferenceOptions(channels_last=True), InferenceOptions(fold_bn=True),
    InferenceOptions(channels_last=True, fold_bn=True, compile=True, compile_backend="eager")],
    ids=lambda o: o.name)
def test_options_give_the_default_features_and_detections(options: InferenceOptions) -> None:
    model = frozen_bn_detector()
    fast, notes = prepare(frozen_bn_detector(), options)
    frames = [torch.rand(3, 96, 160, generator=torch.Generator().manual_seed(i))
              for i in range(5)]
    with torch.no_grad():
        x, _, _ = model.preprocess(frames[:1])
        xf, _, _ = fast.preprocess(frames[:1])
        low, low_f = model.extract_low(x), fast.extract_low(xf)
        torch.testing.assert_close(low_f, low, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fast.extract_high(low_f), model.extract_high(low),
                                   rtol=1e-4, atol=1e-4)
    if options.channels_last:
        assert xf.is_contiguous(memory_format=torch.channels_last)
        assert low_f.is_contiguous(memory_format=torch.channels_last)
    if options.fold_bn:
        assert notes["fold_bn"].startswith(f"{sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules())} BatchNorm")
        assert not any(isinstance(m, FrozenBatchNorm2d) for m in fast.modules())
    ref = model.detect_video(frames, key_interval=3)
    got = fast.detect_video(frames, key_interval=3)
    for r, g in zip(ref, got, strict=True):
        assert len(r["scores"]) == len(g["scores"]) > 0
        torch.testing.assert_close(g["scores"], r["scores"], rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(g["boxes"], r["boxes"], rtol=1e-3, atol=1e-2)
        assert torch.equal(g["labels"], r["labels"])


def test_amp_runs_where_the_cpu_has_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bf16 path end to end (emulated here when the CPU lacks it: slow, but it runs);
    detections come back, their scores close to float32's."""
    monkeypatch.setattr(inference, "native_amp", lambda device, amp: True)
    options = InferenceOptions(amp="bf16")
    check_options(options, CPU)
    model = frozen_bn_detector("single_frame")
    frames = [torch.rand(3, 96, 160, generator=torch.Generator().manual_seed(0))]
    ref = model.detect_video(frames, key_interval=1)[0]
    with options.autocast(CPU):
        got = model.detect_video(frames, key_interval=1)[0]
    assert len(got["scores"]) > 0
    assert abs(got["scores"].float().max() - ref["scores"].max()) < 0.05


def test_bench_times_each_mode_beside_the_default(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    # A tiny peak (the real one is seconds per precision; bf16 is emulated on most CPUs).
    monkeypatch.setattr(bench_mod, "machine_peak", lambda device, shapes, dtype=torch.float32:
                        measure.machine_peak(device, {"tiny": (8, 8, 8, 1)}, dtype, gemm_n=64))
    monkeypatch.setattr(inference, "native_amp", lambda device, amp: True)
    # One mode (two would double the time: bf16 is emulated on most CPUs); which modes an
    # option set makes is tested above.
    options = InferenceOptions(amp="bf16")
    rep = bench(smoke_config(freeze_bn=True), "cpu", ("preset",), ["lsts"], repeats=1,
                json_out=tmp_path / "b.json", progress=False, options=options)
    assert json.loads((tmp_path / "b.json").read_text())["modes"].keys() == rep["modes"].keys()
    assert set(rep["machine_peak"]) == {"fp32", "bf16"}
    assert rep["machine_peak"]["bf16"]["dtype"] == "bfloat16"
    names = ["amp_bf16"]
    assert list(rep["modes"]) == names
    default = rep["results"]["preset"]
    for name in names:
        entry = rep["modes"][name]
        assert entry["options"]["name"] == name
        assert entry["peak"] == ("bf16" if "amp" in name else "fp32")
        res = entry["results"]["preset"]
        assert set(res) == {"lsts"}
        for variant, r in res.items():
            base = default[variant]
            assert r[SPEEDUP] == pytest.approx(base["amortised_ms"] / r["amortised_ms"],
                                               rel=1e-2)
            assert r["nonkey"][SPEEDUP] > 0 and r["key"]["fraction_of_peak"] > 0
            assert r["key"]["flops"] == pytest.approx(base["key"]["flops"], rel=1e-6)
            assert r["peak_mb"] > 0
    notes = rep["modes"]["amp_bf16"]["results"]["preset"]["lsts"]["notes"]
    assert notes == {"amp": "autocast torch.bfloat16"}
    lines = bench_mod.summary_lines(rep)
    assert any(line.startswith(f"{options.name} at preset") for line in lines)
    # Under --compile: timed warm, peak memory not measured (compiled kernels allocate
    # outside the tracker).
    model_cfg, hw = bench_mod.size_model(RunConfig.from_dict(smoke_config()), "preset")
    compiled = bench_mod.bench_size(
        model_cfg, ["single_frame"], hw, 4, 1, CPU, progress=False,
        options=InferenceOptions(compile=True, compile_backend="eager"))["single_frame"]
    assert compiled["peak_mb"] is None and compiled["key"]["ms"] > 0
    assert "backbone.low" in compiled["notes"]["compile"]
