"""Operators that fit the gene: blend and Gaussian on ordered slots; uniform crossover and
resampling on unordered ones (categorical jumps to another choice, a mask slot flips)."""
import random

import pytest

from evo_msa.errors import UserError
from evo_msa.nas.strategies import StrategySettings
from evo_msa.nas.strategies.operators import resample, variation_toolbox
from evo_msa.space import parse_space

RAW = {"genes": {"model.depth": {"type": "int", "low": 0, "high": 3},
                 "model.modalities": {"type": "mask", "choices": ["text", "audio", "vision"]},
                 "loss.weighting": {"type": "categorical",
                                         "choices": ["fixed", "gdwg", "attention"]}}}
ORDERED, MASK, CATEGORICAL = [0], [1, 2, 3], [4]


def test_uniform_crossover_keeps_each_unordered_slot_of_a_parent():
    toolbox = variation_toolbox(parse_space(RAW, "s.yaml"), StrategySettings(pop_size=4))
    random.seed(0)
    for _ in range(200):
        a, b = [0.1, 0.2, 0.7, 0.9, 0.1], [0.9, 0.8, 0.3, 0.1, 0.9]
        pa, pb = list(a), list(b)
        toolbox.mate(a, b)
        for i in MASK + CATEGORICAL:  # swapped or kept, never blended "between"
            assert {a[i], b[i]} == {pa[i], pb[i]}


def test_resampling_changes_an_unordered_slot_and_never_blends():
    space = parse_space(RAW, "s.yaml")
    genes = space.slot_genes()
    random.seed(1)
    for _ in range(100):
        u = random.random()
        assert (resample(u, genes[1]) >= 0.5) != (u >= 0.5)  # a mask slot flips
        new = resample(u, genes[4])
        assert min(int(new * 3), 2) != min(int(u * 3), 2)  # another category, at its centre
        assert abs(new * 3 - int(new * 3) - 0.5) < 1e-9


def test_mutation_moves_ordered_slots_by_gaussian_steps():
    toolbox = variation_toolbox(parse_space(RAW, "s.yaml"),
                                StrategySettings(pop_size=4, mut_indpb=1.0, mut_sigma=0.01))
    random.seed(2)
    child = [0.5, 0.2, 0.7, 0.9, 0.1]
    toolbox.mutate(child)
    assert 0.45 < child[0] < 0.55 and child[0] != 0.5  # a small step, not a jump
    assert [child[i] >= 0.5 for i in MASK] == [True, False, False]  # every mask slot flipped


def test_a_space_may_choose_the_operators():
    space = parse_space({**RAW, "operators": {"unordered": {"crossover": "blend"}}}, "s.yaml")
    assert space.operators["unordered"] == {"crossover": "blend", "mutation": "resample"}
    with pytest.raises(UserError, match="operators.unordered.crossover must be one of"):
        parse_space({**RAW, "operators": {"unordered": {"crossover": "average"}}}, "s.yaml")
