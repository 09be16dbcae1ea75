"""Feature fusion of the official code: the quality network and low2high.

QualityNet (used by SRFU at key frames and by DFA at non-key frames): the candidate features
(e.g. the LSTS-aligned memory and the current frame's own feature) are stacked along the batch
axis and each one is scored by the same small network
    1x1 conv -> hidden (256) -> 3x3 conv -> mid (16) -> 3x3 conv -> 1,
with no activation between the convs (as the official symbol: the scorer is a linear map of
its input), giving one quality map per candidate; a softmax across the candidates at every
pixel turns the maps into weights and the fused feature is the weighted sum of the candidates.

Low2High maps a non-key frame's low-level feature, the res4b3 (Conv4_3) residual sum before
its ReLU as officially (see `backbone`), into the high-level feature space so that it can be
compared with and fused with the memory:
    1x1 conv -> 256 + ReLU -> 3x3 conv -> 256 + ReLU -> 3x3 conv -> feat_channels,
initialised N(0, 0.01) with zero bias (official init, as the LSTS embeddings).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["QualityNet", "Low2High"]


def _init_normal(module: nn.Module, std: float = 0.01) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)


class QualityNet(nn.Module):
    """Per-pixel softmax weighting of K candidate features scored by one shared small net."""

    def __init__(self, in_channels: int, hidden: int = 256, mid: int = 16) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1),
            nn.Conv2d(hidden, mid, 3, padding=1),
            nn.Conv2d(mid, 1, 3, padding=1),
        )
        # Small init: at the start every candidate weighs about 1/K (an average).
        _init_normal(self.score)

    def weights(self, candidates: list[Tensor]) -> Tensor:
        """(B, K, H, W) softmax weights of the K candidates (each (B, C, H, W))."""
        if len(candidates) < 2:
            raise ValueError(f"QualityNet needs at least 2 candidates, got {len(candidates)}")
        shape = candidates[0].shape
        for i, c in enumerate(candidates):
            if c.shape != shape:
                raise ValueError(f"QualityNet candidate {i} has shape {tuple(c.shape)}, "
                                 f"expected {tuple(shape)}")
        b = shape[0]
        stacked = torch.cat(candidates, dim=0)  # (K*B, C, H, W): one shared scorer
        logits = self.score(stacked).view(len(candidates), b, *shape[2:])
        return torch.softmax(logits, dim=0).permute(1, 0, 2, 3)

    def forward(self, candidates: list[Tensor]) -> Tensor:
        w = self.weights(candidates)  # (B, K, H, W)
        return sum(w[:, i:i + 1] * c for i, c in enumerate(candidates))


class Low2High(nn.Module):
    """Low-level (Conv4_3) feature of a non-key frame -> high-level feature space."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 3, padding=1),
        )
        _init_normal(self.net)

    def forward(self, low: Tensor) -> Tensor:
        return self.net(low)
