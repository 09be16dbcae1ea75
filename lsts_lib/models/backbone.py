"""ResNet backbone split into the paper's low-level and high-level parts.

Paper naming vs torchvision: conv1 = stem (conv1, bn1, relu, maxpool), res2 = layer1,
res3 = layer2, res4 = layer3, res5 = layer4. "Conv4_3" is the output of res4b3, the fourth
block of res4 (res4a, res4b1, res4b2, res4b3), at stride 16.

    low  = conv1 -> res2 -> res3 -> res4[:k]                 (k = `low_split_index`)
    high = ReLU -> res4[k:] -> res5 (dilation 2, stride stays 16) -> feat_conv (3x3, dil. 6) + ReLU

The low part ends at the last block's residual sum *before* its final ReLU, because the
official low2high reads that pre-ReLU res4b3 sum (so it sees negative values too); the high
part starts by applying that ReLU, so `high(low(x))` is exactly the plain ResNet forward.
Key frames run low + high; non-key frames run low only, which is where LSTS saves time.

At inference a frozen BatchNorm (the paper's backbone) is an affine map per channel, so
`fold_bn` can fold it into the convolution before it: one pass over the feature map instead
of two. GroupNorm (the CPU presets) normalises by each input's own statistics and cannot be
folded.
"""

from __future__ import annotations

import copy
import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping

import torch
import torchvision
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import FrozenBatchNorm2d

log = logging.getLogger(__name__)

# Blocks in res4 (torchvision layer3) per architecture.
RES4_BLOCKS = {"resnet18": 2, "resnet34": 6, "resnet50": 6, "resnet101": 23}
_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
}
_warned_pretrained = False


def low_channels(arch: str) -> int:
    """Channels of the low part's output (any res4 block): 1024 for the bottleneck ResNets
    (50, 101), 256 for the basic-block ones (18, 34)."""
    return 256 * (4 if arch in ("resnet50", "resnet101") else 1)


def res4_block_names(arch: str) -> list[str]:
    """Names of res4's blocks in the paper's (MXNet ResNet-101) scheme: res4a, the block that
    halves the resolution to stride 16, then res4b1, res4b2, ... Every depth is named the same
    way, so a cut reads the same at any depth (ResNet-101: res4a .. res4b22)."""
    if arch not in RES4_BLOCKS:
        raise ValueError(f"unknown backbone {arch!r}; choose one of {list(RES4_BLOCKS)}")
    return ["res4a"] + [f"res4b{i}" for i in range(1, RES4_BLOCKS[arch])]


