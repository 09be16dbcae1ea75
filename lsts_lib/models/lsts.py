"""LSTS: Learnable Spatio-Temporal Sampling (Jiang et al., ECCV 2020, Sec. 3.2).

A reference feature F_ref is aligned to a target frame by sampling it at N learnable
offsets p_n around every pixel p0 and mixing the samples with per-pixel weights:

    F'(p0) = sum_n S_n(p0) * F_ref(p0 + p_n)
    s_n(p0) = < f(F_ref)(p0 + p_n), g(F_target)(p0) >        (raw dot product)
    S(p0)   = softmax_n s_n(p0)

Sampling is bilinear with zeros outside the map:
    F(p) = sum_q G(p, q) F(q),  G(p, q) = max(0, 1 - |q_x - p_x|) * max(0, 1 - |q_y - p_y|).

The offsets p (N, 2) are ONE global parameter, stored as (dx, dy) in feature cells and shared
by every pixel, every video and both alignments (key->key and key->current), as in the
official code. Their gradient comes from the derivative of G w.r.t. the fractional part.

Two implementations of the same maths:

* ``lsts_aggregate_naive`` -- the readable form: ``bilinear_sample`` builds the N shifted
  copies of f(F_ref) and of F_ref (B x N x C x H x W), then a dot product, a softmax and a
  weighted sum. Memory grows with N * C; it is the definition, used by tests and notebook 03.
* ``lsts_aggregate`` -- the efficient form. Because the offsets are global, floor(p0 + p_n)
  = p0 + floor(p_n): every sampled copy is a combination of the few *integer* shifts d in
  the box spanned by floor(p_n) .. floor(p_n) + 1, with weights B[n, d] that depend only on
  frac(p_n). Hence
      s_n(p0) = sum_d B[n, d] * C_d(p0),  C_d(p0) = < f(F_ref)(p0 + d), g(F_target)(p0) >
      F'(p0)  = sum_d W_d(p0) * F_ref(p0 + d),  W_d(p0) = sum_n S_n(p0) * B[n, d].
  Both sums over d are done row by row as dense matrix products against a banded matrix
  (one batched GEMM each), reading the padded map through an overlapping strided view, so
  no shifted copy of the 1024-channel feature is ever materialised.

Shapes: features are (B, C, H, W); offsets (N, 2) as (dx, dy); weights S are (B, N, H, W).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LSTSOffsets",
    "LSTSAlign",
    "uniform_offsets",
    "gaussian_offsets",
    "bilinear_corners",
    "shift_box",
    "shift_box_size",
    "bilinear_sample",
    "grid_sample_offsets",
    "lsts_aggregate_naive",
    "lsts_aggregate",
    "lsts_weights",
    "LSTSMacs",
    "lsts_macs",
    "expected_displacement",
    "check_offsets",
    "check_features",
    "shifted_pair",
    "fit_toy_shift",
]

IMPLS = ("efficient", "naive")


# --------------------------------------------------------------------------- offsets


def uniform_offsets(grid_size: int = 9, grid_range: float = 4.0) -> Tensor:
    """grid_size x grid_size grid over [-grid_range, grid_range]^2 as (N, 2) rows of (dx, dy).

    Raster order: dy is the slow index, dx the fast one (row n = iy * grid_size + ix).
    The default 9 x 9 over [-4, 4] gives the paper's 81 integer offsets.
    """
    if grid_size < 1:
        raise ValueError(f"LSTS uniform init: grid_size must be >= 1, got {grid_size}")
    if not math.isfinite(grid_range) or grid_range < 0:
        raise ValueError(f"LSTS uniform init: grid_range must be finite and >= 0, got {grid_range}")
    axis = torch.linspace(-grid_range, grid_range, grid_size, dtype=torch.float64)
    if grid_size == 1:
        axis = torch.zeros(1, dtype=torch.float64)
    dy, dx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=1).float()


def gaussian_offsets(num_points: int = 40, generator: torch.Generator | None = None) -> Tensor:
    """num_points draws of (dx, dy) from a 2-D standard normal (the paper's N = 40 init)."""
    if num_points < 1:
        raise ValueError(f"LSTS gaussian init: num_points must be >= 1, got {num_points}")
    return torch.randn(num_points, 2, generator=generator, dtype=torch.float32)


def check_offsets(p: Tensor) -> None:
    """Offsets must be a finite (N, 2) floating tensor."""
    if not isinstance(p, Tensor) or p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 1:
        shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
        raise ValueError(f"LSTS offsets must have shape (N, 2) as (dx, dy), got {shape}")
    if not p.is_floating_point():
        raise ValueError(f"LSTS offsets must be floating point, got {p.dtype}")
    bad = ~torch.isfinite(p.detach())
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(dim=1)).flatten().tolist()
        raise ValueError(
            f"LSTS offsets contain NaN/inf at rows {rows[:8]}{'...' if len(rows) > 8 else ''} "
            "(diverged training? lower the offsets' learning rate)")


