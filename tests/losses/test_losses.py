import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evo_msa.config import LossConfig
from evo_msa.losses import TERMS, TaskWeighting, coarse_labels
from evo_msa.losses.terms import (
    MAIN,
    PopulationLoss,
    TaskLabels,
    cross_entropy,
    kl_transfer,
    multi_nt_xent,
    pearson,
)
from evo_msa.models.layers import ParamStore


class _Model:  # what PopulationLoss reads from the model
    def __init__(self, P):
        self.device = torch.device("cpu")
        self.classification = False
        self.unified = torch.ones(P, dtype=torch.bool)
        self.contrast_on = torch.ones(P, dtype=torch.bool)


def test_regression_losses_per_member_on_hand_values():
    objective = PopulationLoss([LossConfig(regression_loss="l1"),
                                     LossConfig(regression_loss="smooth_l1", smooth_beta=1.0)],
                                    _Model(2))
    pred, y = torch.tensor([[0.0, 2.0, -1.0]] * 2), torch.tensor([[1.0, 2.0, 1.0]] * 2)
    l1, smooth = objective.regression_loss(pred, y).tolist()
    assert l1 == pytest.approx((1 + 0 + 2) / 3)
    # smooth L1 with beta 1: |d|=1 is not < 1 -> 1 - 0.5 = 0.5; 0; 2 - 0.5 = 1.5
    assert smooth == pytest.approx((0.5 + 0 + 1.5) / 3)


def test_pearson_matches_numpy_per_member():
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=(3, 20)), rng.normal(size=(3, 20))
    pred[1] = 2 * y[1] + 1  # perfectly correlated member
    got = pearson(torch.tensor(pred), torch.tensor(y)).tolist()
    for p in range(3):
        assert got[p] == pytest.approx(np.corrcoef(pred[p], y[p])[0, 1], abs=1e-6)
    assert got[1] == pytest.approx(1.0, abs=1e-6)


def test_corr_weight_adds_one_minus_pearson_to_the_main_term_of_its_member_only():
    only_main = dict(lambda_coarse=0.0, lambda_unimodal=0.0, lambda_unified=0.0, gamma_kl=0.0,
                     lambda_contrast=0.0)
    model = _Model(2)
    model.modality_mask = torch.ones(2, 3, dtype=torch.bool)
    objective = PopulationLoss([LossConfig(**only_main),
                                     LossConfig(corr_weight=0.5, **only_main)], model)
    pred = torch.tensor([[0.0, 2.0, -1.0, 0.5]] * 2)
    y = torch.tensor([[1.0, 2.0, 1.0, -0.5]] * 2)
    terms = objective.losses(SimpleNamespace(main=pred), TaskLabels(main=y))
    l1 = (pred[0] - y[0]).abs().mean().item()
    r = np.corrcoef(pred[0].numpy(), y[0].numpy())[0, 1]
    assert terms[0, MAIN].item() == pytest.approx(l1)
    assert terms[1, MAIN].item() == pytest.approx(l1 + 0.5 * (1 - r), rel=1e-5)
    assert terms[:, MAIN + 1:].abs().sum().item() == 0


def test_cross_entropy_with_label_smoothing_over_the_members_classes():
    logits = torch.tensor([[[2.0, 0.0, -1.0e4]]])  # a member with 2 of 3 padded classes
    target = torch.tensor([[0]])
    logp = torch.log_softmax(torch.tensor([2.0, 0.0]), 0)
    assert cross_entropy(logits, target).item() == pytest.approx(-logp[0].item(), rel=1e-6)
    smoothed = cross_entropy(logits, target, torch.tensor([0.2]), torch.tensor([[True, True, False]]))
    expected = 0.8 * -logp[0] + 0.2 * -(logp.sum() / 2)
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6)


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


def experts(*rows):
    """(P=1, K, B=1, C) expert logits, the shared (unified) expert last."""
    return torch.stack([torch.tensor([r]) for r in rows])[None]


def test_kl_transfer_is_zero_for_equal_experts_and_teaches_only_students():
    shared = [2.0, 0.0, -1.0]
    assert kl_transfer(experts(shared, shared), torch.ones(1, 1)).item() == pytest.approx(0, abs=1e-7)
    logits = experts(shared, [0.0, 0.0, 0.0], shared).requires_grad_(True)
    loss = kl_transfer(logits, torch.ones(1, 2))
    p = torch.softmax(torch.tensor(shared), -1)
    expected = (p * (p.log() - math.log(1 / 3))).sum()  # KL(p_s || uniform), eq. 12
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert logits.grad[0, -1].abs().sum() == 0  # the unified expert is the teacher
    assert logits.grad[0, 1].abs().sum() > 0
    # a modality the member does not have contributes nothing
    masked = kl_transfer(experts(shared, [0.0, 0.0, 0.0], shared), torch.tensor([[1.0, 0.0]]))
    assert masked.item() == pytest.approx(0.0, abs=1e-7)


def contrast(*pairs):
    """(similar, dissimilar), each (P=1, M, B=1, D)."""
    sim = torch.stack([torch.tensor([s]) for s, _ in pairs])[None]
    dis = torch.stack([torch.tensor([d]) for _, d in pairs])[None]
    return sim, dis