def low_split_index(arch: str, cut: str | None = None) -> int:
    """Number of res4 (layer3) blocks that belong to the low-level part: those up to and
    including the res4 block named `cut` (`res4_block_names`), or by the paper's rule when
    `cut` is None.

    Rule: the paper cuts ResNet-101 after res4b3, i.e. after the first 4 of 23 res4 blocks.
    Every ResNet whose res4 has at least 6 blocks (34, 50, 101) is cut at the same named
    layer, res4b3 (4 blocks), so the low part ends at stride 16 with the same depth into res4
    and the high part keeps >= 2 res4 blocks plus res5. ResNet-18's res4 has only 2 blocks:
    cutting after 4 is impossible, so it is cut after the first (res4a), which keeps both
    properties that matter: the low part already reaches stride 16 (res4a does the stride-2
    downsampling) and the high part still holds one res4 block plus res5.

    Any res4 block is a valid `cut`: res4a already reaches stride 16 and every res4 block
    gives the same channels, so only the depth of the non-key frames' features moves.
    """
    names = res4_block_names(arch)
    if cut is None:
        n = RES4_BLOCKS[arch]
        return 4 if n >= 6 else max(1, n // 2)
    if cut not in names:
        raise ValueError(f"cut {cut!r} is not a res4 block of {arch}; choose one of "
                         f"{names}, or null for the paper's rule "
                         f"({names[low_split_index(arch) - 1]})")
    return names.index(cut) + 1


def cut_block(arch: str, cut: str | None = None) -> str:
    """The res4 block the low part ends at (ResNet-101 by the paper's rule: res4b3, the
    paper's "Conv4_3")."""
    return res4_block_names(arch)[low_split_index(arch, cut) - 1]


def _norm_factory(freeze_bn: bool, norm: str) -> Callable[[int], nn.Module]:
    if freeze_bn:
        return FrozenBatchNorm2d
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "gn":
        return lambda c: nn.GroupNorm(min(32, c), c)
    raise ValueError(f"norm must be 'gn' or 'bn', got {norm!r}")


def _imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet weights from torchvision (local cache first, then download). May raise."""
    weights = getattr(torchvision.models, _WEIGHTS[arch]).IMAGENET1K_V1
    return weights.get_state_dict(progress=False)


def _load_pretrained(net: nn.Module, arch: str) -> bool:
    """Load ImageNet weights into `net`; on failure warn once per process and return False."""
    global _warned_pretrained
    try:
        state = _imagenet_state_dict(arch)
    except Exception as exc:  # no internet / no cache / corrupt file: never crash
        if not _warned_pretrained:
            _warned_pretrained = True
            msg = (f"ImageNet weights for {arch} could not be loaded ({type(exc).__name__}: "
                   f"{exc}); the backbone starts from random init.")
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return False
    own = net.state_dict()
    # Keep only tensors that fit (GroupNorm has no running stats; fc is dropped anyway).
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(usable, strict=False)
    log.info("loaded %d/%d ImageNet tensors for %s", len(usable), len(own), arch)
    return True


def _dilate_res5(layer4: nn.Sequential) -> None:
    """res5 at stride 1 and dilation 2 in every 3x3 conv of every block, as officially.

    torchvision's `replace_stride_with_dilation` (Bottleneck only) leaves the first block's
    3x3 conv at dilation 1; the official res5a_branch2b has dilation 2 and padding 2 like the
    later blocks. The stride sits on conv2 (the 3x3) of a Bottleneck and on conv1 of a
    BasicBlock (both of whose convs are 3x3); it is removed wherever it is, and from the
    1x1 shortcut, so the output stays at stride 16.
    """
    for block in layer4:
        for name, conv in block.named_modules():
            if not isinstance(conv, nn.Conv2d):
                continue
            conv.stride = (1, 1)
            if conv.kernel_size == (3, 3) and not name.startswith("downsample"):
                conv.dilation = (2, 2)
                conv.padding = (2, 2)
        block.stride = 1


def residual_sum(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A torchvision BasicBlock/Bottleneck's forward without its final ReLU (branch + shortcut)."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.bn2(block.conv2(out))
    if isinstance(block, Bottleneck):
        out = block.bn3(block.conv3(block.relu(out)))
    return out + identity


class PreReLUBlocks(nn.Sequential):
    """Residual blocks in order, returning the last block's sum before its final ReLU.

    The low part's res4 blocks: the official low2high takes the pre-ReLU res4b3 sum. A
    Sequential subclass keeps the parameter names (`low.layer3.<i>.…`) of the plain split.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in list(self)[:-1]:
            x = block(x)
        return residual_sum(self[-1], x)


class ResNetBackbone(nn.Module):
    """`low(x)` -> Conv4_3 (res4b3) sum before its ReLU; `high(low)` -> feat_conv feature
    (both stride 16). `cut` names another res4 block for the low part to end at (None: the
    paper's rule, `low_split_index`).

    The res4 blocks keep their index in res4 on either side of the cut (`low.layer3.0`,
    `high.layer3.1`, ...), so the weights of one split load into another (`resplit_state`):
    moving the cut moves where the same weights are split, not the weights."""

    stride = 16

    def __init__(self, arch: str = "resnet101", feat_channels: int = 1024,
                 pretrained: bool = True, freeze_bn: bool = True, norm: str = "gn",
                 freeze_stem: bool = True, cut: str | None = None) -> None:
        super().__init__()
        k = low_split_index(arch, cut)
        ctor = getattr(torchvision.models, arch)
        net = ctor(weights=None, norm_layer=_norm_factory(freeze_bn, norm))
        _dilate_res5(net.layer4)
        self.arch = arch
        self.split_index = k
        self.cut = cut_block(arch, cut)  # the res4 block the low part ends at
        self.pretrained_loaded = _load_pretrained(net, arch) if pretrained else False

        stem = nn.Sequential(OrderedDict(conv1=net.conv1, bn1=net.bn1, relu=net.relu,
                                         maxpool=net.maxpool))
        self.low = nn.Sequential(OrderedDict(
            conv1=stem, layer1=net.layer1, layer2=net.layer2,
            layer3=PreReLUBlocks(*net.layer3[:k])))
        self.low_channels = low_channels(arch)
        high_in = 2 * self.low_channels
        feat_conv = nn.Conv2d(high_in, feat_channels, 3, padding=6, dilation=6)
        nn.init.normal_(feat_conv.weight, std=0.01)
        nn.init.zeros_(feat_conv.bias)
        self.high = nn.Sequential(OrderedDict(
            relu=nn.ReLU(),  # the low part's last ReLU (not in place: low2high reads its input)
            layer3=net.layer3[k:], layer4=net.layer4,
            feat_conv=nn.Sequential(feat_conv, nn.ReLU(inplace=True))))
        self.feat_channels = feat_channels
        if freeze_stem:
            for p in list(stem.parameters()) + list(net.layer1.parameters()):
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.high(self.low(x))

    def resplit_state(self, state: Mapping[str, torch.Tensor], prefix: str = ""
                      ) -> dict[str, torch.Tensor]:
        """`state` (this backbone's weights under `prefix`, saved at any cut) with its res4
        keys named as this backbone's split names them: block i of res4 is `low.layer3.i`
        up to the cut and `high.layer3.i` after it. Other keys pass unchanged."""
        pattern = re.compile(rf"^{re.escape(prefix)}(?:low|high)\.layer3\.(\d+)\.")
        def rename(key: str) -> str:
            m = pattern.match(key)
            if m is None:
                return key
            part = "low" if int(m[1]) < self.split_index else "high"
            return f"{prefix}{part}.layer3.{m[1]}.{key[m.end():]}"
        return {rename(k): v for k, v in state.items()}

    def stages(self) -> OrderedDict[str, nn.Module]:
        """Stage-wise modules in order (for per-stage timing/FLOPs); low = the first four."""
        return OrderedDict([
            ("conv1", self.low.conv1),
            ("res2 (layer1)", self.low.layer1),
            ("res3 (layer2)", self.low.layer2),
            (f"res4[:{self.split_index}] (low)", self.low.layer3),
            (f"res4[{self.split_index}:] (high)", nn.Sequential(self.high.relu, self.high.layer3)),
            ("res5 (layer4, dilated)", self.high.layer4),
            ("feat_conv", self.high.feat_conv),
        ])

    def blocks(self) -> OrderedDict[str, nn.Module]:
        """Block-wise modules in order (for per-block timing/FLOPs): conv1, res2, res3, every
        res4 block by name (`res4_block_names`), res5, feat_conv. Run one after the other they
        compute exactly `high(low(x))`: the low part's last block returns its pre-ReLU sum and
        the first high block starts with that ReLU. The low part is conv1 .. `self.cut`."""
        low4 = list(self.low.layer3)
        high = [*self.high.layer3, self.high.layer4]
        low4[-1] = PreReLUBlocks(low4[-1])
        high[0] = nn.Sequential(self.high.relu, high[0])
        return OrderedDict([
            ("conv1", self.low.conv1), ("res2", self.low.layer1), ("res3", self.low.layer2),
            *zip(res4_block_names(self.arch), low4 + high[:-1], strict=True),
            ("res5", high[-1]), ("feat_conv", self.high.feat_conv),
        ])


def stage_receptive_fields(backbone: ResNetBackbone,
                           stages: OrderedDict[str, nn.Module] | None = None
                           ) -> OrderedDict[str, tuple[int, int]]:
    """(receptive field in input pixels, stride) at the output of each stage (default:
    `backbone.stages()`; `backbone.blocks()` gives it per block).

    Walks the main path of every block in order (the 1x1 shortcut never widens the field):
    each conv/pool with kernel k, stride s, dilation d grows the field by (k - 1) * d * jump,
    where jump is the current stride in input pixels, then jump *= s.
    """
    rf, jump = 1, 1
    out: OrderedDict[str, tuple[int, int]] = OrderedDict()
    for name, stage in (backbone.stages() if stages is None else stages).items():
        for mod_name, m in stage.named_modules():
            if "downsample" in mod_name or not isinstance(m, nn.Conv2d | nn.MaxPool2d):
                continue
            k, s_, d = (m.kernel_size, m.stride, m.dilation)
            k = k[0] if isinstance(k, tuple) else k
            s_ = s_[0] if isinstance(s_, tuple) else s_
            d = d[0] if isinstance(d, tuple) else d
            rf += (k - 1) * d * jump
            jump *= s_
        out[name] = (rf, jump)
    return out


def build_backbone(arch: str, feat_channels: int = 1024, pretrained: bool = True,
                   freeze_bn: bool = True, norm: str = "gn",
                   freeze_stem: bool = True, cut: str | None = None) -> ResNetBackbone:
    return ResNetBackbone(arch, feat_channels, pretrained, freeze_bn, norm, freeze_stem, cut)


def _foldable(m: nn.Module) -> bool:
    """A BatchNorm that is a fixed affine map: frozen, or a BatchNorm2d in eval mode."""
    return isinstance(m, FrozenBatchNorm2d) or (
        isinstance(m, nn.BatchNorm2d) and not m.training and m.track_running_stats)


def _conv_of(parent: nn.Module, index: int, name: str) -> nn.Module | None:
    """The convolution whose output BatchNorm child `name` (at `index`) normalises: the child
    before it in a Sequential (stem, shortcut), conv<i> for bn<i> in a ResNet block."""
    if isinstance(parent, nn.Sequential) and index > 0:
        return list(parent.children())[index - 1]
    if isinstance(parent, BasicBlock | Bottleneck) and name.startswith("bn"):
        return getattr(parent, "conv" + name[2:], None)
    return None


def fold_bn(module: nn.Module) -> tuple[nn.Module, int]:
    """(a copy of `module` with every fixed BatchNorm folded into the Conv2d before it and
    replaced by Identity, the number folded). For inference only: the copy has no BatchNorm
    to train. A BatchNorm with no convolution right before it is left as it is, and so is
    every GroupNorm (its statistics depend on the input)."""
    folded = copy.deepcopy(module)
    count = 0
    with torch.no_grad():
        for parent in list(folded.modules()):
            for i, (name, bn) in enumerate(list(parent.named_children())):
                conv = _conv_of(parent, i, name) if _foldable(bn) else None
                if not isinstance(conv, nn.Conv2d):
                    continue
                conv.weight, conv.bias = fuse_conv_bn_weights(
                    conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight,
                    bn.bias)
                setattr(parent, name, nn.Identity())
                count += 1
    return folded, count
