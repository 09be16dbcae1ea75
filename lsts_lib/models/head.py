"""Detection head of LSTS: an RPN and an R-FCN head on the fused task feature.

How each part maps to the paper and to the official (MXNet, DFF/FGFA-derived) code:

* **The 512/512 split.** The task feature (``feat_conv_3x3``, 1024 channels, stride 16) is cut
  in half along channels, as the official ``SliceChannel(num_outputs=2)``: the first half
  feeds the RPN, the second half the R-FCN score maps.
* **RPN.** torchvision's :class:`~torchvision.models.detection.rpn.RegionProposalNetwork`
  with one feature level and 9 anchors per cell (sizes ``(128, 256, 512)`` = scales
  ``(8, 16, 32)`` x stride 16, ratios ``(0.5, 1, 2)``; small presets pass smaller sizes).
  The official RPN puts its 1x1 convs directly on the RPN half (``feat_conv_3x3`` already is
  the 3x3 layer), so ``rpn_conv_depth`` defaults to 0 (no extra 3x3 conv). torchvision scores
  objectness with one sigmoid logit per anchor; the official code uses a 2-way softmax, which
  is the same model (softmax of two logits = sigmoid of their difference). Pre-NMS 6000,
  post-NMS 300, NMS 0.7, 256 anchors per image with at most half positive (IoU >= 0.7
  positive, < 0.3 negative). As officially (allowed border 0), anchors that cross the border
  of the (resized, unpadded) image are ignored in training: label -1, and never the best
  anchor of a ground-truth box (:class:`BorderIgnoringRPN`).
* **Position-sensitive score maps.** 1x1 convs on the R-FCN half give ``k*k*(C+1)`` class
  score maps and ``k*k*4`` box maps (k = 7), i.e. *class-agnostic* regression with 4 values
  per RoI. (The official code predicts 8 = background/foreground x 4, but the background
  four are never trained because their loss weights are zero; dropping them changes nothing.)
* **PS-RoI pooling + average voting.** :func:`torchvision.ops.ps_roi_align` pools bin (i, j)
  of each RoI from its own group of channels (spatial scale 1/16), then the k x k bins are
  averaged ("voting") into one vector of C+1 class logits and 4 box deltas per RoI.
* **Training RoIs.** The RPN's 300 proposals plus the ground-truth boxes (as the official
  proposal-target layer and torchvision's ``RoIHeads.add_gt_proposals``) are all labelled:
  IoU >= 0.5 with a ground-truth box is foreground of that box's class, otherwise background.
* **OHEM.** The official ``BoxAnnotatorOHEM`` operator: per-RoI loss (softmax cross entropy
  + smooth-L1 of the foreground box deltas) is computed without gradient over all RoIs of an
  image, the ``ohem_rois`` (128) hardest are kept (no NMS among them, as in R-FCN's operator),
  and the losses are computed only on those: cross entropy averaged over kept RoIs, smooth L1
  (beta 1, the official ``scalar=1``) summed over kept foreground RoIs and divided by the
  number of kept RoIs (the official ``grad_scale = 1 / BATCH_ROIS_OHEM``).
* **Box coding.** R-FCN deltas use :class:`~torchvision.models.detection._utils.BoxCoder`
  with weights ``(10, 10, 5, 5)``: the same as the official normalisation of targets by
  stds ``(0.1, 0.1, 0.2, 0.2)`` with zero means. The RPN's coder has weights
  ``(10, 10, 2.5, 2.5)``: the official RPN targets are normalised by stds
  ``(0.1, 0.1, 0.4, 0.4)`` (``NORMALIZE_RPN``), and its proposal layer undoes the same
  normalisation when decoding, as one coder does both here.
* **Inference.** Softmax scores, class-agnostic boxes decoded from each proposal and clipped
  to the image, scores below ``score_thresh`` (1e-4, the official test's threshold) dropped,
  per-class NMS at 0.3 (:func:`torchvision.ops.batched_nms`), at most 300 detections per
  image (the cap, not the threshold, bounds what an image keeps).

One difference from the official anchors: torchvision centres anchors at ``16 * j`` rather
than at the cell centre ``16 * j + 7.5``; the regression absorbs the half-cell shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead
from torchvision.ops import (
    batched_nms,
    box_iou,
    clip_boxes_to_image,
    ps_roi_align,
    remove_small_boxes,
)

__all__ = ["HeadConfig", "RFCNHead", "BorderIgnoringRPN"]


@dataclass
class HeadConfig:
    """Hyper-parameters of the RPN + R-FCN head (defaults = the official LSTS/R-FCN values)."""

    num_classes: int  # object classes, background excluded
    in_channels: int = 1024  # fused task feature; first half -> RPN, second half -> R-FCN
    anchor_sizes: tuple[int, ...] = (128, 256, 512)  # scales (8, 16, 32) x stride 16
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_conv_depth: int = 0  # extra 3x3 convs before the RPN's 1x1 convs (official: none)
    rpn_pre_nms_top_n_train: int = 6000
    rpn_pre_nms_top_n_test: int = 6000
    rpn_post_nms_top_n_train: int = 300
    rpn_post_nms_top_n_test: int = 300
    rpn_nms_thresh: float = 0.7
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    ps_pool_size: int = 7  # k: k x k position-sensitive bins
    ps_sampling_ratio: int = 2  # bilinear samples per bin side in ps_roi_align
    ohem_rois: int = 128  # hardest RoIs kept per image for the R-FCN loss
    fg_iou_thresh: float = 0.5  # RoI is foreground at IoU >= this
    bg_iou_thresh: float = 0.5  # RoI is background at IoU < this (official BG_THRESH_HI)
    bbox_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    rpn_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 2.5, 2.5)  # 1 / stds
    score_thresh: float = 1e-4  # a detection is kept at score >= this
    test_nms_thresh: float = 0.3
    detections_per_img: int = 300
    stride: int = 16

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"HeadConfig.num_classes must be >= 1, got {self.num_classes}")
        if self.in_channels < 2 or self.in_channels % 2:
            raise ValueError(
                f"HeadConfig.in_channels must be even (split in an RPN and an R-FCN half), "
                f"got {self.in_channels}"
            )
        if self.ohem_rois < 1:
            raise ValueError(f"HeadConfig.ohem_rois must be >= 1, got {self.ohem_rois}")
        if self.bg_iou_thresh > self.fg_iou_thresh:
            raise ValueError("HeadConfig.bg_iou_thresh must not exceed fg_iou_thresh")

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map cell (9 for the paper)."""
        return len(self.anchor_sizes) * len(self.aspect_ratios)


