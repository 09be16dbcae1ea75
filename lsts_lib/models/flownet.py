"""The DFF baseline's flow network and feature warping.

FlowNetSmall is a small FlowNet-style encoder: the current and the key image are concatenated
(6 channels) and four stride-2 convs bring them to stride 16, where a 3x3 conv predicts a
2-channel flow (dx, dy) in feature cells. It is trained end to end by the detection loss only
(no flow supervision), like DFF's FlowNet fine-tuning, but from scratch and much smaller. The
last conv starts at zero, so at initialisation the warp is the identity (= copy-propagation).
DFF's extra "scale" map is left out.

FlowNetS is FlowNet-S (FlowNetSimple, Dosovitskiy et al. 2015) at DFF's setting, for timing
only (`lsts bench`, random weights): DFF's real flow network, whose cost beside the feature
network is what a DFF speed-up is made of.

warp(feature, flow): F_cur(p) = F_key(p + flow(p)), bilinear, zeros outside the map.
grid_sample wants (x, y) normalised to [-1, 1]; with align_corners=True the centre of cell 0
maps to -1 and of cell W-1 to +1, i.e. x_n = 2 x / (W - 1) - 1 for a cell coordinate x, which
is exactly the cell-index convention the flow is expressed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FlowNetS", "FlowNetSmall", "warp"]


class FlowNetSmall(nn.Module):
    """(current, key) images -> flow at stride 16, (B, 2, H/16, W/16) in feature cells."""

    stride = 16

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"FlowNetSmall needs 4 channel widths (4 stride-2 convs), got {channels}")
        layers: list[nn.Module] = []
        cin = 6
        for i, c in enumerate(channels):
            k = 7 if i == 0 else 5 if i == 1 else 3
            layers += [nn.Conv2d(cin, c, k, stride=2, padding=k // 2), nn.LeakyReLU(0.1, inplace=True)]
            cin = c
        layers += [nn.Conv2d(cin, cin, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
        self.encoder = nn.Sequential(*layers)
        self.predict = nn.Conv2d(cin, 2, 3, padding=1)
        nn.init.zeros_(self.predict.weight)
        nn.init.zeros_(self.predict.bias)

    def forward(self, current: Tensor, key: Tensor, out_size: tuple[int, int] | None = None) -> Tensor:
        if current.shape != key.shape:
            raise ValueError(f"FlowNetSmall images differ in shape: {tuple(current.shape)} vs "
                             f"{tuple(key.shape)}")
        flow = self.predict(self.encoder(torch.cat([current, key], dim=1)))
        if out_size is not None and tuple(flow.shape[-2:]) != tuple(out_size):
            # Strided convs round up while the backbone may round differently: resample.
            flow = F.interpolate(flow, size=out_size, mode="bilinear", align_corners=False)
        return flow


def _conv(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2),
                         nn.LeakyReLU(0.1, inplace=True))


class FlowNetS(nn.Module):
    """FlowNet-S on half-resolution images, as DFF runs it: (current, key) -> flow at stride
    16 of the full image (B, 2, H/16, W/16), in feature cells.

    Encoder (Dosovitskiy et al. 2015, Fig. 2): `ENCODER`'s nine convs, stride 64 at conv6.
    Refinement: four 4x4 stride-2 up-convolutions (`DECODER` widths), each concatenated with
    the encoder feature of its scale and the 2x up-convolved coarser flow, a 3x3 conv
    predicting flow at each scale; the last flow is at stride 4 of the half-size input
    (stride 8 of the frame), bilinearly resized to the feature map as DFF does.
    """

    stride = 16
    input_scale = 0.5  # DFF feeds FlowNet half-resolution frames
    # (name, out channels, kernel, stride) of each encoder conv; the refinement reads the
    # outputs of SKIPS (coarse to fine).
    ENCODER = (("conv1", 64, 7, 2), ("conv2", 128, 5, 2), ("conv3", 256, 5, 2),
               ("conv3_1", 256, 3, 1), ("conv4", 512, 3, 2), ("conv4_1", 512, 3, 1),
               ("conv5", 512, 3, 2), ("conv5_1", 512, 3, 1), ("conv6", 1024, 3, 2))
    SKIPS = ("conv5_1", "conv4_1", "conv3_1", "conv2")
    DECODER = (512, 256, 128, 64)  # deconv5 .. deconv2

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict()
        cin, width = 6, {}
        for name, cout, k, s in self.ENCODER:
            self.encoder[name] = _conv(cin, cout, k, s)
            cin = width[name] = cout
        self.predict = nn.ModuleList([nn.Conv2d(cin, 2, 3, padding=1)])
        self.deconv, self.upflow = nn.ModuleList(), nn.ModuleList()
        for skip, cout in zip(self.SKIPS, self.DECODER, strict=True):
            self.deconv.append(nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1),
                                             nn.LeakyReLU(0.1, inplace=True)))
            self.upflow.append(nn.ConvTranspose2d(2, 2, 4, 2, 1))
            cin = width[skip] + cout + 2
            self.predict.append(nn.Conv2d(cin, 2, 3, padding=1))

    def forward(self, current: Tensor, key: Tensor, out_size: tuple[int, int] | None = None
                ) -> Tensor:
        if current.shape != key.shape:
            raise ValueError(f"FlowNetS images differ in shape: {tuple(current.shape)} vs "
                             f"{tuple(key.shape)}")
        full = current.shape[-2:]
        x = F.interpolate(torch.cat([current, key], dim=1), scale_factor=self.input_scale,
                          mode="bilinear", align_corners=False)
        feats = {}
        for name, conv in self.encoder.items():
            x = feats[name] = conv(x)
        flow = self.predict[0](x)
        for i, skip in enumerate(self.SKIPS):
            s = feats[skip]
            # Up-convolution doubles the size; the encoder's odd sizes round up: crop.
            up = self.deconv[i](x)[..., : s.shape[-2], : s.shape[-1]]
            uf = self.upflow[i](flow)[..., : s.shape[-2], : s.shape[-1]]
            x = torch.cat([s, up, uf], dim=1)
            flow = self.predict[i + 1](x)
        size = out_size or (-(-full[0] // self.stride), -(-full[1] // self.stride))
        # Pixels of the half-size input -> cells of the stride-16 feature map.
        scale = 1 / (self.input_scale * self.stride)
        return scale * F.interpolate(flow, size=size, mode="bilinear", align_corners=False)


def warp(feature: Tensor, flow: Tensor) -> Tensor:
    """Bilinearly sample `feature` (B, C, H, W) at p + flow(p); flow (B, 2, H, W) = (dx, dy)."""
    if flow.ndim != 4 or flow.shape[1] != 2 or flow.shape[0] != feature.shape[0] \
            or flow.shape[-2:] != feature.shape[-2:]:
        raise ValueError(f"flow must be (B, 2, H, W) matching feature {tuple(feature.shape)}, "
                         f"got {tuple(flow.shape)}")
    b, _, h, w = feature.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    # align_corners=True: cell index i -> 2 i / (n - 1) - 1 (a 1-cell map maps to 0).
    xn = 2 * x / max(w - 1, 1) - 1
    yn = 2 * y / max(h - 1, 1) - 1
    grid = torch.stack([xn, yn], dim=-1)  # (B, H, W, 2) in (x, y) order
    return F.grid_sample(feature, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