class LSTSOffsets(nn.Module):
    """The one global set of sampling offsets p_n, shape (N, 2) as (dx, dy) in feature cells.

    Share one instance between every ``LSTSAlign`` (key->key and key->current) so both use the
    same Parameter. ``learnable=False`` freezes them (the fixed-sampling baseline); the
    parameter stays in the state dict either way so checkpoints are interchangeable.
    """

    def __init__(self, init: str = "uniform", grid_size: int = 9, grid_range: float = 4.0,
                 num_points: int = 40, learnable: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if init == "uniform":
            p = uniform_offsets(grid_size, grid_range)
        elif init == "gaussian":
            p = gaussian_offsets(num_points, generator)
        else:
            raise ValueError(f"LSTS offsets: init must be 'uniform' or 'gaussian', got {init!r}")
        self.init = init
        self.p = nn.Parameter(p, requires_grad=learnable)

    @property
    def N(self) -> int:  # noqa: N802 -- the paper's symbol
        return self.p.shape[0]

    @property
    def learnable(self) -> bool:
        return self.p.requires_grad

    def forward(self) -> Tensor:
        check_offsets(self.p)
        return self.p

    def extra_repr(self) -> str:
        return f"N={self.N}, init={self.init!r}, learnable={self.learnable}"


# --------------------------------------------------------------------------- checks


def check_features(F_ref: Tensor, F_target: Tensor | None = None,
                   channels: int | None = None, name: str = "LSTS") -> None:
    """(B, C, H, W) floating tensors, same shape, with the expected channel count."""
    for label, x in (("F_ref", F_ref), ("F_target", F_target)):
        if x is None:
            continue
        if not isinstance(x, Tensor):
            raise ValueError(f"{name}: {label} must be a tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"{name}: {label} must be (B, C, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: {label} must be floating point, got {x.dtype}")
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{name}: {label} has {x.shape[1]} channels, expected {channels}")
        if min(x.shape) < 1:
            raise ValueError(f"{name}: {label} is empty, shape {tuple(x.shape)}")
    if F_target is not None and F_ref.shape != F_target.shape:
        raise ValueError(f"{name}: F_ref {tuple(F_ref.shape)} and F_target "
                         f"{tuple(F_target.shape)} must have the same shape")


def check_offsets_fit(p: Tensor, H: int, W: int) -> None:
    """Reject a feature map smaller than the offset range: need max|dx| < W and max|dy| < H.

    An offset with |dx| >= W (or |dy| >= H) lands outside the map -- beyond the bilinear
    kernel's reach of one cell -- from *every* pixel, so it samples only zero padding and its
    gradient is zero: it would die silently. The paper's +-4 grid therefore needs maps of at
    least 5 x 5 (a 9 x 16 smoke map is fine); offsets that drift while training still pass
    as long as they stay shorter than the map.
    """
    reach = p.detach().abs().amax(dim=0)
    rx, ry = float(reach[0]), float(reach[1])
    if rx >= W or ry >= H:
        raise ValueError(
            f"LSTS: feature map {H}x{W} (HxW) is smaller than the offset range "
            f"(max|dx| = {rx:.2f}, max|dy| = {ry:.2f} cells); need max|dx| < W and "
            f"max|dy| < H -- use larger inputs or a smaller grid_range")


# --------------------------------------------------------------------------- sampling


def bilinear_corners(p: Tensor) -> tuple[Tensor, Tensor]:
    """Split offsets into integer corners and the bilinear weights G of their four taps.

    Returns ``base`` (N, 2) long = floor(p) as (x, y) and ``w`` (N, 4) for the taps at
    base + (0, 0), (1, 0), (0, 1), (1, 1) (in (dx, dy)). The floor is piecewise constant, so the
    gradient w.r.t. p flows only through the fractional part a = p - floor(p), e.g.
    dG/da_x = -(1 - a_y) for the (0, 0) tap -- the derivative of the tent max(0, 1 - |.|).
    """
    base = torch.floor(p.detach())
    a = p - base
    ax, ay = a[:, 0], a[:, 1]
    w = torch.stack([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay], dim=1)
    return base.long(), w


_TAPS = ((0, 0), (1, 0), (0, 1), (1, 1))


def shift_box(p: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    """((x_lo, y_lo), (x_hi, y_hi)): the box of integer shifts d that the taps of every
    offset reach, floor(p_n) .. floor(p_n) + 1; the efficient form mixes D = Dx * Dy shifts."""
    base, _ = bilinear_corners(p)
    lo, hi = base.amin(dim=0), base.amax(dim=0) + 1
    return (int(lo[0]), int(lo[1])), (int(hi[0]), int(hi[1]))


def shift_box_size(p: Tensor) -> int:
    """D = Dx * Dy, the number of integer shifts of `shift_box`."""
    (x_lo, y_lo), (x_hi, y_hi) = shift_box(p)
    return (x_hi - x_lo + 1) * (y_hi - y_lo + 1)


def bilinear_sample(F_map: Tensor, p: Tensor) -> Tensor:
    """Sample F at p0 + p_n for every pixel p0, bilinearly with zeros outside the map.

    F_map: (B, C, H, W); p: (N, 2) offsets (dx, dy) in cells, or one offset of shape (2,).
    Returns (B, N, C, H, W), or (B, C, H, W) for a single (2,) offset. This is the
    definition F(p) = sum_q G(p, q) F(q) written out: each offset touches four integer
    shifts floor(p_n) + {0, 1}^2 of the zero-padded map, weighted by G. It equals
    ``F.grid_sample(..., padding_mode="zeros")`` with the pixel-centre mapping
    x_norm = (2x + 1) / W - 1 (align_corners=False; see ``grid_sample_offsets``), and
    ``torchvision.ops.deform_conv2d`` with a 1 x 1 identity kernel and offsets (dy, dx).
    """
    single = p.ndim == 1
    p = p.reshape(1, 2) if single else p
    check_offsets(p)
    H, W = F_map.shape[-2:]
    base, w = bilinear_corners(p.to(F_map.dtype))
    lo = base.amin(dim=0).clamp(max=0)
    hi = base.amax(dim=0).clamp(min=-1) + 1
    left, top, right, bottom = -int(lo[0]), -int(lo[1]), int(hi[0]), int(hi[1])
    Fp = F.pad(F_map, (left, right, top, bottom))
    samples = []
    for n in range(p.shape[0]):
        taps = []
        for k, (tx, ty) in enumerate(_TAPS):
            y = top + int(base[n, 1]) + ty
            x = left + int(base[n, 0]) + tx
            taps.append(w[n, k] * Fp[..., y:y + H, x:x + W])   # G(p0 + p_n, p0 + d) F(p0 + d)
        samples.append(taps[0] + taps[1] + taps[2] + taps[3])
    out = torch.stack(samples, dim=1)
    return out[:, 0] if single else out


def grid_sample_offsets(F_map: Tensor, p: Tensor) -> Tensor:
    """The same sampling as ``bilinear_sample`` through ``F.grid_sample`` (one call for all N).

    Pixel x (0 .. W-1, centres) maps to x_norm = (2x + 1) / W - 1 with align_corners=False,
    so p0 + p_n lands exactly on the sampled point; zeros outside. Returns (B, N, C, H, W).
    """
    check_offsets(p)
    Bsz, C, H, W = F_map.shape
    N = p.shape[0]
    p = p.to(F_map.dtype)
    ys = torch.arange(H, dtype=F_map.dtype, device=F_map.device).view(1, H, 1)
    xs = torch.arange(W, dtype=F_map.dtype, device=F_map.device).view(1, 1, W)
    gx = (2 * (xs + p[:, 0].view(N, 1, 1)) + 1) / W - 1                  # (N, 1, W)
    gy = (2 * (ys + p[:, 1].view(N, 1, 1)) + 1) / H - 1                  # (N, H, 1)
    grid = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)          # (N, H, W, 2)
    grid = grid.reshape(1, N * H, W, 2).expand(Bsz, -1, -1, -1)
    out = F.grid_sample(F_map, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)                             # (B, C, N*H, W)
    return out.view(Bsz, C, N, H, W).transpose(1, 2)


# --------------------------------------------------------------------------- naive LSTS


def lsts_aggregate_naive(F_ref: Tensor, e_ref: Tensor, e_target: Tensor, p: Tensor,
                         sampler: Callable[[Tensor, Tensor], Tensor] = bilinear_sample,
                         ) -> tuple[Tensor, Tensor]:
    """The readable LSTS: materialise the N sampled copies, then similarity, softmax, sum.

    F_ref (B, C, H, W) raw reference feature; e_ref = f(F_ref), e_target = g(F_target)
    (B, E, H, W) embeddings; p (N, 2) offsets. Returns (F' (B, C, H, W), S (B, N, H, W)).
    Memory: the (B, N, E, H, W) and (B, N, C, H, W) sampled copies -- about 0.19 + 0.75 GiB at
    the paper's size (notebook 03 prints them). ``sampler`` is
    ``bilinear_sample`` (the definition) or ``grid_sample_offsets`` (the library route).
    """
    check_offsets(p)
    check_offsets_fit(p, *F_ref.shape[-2:])
    e_sampled = sampler(e_ref, p)                    # (B, N, E, H, W)
    s = (e_sampled * e_target.unsqueeze(1)).sum(dim=2)       # s_n(p0): (B, N, H, W)
    S = torch.softmax(s, dim=1)
    F_sampled = sampler(F_ref, p)                    # (B, N, C, H, W)
    out = (S.unsqueeze(2) * F_sampled).sum(dim=1)
    return out, S


# --------------------------------------------------------------------------- efficient LSTS


class _ShiftBox:
    """Integer shifts d spanned by the taps, the mixing B[n, d], and the tiled layout.

    The sums over d are banded matrix products along x. To keep the band dense enough the
    width is cut into tiles of T columns; each tile reads T + Dx - 1 padded columns.
    """

    def __init__(self, p: Tensor, H: int, W: int, dtype: torch.dtype, tile: int = 16) -> None:
        base, w = bilinear_corners(p.to(dtype))
        (self.x_lo, self.y_lo), (x_hi, y_hi) = shift_box(p.to(dtype))
        self.Dx = x_hi - self.x_lo + 1
        self.Dy = y_hi - self.y_lo + 1
        N = p.shape[0]
        # B[n, dy, dx]: bilinear weight of integer shift d for point n (4 non-zeros per row).
        tx = torch.tensor([t[0] for t in _TAPS], device=p.device)
        ty = torch.tensor([t[1] for t in _TAPS], device=p.device)
        rows = torch.arange(N, device=p.device).repeat_interleave(4)
        ys = (base[:, 1:2] - self.y_lo + ty).reshape(-1)
        xs = (base[:, 0:1] - self.x_lo + tx).reshape(-1)
        self.B = w.new_zeros(N, self.Dy, self.Dx).index_put(
            (rows, ys, xs), w.reshape(-1), accumulate=True).reshape(N, self.Dy * self.Dx)
        self.H, self.W = H, W
        self.T = min(W, tile)
        self.nt = -(-W // self.T)
        self.Tw = self.T + self.Dx - 1
        # Zero padding so that every tile's shifted window stays inside the padded map.
        self.top, self.bottom = max(0, -self.y_lo), max(0, y_hi)
        self.left = max(0, -self.x_lo)
        self.right = max(0, self.nt * self.T - W + x_hi)
        self.Hp = H + self.top + self.bottom
        self.c0 = self.x_lo + self.left          # padded column of shift x_lo at x0 = 0
        self.r0 = self.y_lo + self.top           # padded row of shift y_lo at y0 = 0
        dev = p.device
        T, Dy, Dx, Tw = self.T, self.Dy, self.Dx, self.Tw
        x0 = torch.arange(T, device=dev).view(T, 1, 1)
        dy = torch.arange(Dy, device=dev).view(1, Dy, 1)
        dx = torch.arange(Dx, device=dev).view(1, 1, Dx)
        # Correlation of a tile is (T, Dy*Tw) per row: keep entries (x0, dy, x0 + dx).
        self.gather = (x0 * (Dy * Tw) + dy * Tw + x0 + dx).reshape(-1)
        # Band of a tile is (Tw, T) per (row, dy): entry (x0 + dx, x0), values ordered (x0, dx).
        self.scatter = ((x0[:, 0] + dx[0]) * T + x0[:, 0]).reshape(-1)

    def tiles(self, x: Tensor) -> Tensor:
        """(C, H, W) -> zero-padded, overlapping column tiles (nt, C, Hp, Tw), contiguous.

        The one copy the efficient form makes: (T + Dx - 1) / T times the map, not N times.
        """
        xp = F.pad(x, (self.left, self.right, self.top, self.bottom))
        return xp[..., self.c0:].unfold(-1, self.Tw, self.T)[..., :self.nt, :] \
            .permute(2, 0, 1, 3).contiguous()

    def row_windows(self, tile: Tensor) -> Tensor:
        """(C, Hp, Tw) tile -> overlapping view (H, C, Dy*Tw): rows y0 + y_lo .. y0 + y_hi."""
        C = tile.shape[0]
        return tile.as_strided((self.H, C, self.Dy * self.Tw), (self.Tw, self.Hp * self.Tw, 1),
                               tile.storage_offset() + self.r0 * self.Tw)

    def pad_width(self, x: Tensor, dim: int) -> Tensor:
        """Zero-pad dimension `dim` of length W to nt * T."""
        extra = self.nt * self.T - self.W
        if extra == 0:
            return x
        shape = list(x.shape)
        shape[dim] = extra
        return torch.cat([x, x.new_zeros(shape)], dim=dim)


def _correlations(box: _ShiftBox, e_ref_b: Tensor, e_target_b: Tensor) -> Tensor:
    """C_d(p0) = <e_ref(p0 + d), e_target(p0)> for every integer shift d: (H, W, Dy*Dx)."""
    T = box.T
    ref_tiles = box.tiles(e_ref_b)                                   # (nt, E, Hp, Tw)
    target = box.pad_width(e_target_b, 2)                            # (E, H, nt*T)
    parts = []
    for i in range(box.nt):
        windows = box.row_windows(ref_tiles[i])                      # (H, E, Dy*Tw) view
        corr = torch.bmm(target[:, :, i * T:(i + 1) * T].permute(1, 2, 0), windows)
        parts.append(corr.reshape(box.H, -1).index_select(1, box.gather))
    C_d = torch.cat(parts, dim=1).reshape(box.H, box.nt * T, box.Dy * box.Dx)
    return C_d[:, :box.W]


def _aggregate(box: _ShiftBox, F_ref_b: Tensor, W_d: Tensor) -> Tensor:
    """F'(p0) = sum_d W_d(p0) F_ref(p0 + d), one batched GEMM per tile with banded matrices."""
    H, T, Dy, Dx, Tw = box.H, box.T, box.Dy, box.Dx, box.Tw
    ref_tiles = box.tiles(F_ref_b)                                   # (nt, C, Hp, Tw)
    W_d = box.pad_width(W_d.reshape(H, box.W, Dy, Dx), 1)            # (H, nt*T, Dy, Dx)
    parts = []
    for i in range(box.nt):
        vals = W_d[:, i * T:(i + 1) * T].permute(0, 2, 1, 3).reshape(H, Dy, T * Dx)
        band = vals.new_zeros(H, Dy, Tw * T).index_copy(2, box.scatter, vals)
        parts.append(torch.bmm(box.row_windows(ref_tiles[i]), band.reshape(H, Dy * Tw, T)))
    return torch.cat(parts, dim=2)[:, :, :box.W].permute(1, 0, 2)   # (C, H, W)


def lsts_aggregate(F_ref: Tensor, e_ref: Tensor, e_target: Tensor, p: Tensor,
                   need_output: bool = True) -> tuple[Tensor | None, Tensor]:
    """Efficient LSTS, same maths and signature as ``lsts_aggregate_naive``.

    Cost per image: correlations over the Dy*Dx integer shifts (E channels) and one banded
    GEMM over the C-channel feature; extra memory O(H * W * Dy * (W + Dx)) instead of the
    naive O(N * C * H * W). With ``need_output=False`` only S is computed (output None).
    """
    check_offsets(p)
    Bsz, _, H, W = F_ref.shape
    check_offsets_fit(p, H, W)
    box = _ShiftBox(p, H, W, e_ref.dtype)
    outs, weights = [], []
    for b in range(Bsz):
        C_d = _correlations(box, e_ref[b], e_target[b])      # (H, W, Dy*Dx)
        s = C_d @ box.B.t()                                          # s_n(p0): (H, W, N)
        S = torch.softmax(s, dim=-1)
        weights.append(S.permute(2, 0, 1))
        if need_output:
            W_d = S @ box.B                                          # (H, W, Dy*Dx)
            outs.append(_aggregate(box, F_ref[b], W_d))
    out = torch.stack(outs) if need_output else None
    return out, torch.stack(weights)


def lsts_weights(e_ref: Tensor, e_target: Tensor, p: Tensor) -> Tensor:
    """S_n(p0) (B, N, H, W) alone, computed the efficient way."""
    return lsts_aggregate(e_ref, e_ref, e_target, p, need_output=False)[1]


def expected_displacement(S: Tensor, p: Tensor) -> Tensor:
    """sum_n S_n(p0) * p_n: the displacement (B, 2, H, W) as (dx, dy) in cells that the weights
    S (B, N, H, W) put on the offsets p (N, 2) at every pixel -- where, on average, LSTS takes
    a pixel's content from in the reference feature (the softmax is over n per pixel, so this
    is a convex combination of the p_n)."""
    check_offsets(p)
    if S.ndim != 4 or S.shape[1] != p.shape[0]:
        raise ValueError(f"S must be (B, N={p.shape[0]}, H, W), got {tuple(S.shape)}")
    return torch.einsum("bnhw,nc->bchw", S, p.to(S.dtype))


# --------------------------------------------------------------------------- module


class LSTSAlign(nn.Module):
    """Align F_ref to a target frame with LSTS; owns the embeddings f (reference), g (target).

    One instance per alignment (key->key, key->current), all sharing one ``LSTSOffsets``.
    """

    def __init__(self, offsets: LSTSOffsets, in_channels: int, embed_channels: int = 256,
                 impl: str = "efficient") -> None:
        super().__init__()
        if not isinstance(offsets, LSTSOffsets):
            raise ValueError(f"LSTSAlign: offsets must be an LSTSOffsets, got {type(offsets)}")
        if impl not in IMPLS:
            raise ValueError(f"LSTSAlign: impl must be one of {IMPLS}, got {impl!r}")
        if in_channels < 1 or embed_channels < 1:
            raise ValueError(f"LSTSAlign: channel counts must be >= 1, got "
                             f"{in_channels}, {embed_channels}")
        self.offsets = offsets
        self.in_channels = in_channels
        self.impl = impl
        self.f = nn.Conv2d(in_channels, embed_channels, 1)
        self.g = nn.Conv2d(in_channels, embed_channels, 1)
        # Small init keeps the raw dot products (and so the softmax) unsaturated at the start.
        for conv in (self.f, self.g):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def embed(self, F_ref: Tensor, F_target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(f(F_ref), g(F_target), p): the embeddings and offsets the aggregation reads."""
        check_features(F_ref, F_target, self.in_channels, name="LSTSAlign")
        p = self.offsets()
        check_offsets_fit(p, *F_ref.shape[-2:])
        return self.f(F_ref), self.g(F_target), p

    def forward(self, F_ref: Tensor, F_target: Tensor) -> Tensor:
        """F_ref (B, C, H, W) aligned to F_target's frame, same shape."""
        return self.align_and_weights(F_ref, F_target)[0]

    def align_and_weights(self, F_ref: Tensor, F_target: Tensor) -> tuple[Tensor, Tensor]:
        """(F' (B, C, H, W), S (B, N, H, W)) from one pass."""
        e_ref, e_target, p = self.embed(F_ref, F_target)
        agg = lsts_aggregate if self.impl == "efficient" else lsts_aggregate_naive
        return agg(F_ref, e_ref, e_target, p)

    def weights(self, F_ref: Tensor, F_target: Tensor) -> Tensor:
        """S_n(p0): (B, N, H, W), the softmax weight of each sampling point per pixel."""
        e_ref, e_target, p = self.embed(F_ref, F_target)
        if self.impl == "naive":
            return lsts_aggregate_naive(F_ref, e_ref, e_target, p)[1]
        return lsts_weights(e_ref, e_target, p)

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}, N={self.offsets.N}"


# --------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class LSTSMacs:
    """Multiply-accumulates of one LSTS alignment (batch 1), by form; see `lsts_macs`."""

    H: int
    W: int
    N: int
    D: int
    embeddings: int  # f and g, both forms
    naive: int  # after the embeddings
    efficient: int  # after the embeddings, as the tiled GEMMs compute it

    @property
    def naive_total(self) -> int:
        return self.embeddings + self.naive

    @property
    def efficient_total(self) -> int:
        return self.embeddings + self.efficient


def lsts_macs(p: Tensor, H: int, W: int, C: int, C_e: int) -> LSTSMacs:
    """The multiply-accumulates of `LSTSAlign` with offsets p (N, 2) on an H x W map of C
    channels embedded to C_e, for both forms; the one count notebooks 03 and 06 print.

    * embeddings f, g (1x1 convs, both forms): 2 C C_e HW.
    * naive (``lsts_aggregate_naive``): each of the N sampled copies of f(F) and F is a
      bilinear sum of 4 taps, 4 N (C_e + C) HW; then similarities N C_e HW and the weighted
      sum N C HW.
    * efficient (``lsts_aggregate``), what its matrix products multiply: correlations and
      aggregation as banded GEMMs over tiles of T columns, each reading T + Dx - 1 columns
      per shift row, so nt T Dy (T + Dx - 1) (C_e + C) H (zeros of the band included: the
      useful part is D (C_e + C) HW); the mixing of offsets and shifts through B,
      s = C_d B^T and W_d = S B, 2 N D HW.
    The efficient count equals what ``torch.utils.flop_counter`` counts for the form (its
    FLOPs / 2; tests/test_numbers.py checks it); the naive form's sums are elementwise, which
    that counter does not see.
    """
    box = _ShiftBox(p, H, W, torch.float64)
    N, D, hw = p.shape[0], box.Dy * box.Dx, H * W
    band = H * box.nt * box.T * box.Dy * box.Tw * (C_e + C)
    return LSTSMacs(H=H, W=W, N=N, D=D, embeddings=2 * C * C_e * hw,
                    naive=4 * N * (C_e + C) * hw + N * C_e * hw + N * C * hw,
                    efficient=band + 2 * N * D * hw)


# --------------------------------------------------------------------------- toy


def shifted_pair(shift: tuple[int, int], channels: int = 4, size: tuple[int, int] = (16, 16),
                 blur_sigma: float = 2.0, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Two smooth random feature maps with F_target(p0) = F_ref(p0 + shift) exactly.

    Both are crops of one larger blurred noise map, so the target has real content where
    p0 + shift leaves F_ref's crop. Smoothness (blur_sigma cells) gives the offsets a
    gradient from a few cells away. shift = (dx, dy) in cells. Returns (1, C, H, W) each.
    """
    from torchvision.transforms.functional import gaussian_blur

    H, W = size
    sx, sy = shift
    m = max(abs(sx), abs(sy)) + int(3 * blur_sigma) + 1
    g = torch.Generator().manual_seed(seed)
    big = torch.randn(1, channels, H + 2 * m, W + 2 * m, generator=g, dtype=torch.float64)
    k = 2 * int(3 * blur_sigma) + 1
    big = gaussian_blur(big, [k, k], [blur_sigma, blur_sigma])
    big = big / big.std()
    F_ref = big[..., m:m + H, m:m + W]
    F_target = big[..., m + sy:m + sy + H, m + sx:m + sx + W]
    return F_ref.to(dtype).contiguous(), F_target.to(dtype).contiguous()


def fit_toy_shift(align: LSTSAlign, F_ref: Tensor, F_target: Tensor, steps: int,
                  lr: float = 0.05) -> dict[str, Tensor]:
    """Fit the LSTS parameters so that align(F_ref, F_target) reproduces F_target (MSE).

    Adam over every trainable parameter of ``align`` (offsets, f, g). Returns the history:
    "offsets" (steps+1, N, 2), "loss" (steps+1,), "mean_S" (steps+1, N) = S_n averaged over
    pixels. Deterministic for fixed inputs and initial parameters.
    """
    params = [q for q in align.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    hist: dict[str, list[Tensor]] = {"offsets": [], "loss": [], "mean_S": []}
    for step in range(steps + 1):
        out, S = align.align_and_weights(F_ref, F_target)
        loss = F.mse_loss(out, F_target)
        hist["offsets"].append(align.offsets.p.detach().clone())
        hist["loss"].append(loss.detach().clone())
        hist["mean_S"].append(S.detach().mean(dim=(0, 2, 3)))
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: torch.stack(v) for k, v in hist.items()}