class Float32RPNHead(RPNHead):
    """torchvision's RPNHead with float32 outputs. Under autocast its convolutions run in 16
    bits, but the proposals are decoded from its deltas in their dtype: bf16 coordinates of a
    600x1000 frame would be off by up to 4 pixels. The weights and their names are RPNHead's."""

    def forward(self, x: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, deltas = super().forward(x)
        return [t.float() for t in logits], [t.float() for t in deltas]


class BorderIgnoringRPN(RegionProposalNetwork):
    """torchvision's RPN with the official rule for anchors that cross the image border.

    Each target dict also carries ``image_size`` ((h, w) of the resized image, before
    padding). An anchor is inside when x1 >= 0, y1 >= 0, x2 <= w and y2 <= h (the official
    ``x2 < width`` on inclusive pixel indices); the others get label -1 (neither positive nor
    negative, so never sampled) and, as they are dropped before matching officially, cannot be
    a ground-truth box's best anchor either. An image with no anchor inside it keeps them all
    (with none, the RPN loss would be 0/0).
    """

    def assign_targets_to_anchors(
        self, anchors: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        labels, matched_gt_boxes = [], []
        for a, t in zip(anchors, targets, strict=True):
            h, w = (float(v) for v in t["image_size"])
            inside = (a[:, 0] >= 0) & (a[:, 1] >= 0) & (a[:, 2] <= w) & (a[:, 3] <= h)
            if not bool(inside.any()):
                inside = torch.ones_like(inside)
            gt = t["boxes"]
            lab = torch.zeros(len(a), dtype=torch.float32, device=a.device)
            if gt.numel() == 0:  # a background image: every inside anchor is negative
                matched = torch.zeros_like(a)
            else:
                quality = self.box_similarity(gt, a)
                quality[:, ~inside] = -1.0  # below every threshold and every box's best IoU
                idx = self.proposal_matcher(quality)
                matched = gt[idx.clamp(min=0)]
                lab[idx >= 0] = 1.0
                lab[idx == self.proposal_matcher.BETWEEN_THRESHOLDS] = -1.0
            lab[~inside] = -1.0
            labels.append(lab)
            matched_gt_boxes.append(matched)
        return labels, matched_gt_boxes


class RFCNHead(nn.Module):
    """RPN + R-FCN (PS-RoI pooling, class-agnostic regression, OHEM) on one stride-16 map.

    After each training forward, ``last_stats`` holds per-image counts (``num_rois``,
    ``num_ohem``, ``num_fg``) for logging and tests.
    """

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        half = cfg.in_channels // 2
        k = cfg.ps_pool_size
        anchor_gen = AnchorGenerator(
            sizes=(tuple(cfg.anchor_sizes),), aspect_ratios=(tuple(cfg.aspect_ratios),)
        )
        self.rpn = BorderIgnoringRPN(
            anchor_gen,
            Float32RPNHead(half, cfg.num_anchors, conv_depth=cfg.rpn_conv_depth),
            fg_iou_thresh=cfg.rpn_fg_iou_thresh,
            bg_iou_thresh=cfg.rpn_bg_iou_thresh,
            batch_size_per_image=cfg.rpn_batch_size_per_image,
            positive_fraction=cfg.rpn_positive_fraction,
            pre_nms_top_n={"training": cfg.rpn_pre_nms_top_n_train,
                           "testing": cfg.rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": cfg.rpn_post_nms_top_n_train,
                            "testing": cfg.rpn_post_nms_top_n_test},
            nms_thresh=cfg.rpn_nms_thresh,
        )
        self.rpn.box_coder = BoxCoder(weights=cfg.rpn_reg_weights)  # torchvision's: (1, 1, 1, 1)
        # Position-sensitive score maps: k*k groups of (C+1) class maps and of 4 box maps.
        self.rfcn_cls = nn.Conv2d(half, k * k * (cfg.num_classes + 1), kernel_size=1)
        self.rfcn_bbox = nn.Conv2d(half, k * k * 4, kernel_size=1)
        for conv in (self.rfcn_cls, self.rfcn_bbox):
            nn.init.normal_(conv.weight, std=0.01)  # official init of the new layers
            nn.init.zeros_(conv.bias)
        self.box_coder = BoxCoder(weights=cfg.bbox_reg_weights)
        self.roi_matcher = Matcher(cfg.fg_iou_thresh, cfg.bg_iou_thresh,
                                   allow_low_quality_matches=False)
        self.last_stats: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ input checks
    def _check_inputs(
        self,
        feature: Tensor,
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None,
    ) -> None:
        cfg = self.cfg
        if feature.ndim != 4:
            raise ValueError(
                f"RFCNHead expects a feature of shape (B, {cfg.in_channels}, H, W), "
                f"got {tuple(feature.shape)}"
            )
        if feature.shape[1] != cfg.in_channels:
            raise ValueError(
                f"RFCNHead expects {cfg.in_channels} feature channels, got {feature.shape[1]}"
            )
        if len(image_sizes) != feature.shape[0]:
            raise ValueError(
                f"image_sizes has {len(image_sizes)} entries for a batch of {feature.shape[0]}"
            )
        if not self.training:
            return
        if targets is None:
            raise ValueError("RFCNHead in training mode needs targets (boxes and labels)")
        if len(targets) != feature.shape[0]:
            raise ValueError(f"targets has {len(targets)} entries for a batch of "
                             f"{feature.shape[0]}")
        for i, t in enumerate(targets):
            if "boxes" not in t or "labels" not in t:
                raise ValueError(f"targets[{i}] must have 'boxes' and 'labels'")
            boxes, labels = t["boxes"], t["labels"]
            if boxes.ndim != 2 or boxes.shape[1] != 4:
                raise ValueError(f"targets[{i}]['boxes'] must be (K, 4), got "
                                 f"{tuple(boxes.shape)}")
            if labels.shape != (boxes.shape[0],):
                raise ValueError(f"targets[{i}]['labels'] must be ({boxes.shape[0]},), got "
                                 f"{tuple(labels.shape)}")
            if labels.numel() and (labels.min() < 1 or labels.max() > cfg.num_classes):
                raise ValueError(
                    f"targets[{i}]['labels'] must lie in 1..{cfg.num_classes} (0 is background), "
                    f"got {labels.tolist()}"
                )
            if boxes.numel() and not bool(torch.isfinite(boxes).all()):
                raise ValueError(f"targets[{i}]['boxes'] contains NaN or infinite values")
            if boxes.numel() and bool((boxes[:, 2:] <= boxes[:, :2]).any()):
                raise ValueError(f"targets[{i}]['boxes'] has a box with x2 <= x1 or y2 <= y1")

    # ------------------------------------------------------------------ R-FCN parts
    def _ps_pool(self, rfcn_feat: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """PS-RoI pooling and average voting: (R, C+1) class logits and (R, 4) deltas."""
        k = self.cfg.ps_pool_size
        scale = 1.0 / self.cfg.stride
        # Pooled in float32 also under autocast: torchvision has no 16-bit CPU kernel for it.
        score_maps = self.rfcn_cls(rfcn_feat).float()
        box_maps = self.rfcn_bbox(rfcn_feat).float()
        cls = ps_roi_align(score_maps, rois, k, scale, self.cfg.ps_sampling_ratio)
        box = ps_roi_align(box_maps, rois, k, scale, self.cfg.ps_sampling_ratio)
        return cls.mean(dim=(2, 3)), box.mean(dim=(2, 3))

    def _label_rois(
        self, rois: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Class label (0 = background) and regression target for every training RoI."""
        labels, reg_targets = [], []
        for r, t in zip(rois, targets, strict=True):
            gt_boxes, gt_labels = t["boxes"], t["labels"]
            if gt_boxes.numel() == 0:
                labels.append(torch.zeros(len(r), dtype=torch.int64, device=r.device))
                reg_targets.append(torch.zeros_like(r))
                continue
            matched = self.roi_matcher(box_iou(gt_boxes, r))
            lab = gt_labels[matched.clamp(min=0)].clone()
            lab[matched < 0] = 0
            labels.append(lab)
            reg_targets.append(self.box_coder.encode_single(gt_boxes[matched.clamp(min=0)], r))
        return labels, reg_targets

    def ohem_select(self, per_roi_loss: Tensor) -> Tensor:
        """Indices of the ``min(ohem_rois, R)`` largest per-RoI losses, hardest first.

        Stable sort so that ties (e.g. many identical background losses) resolve the same way
        on every run.
        """
        order = torch.argsort(per_roi_loss, descending=True, stable=True)
        return order[: self.cfg.ohem_rois]

    def _rfcn_loss(
        self,
        cls_logits: Tensor,
        box_deltas: Tensor,
        labels: list[Tensor],
        reg_targets: list[Tensor],
    ) -> tuple[Tensor, Tensor]:
        counts = [len(lab) for lab in labels]
        keep_all, n_fg = [], []
        start = 0
        for n, lab, tgt in zip(counts, labels, reg_targets, strict=True):
            logits = cls_logits[start:start + n]
            deltas = box_deltas[start:start + n]
            with torch.no_grad():  # OHEM ranks RoIs by their current loss, without gradient
                loss_cls = F.cross_entropy(logits, lab, reduction="none")
                loss_box = F.smooth_l1_loss(deltas, tgt, beta=1.0, reduction="none").sum(1)
                per_roi = loss_cls + loss_box * (lab > 0)
            keep = self.ohem_select(per_roi)
            keep_all.append(keep + start)
            n_fg.append(int((lab[keep] > 0).sum()))
            start += n
        keep = torch.cat(keep_all)
        lab = torch.cat(labels)[keep]
        tgt = torch.cat(reg_targets)[keep]
        self.last_stats = {"num_rois": counts, "num_ohem": [len(k) for k in keep_all],
                           "num_fg": n_fg}
        if len(keep) == 0:  # no proposals and no ground truth: nothing to learn from
            zero = cls_logits.sum() * 0.0 + box_deltas.sum() * 0.0
            return zero, zero.clone()
        loss_cls = F.cross_entropy(cls_logits[keep], lab)
        fg = lab > 0
        loss_box = F.smooth_l1_loss(box_deltas[keep][fg], tgt[fg], beta=1.0,
                                    reduction="sum") / max(len(keep), 1)
        return loss_cls, loss_box

    def _postprocess(
        self,
        cls_logits: Tensor,
        box_deltas: Tensor,
        rois: list[Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        cfg = self.cfg
        scores_all = F.softmax(cls_logits, dim=-1)
        out = []
        start = 0
        for r, size in zip(rois, image_sizes, strict=True):
            n = len(r)
            boxes = self.box_coder.decode_single(box_deltas[start:start + n], r)
            boxes = clip_boxes_to_image(boxes, size)
            scores = scores_all[start:start + n, 1:]  # drop background
            start += n
            labels = torch.arange(1, cfg.num_classes + 1, device=r.device).expand_as(scores)
            boxes = boxes[:, None, :].expand(n, cfg.num_classes, 4).reshape(-1, 4)
            scores, labels = scores.reshape(-1), labels.reshape(-1)
            keep = torch.where(scores >= cfg.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = remove_small_boxes(boxes, min_size=1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, cfg.test_nms_thresh)
            keep = keep[: cfg.detections_per_img]
            out.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return out

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        feature: Tensor,
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Detect on a stride-16 task feature.

        Args:
            feature: (B, in_channels, H/16, W/16).
            image_sizes: (h, w) of each (resized) input image.
            targets: training only; per image ``boxes`` (K, 4) x1y1x2y2 in resized-image
                pixels and ``labels`` (K,) in 1..num_classes. K may be 0.

        Returns:
            (detections, losses). In eval mode ``detections`` holds per image ``boxes``,
            ``scores``, ``labels`` (at most ``detections_per_img`` after per-class NMS) and
            ``losses`` is empty; in training mode ``detections`` is empty and ``losses`` has
            ``loss_rpn_cls``, ``loss_rpn_box``, ``loss_rfcn_cls``, ``loss_rfcn_box``.
        """
        self._check_inputs(feature, image_sizes, targets)
        cfg = self.cfg
        half = cfg.in_channels // 2
        rpn_feat, rfcn_feat = feature[:, :half], feature[:, half:]
        if targets is not None and self.training:
            targets = [
                {"boxes": t["boxes"].to(feature.device, feature.dtype),
                 "labels": t["labels"].to(feature.device, torch.int64),
                 "image_size": torch.tensor(size)}  # for the RPN's border rule
                for t, size in zip(targets, image_sizes, strict=True)
            ]
        # The anchor generator reads the stride from the padded batch size: an empty tensor
        # of shape (B, 0, H*stride, W*stride) carries that without any memory.
        b, _, h, w = feature.shape
        canvas = feature.new_empty((b, 0, h * cfg.stride, w * cfg.stride))
        images = ImageList(canvas, [(int(s[0]), int(s[1])) for s in image_sizes])
        # Anchors take the feature's dtype: float32 (a no-op but under autocast), as the
        # proposals decoded from them (Float32RPNHead).
        proposals, rpn_losses = self.rpn(images, {"0": rpn_feat.float()},
                                         targets if self.training else None)

        if self.training:
            assert targets is not None
            rois = [torch.cat([p, t["boxes"]]) for p, t in zip(proposals, targets, strict=True)]
            labels, reg_targets = self._label_rois(rois, targets)
            cls_logits, box_deltas = self._ps_pool(rfcn_feat, rois)
            loss_cls, loss_box = self._rfcn_loss(cls_logits, box_deltas, labels, reg_targets)
            losses = {
                "loss_rpn_cls": rpn_losses["loss_objectness"],
                "loss_rpn_box": rpn_losses["loss_rpn_box_reg"],
                "loss_rfcn_cls": loss_cls,
                "loss_rfcn_box": loss_box,
            }
            return [], losses

        cls_logits, box_deltas = self._ps_pool(rfcn_feat, proposals)
        return self._postprocess(cls_logits, box_deltas, proposals, image_sizes), {}
