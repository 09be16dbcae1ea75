"""LSTS sampler: initialisations, sampling equivalences, naive == efficient, gradients, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from lsts_lib.models.lsts import (
    LSTSAlign,
    LSTSOffsets,
    bilinear_sample,
    fit_toy_shift,
    grid_sample_offsets,
    lsts_aggregate,
    lsts_aggregate_naive,
    shifted_pair,
    uniform_offsets,
)

D64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=D64)


def _offsets_away_from_kinks(n: int, span: float, seed: int) -> torch.Tensor:
    """Offsets whose fractional parts lie in [0.15, 0.85]: G is smooth there (gradcheck)."""
    g = torch.Generator().manual_seed(seed)
    whole = torch.randint(-int(span), int(span), (n, 2), generator=g).to(D64)
    return whole + 0.15 + 0.7 * torch.rand(n, 2, generator=g, dtype=D64)


# --------------------------------------------------------------------------- init


def test_uniform_init_is_the_81_point_integer_grid_in_raster_order():
    off = LSTSOffsets()
    assert off.N == 81 and off.p.shape == (81, 2) and off.p.requires_grad
    expected = {(dx, dy) for dx in range(-4, 5) for dy in range(-4, 5)}
    assert {tuple(int(v) for v in row) for row in off.p.detach()} == expected
    assert torch.equal(off.p.detach(), off.p.detach().round())
    # (dx, dy) order, dy slow: row 1 moves in x, row 9 moves in y.
    assert off.p[0].tolist() == [-4.0, -4.0]
    assert off.p[1].tolist() == [-3.0, -4.0]
    assert off.p[9].tolist() == [-4.0, -3.0]
    assert uniform_offsets(3, 1.5).tolist()[:3] == [[-1.5, -1.5], [0.0, -1.5], [1.5, -1.5]]


def test_gaussian_init_is_reproducible_with_a_generator():
    a = LSTSOffsets("gaussian", generator=torch.Generator().manual_seed(7))
    b = LSTSOffsets("gaussian", generator=torch.Generator().manual_seed(7))
    c = LSTSOffsets("gaussian", generator=torch.Generator().manual_seed(8))
    assert a.N == 40 and a.p.shape == (40, 2)
    assert torch.equal(a.p, b.p)
    assert not torch.equal(a.p, c.p)
    assert torch.equal(a.p.detach(), torch.randn(40, 2, generator=torch.Generator().manual_seed(7)))


def test_offsets_are_one_parameter_shared_by_both_alignments():
    off = LSTSOffsets("gaussian", num_points=5, generator=torch.Generator().manual_seed(0))
    key2key, key2cur = LSTSAlign(off, 4, 3), LSTSAlign(off, 4, 3)
    assert key2key.offsets.p is key2cur.offsets.p
    both = torch.nn.ModuleDict({"k2k": key2key, "k2c": key2cur})
    names = [n for n, _ in both.named_parameters() if n.endswith("offsets.p")]
    assert len(names) == 1  # deduplicated: the optimizer sees it once
    x = _rand(1, 4, 6, 6).float()
    (key2key(x, x).sum() + key2cur(x, x).sum()).backward()
    grad_both = off.p.grad.clone()
    off.p.grad = None
    key2key(x, x).sum().backward()
    assert not torch.allclose(grad_both, off.p.grad)  # the second alignment adds to it


def test_frozen_offsets_get_no_gradient_but_stay_in_the_state_dict():
    off = LSTSOffsets(grid_size=3, grid_range=1.0, learnable=False)
    align = LSTSAlign(off, 4, 3)
    x = _rand(1, 4, 5, 5).float()
    align(x, x).sum().backward()
    assert off.p.grad is None and not off.learnable
    assert "offsets.p" in align.state_dict()
    assert align.f.weight.grad is not None


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_sample_equals_grid_sample(align_corners):
    Fm = _rand(2, 3, 5, 7)
    # Inside, across the border, and fully outside the map.
    p = torch.tensor([[0.3, -0.6], [1.75, 2.5], [-3.2, 0.4], [7.5, 0.0], [0.0, -5.5]], dtype=D64)
    ours = bilinear_sample(Fm, p)
    H, W = Fm.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=D64), torch.arange(W, dtype=D64), indexing="ij")
    for n in range(p.shape[0]):
        x, y = xs + p[n, 0], ys + p[n, 1]
        if align_corners:  # pixel i <-> -1 + 2 i / (size - 1)
            gx, gy = 2 * x / (W - 1) - 1, 2 * y / (H - 1) - 1
        else:  # pixel centre i <-> -1 + (2 i + 1) / size
            gx, gy = (2 * x + 1) / W - 1, (2 * y + 1) / H - 1
        grid = torch.stack([gx, gy], dim=-1).expand(2, H, W, 2)
        ref = F.grid_sample(Fm, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=align_corners)
        torch.testing.assert_close(ours[:, n], ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(grid_sample_offsets(Fm, p), ours, rtol=0, atol=1e-12)
    torch.testing.assert_close(bilinear_sample(Fm, p[1]), ours[:, 1])
    assert ours[:, 3].abs().max() == 0 and ours[:, 4].abs().max() == 0  # fully outside


def test_bilinear_sample_equals_deform_conv2d_with_dy_dx_order():
    Fm = _rand(1, 3, 6, 5)
    p = torch.tensor([0.7, -1.3], dtype=D64)  # (dx, dy)
    eye = torch.eye(3, dtype=D64).view(3, 3, 1, 1)  # 1x1 identity kernel
    H, W = Fm.shape[-2:]
    # deform_conv2d wants per-tap offsets ordered (dy, dx).
    off_yx = torch.stack([p[1].expand(H, W), p[0].expand(H, W)])[None]
    ref = deform_conv2d(Fm, off_yx, eye)
    torch.testing.assert_close(bilinear_sample(Fm, p), ref, rtol=0, atol=1e-12)
    off_xy = torch.stack([p[0].expand(H, W), p[1].expand(H, W)])[None]
    assert not torch.allclose(bilinear_sample(Fm, p), deform_conv2d(Fm, off_xy, eye))


def test_integer_offset_direction_and_zero_padding():
    Fm = torch.arange(12, dtype=D64).view(1, 1, 3, 4)
    out = bilinear_sample(Fm, torch.tensor([1.0, 0.0], dtype=D64))  # F'(p0) = F(p0 + (1, 0))
    assert out[0, 0].tolist() == [[1, 2, 3, 0], [5, 6, 7, 0], [9, 10, 11, 0]]
    half = bilinear_sample(Fm, torch.tensor([0.0, 0.5], dtype=D64))
    assert half[0, 0, 0].tolist() == [2, 3, 4, 5] and half[0, 0, 2].tolist() == [4, 4.5, 5, 5.5]


# --------------------------------------------------------------------------- naive == efficient

CASES = {
    # name: (B, C, E, H, W, offsets)
    "paper-grid": (1, 5, 3, 9, 16, uniform_offsets(9, 4.0).to(D64)),
    "gaussian-wide": (2, 4, 3, 7, 37, torch.randn(6, 2, generator=torch.Generator().manual_seed(3),
                                                  dtype=D64) * 2),
    "all-positive": (1, 3, 2, 6, 18, torch.tensor([[1.2, 0.4], [2.9, 1.1], [0.5, 2.2]], dtype=D64)),
    "all-negative": (1, 3, 2, 5, 5, -torch.tensor([[1.2, 0.4], [3.9, 1.1], [0.5, 4.5]], dtype=D64)),
}


def _align_pair(C: int, E: int, p: torch.Tensor) -> tuple[LSTSAlign, LSTSAlign]:
    off = LSTSOffsets("gaussian", num_points=p.shape[0]).double()
    with torch.no_grad():
        off.p.copy_(p)
    torch.manual_seed(0)
    naive = LSTSAlign(off, C, E, impl="naive").double()
    for conv in (naive.f, naive.g):  # larger weights: a peaked softmax tests more
        torch.nn.init.normal_(conv.weight, std=0.5)
        torch.nn.init.normal_(conv.bias, std=0.1)
    eff = LSTSAlign(off, C, E, impl="efficient").double()
    eff.load_state_dict(naive.state_dict())
    return naive, eff


@pytest.mark.parametrize("case", sorted(CASES))
def test_naive_and_efficient_agree_in_forward_and_gradients(case):
    B, C, E, H, W, p = CASES[case]
    naive, eff = _align_pair(C, E, p)
    grads = []
    for module in (naive, eff):
        F_ref = _rand(B, C, H, W, seed=1).requires_grad_()
        F_tgt = _rand(B, C, H, W, seed=2).requires_grad_()
        out = module(F_ref, F_tgt)
        probe = _rand(*out.shape, seed=3)
        (out * probe).sum().backward()
        grads.append({"out": out.detach(), "S": module.weights(F_ref, F_tgt).detach(),
                      "F_ref": F_ref.grad, "F_target": F_tgt.grad,
                      "offsets": module.offsets.p.grad.clone(),
                      **{k: v.grad.clone() for k, v in module.named_parameters()
                         if k[0] in "fg"}})
        module.zero_grad()
    assert grads[0]["offsets"].abs().sum() > 0
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=1e-9, atol=1e-11,
                                   msg=f"{case}: {key} differs")
    S = grads[0]["S"]
    assert S.shape == (B, p.shape[0], H, W)
    torch.testing.assert_close(S.sum(dim=1), torch.ones(B, H, W, dtype=D64))


def test_naive_with_grid_sample_sampler_agrees():
    F_ref, e_ref, e_t = _rand(1, 4, 6, 7, seed=1), _rand(1, 3, 6, 7, seed=2), _rand(1, 3, 6, 7, seed=3)
    p = _offsets_away_from_kinks(5, 3, seed=4)
    a = lsts_aggregate_naive(F_ref, e_ref, e_t, p)
    b = lsts_aggregate_naive(F_ref, e_ref, e_t, p, sampler=grid_sample_offsets)
    c = lsts_aggregate(F_ref, e_ref, e_t, p)
    for x, y in ((a, b), (a, c)):
        torch.testing.assert_close(x[0], y[0])
        torch.testing.assert_close(x[1], y[1])


def test_zero_offset_alone_returns_the_reference():
    off = LSTSOffsets(grid_size=1)
    x, y = _rand(1, 4, 5, 6).float(), _rand(1, 4, 5, 6, seed=1).float()
    for impl in ("naive", "efficient"):
        torch.testing.assert_close(LSTSAlign(off, 4, 2, impl=impl)(x, y), x)


# --------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("aggregate", [lsts_aggregate, lsts_aggregate_naive])
def test_gradcheck_wrt_offsets_features_and_embeddings(aggregate):
    F_ref = _rand(1, 2, 4, 5, seed=1).requires_grad_()
    e_ref = _rand(1, 2, 4, 5, seed=2).requires_grad_()
    e_t = _rand(1, 2, 4, 5, seed=3).requires_grad_()
    p = _offsets_away_from_kinks(3, 2, seed=5).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: aggregate(*a)[0], (F_ref, e_ref, e_t, p))


def test_gradcheck_bilinear_sample():
    F_ref = _rand(1, 2, 4, 5, seed=6).requires_grad_()
    p = _offsets_away_from_kinks(3, 2, seed=9).requires_grad_()
    assert torch.autograd.gradcheck(bilinear_sample, (F_ref, p))


# --------------------------------------------------------------------------- learning


def test_toy_offsets_move_toward_a_known_shift():
    shift = torch.tensor([2.0, -1.0], dtype=D64)
    F_ref, F_tgt = shifted_pair((2, -1), channels=4, size=(10, 10), seed=0)
    off = LSTSOffsets("gaussian", num_points=6, generator=torch.Generator().manual_seed(0)).double()
    torch.manual_seed(0)
    align = LSTSAlign(off, 4, 4).double()
    hist = fit_toy_shift(align, F_ref, F_tgt, steps=25, lr=0.05)
    dist = (hist["offsets"] - shift).norm(dim=2)                     # (steps+1, N)
    mass_near = (hist["mean_S"] * (dist < 0.5)).sum(dim=1)          # S mass within 0.5 cell
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    assert dist.min(dim=1).values[-1] < 0.5 < dist.min(dim=1).values[0]
    assert mass_near[-1] > 0.3 and mass_near[0] == 0
    torch.manual_seed(0)
    again = fit_toy_shift(LSTSAlign(LSTSOffsets("gaussian", num_points=6,
                                                generator=torch.Generator().manual_seed(0)).double(),
                                    4, 4).double(), F_ref, F_tgt, steps=2, lr=0.05)
    assert again["offsets"].shape == (3, 6, 2)
    torch.testing.assert_close(again["offsets"], hist["offsets"][:3], rtol=0, atol=0)


# --------------------------------------------------------------------------- bad input


def _tiny_align(**kw) -> LSTSAlign:
    return LSTSAlign(LSTSOffsets(**kw), in_channels=4, embed_channels=2)


@pytest.mark.parametrize("impl", ["naive", "efficient"])
def test_bad_shapes_raise_clear_errors(impl):
    align = LSTSAlign(LSTSOffsets(grid_size=3, grid_range=1.0), 4, 2, impl=impl)
    x = torch.zeros(1, 4, 6, 6)
    with pytest.raises(ValueError, match=r"F_ref must be \(B, C, H, W\)"):
        align(torch.zeros(4, 6, 6), x)
    with pytest.raises(ValueError, match="F_target has 3 channels, expected 4"):
        align(x, torch.zeros(1, 3, 6, 6))
    with pytest.raises(ValueError, match="must have the same shape"):
        align(x, torch.zeros(1, 4, 6, 7))
    with pytest.raises(ValueError, match="must be floating point"):
        align(x.long(), x.long())


def test_map_smaller_than_offset_range_raises():
    align = _tiny_align()  # +-4 grid
    with pytest.raises(ValueError, match=r"feature map 4x16 \(HxW\) is smaller than the offset"):
        align(torch.zeros(1, 4, 4, 16), torch.zeros(1, 4, 4, 16))
    with pytest.raises(ValueError, match="smaller than the offset range"):
        align.weights(torch.zeros(1, 4, 9, 3), torch.zeros(1, 4, 9, 3))
    out = align(torch.zeros(1, 4, 9, 16), torch.zeros(1, 4, 9, 16))  # smoke-sized maps pass
    assert out.shape == (1, 4, 9, 16)
    with torch.no_grad():
        align.offsets.p[0] = torch.tensor([-4.3, 0.2])  # drifted a little: still fine
    assert align(torch.zeros(1, 4, 9, 16), torch.zeros(1, 4, 9, 16)).shape == (1, 4, 9, 16)
    with pytest.raises(ValueError, match="smaller than the offset range"):
        lsts_aggregate(torch.zeros(1, 4, 3, 3), torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3),
                       torch.tensor([[0.5, 3.0]]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_offsets_raise(bad):
    align = _tiny_align(grid_size=3, grid_range=1.0)
    with torch.no_grad():
        align.offsets.p[4, 1] = bad
    with pytest.raises(ValueError, match=r"LSTS offsets contain NaN/inf at rows \[4\]"):
        align(torch.zeros(1, 4, 6, 6), torch.zeros(1, 4, 6, 6))
    with pytest.raises(ValueError, match="NaN/inf"):
        bilinear_sample(torch.zeros(1, 1, 3, 3), torch.tensor([[0.0, bad]]))


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="init must be 'uniform' or 'gaussian'"):
        LSTSOffsets("random")
    with pytest.raises(ValueError, match="grid_size must be >= 1"):
        LSTSOffsets(grid_size=0)
    with pytest.raises(ValueError, match="num_points must be >= 1"):
        LSTSOffsets("gaussian", num_points=0)
    with pytest.raises(ValueError, match="impl must be one of"):
        LSTSAlign(LSTSOffsets(), 4, impl="fast")
    with pytest.raises(ValueError, match=r"offsets must have shape \(N, 2\)"):
        bilinear_sample(torch.zeros(1, 1, 3, 3), torch.zeros(4, 3))
