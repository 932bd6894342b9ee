import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medseq.training import TrainConfig, build_loss
from medseq.training.losses import (
    FocalLoss,
    MaskedBCEWithLogitsLoss,
    MaskedCrossEntropyLoss,
    MaskedMSELoss,
    balanced_class_weight,
    balanced_pos_weight,
)

LOGITS = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.5, 1.0]])
Y = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [float("nan"), 0.0]])
OBSERVED = ~torch.isnan(Y)


def test_bce_ignores_nan_labels():
    expected = F.binary_cross_entropy_with_logits(LOGITS[OBSERVED], Y[OBSERVED])
    got = MaskedBCEWithLogitsLoss()(LOGITS, Y)
    torch.testing.assert_close(got, expected)


def test_nan_labels_give_no_gradient():
    logits = LOGITS.clone().requires_grad_(True)
    MaskedBCEWithLogitsLoss()(logits, Y).backward()
    assert torch.all(logits.grad[~OBSERVED] == 0)
    assert torch.all(logits.grad[OBSERVED] != 0)


def test_bce_pos_weight_matches_torch():
    logits, y = torch.tensor([[0.2], [-0.4], [1.0]]), torch.tensor([1.0, 0.0, 1.0])
    pw = torch.tensor(3.0)
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], y, pos_weight=pw)
    torch.testing.assert_close(MaskedBCEWithLogitsLoss(pw)(logits, y), expected)


def test_focal_loss_matches_the_formula():
    x, y = torch.tensor([0.3, -2.0, 1.5]), torch.tensor([1.0, 0.0, 0.0])
    p = torch.sigmoid(x)
    p_t = torch.where(y == 1, p, 1 - p)
    alpha_t = torch.where(y == 1, torch.tensor(0.25), torch.tensor(0.75))
    expected = (-alpha_t * (1 - p_t) ** 2 * torch.log(p_t)).mean()
    torch.testing.assert_close(FocalLoss(gamma=2.0, alpha=0.25)(x, y), expected)


def test_focal_with_gamma_zero_and_no_alpha_is_bce():
    torch.testing.assert_close(
        FocalLoss(gamma=0.0, alpha=None)(LOGITS, Y), MaskedBCEWithLogitsLoss()(LOGITS, Y)
    )


def test_focal_down_weights_easy_examples():
    easy, hard = torch.tensor([4.0]), torch.tensor([0.1])
    y = torch.tensor([1.0])
    bce = MaskedBCEWithLogitsLoss()
    focal = FocalLoss(gamma=2.0, alpha=None)
    assert focal(easy, y) / bce(easy, y) < focal(hard, y) / bce(hard, y)


def test_mse_ignores_nan_targets():
    out, y = torch.tensor([[1.0], [2.0], [5.0]]), torch.tensor([1.5, float("nan"), 4.0])
    assert MaskedMSELoss()(out, y).item() == pytest.approx((0.25 + 1.0) / 2)


def test_cross_entropy_ignores_nan_and_checks_the_range():
    logits = torch.tensor([[2.0, 0.1, -1.0], [0.0, 1.0, 0.0], [0.3, 0.3, 0.3]])
    y = torch.tensor([0.0, float("nan"), 2.0])
    expected = F.cross_entropy(logits[[0, 2]], torch.tensor([0, 2]))
    torch.testing.assert_close(MaskedCrossEntropyLoss()(logits, y), expected)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got 5.0"):
        MaskedCrossEntropyLoss()(logits, torch.tensor([0.0, 5.0, 1.0]))


def test_all_nan_batch_gives_zero_loss():
    loss = MaskedBCEWithLogitsLoss()(torch.zeros(2, 1), torch.full((2,), math.nan))
    assert loss.item() == 0.0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"model output \(3, 2\) does not match y \(3,\)"):
        MaskedBCEWithLogitsLoss()(LOGITS, torch.zeros(3))


def test_balanced_weights():
    y = np.array([[1, 0], [0, 0], [0, 1], [0, np.nan]], dtype=np.float32)
    np.testing.assert_allclose(balanced_pos_weight(y), [3.0, 2.0])
    assert balanced_pos_weight(np.array([1, 0, 0, 0, 0])) == pytest.approx(4.0)
    with pytest.raises(ValueError, match=r"n_positive=\[0\]"):
        balanced_pos_weight(np.zeros(4))
    np.testing.assert_allclose(
        balanced_class_weight(np.array([0, 0, 1, 2]), 3), [4 / 6, 4 / 3, 4 / 3]
    )


def test_build_loss_from_config():
    y = np.array([1, 0, 0, 0], dtype=np.float32)
    loss = build_loss(TrainConfig(pos_weight="balanced"), y)
    assert isinstance(loss, MaskedBCEWithLogitsLoss) and loss.pos_weight.item() == 3.0
    assert isinstance(build_loss(TrainConfig(loss="focal"), y), FocalLoss)
    assert isinstance(build_loss(TrainConfig(task="regression"), y), MaskedMSELoss)
    ce = build_loss(TrainConfig(task="multiclass", class_weight="balanced"), np.array([0, 1, 1.0]))
    np.testing.assert_allclose(ce.weight.numpy(), [1.5, 0.75])


def test_sqrt_balanced_class_weight_is_the_root_of_balanced():
    y = np.array([0] * 90 + [1] * 9 + [2], dtype=np.float32)  # 100 times rarer -> 10 times
    ce = build_loss(TrainConfig(task="multiclass", class_weight="sqrt_balanced"), y)
    np.testing.assert_allclose(ce.weight.numpy(), np.sqrt([100 / 270, 100 / 27, 100 / 3]))
    assert ce.weight[2] / ce.weight[0] == pytest.approx(np.sqrt(90.0))
    with pytest.raises(ValueError, match="class_weight"):
        TrainConfig(task="multiclass", class_weight="sqrt")
