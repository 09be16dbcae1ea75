"""Backbone split (low = up to Conv4_3, high = rest + dilated res5 + feat_conv)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torchvision.ops import FrozenBatchNorm2d

from lsts_lib.models import backbone as bb
from lsts_lib.models.backbone import ResNetBackbone, low_split_index


def test_split_rule_per_architecture():
    # Paper: ResNet-101 cut after res4b3 = 4 of 23 res4 blocks; 34/50 at the same layer;
    # ResNet-18 (2 res4 blocks) after res4a.
    assert {a: low_split_index(a) for a in bb.RES4_BLOCKS} == {
        "resnet18": 1, "resnet34": 4, "resnet50": 4, "resnet101": 4}
    with pytest.raises(ValueError, match="unknown backbone"):
        low_split_index("resnet152")


@pytest.mark.parametrize("arch,low_ch", [("resnet18", 256), ("resnet50", 1024),
                                         ("resnet101", 1024)])
def test_stride16_and_channels(arch, low_ch):
    torch.manual_seed(0)
    net = ResNetBackbone(arch, feat_channels=48, pretrained=False, freeze_bn=False)
    assert net.low_channels == low_ch
    n = bb.RES4_BLOCKS[arch]
    k = low_split_index(arch)
    assert len(net.low.layer3) == k and len(net.high.layer3) == n - k
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        low = net.low(x)
        high = net.high(low)
    assert low.shape == (1, low_ch, 4, 6)  # stride 16 at the cut
    assert high.shape == (1, 48, 4, 6)  # stride still 16 after the dilated res5
    assert (high >= 0).all()  # feat_conv is followed by ReLU


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_res5_is_dilated_in_every_block_not_strided(arch):
    # Official: all three res5 blocks (res5a included, which torchvision's
    # replace_stride_with_dilation leaves at dilation 1) have 3x3 convs at dilation 2.
    net = ResNetBackbone(arch, 32, pretrained=False, freeze_bn=True)
    convs = [m for m in net.high.layer4.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.stride == (1, 1) for c in convs)
    threes = [c for c in convs if c.kernel_size == (3, 3)]
    assert len(threes) == len(net.high.layer4) * (2 if arch in ("resnet18", "resnet34") else 1)
    assert all(c.dilation == (2, 2) and c.padding == (2, 2) for c in threes)
    assert all(c.dilation == (1, 1) for c in convs if c.kernel_size == (1, 1))
    fc = net.high.feat_conv[0]
    assert fc.dilation == (6, 6) and fc.kernel_size == (3, 3)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 80, 112)).shape[-2:] == (5, 7)  # output stride 16


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_low_is_the_pre_relu_sum_and_high_sees_the_plain_forward(arch):
    # low2high reads the res4b3 sum before its ReLU (official); the high part applies that ReLU
    # first, so key frames get exactly the plain ResNet forward (every block called as is).
    torch.manual_seed(0)
    net = ResNetBackbone(arch, 32, pretrained=False, freeze_bn=False).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        low = net.low(x)
        ref = net.low.layer2(net.low.layer1(net.low.conv1(x)))
        for block in [*net.low.layer3, *net.high.layer3, *net.high.layer4]:
            ref = block(ref)
        ref = net.high.feat_conv(ref)
        assert (low < 0).any()  # a pre-ReLU sum, not a ReLU output
        plain_low = low.clamp(min=0)
        assert torch.equal(net.high(low), ref) and torch.equal(net.high(plain_low), ref)
        assert torch.equal(net(x), ref)
    names = {k for k, _ in net.named_parameters()}
    assert "low.layer3.0.conv1.weight" in names  # the plain split's parameter names are kept


def test_frozen_bn_and_frozen_stem():
    net = ResNetBackbone("resnet18", 32, pretrained=False, freeze_bn=True, freeze_stem=True)
    norms = [m for m in net.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert norms and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not any(p.requires_grad for p in net.low.conv1.parameters())
    assert not any(p.requires_grad for p in net.low.layer1.parameters())
    assert all(p.requires_grad for p in net.low.layer2.parameters())
    gn = ResNetBackbone("resnet18", 32, pretrained=False, freeze_bn=False, norm="gn",
                        freeze_stem=False)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in gn.modules())
    assert all(p.requires_grad for p in gn.parameters())


def test_stages_compose_to_forward():
    torch.manual_seed(0)
    net = ResNetBackbone("resnet18", 32, pretrained=False, freeze_bn=False).eval()
    x = torch.rand(1, 3, 64, 64)
    names = list(net.stages())
    assert names[0] == "conv1" and names[-1] == "feat_conv" and len(names) == 7
    with torch.no_grad():
        y = x
        for m in net.stages().values():
            y = m(y)
        assert torch.equal(y, net(x))


def test_pretrained_fallback_warns_once(monkeypatch):
    def no_weights(arch):
        raise OSError("no internet")

    monkeypatch.setattr(bb, "_imagenet_state_dict", no_weights)
    monkeypatch.setattr(bb, "_warned_pretrained", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = ResNetBackbone("resnet18", 32, pretrained=True)
        b = ResNetBackbone("resnet18", 32, pretrained=True)
    msgs = [w for w in caught if "random init" in str(w.message)]
    assert len(msgs) == 1
    assert not a.pretrained_loaded and not b.pretrained_loaded


def test_pretrained_weights_are_loaded_when_available(monkeypatch):
    torch.manual_seed(1)
    ref = torchvision.models.resnet18(weights=None).state_dict()
    monkeypatch.setattr(bb, "_imagenet_state_dict", lambda arch: ref)
    net = ResNetBackbone("resnet18", 32, pretrained=True, freeze_bn=True)
    assert net.pretrained_loaded
    assert torch.equal(net.low.conv1.conv1.weight, ref["conv1.weight"])
    assert torch.equal(net.high.layer4[1].conv2.weight, ref["layer4.1.conv2.weight"])
    assert torch.equal(net.low.conv1.bn1.running_var, ref["bn1.running_var"])


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_fold_bn_equals_the_unfolded_backbone(arch):
    """Issue 10: frozen BN folded into the convolutions gives the same features, and none is
    left; the original module is untouched."""
    torch.manual_seed(0)
    net = ResNetBackbone(arch, 32, pretrained=False, freeze_bn=True).eval()
    norms = [m for m in net.modules() if isinstance(m, FrozenBatchNorm2d)]
    for bn in norms:  # away from the identity map, as trained weights are
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0, 0.2)
        bn.running_mean.normal_(0, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    folded, count = bb.fold_bn(net)
    assert count == len(norms) > 0
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in net.modules()) == len(norms)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        low, low_f = net.low(x), folded.low(x)
        torch.testing.assert_close(low_f, low, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded.high(low_f), net.high(low), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(net.low(x + 0.5), low)  # the input matters: not a constant


def test_fold_bn_leaves_group_norm_and_trains_no_batchnorm():
    gn = ResNetBackbone("resnet18", 32, pretrained=False, freeze_bn=False, norm="gn").eval()
    folded, count = bb.fold_bn(gn)
    assert count == 0
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in folded.modules()) == sum(
        isinstance(m, torch.nn.GroupNorm) for m in gn.modules()) > 0
    bn = ResNetBackbone("resnet18", 32, pretrained=False, freeze_bn=False, norm="bn")
    assert bb.fold_bn(bn)[1] == 0  # training mode: its statistics still move
    assert bb.fold_bn(bn.eval())[1] == sum(
        isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())
