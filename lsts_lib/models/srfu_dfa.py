"""SRFU and DFA, the paper's two uses of LSTS (Jiang et al., ECCV 2020, Sec. 3.3, 3.4).

SRFU, Sparsely Recursive Feature Updating (key frames): the memory M of the previous key is
LSTS-aligned to the new key's high-level feature F_k and the two are fused by a quality net:
    M <- Q_key([LSTS_key2key(M -> F_k), F_k]).
DFA, Dense Feature Aggregation (non-key frames): the frame's low-level feature is mapped to
the high-level space, L = low2high(low), the memory is LSTS-aligned to it and fused with it:
    F_t = Q_cur([LSTS_key2cur(M -> L), L]);
without fusion (the `lsts_no_dfa` ablation) F_t is the aligned memory alone.

Both alignments share the detector's one `LSTSOffsets`; each has its own f/g embeddings and
each fusion its own quality net (official code). `align` and `fuse` are public so that the
benchmark can time each step.
"""

from __future__ import annotations

from torch import Tensor, nn

from .fusion import Low2High, QualityNet
from .lsts import LSTSAlign, LSTSOffsets

__all__ = ["SRFU", "DFA"]


class SRFU(nn.Module):
    """Key-frame memory update. `update_ratio` r replaces the quality net by a fixed blend
    M <- r * aligned + (1 - r) * F_k (an ablation knob; None = the paper's quality net)."""

    def __init__(self, offsets: LSTSOffsets, channels: int, embed_channels: int, impl: str,
                 quality_hidden: int, quality_mid: int, update_ratio: float | None = None
                 ) -> None:
        super().__init__()
        self.align = LSTSAlign(offsets, channels, embed_channels, impl=impl)
        self.update_ratio = update_ratio
        self.quality = (QualityNet(channels, quality_hidden, quality_mid)
                        if update_ratio is None else None)

    def fuse(self, aligned: Tensor, feature: Tensor) -> Tensor:
        if self.quality is None:
            r = self.update_ratio
            return r * aligned + (1.0 - r) * feature
        return self.quality([aligned, feature])

    def forward(self, memory: Tensor, feature: Tensor) -> Tensor:
        """The new memory from the old one and the new key's high-level feature F_k."""
        return self.fuse(self.align(memory, feature), feature)


class DFA(nn.Module):
    """Non-key frame feature from the memory and the frame's low-level (Conv4_3) feature."""

    def __init__(self, offsets: LSTSOffsets, low_channels: int, channels: int,
                 embed_channels: int, impl: str, low2high_hidden: int, quality_hidden: int,
                 quality_mid: int, fusion: bool = True) -> None:
        super().__init__()
        self.align = LSTSAlign(offsets, channels, embed_channels, impl=impl)
        self.low2high = Low2High(low_channels, channels, low2high_hidden)
        self.quality = QualityNet(channels, quality_hidden, quality_mid) if fusion else None

    def fuse(self, aligned: Tensor, current: Tensor) -> Tensor:
        """Quality-net fusion of the aligned memory with L (the aligned memory alone when
        fusion is off)."""
        return aligned if self.quality is None else self.quality([aligned, current])

    def forward(self, memory: Tensor, low: Tensor) -> Tensor:
        current = self.low2high(low)
        if current.shape != memory.shape:
            raise ValueError(f"memory {tuple(memory.shape)} and current feature "
                             f"{tuple(current.shape)} differ: frames must share one size")
        return self.fuse(self.align(memory, current), current)
