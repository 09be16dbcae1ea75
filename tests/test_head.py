"""Tests of the RPN + R-FCN detection head (lsts_lib.models.head)."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import box_iou

from lsts_lib.models.head import HeadConfig, RFCNHead

C = 64  # small fused feature: 32 channels for the RPN, 32 for R-FCN
FEAT_HW = (12, 20)  # stride 16 -> a 192 x 320 canvas
IMG = (192, 320)
GT_BOXES = torch.tensor([[40.0, 30.0, 120.0, 110.0], [180.0, 60.0, 260.0, 170.0]])
GT_LABELS = torch.tensor([1, 3])


def make_head(seed: int = 0, **overrides) -> RFCNHead:
    torch.manual_seed(seed)
    kw = {"num_classes": 3, "in_channels": C, "anchor_sizes": (32, 64, 128)}
    kw.update(overrides)
    return RFCNHead(HeadConfig(**kw))


def make_feature(seed: int = 0, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, C, *FEAT_HW, generator=g)


def gt_targets() -> list[dict[str, torch.Tensor]]:
    return [{"boxes": GT_BOXES.clone(), "labels": GT_LABELS.clone()}]


def empty_targets() -> dict[str, torch.Tensor]:
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}


LOSS_KEYS = {"loss_rpn_cls", "loss_rpn_box", "loss_rfcn_cls", "loss_rfcn_box"}


def test_paper_defaults_build_the_official_layout():
    head = RFCNHead(HeadConfig(num_classes=30))
    assert head.cfg.num_anchors == 9
    assert head.rpn.head.cls_logits.in_channels == 512  # RPN half
    assert head.rpn.head.cls_logits.out_channels == 9
    assert head.rfcn_cls.in_channels == 512  # R-FCN half
    assert head.rfcn_cls.out_channels == 7 * 7 * 31
    assert head.rfcn_bbox.out_channels == 7 * 7 * 4  # class-agnostic
    assert len(head.rpn.head.conv) == 0  # no extra 3x3 conv, as the official RPN


def test_training_losses_finite_and_positive():
    head = make_head().train()
    dets, losses = head(make_feature(), [IMG], gt_targets())
    assert dets == []
    assert set(losses) == LOSS_KEYS
    for k, v in losses.items():
        assert v.ndim == 0 and torch.isfinite(v), k
        assert v.item() > 0, k
    stats = head.last_stats
    assert stats["num_fg"][0] >= 2  # at least the two ground-truth RoIs are foreground


def test_eval_output_shapes_and_keys():
    head = make_head().eval()
    dets, losses = head(make_feature(batch=2), [IMG, (150, 250)])
    assert losses == {}
    assert len(dets) == 2
    for d in dets:
        assert set(d) == {"boxes", "scores", "labels"}
        n = len(d["scores"])
        assert 0 < n <= 300
        assert d["boxes"].shape == (n, 4) and d["labels"].shape == (n,)
        assert d["labels"].dtype == torch.int64
        assert int(d["labels"].min()) >= 1 and int(d["labels"].max()) <= 3
        assert torch.all(d["scores"][:-1] >= d["scores"][1:])  # sorted by score


def test_empty_targets_train_as_all_background():
    head = make_head().train()
    feat = make_feature(batch=2).requires_grad_()
    targets = [empty_targets(), gt_targets()[0]]
    _, losses = head(feat, [IMG, IMG], targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert head.last_stats["num_fg"][0] == 0
    assert head.last_stats["num_fg"][1] > 0
    sum(losses.values()).backward()
    assert torch.isfinite(feat.grad).all()

    head1 = make_head().train()
    _, losses1 = head1(make_feature(), [IMG], [empty_targets()])
    assert losses1["loss_rpn_box"].item() == 0.0  # no positive anchor
    assert losses1["loss_rfcn_box"].item() == 0.0  # no foreground RoI
    assert losses1["loss_rpn_cls"].item() > 0 and losses1["loss_rfcn_cls"].item() > 0


def test_no_proposals_and_no_targets_gives_zero_loss_not_nan():
    head = make_head(rpn_post_nms_top_n_train=0, rpn_post_nms_top_n_test=0).train()
    _, losses = head(make_feature(), [IMG], [empty_targets()])
    assert head.last_stats["num_rois"] == [0]
    assert losses["loss_rfcn_cls"].item() == 0.0 and losses["loss_rfcn_box"].item() == 0.0
    head.eval()
    (d,), _ = head(make_feature(), [IMG])
    assert d["boxes"].shape == (0, 4)


def test_ground_truth_boxes_join_the_training_rois():
    # With no RPN proposals, the R-FCN RoIs are exactly the ground-truth boxes, all foreground.
    head = make_head(rpn_post_nms_top_n_train=0).train()
    _, losses = head(make_feature(), [IMG], gt_targets())
    assert head.last_stats == {"num_rois": [2], "num_ohem": [2], "num_fg": [2]}
    assert losses["loss_rfcn_box"].item() > 0


def test_gradients_reach_both_halves_and_only_their_own():
    head = make_head().train()
    feat = make_feature().requires_grad_()
    _, losses = head(feat, [IMG], gt_targets())
    half = C // 2
    rpn_loss = losses["loss_rpn_cls"] + losses["loss_rpn_box"]
    (g_rpn,) = torch.autograd.grad(rpn_loss, feat, retain_graph=True)
    rfcn_loss = losses["loss_rfcn_cls"] + losses["loss_rfcn_box"]
    (g_rfcn,) = torch.autograd.grad(rfcn_loss, feat)
    assert g_rpn[:, :half].abs().sum() > 0 and g_rpn[:, half:].abs().sum() == 0
    assert g_rfcn[:, half:].abs().sum() > 0 and g_rfcn[:, :half].abs().sum() == 0


@pytest.mark.parametrize("ohem_rois", [16, 128, 10_000])
def test_ohem_keeps_min_of_budget_and_rois(ohem_rois):
    head = make_head(ohem_rois=ohem_rois).train()
    head(make_feature(batch=2), [IMG, IMG], gt_targets() * 2)
    stats = head.last_stats
    for n_rois, n_kept in zip(stats["num_rois"], stats["num_ohem"], strict=True):
        assert n_rois > 16
        assert n_kept == min(ohem_rois, n_rois)


def test_ohem_select_returns_hardest_first():
    head = make_head(ohem_rois=3)
    loss = torch.tensor([0.1, 5.0, 0.3, 2.0, 2.0, 0.0])
    assert head.ohem_select(loss).tolist() == [1, 3, 4]
    assert head.ohem_select(loss[:2]).tolist() == [1, 0]


def test_ohem_loss_is_on_the_hardest_rois():
    # Same weights, same proposals: the mean loss over the 8 hardest RoIs must exceed the mean
    # over all RoIs (OHEM off = budget larger than the RoI count).
    feat = make_feature()
    hard = make_head(ohem_rois=8).train()
    full = make_head(ohem_rois=10_000).train()
    full.load_state_dict(hard.state_dict())
    _, l_hard = hard(feat, [IMG], gt_targets())
    _, l_full = full(feat, [IMG], gt_targets())
    assert l_hard["loss_rfcn_cls"] > l_full["loss_rfcn_cls"]


def test_detections_capped_and_per_class_nms():
    head = make_head(score_thresh=0.0, detections_per_img=7).eval()
    (d,), _ = head(make_feature(), [IMG])
    assert len(d["scores"]) == 7
    head = make_head(score_thresh=0.0, detections_per_img=10_000).eval()
    (d,), _ = head(make_feature(), [IMG])
    assert len(d["scores"]) > 7
    for c in d["labels"].unique():
        b = d["boxes"][d["labels"] == c]
        iou = box_iou(b, b)
        iou.fill_diagonal_(0)
        assert iou.max() <= 0.3 + 1e-6
    # 300 proposals x 3 classes enter NMS; overlapping proposals mean most are suppressed.
    assert len(d["scores"]) < 0.5 * 3 * head.cfg.rpn_post_nms_top_n_test


def test_boxes_clipped_to_image():
    head = make_head().eval()
    with torch.no_grad():  # large box deltas push decoded boxes far outside the image
        head.rfcn_bbox.bias.fill_(20.0)
    h, w = 150, 250  # smaller than the 192 x 320 canvas
    (d,), _ = head(make_feature(), [(h, w)])
    b = d["boxes"]
    assert len(b) > 0
    assert b[:, 0].min() >= 0 and b[:, 1].min() >= 0
    assert b[:, 2].max() <= w and b[:, 3].max() <= h
    assert (b[:, 2] == w).any() or (b[:, 3] == h).any()  # clipping was active


def test_overfits_one_image():
    head = make_head(seed=0).train()
    feat = make_feature(seed=1)
    opt = torch.optim.Adam(head.parameters(), lr=2e-2)
    first = None
    for _ in range(30):  # loss ratio ~0.4 here and for head/feature seeds 0-2
        _, losses = head(feat, [IMG], gt_targets())
        loss = sum(losses.values())
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.55 * first
    head.eval()
    with torch.no_grad():
        (d,), _ = head(feat, [IMG])
    # The two best detections are the two objects, each with its own label.
    top = d["boxes"][:2]
    iou = box_iou(top, GT_BOXES)
    best = iou.argmax(dim=1)
    assert sorted(best.tolist()) == [0, 1]
    assert (iou.max(dim=1).values > 0.5).all()
    assert torch.equal(d["labels"][:2], GT_LABELS[best])
    assert (d["scores"][:2] > 0.5).all()


def test_seeded_runs_are_identical():
    def run():
        head = make_head(seed=3).train()
        _, losses = head(make_feature(), [IMG], gt_targets())
        head.eval()
        (d,), _ = head(make_feature(), [IMG])
        return losses, d

    l1, d1 = run()
    l2, d2 = run()
    for k in LOSS_KEYS:
        assert torch.equal(l1[k], l2[k])
    for k in d1:
        assert torch.equal(d1[k], d2[k])


def _targets(boxes=None, labels=None):
    t = {"boxes": GT_BOXES.clone() if boxes is None else boxes,
         "labels": GT_LABELS.clone() if labels is None else labels}
    return [t]


@pytest.mark.parametrize(
    ("feature", "sizes", "targets", "match"),
    [
        (torch.randn(C, *FEAT_HW), [IMG], _targets(), "shape"),
        (torch.randn(1, C + 2, *FEAT_HW), [IMG], _targets(), "feature channels"),
        (torch.randn(1, C, *FEAT_HW), [IMG, IMG], _targets(), "image_sizes"),
        (torch.randn(1, C, *FEAT_HW), [IMG], None, "needs targets"),
        (torch.randn(1, C, *FEAT_HW), [IMG], _targets() * 2, "targets has 2"),
        (torch.randn(1, C, *FEAT_HW), [IMG], [{"boxes": GT_BOXES}], "'labels'"),
        (torch.randn(1, C, *FEAT_HW), [IMG], _targets(labels=torch.tensor([0, 1])), "1..3"),
        (torch.randn(1, C, *FEAT_HW), [IMG], _targets(labels=torch.tensor([1, 4])), "1..3"),
        (torch.randn(1, C, *FEAT_HW), [IMG], _targets(labels=torch.tensor([1])), "labels"),
        (torch.randn(1, C, *FEAT_HW), [IMG], _targets(boxes=torch.zeros(2, 5)), r"\(K, 4\)"),
        (torch.randn(1, C, *FEAT_HW), [IMG],
         _targets(boxes=torch.tensor([[0.0, 0, 10, 10], [5, 5, 1, 9]])), "x2 <= x1"),
        (torch.randn(1, C, *FEAT_HW), [IMG],
         _targets(boxes=torch.tensor([[0.0, 0, 10, float("nan")], [5, 5, 8, 9]])), "NaN"),
    ],
    ids=["ndim", "channels", "image_sizes_len", "no_targets", "targets_len", "missing_key",
         "label_0", "label_too_big", "labels_shape", "boxes_shape", "degenerate_box", "nan_box"],
)
def test_bad_input_raises(feature, sizes, targets, match):
    head = make_head().train()
    with pytest.raises(ValueError, match=match):
        head(feature, sizes, targets)


def test_eval_checks_shape_but_needs_no_targets():
    head = make_head().eval()
    with pytest.raises(ValueError, match="feature channels"):
        head(torch.randn(1, C // 2, *FEAT_HW), [IMG])
    dets, _ = head(torch.randn(1, C, *FEAT_HW), [IMG])
    assert len(dets) == 1


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"num_classes": 0}, "num_classes"), ({"num_classes": 3, "in_channels": 63}, "even"),
     ({"num_classes": 3, "ohem_rois": 0}, "ohem_rois"),
     ({"num_classes": 3, "bg_iou_thresh": 0.6}, "bg_iou_thresh")],
)
def test_bad_config_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        HeadConfig(**kw)


# ------------------------------------------------------------------ official RPN / test rules
def test_rpn_targets_are_normalised_by_the_official_stds():
    # NORMALIZE_RPN: (dx, dy, dw, dh) / (0.1, 0.1, 0.4, 0.4); the proposals decode the same way.
    head = make_head()
    anchor = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    gt = torch.tensor([[10.0, 20.0, 110.0, 140.0]])
    raw = torch.tensor([[0.1, 0.3, 0.0, torch.log(torch.tensor(1.2)).item()]])
    target = head.rpn.box_coder.encode_single(gt, anchor)
    assert torch.allclose(target, raw / torch.tensor([0.1, 0.1, 0.4, 0.4]))
    assert torch.allclose(head.rpn.box_coder.decode_single(target, anchor), gt, atol=1e-4)


def rpn_labels(head: RFCNHead, anchors: torch.Tensor, boxes: torch.Tensor,
               size: tuple[int, int]) -> list[float]:
    (labels,), _ = head.rpn.assign_targets_to_anchors(
        [anchors], [{"boxes": boxes, "image_size": torch.tensor(size)}])
    return labels.tolist()


def test_rpn_ignores_anchors_across_the_image_border():
    head = make_head()
    gt = torch.tensor([[0.0, 0.0, 50.0, 50.0]])
    anchors = torch.tensor([
        [-10.0, -10.0, 50.0, 50.0],  # crosses the border, IoU 0.69: the box's best anchor
        [0.0, 0.0, 50.0, 100.0],  # inside, IoU 0.5: the best inside anchor
        [60.0, 60.0, 100.0, 100.0],  # inside, IoU 0, touching the border: still inside
        [60.0, 60.0, 100.5, 100.0],  # 0.5 px past the right border
    ])
    # Official: outside anchors are ignored and dropped before matching, so the box's best
    # inside anchor becomes its positive. torchvision's rule would pick the outside one.
    assert rpn_labels(head, anchors, gt, (100, 100)) == [-1.0, 1.0, 0.0, -1.0]
    stock, _ = RegionProposalNetwork.assign_targets_to_anchors(head.rpn, [anchors],
                                                              [{"boxes": gt}])
    assert stock[0].tolist() == [1.0, -1.0, 0.0, 0.0]
    # A background image: inside anchors negative, outside ones ignored.
    assert rpn_labels(head, anchors, torch.zeros(0, 4), (100, 100)) == [-1.0, 0.0, 0.0, -1.0]
    # No anchor inside at all (an image smaller than every anchor): none is ignored.
    assert -1.0 not in rpn_labels(head, anchors[:1], gt, (100, 100))


def test_rpn_training_sees_only_inside_anchors():
    # Through the whole head: the sampled anchors (labels >= 0) all lie inside the image.
    head = make_head().train()
    seen = {}
    original = head.rpn.assign_targets_to_anchors

    def spy(anchors, targets):
        labels, matched = original(anchors, targets)
        seen.update(anchors=anchors[0], labels=labels[0])
        return labels, matched

    head.rpn.assign_targets_to_anchors = spy
    head(make_feature(), [(150, 250)], gt_targets())
    a, lab = seen["anchors"], seen["labels"]
    inside = (a[:, :2] >= 0).all(1) & (a[:, 2] <= 250) & (a[:, 3] <= 150)
    assert (lab[~inside] == -1).all() and (lab[inside] >= 0).any() and (~inside).any()


def test_score_threshold_is_the_official_1e4_inclusive():
    assert HeadConfig(num_classes=1).score_thresh == 1e-4
    head = make_head().eval()
    logits = torch.tensor([[0.0, -3.0, -9.0, -12.0]])  # background, then classes 1..3
    scores = torch.softmax(logits, -1)[0, 1:]
    head.cfg.score_thresh = float(scores[1])  # class 2 exactly at the threshold
    rois = [torch.tensor([[10.0, 10.0, 60.0, 60.0]])]
    (d,) = head._postprocess(logits, torch.zeros(1, 4), rois, [IMG])
    assert d["labels"].tolist() == [1, 2]  # class 3 below the threshold is dropped


def test_boxes_stay_float32_under_bf16_autocast():
    """Issue 10 (--amp): the convolutions may run in bf16, the box maths does not (bf16 keeps
    8 significant bits: a coordinate near 300 would be off by up to 1 pixel)."""
    head = make_head().eval()
    feature = make_feature()
    with torch.no_grad():
        ref = head(feature, [IMG])[0][0]
        anchors_seen = []
        head.rpn.anchor_generator.register_forward_hook(
            lambda m, inp, out: anchors_seen.extend(a.dtype for a in out))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = head(feature.bfloat16(), [IMG])[0][0]
    assert anchors_seen == [torch.float32]
    assert got["boxes"].dtype == got["scores"].dtype == torch.float32
    assert len(got["boxes"]) > 0
    # Same top detection as float32, within bf16's rounding of the convolutions.
    assert box_iou(got["boxes"][:1], ref["boxes"][:1]).item() > 0.9
