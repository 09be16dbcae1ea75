"""The DFF baseline's flow network and feature warping.

FlowNetSmall is a small FlowNet-style encoder: the current and the key image are concatenated
(6 channels) and four stride-2 convs bring them to stride 16, where a 3x3 conv predicts a
2-channel flow (dx, dy) in feature cells. It is trained end to end by the detection loss only
(no flow supervision), like DFF's FlowNet fine-tuning, but from scratch and much smaller. The
last conv starts at zero, so at initialisation the warp is the identity (= copy-propagation).
DFF's extra "scale" map is left out.

warp(feature, flow): F_cur(p) = F_key(p + flow(p)), bilinear, zeros outside the map.
grid_sample wants (x, y) normalised to [-1, 1]; with align_corners=True the centre of cell 0
maps to -1 and of cell W-1 to +1, i.e. x_n = 2 x / (W - 1) - 1 for a cell coordinate x, which
is exactly the cell-index convention the flow is expressed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FlowNetSmall", "warp"]


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
