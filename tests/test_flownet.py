"""The flow_warp baseline's FlowNet (models.flownet.FlowNetSmall): shapes, the identity warp at
initialisation, its cost volume and soft-argmax."""

from __future__ import annotations

import pytest
import torch

from lsts_lib.models.flownet import FlowNetSmall, correlation, warp

WIDTHS = (8, 16, 16, 16)


@pytest.mark.parametrize(("hw", "cells"), [((96, 160), (6, 10)), ((100, 150), (7, 10))])
def test_flow_is_one_vector_per_stride_16_cell(hw: tuple[int, int], cells: tuple[int, int]
                                               ) -> None:
    torch.manual_seed(0)
    net = FlowNetSmall(WIDTHS, identity_init=False)
    x, y = torch.randn(2, 3, *hw), torch.randn(2, 3, *hw)
    assert net(x, y).shape == (2, 2, *cells)
    # Another map size (the backbone may round differently) is resampled to.
    assert net(x, y, (cells[0] + 1, cells[1] - 1)).shape == (2, 2, cells[0] + 1, cells[1] - 1)
    flow, logits = net.flow_and_logits(x, y)
    assert flow.shape == (2, 2, *cells)
    assert logits.shape == (2, (2 * net.max_displacement + 1) ** 2, -(-hw[0] // 8), -(-hw[1] // 8))
    with pytest.raises(ValueError, match="differ in shape"):
        net(x, y[..., :-16])
    with pytest.raises(ValueError, match="4 widths"):
        FlowNetSmall((8, 16, 16))


def test_an_untrained_flownet_is_the_identity_warp() -> None:
    torch.manual_seed(0)
    net = FlowNetSmall(WIDTHS)
    x, y = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    flow = net(x, y)
    assert torch.equal(flow, torch.zeros_like(flow))
    feature = torch.randn(2, 5, *flow.shape[-2:])
    assert torch.allclose(warp(feature, flow), feature, atol=1e-6)
    # ... which training can leave: the match and the predictor both get a gradient.
    flow.sum().backward()
    assert net.match_gain.grad.abs() > 0 and net.predict.weight.grad.abs().sum() > 0
    # The pretraining's build matches from the start.
    moving = FlowNetSmall(WIDTHS, identity_init=False)
    assert moving(x, y).abs().sum() > 0


def test_the_cost_volume_peaks_at_the_true_displacement() -> None:
    torch.manual_seed(0)
    a = torch.randn(1, 32, 10, 12)
    d, (dx, dy) = 3, (2, -1)
    # b(p + delta) = a(p) for delta = (dx, dy).
    b = torch.roll(a, shifts=(dy, dx), dims=(2, 3))
    cost = correlation(a, b, d)
    k = 2 * d + 1
    assert cost.shape == (1, k * k, 10, 12)
    inner = cost[..., 2:-2, 3:-3]  # away from the wrap-around of the roll
    best = inner.argmax(dim=1)
    assert (best == (dy + d) * k + (dx + d)).all()
    # Each entry is the channel sum of a(p) * b(p + delta), zero off the map.
    i, j = 4, 5
    assert torch.allclose(cost[0, 0, i, j], (a[0, :, i, j] * b[0, :, i - d, j - d]).sum())
    assert cost[0, 0, 0, 0] == 0


def test_the_soft_argmax_is_local_and_sub_cell() -> None:
    net = FlowNetSmall(WIDTHS, max_displacement=2)
    k = 5
    logits = torch.full((1, k * k, 1, 2), -1e4)
    # Cell 0: two equal neighbours (dx 1 and 2, dy 0) -> 1.5; a far spurious rival is ignored
    # although it is almost as strong.
    logits[0, 2 * k + 3, 0, 0] = logits[0, 2 * k + 4, 0, 0] = 5.0
    logits[0, 0 * k + 0, 0, 0] = 4.9
    # Cell 1: a single peak at (dx, dy) = (-2, 1).
    logits[0, 3 * k + 0, 0, 1] = 5.0
    flow = net.local_soft_argmax(logits)
    assert torch.allclose(flow[0, :, 0, 0], torch.tensor([1.5, 0.0]), atol=1e-4)
    assert torch.allclose(flow[0, :, 0, 1], torch.tensor([-2.0, 1.0]), atol=1e-4)
