"""evo_msa.metrics against values worked out by hand (MMSA metricsTop definitions)."""
import math
import warnings

import numpy as np
import pytest
import torch

from evo_msa.metrics import (
    PRIMARY_METRIC,
    Objective,
    classification_metrics,
    compute_metrics,
    regression_metrics,
    sims_metrics,
)

MOSEI_KEYS = {"has0_acc2", "has0_f1", "non0_acc2", "non0_f1", "acc5", "acc7", "mae", "corr"}
SIMS_KEYS = {"acc2", "acc3", "acc5", "f1", "mae", "corr"}


# ---- MOSI / MOSEI ------------------------------------------------------------------------------
def test_acc7_acc5_use_bankers_rounding():
    pred = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.6])
    truth = np.array([1.0, 2.0, 3.0, 0.0, -2.0, 3.0])
    m = regression_metrics(pred, truth)
    # acc7 (clip [-3,3], np.round half-to-even):
    #   pred  -> 0, 2, 2, -0, -2, 3      truth -> 1, 2, 3, 0, -2, 3
    #   equal:   n, y, n,  y,  y, y  -> 4/6
    #   (round-half-away-from-zero would give 1,2,3,-1,-2,3 -> 5/6)
    assert m["acc7"] == pytest.approx(4 / 6)
    # acc5 (clip [-2,2]): pred 0.5,1.5,2,-0.5,-1.5,2 -> 0,2,2,-0,-2,2
    #                     truth 1,2,2,0,-2,2            -> 1,2,2,0,-2,2
    #   equal: n, y, y, y, y, y -> 5/6
    assert m["acc5"] == pytest.approx(5 / 6)


def test_clipping_for_acc5_acc7_but_not_mae():
    pred = np.array([2.2, -4.0, 0.4])
    truth = np.array([3.0, -2.6, 1.0])
    m = regression_metrics(pred, truth)
    # acc7: pred clip -> 2.2, -3, 0.4 -> 2, -3, 0;  truth 3, -2.6, 1 -> 3, -3, 1  => n, y, n = 1/3
    assert m["acc7"] == pytest.approx(1 / 3)
    # acc5: pred clip -> 2, -2, 0.4 -> 2, -2, 0;  truth clip 2, -2, 1 -> 2, -2, 1  => y, y, n = 2/3
    #   (truth 3 and pred 2.2 both become class 2)
    assert m["acc5"] == pytest.approx(2 / 3)
    # mae unclipped: |2.2-3| + |-4+2.6| + |0.4-1| = 0.8 + 1.4 + 0.6 = 2.8 -> 2.8/3
    assert m["mae"] == pytest.approx(2.8 / 3)


def test_mae_is_unclipped():
    # |5-3| + |1-1| + |-1-0| = 2 + 0 + 1 = 3 -> 3/3 = 1.0 (clipped to [-3,3] it would be 1/3)
    m = regression_metrics(np.array([5.0, 1.0, -1.0]), np.array([3.0, 1.0, 0.0]))
    assert m["mae"] == pytest.approx(1.0)


def test_has0_and_non0_differ_when_truth_has_zeros():
    truth = np.array([0.0, 0.0, 1.0, -1.0, 2.0, -2.0])
    pred = np.array([0.0, -0.5, 0.0, -1.0, 1.0, 0.5])
    m = regression_metrics(pred, truth)
    # has0: truth>=0 -> T,T,T,F,T,F ; pred>=0 -> T,F,T,F,T,T (pred 0 counts positive)
    #   equal: y,n,y,y,y,n -> 4/6
    assert m["has0_acc2"] == pytest.approx(4 / 6)
    # has0 F1: positive (support 4): TP idx0,2,4 = 3, FP idx5 = 1, FN idx1 = 1 -> 6/8 = 0.75
    #          negative (support 2): TP idx3 = 1, FP idx1 = 1, FN idx5 = 1 -> 2/4 = 0.5
    #   weighted = (4*0.75 + 2*0.5)/6 = 4/6
    assert m["has0_f1"] == pytest.approx(4 / 6)
    # non0: drop truth==0 (idx0,1) -> truth 1,-1,2,-2 >0: T,F,T,F ; pred 0,-1,1,0.5 >0: F,F,T,T
    #   (pred 0 now counts negative) equal: n,y,y,n -> 2/4
    assert m["non0_acc2"] == pytest.approx(0.5)
    # non0 F1: positive: TP 1 (2.0), FP 1 (-2 vs 0.5), FN 1 (1 vs 0) -> 2/4 = 0.5
    #          negative: TP 1 (-1), FP 1 (1 vs 0), FN 1 (-2 vs 0.5) -> 0.5 ; weighted 0.5
    assert m["non0_f1"] == pytest.approx(0.5)
    assert set(m) == MOSEI_KEYS


