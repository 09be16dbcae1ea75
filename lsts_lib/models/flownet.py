"""The DFF baseline's flow network and feature warping.

FlowNetSmall is a small FlowNet-C (FlowNetCorr, Dosovitskiy et al. 2015): a siamese tower of
three stride-2 convs brings each image to stride 8; a cost volume correlates the current
frame's features with the key frame's at every displacement within +-`max_displacement`
stride-8 cells; a soft-argmax over the displacements near each cell's best match turns it into
a flow (the match), and a small conv predictor at stride 16 corrects it, fed the cost volume,
the current frame's features (FlowNet-C's "conv_redir") and the match. Output: flow (dx, dy)
at stride 16 in feature cells: the mean of each cell's 2x2 stride-8 matches plus the correction.

Why this form (scripts and numbers: tuning/report_dev.jsonl, rows "flow_pretrain_*"): trained on
SynthVID's true flow from scratch in a few minutes on one CPU thread, an early-fusion
FlowNet-S-like encoder (this module's former form) and a FlowNet-C-like predictor that sees the
cost volume only as input both stay at the zero flow (the minimiser of the end-point error
while the net cannot yet tell the direction of motion); an explicit match whose soft-argmax
flow is *added* to the output gives the matching features a gradient from the first step. The
features are instance-normalised (spatial mean removed, unit length per cell) so that the
correlation is a cosine similarity whose scale a learned temperature sets.

`identity_init`: the detector's flow_warp builds the net with the match's gain at 0 and the
zero-initialised predictor, so an un-pretrained FlowNet is the identity warp (copy-propagation)
until training moves it; `lsts flow-pretrain` builds it with gain 1 (and holds it there).

The correlation's multiply-adds (2 C D h w for D displacements at stride 8: about 0.01 GFLOPs
at 320x192, 0.2 at 1024x608 with the default widths) are elementwise products that
FlopCounterMode does not count; the convs it counts are the rest.

FlowNetS is FlowNet-S (FlowNetSimple, Dosovitskiy et al. 2015) at DFF's setting, for timing
only (`lsts bench`, random weights): DFF's real flow network, whose cost beside the feature
network is what a DFF speed-up is made of.

warp(feature, flow): F_cur(p) = F_key(p + flow(p)), bilinear, zeros outside the map.
grid_sample wants (x, y) normalised to [-1, 1]; with align_corners=True the centre of cell 0
maps to -1 and of cell W-1 to +1, i.e. x_n = 2 x / (W - 1) - 1 for a cell coordinate x, which
is exactly the cell-index convention the flow is expressed in.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FlowNetS", "FlowNetSmall", "correlation", "warp"]


def correlation(a: Tensor, b: Tensor, max_displacement: int) -> Tensor:
    """FlowNet-C's cost volume: (B, D, H, W) with D = (2d+1)^2, channel (i, j) row-major holding
    <a(p), b(p + (j - d, i - d))> summed over channels, zero where p + delta is off the map."""
    d = max_displacement
    h, w = a.shape[-2:]
    bp = F.pad(b, (d, d, d, d))
    return torch.stack([(a * bp[..., i:i + h, j:j + w]).sum(1)
                        for i in range(2 * d + 1) for j in range(2 * d + 1)], dim=1)


def _normalise(f: Tensor) -> Tensor:
    """Instance-normalised features: the spatial mean removed, unit length at every cell."""
    return F.normalize(f - f.mean(dim=(2, 3), keepdim=True), dim=1)


class FlowNetSmall(nn.Module):
    """(current, key) images -> flow at stride 16, (B, 2, H/16, W/16) in feature cells.

    channels: the widths of the three tower convs (stride 2, 4, 8) and of the predictor; the
    redirected current features have the first width.
    """

    stride = 16
    corr_stride = 8
    local_radius = 1  # soft-argmax over the 3x3 displacements around the best match
    init_temperature = 30.0  # cosine similarity x this = softmax logits, learned from here

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 128), max_displacement: int = 4,
                 identity_init: bool = True) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"FlowNetSmall needs 4 widths (3 tower convs + predictor), got "
                             f"{channels}")
        if max_displacement < 1:
            raise ValueError(f"max_displacement must be >= 1 stride-8 cell, got {max_displacement}")
        self.max_displacement = d = int(max_displacement)
        layers: list[nn.Module] = []
        cin = 3
        for c, k in zip(channels[:3], (7, 5, 3), strict=True):
            layers += [nn.Conv2d(cin, c, k, stride=2, padding=k // 2), nn.LeakyReLU(0.1, inplace=True)]
            cin = c
        self.tower = nn.Sequential(*layers)
        self.redir = nn.Sequential(nn.Conv2d(cin, channels[0], 1), nn.LeakyReLU(0.1, inplace=True))
        width = channels[3]
        self.head = nn.Sequential(
            nn.Conv2d((2 * d + 1) ** 2 + channels[0] + 2, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.predict = nn.Conv2d(width, 2, 3, padding=1)
        nn.init.zeros_(self.predict.weight)
        nn.init.zeros_(self.predict.bias)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(self.init_temperature)))
        self.match_gain = nn.Parameter(torch.tensor(0.0 if identity_init else 1.0))
        r = torch.arange(-d, d + 1, dtype=torch.float32)
        dy, dx = torch.meshgrid(r, r, indexing="ij")
        self.register_buffer("displacements", torch.stack([dx.flatten(), dy.flatten()]),
                             persistent=False)  # (2, D) in stride-8 cells, (dx, dy)

    def cost_volume(self, current: Tensor, key: Tensor) -> tuple[Tensor, Tensor]:
        """(cosine cost volume (B, D, H/8, W/8) of `correlation`, the current frame's
        normalised tower features)."""
        if current.shape != key.shape:
            raise ValueError(f"FlowNetSmall images differ in shape: {tuple(current.shape)} vs "
                             f"{tuple(key.shape)}")
        a, b = _normalise(self.tower(torch.cat([current, key], dim=0))).chunk(2)
        return correlation(a, b, self.max_displacement), a

    def local_soft_argmax(self, logits: Tensor) -> Tensor:
        """(B, 2, h, w): the softmax-weighted displacement over the (2r+1)^2 displacements
        around each cell's best one (fewer at the window's border), in stride-8 cells."""
        k = 2 * self.max_displacement + 1
        best = logits.argmax(dim=1, keepdim=True)
        n = torch.arange(k * k, device=logits.device).view(1, -1, 1, 1)
        near = ((n // k - best // k).abs() <= self.local_radius) \
            & ((n % k - best % k).abs() <= self.local_radius)
        weights = torch.softmax(logits.masked_fill(~near, float("-inf")), dim=1)
        return torch.einsum("bnhw,cn->bchw", weights, self.displacements)

    def flow_and_logits(self, current: Tensor, key: Tensor) -> tuple[Tensor, Tensor]:
        """(flow at stride 16 in its own size, the softmax logits over the displacements:
        cost volume x learned temperature, (B, D, H/8, W/8))."""
        cost, a = self.cost_volume(current, key)
        logits = cost * self.log_temperature.exp()
        matched = self.local_soft_argmax(logits)
        k = self.stride // self.corr_stride
        # Stride-8 cells -> stride-16 cells; ceil_mode keeps an odd row/column.
        coarse = F.avg_pool2d(matched, k, ceil_mode=True) / k
        # The predictor sees the match it corrects beside the cost volume and the features.
        features = torch.cat([F.leaky_relu(cost, 0.1), self.redir(a), matched], dim=1)
        correction = self.predict(self.head(features))
        return self.match_gain * coarse + correction, logits

    def forward(self, current: Tensor, key: Tensor, out_size: tuple[int, int] | None = None) -> Tensor:
        flow, _ = self.flow_and_logits(current, key)
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
