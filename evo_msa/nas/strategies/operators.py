"""Variation operators that fit the gene, registered on a DEAP toolbox.

HAEMSA's blend crossover (eq. 9) and Gaussian mutation (eq. 10) mean something only where
nearby slot values are nearby settings: int, float, log-float and ordinal genes. Blending two
unordered choices (categorical, mask) picks whatever category lies "between" them in the list,
so those slots get uniform crossover (each slot from either parent) and resampling mutation (a
categorical slot jumps to another category, a mask slot flips). A space file can choose per
kind:

    operators:
      ordered:   {crossover: blend, mutation: gaussian}     # the defaults
      unordered: {crossover: uniform, mutation: resample}

    toolbox = variation_toolbox(space, settings)
    toolbox.mate(a, b); toolbox.mutate(child)    # in place, on genomes in [0, 1]^n

Every draw comes from Python's global `random` (DEAP's convention), which the strategies swap
for their own generator around these calls.
"""
from __future__ import annotations

import random

from deap import base, tools

from evo_msa.space import SearchSpace


def variation_toolbox(space: SearchSpace, settings) -> base.Toolbox:
    """`mate` and `mutate` over the space's slots, each slot with its kind's operators."""
    genes = space.slot_genes()
    groups = {"ordered": [i for i, g in enumerate(genes) if g.ordered],
              "unordered": [i for i, g in enumerate(genes) if not g.ordered]}
    ops = space.operators
    toolbox = base.Toolbox()
    toolbox.register("mate", _mate, groups=groups, ops=ops, alpha=settings.cx_alpha)
    toolbox.register("mutate", _mutate, groups=groups, ops=ops, genes=genes,
                     sigma=settings.mut_sigma, indpb=settings.mut_indpb)
    return toolbox


def _mate(a, b, *, groups, ops, alpha):
    for kind, slots in groups.items():
        if not slots:
            continue
        sub_a, sub_b = [a[i] for i in slots], [b[i] for i in slots]
        if ops[kind]["crossover"] == "blend":
            tools.cxBlend(sub_a, sub_b, alpha)
        else:
            tools.cxUniform(sub_a, sub_b, indpb=0.5)
        for j, i in enumerate(slots):
            a[i], b[i] = sub_a[j], sub_b[j]
    return a, b


def _mutate(ind, *, groups, ops, genes, sigma, indpb):
    for kind, slots in groups.items():
        if not slots:
            continue
        if ops[kind]["mutation"] == "gaussian":
            sub = [ind[i] for i in slots]
            tools.mutGaussian(sub, 0.0, sigma, indpb)
            for j, i in enumerate(slots):
                ind[i] = sub[j]
            continue
        for i in slots:
            if random.random() < indpb:
                ind[i] = resample(ind[i], genes[i])
    return (ind,)


def resample(u: float, gene) -> float:
    """Another value of one slot: a mask slot flips; a slot with k choices jumps to the centre
    of another choice; a numeric slot draws anew."""
    if gene.type == "mask":
        return 1.0 - u if abs(u - 0.5) > 1e-9 else random.random()
    if gene.type in ("categorical", "ordinal"):
        k = len(gene.choices)
        if k < 2:
            return u
        current = min(int(min(max(u, 0.0), 1.0) * k), k - 1)
        other = random.randrange(k - 1)
        return (other + (other >= current) + 0.5) / k
    return random.random()