def test_weighted_f1_imbalanced():
    truth = np.array([1.0, 2.0, 3.0, 1.0, 2.0, -1.0, -2.0])   # 5 positive, 2 negative
    pred = np.array([1.0, 2.0, -1.0, 1.0, 2.0, 1.0, -2.0])
    m = regression_metrics(pred, truth)
    # positive: TP idx0,1,3,4 = 4, FP idx5 = 1, FN idx2 = 1 -> F1 = 8/10 = 0.8
    # negative: TP idx6 = 1, FP idx2 = 1, FN idx5 = 1      -> F1 = 2/4 = 0.5
    # weighted = (5*0.8 + 2*0.5)/7 = 5/7  (macro would be 0.65)
    assert m["has0_f1"] == pytest.approx(5 / 7)
    assert m["non0_f1"] == pytest.approx(5 / 7)  # no zeros anywhere: same split
    # accuracy: all but idx2 and idx5 -> 5/7
    assert m["has0_acc2"] == pytest.approx(5 / 7)


def test_corr_linear_and_antilinear():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert regression_metrics(x, 2 * x + 1)["corr"] == pytest.approx(1.0)
    assert regression_metrics(x, -x)["corr"] == pytest.approx(-1.0)


def test_constant_pred_gives_nan_corr_without_warnings():
    pred = np.full(4, 0.5)
    truth = np.array([-1.0, 0.0, 1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = regression_metrics(pred, truth)
        assert math.isnan(regression_metrics(truth, pred)["corr"])  # constant truth too
    assert math.isnan(m["corr"])
    # has0: truth>=0 F,T,T,T ; pred all T -> 3/4
    # F1 positive: TP 3, FP 1, FN 0 -> 6/7 ; negative never predicted -> 0
    # weighted = (3*6/7 + 1*0)/4 = 9/14
    assert m["has0_acc2"] == pytest.approx(3 / 4)
    assert m["has0_f1"] == pytest.approx(9 / 14)
    # non0: drop truth 0 -> truth -1,1,2 >0: F,T,T ; pred T,T,T -> 2/3
    # F1 positive: TP 2, FP 1 -> 4/5 ; negative 0 ; weighted = 2*0.8/3 = 8/15
    assert m["non0_acc2"] == pytest.approx(2 / 3)
    assert m["non0_f1"] == pytest.approx(8 / 15)


def test_torch_input_and_plain_floats():
    pred = torch.tensor([[0.5], [1.5], [-2.0]], requires_grad=True)  # (N, 1) is flattened
    truth = torch.tensor([0.0, 2.0, -2.0])
    m = regression_metrics(pred, truth)
    # acc7: 0.5->0, 1.5->2, -2->-2 vs 0, 2, -2 -> 3/3 ; mae (0.5 + 0.5 + 0)/3 = 1/3
    assert m["acc7"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx(1 / 3)
    assert all(type(v) is float for v in m.values())


def test_all_zero_truth_leaves_non0_nan():
    m = regression_metrics(np.array([0.5, -0.5]), np.array([0.0, 0.0]))
    assert math.isnan(m["non0_acc2"]) and math.isnan(m["non0_f1"])
    assert m["has0_acc2"] == pytest.approx(0.5)  # truth T,T ; pred T,F


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        regression_metrics(np.array([1.0, 2.0]), np.array([1.0]))


# ---- CH-SIMS -----------------------------------------------------------------------------------
def test_sims_right_closed_bins_and_clipping():
    pred = np.array([0.0, 0.1, -0.1, 0.7, 1.5, -0.75, 0.05])
    truth = np.array([0.0, 0.2, -0.2, 0.8, 1.0, -1.3, -0.05])
    m = sims_metrics(pred, truth)
    # clipped: pred 1.5 -> 1.0, truth -1.3 -> -1.0
    # 2 classes [-1,0],(0,1]:  pred  0,1,0,1,1,0,1   truth 0,1,0,1,1,0,0  -> 6/7
    assert m["acc2"] == pytest.approx(6 / 7)
    # 3 classes [-1,-0.1],(-0.1,0.1],(0.1,1]:
    #   pred  0->1, 0.1->1, -0.1->0, 0.7->2, 1->2, -0.75->0, 0.05->1
    #   truth 0->1, 0.2->2, -0.2->0, 0.8->2, 1->2, -1->0,   -0.05->1   -> n at idx1 -> 6/7
    assert m["acc3"] == pytest.approx(6 / 7)
    # 5 classes [-1,-.7],(-.7,-.1],(-.1,.1],(.1,.7],(.7,1]:
    #   pred  2, 2, 1, 3, 4, 0, 2  (0.7 -> class 3)
    #   truth 2, 3, 1, 4, 4, 0, 2  -> n at idx1, idx3 -> 5/7
    assert m["acc5"] == pytest.approx(5 / 7)
    # F1 on 2 classes: truth 0,1,0,1,1,0,0 ; pred 0,1,0,1,1,0,1
    #   class 0 (support 4): TP 3, FP 0, FN 1 -> 6/7 ; class 1 (support 3): TP 3, FP 1, FN 0 -> 6/7
    #   weighted = 6/7
    assert m["f1"] == pytest.approx(6 / 7)
    # mae on clipped: 0 + .1 + .1 + .1 + 0 (1.5->1 vs 1) + .25 (-.75 vs -1) + .1 = 0.65 -> 0.65/7
    assert m["mae"] == pytest.approx(0.65 / 7)
    assert set(m) == SIMS_KEYS


def test_sims_corr_on_clipped_values():
    pred = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    truth = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    m = sims_metrics(pred, truth)
    # clipped pred == truth: corr 1 and mae 0 (unclipped corr < 1, mae 0.4)
    assert m["corr"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx(0.0)


def test_sims_float32_edges_as_mmsa():
    # MMSA reads float32 tensors; float32 0.1 is compared as float32 and stays in (-0.1, 0.1]
    pred = torch.tensor([0.1, -0.1, 0.7], dtype=torch.float32)
    truth = torch.tensor([0.0, -0.5, 0.5], dtype=torch.float32)
    m = sims_metrics(pred, truth)
    # 3 classes: pred 1, 0, 2 ; truth 1, 0, 2 -> 1.0 ; 5 classes: pred 2, 1, 3 ; truth 2, 1, 3 -> 1.0
    assert m["acc3"] == pytest.approx(1.0)
    assert m["acc5"] == pytest.approx(1.0)


# ---- classification ----------------------------------------------------------------------------
NAMES = ["neutral", "happy", "sad", "angry"]
CLS_TRUTH = np.array([0, 0, 0, 0, 0, 1, 2])
CLS_PRED = np.array([0, 0, 0, 0, 0, 0, 2])


def test_classification_acc_vs_unweighted_acc():
    m = classification_metrics(CLS_PRED, CLS_TRUTH, NAMES)
    # acc: all but idx5 -> 6/7
    assert m["acc"] == pytest.approx(6 / 7)
    # recall over present classes: neutral 5/5, happy 0/1, sad 1/1 -> (1+0+1)/3 = 2/3
    # ("angry" is absent from truth and does not count)
    assert m["unweighted_acc"] == pytest.approx(2 / 3)
    # F1: neutral TP 5, FP 1, FN 0 -> 10/11 ; happy 0 ; sad 1 ; angry 0
    # weighted = (5*10/11 + 1*0 + 1*1)/7 = 61/77
    assert m["weighted_f1"] == pytest.approx(61 / 77)
    assert m["f1_neutral"] == pytest.approx(10 / 11)
    assert m["f1_happy"] == 0.0
    assert m["f1_sad"] == pytest.approx(1.0)
    assert m["f1_angry"] == 0.0
    assert set(m) == {"acc", "unweighted_acc", "weighted_f1"} | {f"f1_{n}" for n in NAMES}


def test_classification_accepts_logits():
    logits = np.eye(4)[CLS_PRED] * 3.0 - 1.0   # argmax is CLS_PRED
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_logits = classification_metrics(torch.from_numpy(logits), torch.from_numpy(CLS_TRUTH), NAMES)
    assert from_logits == classification_metrics(CLS_PRED, CLS_TRUTH, NAMES)


# ---- dispatch and direction --------------------------------------------------------------------
def test_compute_metrics_dispatch():
    x = np.array([-0.5, 0.0, 0.5, 1.0])
    assert set(compute_metrics(x, x, task="regression")) == MOSEI_KEYS
    assert set(compute_metrics(x, x, task="regression", scale=3.0)) == MOSEI_KEYS
    assert compute_metrics(x, x, task="regression", scale=1.0) == sims_metrics(x, x)
    assert (compute_metrics(CLS_PRED, CLS_TRUTH, task="classification", label_names=NAMES)
            == classification_metrics(CLS_PRED, CLS_TRUTH, NAMES))
    with pytest.raises(ValueError):
        compute_metrics(CLS_PRED, CLS_TRUTH, task="classification")
    with pytest.raises(ValueError):
        compute_metrics(x, x, task="ranking")


def test_objective_direction_and_primary():
    for name in ("mae", "loss", "valid_loss", "main_loss", "params"):
        assert Objective(name).direction == "min" and Objective(name).sign == 1.0
    for name in ("acc7", "has0_f1", "corr", "weighted_f1", "unweighted_acc"):
        assert Objective(name).direction == "max" and Objective(name).sign == -1.0
    assert PRIMARY_METRIC == {"regression": "mae", "classification": "weighted_f1"}
    corr = Objective("corr")
    assert corr.better(0.7, 0.6) and not corr.better(0.6, 0.7) and not corr.better(float("nan"), 0.1)
    assert Objective("corr", "min").better(0.6, 0.7)  # an explicit direction wins
    assert Objective("mae").loss(0.5) == 0.5 and corr.loss(0.5) == -0.5
    assert Objective("mae").worst() == float("inf") and corr.worst() == float("-inf")
    with pytest.raises(ValueError):
        Objective("mae", "down")


# ---- the numpy counting against sklearn.metrics ------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_classification_counts_match_sklearn(seed):
    """Accuracy, weighted F1, per-class F1 and balanced accuracy equal sklearn's (zero_division
    0) on imbalanced labels, with classes missing from the truth or from the predictions."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    rng = np.random.default_rng(seed)
    k = 6
    t = rng.choice(k, size=int(rng.integers(5, 60)), p=[0.4, 0.3, 0.15, 0.1, 0.05, 0.0])
    p = np.where(rng.random(t.size) < 0.5, t, rng.integers(0, k - seed % 2, t.size))
    got = classification_metrics(p, t, [f"c{i}" for i in range(k)])
    assert got["acc"] == pytest.approx(accuracy_score(t, p))
    assert got["weighted_f1"] == pytest.approx(f1_score(t, p, average="weighted",
                                                        zero_division=0))
    assert got["unweighted_acc"] == pytest.approx(
        recall_score(t, p, average="macro", labels=np.unique(t), zero_division=0))
    per = f1_score(t, p, average=None, labels=list(range(k)), zero_division=0)
    assert [got[f"f1_c{i}"] for i in range(k)] == pytest.approx(list(per))


def test_binary_f1_matches_sklearn_when_one_side_is_constant():
    from sklearn.metrics import f1_score

    t = np.array([1.0, 2.0, -1.0, 0.5, 3.0, -0.2])
    for pred in (np.ones(6), -np.ones(6), t):
        got = regression_metrics(pred, t)["has0_f1"]
        assert got == pytest.approx(f1_score(t >= 0, pred >= 0, average="weighted",
                                             zero_division=0))
