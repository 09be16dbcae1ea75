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


def test_res5_is_dilated_not_strided():
    for arch in ("resnet18", "resnet101"):
        net = ResNetBackbone(arch, 32, pretrained=False, freeze_bn=True)
        convs = [m for m in net.high.layer4.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(c.stride == (1, 1) for c in convs)
        assert any(c.dilation == (2, 2) for c in convs)
        fc = net.high.feat_conv[0]
        assert fc.dilation == (6, 6) and fc.kernel_size == (3, 3)


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
