"""The video detector: every variant trains and detects; key-frame schedules; bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lsts_lib.models import (
    VARIANTS,
    Low2High,
    ModelConfig,
    QualityNet,
    build_detector,
    key_frame_indices,
    tiny_config,
    warp,
)
from lsts_lib.models.variants import check_entry, get_variant

H, W = 64, 112
K = 3  # key interval of the detection tests


def small_cfg(variant: str, **kw) -> ModelConfig:
    return VARIANTS[variant].configure(tiny_config(min_size=64, max_size=112)).replace(**kw)


def make(variant: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_detector(small_cfg(variant, **kw))


def frames_(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, H, W, generator=g) for _ in range(n)]


TARGET = {"boxes": torch.tensor([[10.0, 8.0, 50.0, 40.0], [60.0, 20.0, 100.0, 60.0]]),
          "labels": torch.tensor([1, 3])}


# ------------------------------------------------------------------ config
def test_config_roundtrip_and_unknown_keys():
    cfg = small_cfg("lsts", offsets_init="gaussian")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"\['bogus', 'kye_interval'\]"):
        ModelConfig.from_dict({"variant": "lsts", "kye_interval": 5, "bogus": 1})
    with pytest.raises(ValueError, match="unknown model variant 'fgfa'"):
        ModelConfig(variant="fgfa")
    # A run of another architecture is chosen by name in the catalogue, not as a model.
    with pytest.raises(ValueError, match="lsts_gaussian"):
        ModelConfig(variant="lsts_gaussian")


@pytest.mark.parametrize("flag,value", [("nonkey", "copy"), ("srfu", False),
                                        ("dfa_fusion", False), ("learnable_offsets", False)])
def test_a_run_of_a_base_architecture_keeps_its_flags(flag, value, monkeypatch):
    # The detector builds an entry with `base` as the base: a flag of its own would be ignored.
    bad = dataclasses.replace(VARIANTS["lsts_gaussian"], name="lsts_bad", **{flag: value})
    with pytest.raises(ValueError, match=rf"'lsts_bad'.*base 'lsts'.*{flag}={value!r}"):
        check_entry(bad, VARIANTS)
    monkeypatch.setitem(VARIANTS, "lsts_bad", bad)  # added after import: checked when used
    with pytest.raises(ValueError, match=rf"'lsts_bad'.*{flag}"):
        get_variant("lsts_bad")
    with pytest.raises(ValueError, match="is not an architecture"):
        check_entry(dataclasses.replace(VARIANTS["lsts"], name="x", base="lsts_gaussian"),
                    VARIANTS)
    for v in VARIANTS.values():
        if v.name != "lsts_bad":
            check_entry(v, VARIANTS)  # the catalogue itself passes


# ------------------------------------------------------------------ each variant
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_trains_and_detects(variant):
    det = make(variant).train()
    losses = det(frames_(3), TARGET)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_box", "loss_rfcn_cls", "loss_rfcn_box",
                           "loss"}
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    spec = VARIANTS[variant]
    if spec.uses_lsts:
        p = det.offsets.p
        if variant == "lsts_fixed":
            assert not p.requires_grad and p.grad is None and det.offset_parameters() == []
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
            assert det.offset_parameters() == [p]
    else:
        assert det.offsets is None and det.srfu is None and det.dfa is None
    assert (det.flownet is not None) == (spec.nonkey == "flow")
    assert (det.srfu is not None) == spec.srfu
    assert (det.dfa is not None and det.dfa.quality is not None) == spec.dfa_fusion
    # the temporal modules get a gradient from the current frame's loss
    if det.flownet is not None:
        assert det.flownet.predict.weight.grad.abs().sum() > 0
    if spec.dfa_fusion:
        assert det.dfa.quality.score[0].weight.grad.abs().sum() > 0
    if spec.srfu:
        assert det.srfu.align.f.weight.grad.abs().sum() > 0

    video = frames_(4, seed=1)
    for mode in ("offline", "online"):
        out = det.detect_video(video, mode=mode, key_interval=K)
        assert len(out) == 4
        for d in out:
            assert set(d) == {"boxes", "scores", "labels"}
            b = d["boxes"]
            assert b.shape[1] == 4 and len(b) == len(d["scores"]) == len(d["labels"])
            assert (b[:, 2] <= W + 1e-3).all() and (b[:, 3] <= H + 1e-3).all()  # original pixels
    assert det.training  # detect_video restores the mode


def test_still_image_trains_any_variant():
    det = make("lsts").train()
    losses = det(frames_(1), TARGET)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"])
    assert det.offsets.p.grad is None  # no temporal path for a still image


# ------------------------------------------------------------------ key-frame schedules
def test_key_frame_indices():
    assert key_frame_indices(25, 10, "offline") == [4, 14, 24]
    assert key_frame_indices(23, 10, "offline") == [4, 14, 22]
    assert key_frame_indices(25, 10, "online") == [0, 10, 20]
    assert key_frame_indices(5, 1, "offline") == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        key_frame_indices(5, 0)


def _spy(det, monkeypatch):
    calls = {"key": [], "nonkey": 0}
    key_step, nonkey_step = det.key_step, det.nonkey_step

    def spy_key(x, state=None, **kw):
        calls["key"].append(x.clone())
        return key_step(x, state, **kw)

    def spy_nonkey(x, state):
        calls["nonkey"] += 1
        return nonkey_step(x, state)

    monkeypatch.setattr(det, "key_step", spy_key)
    monkeypatch.setattr(det, "nonkey_step", spy_nonkey)
    return calls


@pytest.mark.parametrize("mode,expected", [("offline", [1, 4, 6]), ("online", [0, 3, 6])])
def test_key_frames_computed(mode, expected, monkeypatch):
    det = make("lsts").eval()
    video = frames_(7, seed=2)
    calls = _spy(det, monkeypatch)
    out = det.detect_video(iter(video), mode=mode, key_interval=3)  # any iterable works
    assert len(out) == 7
    pre = [det.preprocess([f])[0] for f in video]
    got = [next(i for i, p in enumerate(pre) if torch.equal(p, x)) for x in calls["key"]]
    assert got == expected
    assert calls["nonkey"] == 7 - len(expected)


def test_single_frame_every_frame_is_key(monkeypatch):
    det = make("single_frame").eval()
    calls = _spy(det, monkeypatch)
    det.detect_video(frames_(4), mode="offline", key_interval=3)
    assert len(calls["key"]) == 4 and calls["nonkey"] == 0


def test_streaming_equals_online():
    det = make("lsts").eval()
    video = frames_(5, seed=3)
    online = det.detect_video(video, mode="online", key_interval=2)
    session = det.stream(key_interval=2)
    streamed = [session.push(f) for f in video]
    for a, b in zip(online, streamed, strict=True):
        for k in ("boxes", "scores", "labels"):
            assert torch.equal(a[k], b[k])
    session.reset()
    assert session.index == 0 and session.state is None


def test_stream_must_start_with_key():
    det = make("lsts").eval()
    session = det.stream(3)
    with pytest.raises(ValueError, match="starts with a non-key frame"):
        session.push(frames_(1)[0], is_key=False)
    session.push(frames_(1)[0])
    session.reset()
    with pytest.raises(ValueError, match="starts with a non-key frame"):
        session.push(frames_(1)[0], is_key=False)


def test_srfu_memory_is_the_quality_fused_alignment():
    # SRFU: a key frame's memory is Q_key([LSTS(M -> F_k), F_k]), computed here by hand.
    det = make("lsts", seed=5).eval()
    x1, x2 = (det.preprocess([f])[0] for f in frames_(2, seed=4))
    with torch.no_grad():
        _, state = det.key_step(x1)
        memory, _ = det.key_step(x2, state)
        high = det.extract_high(det.extract_low(x2))
        aligned = det.srfu.align(state.memory, high)
        w = det.srfu.quality.weights([aligned, high])
    assert torch.allclose(memory, w[:, :1] * aligned + w[:, 1:] * high, atol=1e-5)
    # the old memory carries weight: the new memory is not the key's own feature
    assert (memory - high).abs().max() > 1e-3 * high.abs().max()


def test_no_srfu_has_no_key_to_key_alignment():
    det = make("lsts_no_srfu", seed=5).eval()
    assert det.srfu is None and det.dfa is not None
    x1, x2 = (det.preprocess([f])[0] for f in frames_(2, seed=4))
    with torch.no_grad():
        _, state = det.key_step(x1)
        memory, _ = det.key_step(x2, state)
        assert torch.equal(memory, det.extract_high(det.extract_low(x2)))


def test_no_dfa_is_the_aligned_memory_alone():
    det = make("lsts_no_dfa", seed=5).eval()
    assert det.dfa is not None and det.dfa.quality is None and det.srfu is not None
    x1, x2 = (det.preprocess([f])[0] for f in frames_(2, seed=4))
    with torch.no_grad():
        _, state = det.key_step(x1)
        feature = det.nonkey_step(x2, state)
        current = det.dfa.low2high(det.extract_low(x2))
        assert torch.equal(feature, det.dfa.align(state.memory, current))


def test_current_equal_new_key_uses_key_path(monkeypatch):
    det = make("lsts").train()
    old, new = frames_(2)
    calls = _spy(det, monkeypatch)
    det([old, new, new], TARGET)
    assert calls["nonkey"] == 0 and len(calls["key"]) == 2
    det([old, new, frames_(1, seed=9)[0]], TARGET)
    assert calls["nonkey"] == 1


# ------------------------------------------------------------------ bad input
def test_bad_frames():
    det = make("lsts").train()
    f = frames_(3)
    with pytest.raises(ValueError, match="frames differ in size"):
        det([f[0], f[1], torch.rand(3, H + 16, W)], TARGET)
    with pytest.raises(ValueError, match=r"must be a \(3, H, W\) tensor"):
        det([f[0], f[1], torch.rand(4, H, W)], TARGET)
    with pytest.raises(ValueError, match="expected 1 or 3 frames"):
        det(f[:2], TARGET)
    with pytest.raises(ValueError, match="uint8"):
        det([(f[0] * 255).to(torch.uint8)], TARGET)
    with pytest.raises(ValueError, match="target must be a dict"):
        det(f, {"boxes": TARGET["boxes"]})
    with pytest.raises(ValueError, match="frames differ in size"):
        det.detect_video([f[0], torch.rand(3, H, W + 32)], mode="online", key_interval=K)
    with pytest.raises(ValueError, match="mode must be"):
        det.detect_video(f, mode="sideways", key_interval=K)
    with pytest.raises(ValueError, match="key_interval must be >= 1"):
        det.detect_video(f, key_interval=0)


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_from_other_architecture():
    lsts = make("lsts")
    copy = make("copy_prop")
    with pytest.raises(ValueError, match=r"unexpected key\(s\): offsets\.p"):
        copy.load_checkpoint_state(lsts.state_dict())
    wide = make("lsts", feat_channels=96)
    with pytest.raises(ValueError, match="shape mismatch"):
        lsts.load_checkpoint_state(wide.state_dict())
    other = make("lsts", seed=3)
    assert lsts.load_checkpoint_state(other.state_dict()) == []
    assert torch.equal(lsts.offsets.p, other.offsets.p)


def test_init_from_single_frame():
    single = make("single_frame", seed=7)
    det = make("lsts", seed=8)
    before_q = det.dfa.quality.score[0].weight.clone()
    fresh = det.load_checkpoint_state(single.state_dict(), init_from_single_frame=True)
    assert "offsets.p" in fresh and not any(k.startswith(("backbone.", "head.")) for k in fresh)
    sd, ss = det.state_dict(), single.state_dict()
    for k in ss:
        assert torch.equal(sd[k], ss[k]), k
    assert torch.equal(det.dfa.quality.score[0].weight, before_q)  # temporal modules fresh
    with pytest.raises(ValueError, match="missing key"):
        det.load_checkpoint_state({}, init_from_single_frame=True)
    r34 = make("single_frame", backbone="resnet34")
    with pytest.raises(ValueError, match="single-frame"):
        det.load_checkpoint_state(r34.state_dict(), init_from_single_frame=True)


# ------------------------------------------------------------------ determinism
def test_same_seed_same_outputs():
    a, b = make("lsts", seed=11), make("lsts", seed=11)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    f = frames_(3)
    # the RPN samples anchors with the global RNG: same seed before each step
    torch.manual_seed(0)
    la = a.train()(f, TARGET)
    torch.manual_seed(0)
    lb = b.train()(f, TARGET)
    assert all(torch.equal(la[k], lb[k]) for k in la)
    da = a.detect_video(f, mode="online", key_interval=K)
    db = b.detect_video(f, mode="online", key_interval=K)
    assert all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(da, db, strict=True))
    c = make("lsts", seed=12)
    assert not torch.equal(a.head.rfcn_cls.weight, c.head.rfcn_cls.weight)


# ------------------------------------------------------------------ fusion / warp pieces
def test_quality_net_weights_and_fixed_ratio():
    torch.manual_seed(0)
    q = QualityNet(8, hidden=8, mid=4)
    a, b = torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6)
    w = q.weights([a, b])
    assert w.shape == (2, 2, 5, 6) and torch.allclose(w.sum(1), torch.ones(2, 5, 6))
    fused = q([a, b])
    assert torch.allclose(fused, w[:, :1] * a + w[:, 1:] * b)
    assert torch.allclose(q([a, a]), a, atol=1e-6)
    with pytest.raises(ValueError, match="candidate 1"):
        q([a, b[:, :, :4]])
    det = make("lsts", memory_update_ratio=1.0)
    assert det.srfu.quality is None
    m, n = torch.randn(1, 64, 4, 7), torch.randn(1, 64, 4, 7)
    assert torch.equal(det.srfu.fuse(m, n), m)
    assert Low2High(16, 64, 8)(torch.randn(1, 16, 6, 10)).shape == (1, 64, 6, 10)


def test_quality_net_is_linear_and_low2high_official_init():
    # Official symbol: 1x1 -> 3x3 -> 3x3 with no activation, so the scorer is affine in its
    # input (a ReLU anywhere would break score(a + b) = score(a) + score(b) - score(0)).
    torch.manual_seed(0)
    q = QualityNet(8, hidden=16, mid=4)
    assert [type(m) for m in q.score] == [torch.nn.Conv2d] * 3
    assert [m.out_channels for m in q.score] == [16, 4, 1]
    a, b = torch.randn(1, 8, 5, 6), torch.randn(1, 8, 5, 6)
    with torch.no_grad():
        zero = q.score(torch.zeros_like(a))
        assert torch.allclose(q.score(a + b), q.score(a) + q.score(b) - zero, atol=1e-6)
    # low2high: N(0, 0.01) weights and zero biases (official), not Kaiming.
    torch.manual_seed(0)
    l2h = Low2High(256, 256, 256)
    convs = [m for m in l2h.net if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        assert len(convs) == 3 and all(float(c.bias.abs().max()) == 0 for c in convs)
        assert all(abs(float(c.weight.std()) - 0.01) < 1e-3 for c in convs)


def test_warp_identity_and_integer_shift():
    feat = torch.randn(1, 3, 5, 7)
    zero = torch.zeros(1, 2, 5, 7)
    assert torch.allclose(warp(feat, zero), feat, atol=1e-6)
    flow = zero.clone()
    flow[:, 0] = 1.0  # dx = +1: out(x) = in(x + 1), zero beyond the right edge
    out = warp(feat, flow)
    assert torch.allclose(out[..., :-1], feat[..., 1:], atol=1e-6)
    assert torch.allclose(out[..., -1], torch.zeros(1, 3, 5), atol=1e-6)
    flow[:, 0], flow[:, 1] = 0.0, 0.5  # half a cell down: the mean of two rows
    out = warp(feat, flow)
    assert torch.allclose(out[:, :, :-1], 0.5 * (feat[:, :, :-1] + feat[:, :, 1:]), atol=1e-6)
    with pytest.raises(ValueError, match="flow must be"):
        warp(feat, torch.zeros(1, 2, 4, 7))


def test_flow_warp_starts_as_copy_prop():
    # zero-initialised flow head: before training the DFF baseline equals copy-propagation
    fw, cp = make("flow_warp", seed=4), make("copy_prop", seed=4)
    cp.load_checkpoint_state(fw.state_dict(), init_from_single_frame=True)
    f = frames_(3)
    torch.manual_seed(0)
    lf = fw.train()(f, TARGET)
    torch.manual_seed(0)
    lc = cp.train()(f, TARGET)
    assert torch.allclose(lf["loss"], lc["loss"], atol=1e-5)
