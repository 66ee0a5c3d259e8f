"""Greedy ensemble selection (Caruana et al. 2004) on hand-made prediction arrays."""
import numpy as np
import pytest

from evo_msa.metrics import Objective
from evo_msa.nas.ensemble import NLL, greedy_selection, scorer, selection_objective

TRUTH = np.array([2.0, -1.0, 0.5, -2.5, 1.5, -0.5])


def mae_scorer():
    return scorer(Objective("mae"), TRUTH, task="regression", scale=3.0, label_names=None)


def test_opposite_errors_make_the_ensemble_win_with_replacement():
    # each alone is off by 0.5; their mean is exact: the ensemble must beat either single model
    over, under = TRUTH + 0.5, TRUTH - 0.5
    score = mae_scorer()
    sel = greedy_selection([over, under], score, Objective("mae"), rounds=25)
    # round 1 ties (0.5 each) -> the first; round 2 the other (MAE 0); then they alternate, the
    # first taking every tie: 13 + 12 picks, weights counts/rounds
    assert sel.counts == [13, 12] and sel.weights == [0.52, 0.48]
    assert sel.trace[:3] == pytest.approx([0.5, 0.0, 1 / 6])
    assert sel.score == pytest.approx(0.02)  # |13 x 0.5 - 12 x 0.5| / 25
    assert sel.score < min(score(over), score(under))
    assert sel.members == [0, 1]


def test_a_dominated_candidate_gets_no_weight_and_the_single_model_stays():
    # both biased the same way: any mixture is worse than the better one alone
    good, bad = TRUTH + 0.1, TRUTH + 0.5
    sel = greedy_selection([bad, good], mae_scorer(), Objective("mae"), rounds=25)
    assert sel.counts == [0, 25] and sel.members == [1]
    assert sel.score == pytest.approx(0.1)


def test_a_weak_but_different_member_earns_a_small_weight():
    # one good model and a noisier one with the opposite bias: the mix lands between them
    good, other = TRUTH + 0.2, TRUTH - 0.6
    sel = greedy_selection([good, other], mae_scorer(), Objective("mae"), rounds=20)
    assert sel.counts == [15, 5]  # 0.75 x 0.2 - 0.25 x 0.6 = 0: the exact mix
    assert sel.score == pytest.approx(0.0, abs=1e-12)


def test_maximised_metric_and_nan_scores():
    # correlation (maximised): a constant candidate scores NaN and is never picked
    truth = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    score = scorer(Objective("corr"), truth, task="regression", scale=3.0, label_names=None)
    flat, noisy = np.zeros(5), truth + np.array([0.5, -0.5, 0.5, -0.5, 0.0])
    sel = greedy_selection([flat, noisy], score, Objective("corr"), rounds=5)
    assert sel.counts[1] >= 1 and sel.trace[0] == pytest.approx(score(noisy))


def test_classification_is_scored_on_averaged_probabilities():
    truth = np.array([0, 1, 1])
    p1 = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    p2 = np.array([[0.5, 0.5], [0.1, 0.9], [0.4, 0.6]])
    nll = scorer(Objective(NLL, "min"), truth, task="classification", scale=3.0,
                 label_names=["neg", "pos"])
    expected = -np.mean(np.log([0.7, 0.65, 0.7]))  # the mean of the two, at the true class
    assert nll((p1 + p2) / 2) == pytest.approx(expected)
    sel = greedy_selection([p1, p2], nll, Objective(NLL, "min"), rounds=2)
    assert sel.counts == [1, 1] and sel.score == pytest.approx(expected)


@pytest.mark.parametrize("metric, direction, task, expected", [
    ("mae", "min", "regression", ("mae", "min")),
    ("corr", "max", "regression", ("corr", "max")),
    ("loss", "min", "regression", ("mae", "min")),  # the L1 main-task loss
    ("loss", "min", "classification", (NLL, "min")),
    ("params", "min", "classification", ("weighted_f1", "max")),
])
def test_the_selection_metric_follows_the_search(metric, direction, task, expected):
    names = ["mae", "corr"] if task == "regression" else ["weighted_f1", "acc"]
    obj = selection_objective(metric, direction, task, names)
    assert (obj.metric, obj.direction) == expected
