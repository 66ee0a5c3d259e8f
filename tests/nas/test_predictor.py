from types import SimpleNamespace

import numpy as np
import pytest

from evo_msa.nas.strategies.predictor import Slots, pooled_noise, smoothed_estimates


def test_the_noise_of_one_training_is_pooled_over_re_trained_configurations():
    assert pooled_noise([[1.0], [2.0]]) is None  # nothing trained twice: unknown
    # deviations 0.5, -0.5 (1 dof) and 1, 0, -1 (2 dof): (0.5 + 2) / 3
    assert pooled_noise([[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]]) == pytest.approx(2.5 / 3)


def _landscape(n=60, seed=0):
    gene = SimpleNamespace(type="float", log=False)
    space = SimpleNamespace(slot_genes=lambda: [gene, gene])  # two continuous slots
    rng = np.random.default_rng(seed)
    G = rng.random((n, 2))
    truth = (G[:, 0] - 0.3) ** 2 + (G[:, 1] - 0.6) ** 2  # smooth, to maximise its negative
    return Slots(space), G, -truth


def test_a_precise_mean_is_trusted_and_a_noisy_one_is_shrunk_towards_its_neighbours():
    slots, G, truth = _landscape()
    means, counts = truth.copy(), np.full(len(truth), 2)
    means[7] += 1.0  # one configuration far off its neighbours
    precise = smoothed_estimates(slots, G, means, counts, seed=0, noise=1e-9)
    noisy = smoothed_estimates(slots, G, means, counts, seed=0, noise=100.0)
    assert precise[7] == pytest.approx(means[7], abs=1e-3)
    assert noisy[7] < means[7] - 0.7  # near what its neighbours say
    # without a noise estimate: a fixed c / (c + 1) = 2/3 on the mean
    fixed = smoothed_estimates(slots, G, means, counts, seed=0)
    assert precise[7] > fixed[7] > noisy[7]


def test_the_weight_on_a_mean_grows_with_its_trainings():
    slots, G, truth = _landscape()
    means = truth.copy()
    means[3] += 0.5
    once = smoothed_estimates(slots, G, means, np.ones(len(G)), seed=0, noise=1e-3)
    counts = np.ones(len(G))
    counts[3] = 8
    often = smoothed_estimates(slots, G, means, counts, seed=0, noise=1e-3)
    assert abs(often[3] - means[3]) < abs(once[3] - means[3]) / 2


def test_under_noise_the_shrunk_estimate_picks_better_than_the_luckiest_draw():
    """On a smooth landscape with one noisy training each and a few re-trained, the best
    estimate is truly better, over many draws, than the best observed mean."""
    regret_mean, regret_shrunk = [], []
    for rep in range(40):
        slots, G, truth = _landscape(seed=rep)
        rng = np.random.default_rng(1000 + rep)
        sigma = 0.1
        scores = [[t + sigma * rng.standard_normal()] for t in truth]
        for j in np.argsort([-s[0] for s in scores])[:5]:  # the top five re-trained twice more
            scores[j] += list(truth[j] + sigma * rng.standard_normal(2))
        means = np.array([np.mean(s) for s in scores])
        counts = np.array([len(s) for s in scores])
        shrunk = smoothed_estimates(slots, G, means, counts, seed=rep, noise=pooled_noise(scores))
        regret_mean.append(truth.max() - truth[np.argmax(means)])
        regret_shrunk.append(truth.max() - truth[np.argmax(shrunk)])
    assert np.mean(regret_shrunk) < 0.8 * np.mean(regret_mean)