def test_multi_nt_xent_matches_hand_computation():
    e1, e2, m1 = [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]
    # anchor text_s = e1; positives: audio_s = e1 (cos 1), vision_s = e2 (cos 0)
    # negatives: text_d = e2 (0), audio_d = -e1 (-1), vision_d = e1 (1)
    pairs = contrast((e1, e2), (e1, m1), (e2, e1))
    tau = 0.5
    pos = math.exp(1 / tau) + math.exp(0)
    allp = pos + math.exp(0) + math.exp(-1 / tau) + math.exp(1 / tau)
    value = multi_nt_xent(pairs, torch.ones(1, 3), torch.tensor([tau]), torch.tensor([0]))
    assert value.item() == pytest.approx(-math.log(pos / allp), rel=1e-6)
    # perfectly separated features drive it towards zero (eq. 4), several positives or not
    good = contrast((e1, m1), (e1, m1), (e1, m1))
    assert multi_nt_xent(good, torch.ones(1, 3), torch.tensor([0.05]), torch.tensor([0])).item() < 1e-6


def test_multi_nt_xent_anchor_and_masked_modalities():
    e1, m1, e2 = [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]
    # text masked: audio is the anchor, vision the positive; the text pair must not count
    pairs = contrast((e2, e1), (e1, m1), (e1, m1))
    value = multi_nt_xent(pairs, torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([0.1]),
                          torch.tensor([1]))
    assert value.item() < 1e-6
    one = multi_nt_xent(pairs, torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0.1]),
                        torch.tensor([1]))
    assert one.item() == 0.0  # one modality: no positive pair, no contrast


def weighting(*configs):
    store = ParamStore(len(configs))
    w = TaskWeighting(list(configs), store)
    store.materialise(torch.device("cpu"), list(range(len(configs))))
    weights = torch.tensor([[c.lambda_main, c.lambda_coarse, c.lambda_unimodal, c.lambda_unified,
                             c.gamma_kl, c.lambda_contrast] for c in configs])
    w.setup(weights, weights > 0)
    return w, store


def losses(**values):
    return torch.tensor([[values.get(t, 0.0) for t in TERMS]])


def test_fixed_weighting_is_the_weighted_sum():
    w, _ = weighting(LossConfig(lambda_main=1.0, lambda_coarse=0.5, gamma_kl=0.1))
    total = w.combine(losses(main=2.0, coarse=1.0, kl=3.0))
    assert total.item() == pytest.approx(2.0 + 0.5 + 0.3)


def test_gdwg_weights_sum_to_one_and_shift_to_slower_falling_losses():
    w, _ = weighting(LossConfig(weighting="gdwg", gdwg_tau=0.5))
    assert sum(w.weights(0).values()) == pytest.approx(1.0)
    first = dict(main=1.0, coarse=1.0, unimodal=1.0, unified=1.0, kl=1.0, contrast=1.0)
    w.end_epoch(losses(**first))
    assert all(v == pytest.approx(0.25) for v in w.weights(0).values())  # equal rates, equal weights
    # unimodal barely falls, kl falls fast: unimodal must gain weight, kl lose it
    w.end_epoch(losses(**dict(first, unimodal=0.95, unified=0.6, kl=0.2, contrast=0.6)))
    weights = w.weights(0)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["unimodal"] > weights["unified"] > weights["kl"]
    assert weights["unified"] == pytest.approx(weights["contrast"])
    rates = np.array([0.95, 0.6, 0.2, 0.6]) / 0.5  # eqs. 13-14 by hand
    expected = np.exp(rates) / np.exp(rates).sum()
    assert [weights[k] for k in ("unimodal", "unified", "kl", "contrast")] == pytest.approx(expected)


def test_gdwg_with_equal_weights_equals_fixed_and_members_keep_their_own_kind():
    w, _ = weighting(LossConfig(), LossConfig(weighting="gdwg"))
    values = losses(main=1.0, coarse=0.5, unimodal=0.7, unified=0.3, kl=0.2, contrast=0.9)
    fixed, gdwg = w.combine(values.expand(2, -1)).tolist()
    assert gdwg == pytest.approx(fixed)
    w.end_epoch(losses(main=1, coarse=1, unimodal=1, unified=1, kl=1, contrast=1).expand(2, -1))
    w.end_epoch(losses(main=1, coarse=1, unimodal=0.9, unified=0.1, kl=0.5, contrast=0.5)
                .expand(2, -1))
    fixed, gdwg = w.combine(values.expand(2, -1)).tolist()
    assert fixed == pytest.approx(1.0 + 0.15 + 0.14 + 0.06 + 0.02 + 0.045)  # unchanged
    assert gdwg != pytest.approx(fixed)


def test_task_attention_learns_and_reports_a_distribution():
    w, store = weighting(LossConfig(weighting="attention"))
    opt = torch.optim.SGD([store.params["weighting.log_var"]], lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        w.combine(losses(main=0.1, coarse=2.0, unimodal=1.0, unified=1.0, kl=1.0,
                         contrast=1.0)).sum().backward()
        opt.step()
    weights = w.weights(0)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["main"] > weights["coarse"]  # the smaller loss gains attention, none collapses
    assert min(weights.values()) > 0.01
