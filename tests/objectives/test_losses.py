import math

import numpy as np
import pytest
import torch

from evo_msa.config import ObjectiveConfig
from evo_msa.objectives import coarse_labels, kl_transfer, make_weighting, multi_nt_xent
from evo_msa.objectives.losses import regression_loss


def test_regression_losses_on_hand_values():
    pred, y = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1.0, 2.0, 1.0])
    assert regression_loss(pred, y, "l1").item() == pytest.approx((1 + 0 + 2) / 3)
    # smooth L1 with beta 1: 0.5*1^2 (|d|=1 is not < 1 -> 1 - 0.5 = 0.5), 0, 2 - 0.5 = 1.5
    assert regression_loss(pred, y, "smooth_l1", 1.0).item() == pytest.approx((0.5 + 0 + 1.5) / 3)


def test_coarse_bins_mosi_are_left_closed_and_sims_right_closed():
    y = np.array([-3.0, -0.5, -0.49, 0.0, 0.49, 0.5, 3.0])
    assert coarse_labels(y, 3, 3.0).tolist() == [0, 1, 1, 1, 1, 2, 2]
    assert coarse_labels(y, 2, 3.0).tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert coarse_labels(np.array([-2.6, -2.5, 2.49, 2.5]), 7, 3.0).tolist() == [0, 1, 5, 6]
    s = np.array([-1.0, -0.1, -0.09, 0.1, 0.11, 0.7, 0.71])
    assert coarse_labels(s, 3, 1.0).tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert coarse_labels(s, 5, 1.0).tolist() == [0, 1, 2, 2, 3, 3, 4]
    assert coarse_labels(torch.tensor(y), 3, 3.0).tolist() == [0, 1, 1, 1, 1, 2, 2]
    with pytest.raises(ValueError):
        coarse_labels(s, 7, 1.0)


def test_kl_transfer_is_zero_for_equal_experts_and_teaches_only_students():
    shared = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    text = shared.detach().clone().requires_grad_(True)
    assert kl_transfer({"shared": shared, "text": text}).item() == pytest.approx(0.0, abs=1e-7)
    audio = torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)
    loss = kl_transfer({"shared": shared, "text": text, "audio": audio})
    p = torch.softmax(shared.detach(), -1)
    expected = (p * (p.log() - math.log(1 / 3))).sum()  # KL(p_s || uniform), eq. 12
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert shared.grad is None  # the unified expert is the teacher
    assert audio.grad.abs().sum() > 0


def test_multi_nt_xent_matches_hand_computation():
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # anchor text_s = e1; positives: audio_s = e1 (cos 1), vision_s = e2 (cos 0)
    # negatives: text_d = e2 (0), audio_d = -e1 (-1), vision_d = e1 (1)
    contrast = {"text": (e1, e2), "audio": (e1, -e1), "vision": (e2, e1)}
    tau = 0.5
    pos = math.exp(1 / tau) + math.exp(0)
    allp = pos + math.exp(0) + math.exp(-1 / tau) + math.exp(1 / tau)
    assert multi_nt_xent(contrast, tau).item() == pytest.approx(-math.log(pos / allp), rel=1e-6)
    # perfectly separated features drive it towards zero (eq. 4), several positives or not
    good = {"text": (e1, -e1), "audio": (e1, -e1), "vision": (e1, -e1)}
    assert multi_nt_xent(good, 0.05).item() < 1e-6


def test_multi_nt_xent_falls_back_to_first_modality_as_anchor():
    e1 = torch.tensor([[1.0, 0.0]])
    value = multi_nt_xent({"audio": (e1, -e1), "vision": (e1, -e1)}, 0.1)
    assert value.item() < 1e-6


def losses(**values):
    return {k: torch.tensor(v) for k, v in values.items()}


def test_fixed_weighting_is_the_weighted_sum():
    w = make_weighting(ObjectiveConfig(lambda_main=1.0, lambda_coarse=0.5, gamma_kl=0.1))
    total = w.combine(losses(main=2.0, coarse=1.0, kl=3.0))
    assert total.item() == pytest.approx(2.0 + 0.5 + 0.3)


def test_gdwg_weights_sum_to_one_and_shift_to_slower_falling_losses():
    w = make_weighting(ObjectiveConfig(weighting="gdwg", gdwg_tau=0.5))
    assert sum(w.weights().values()) == pytest.approx(1.0)
    first = dict(main=1.0, coarse=1.0, unimodal=1.0, unified=1.0, kl=1.0, contrast=1.0)
    w.end_epoch(first)
    weights = w.weights()
    assert all(v == pytest.approx(0.25) for v in weights.values())  # equal rates, equal weights
    # unimodal barely falls, kl falls fast: unimodal must gain weight, kl lose it
    w.end_epoch(dict(first, unimodal=0.95, unified=0.6, kl=0.2, contrast=0.6))
    weights = w.weights()
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["unimodal"] > weights["unified"] > weights["kl"]
    assert weights["unified"] == pytest.approx(weights["contrast"])
    rates = np.array([0.95, 0.6, 0.2, 0.6]) / 0.5  # eqs. 13-14 by hand
    expected = np.exp(rates) / np.exp(rates).sum()
    assert [weights[k] for k in ("unimodal", "unified", "kl", "contrast")] == pytest.approx(expected)


def test_gdwg_with_equal_weights_equals_fixed():
    cfg = ObjectiveConfig(weighting="gdwg")
    fixed = make_weighting(ObjectiveConfig())
    gdwg = make_weighting(cfg)
    values = losses(main=1.0, coarse=0.5, unimodal=0.7, unified=0.3, kl=0.2, contrast=0.9)
    assert gdwg.combine(values).item() == pytest.approx(fixed.combine(values).item())


def test_task_attention_learns_and_reports_a_distribution():
    w = make_weighting(ObjectiveConfig(weighting="attention"))
    params = list(w.parameters())
    assert params, "attention weighting must have learnable parameters"
    opt = torch.optim.SGD(params, lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        w.combine(losses(main=0.1, coarse=2.0, unimodal=1.0, unified=1.0, kl=1.0,
                         contrast=1.0)).backward()
        opt.step()
    weights = w.weights()
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["main"] > weights["coarse"]  # the smaller loss gains attention, none collapses
    assert min(weights.values()) > 0.01
