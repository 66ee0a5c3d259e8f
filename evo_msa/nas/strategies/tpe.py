"""Optuna's TPE as a peer strategy (`--strategy tpe`; needs the `bench` extra): the default
sampler of the most used HPO library, through the same engine, policies, budget and resume as
evolution, so users and studies compare on equal terms.

Each gene slot is one Optuna parameter of its natural kind: int (log when the gene is), float,
log-float, categorical (as the index of the choice), ordinal (an ordered index), mask (a
yes/no per choice). Proposals map back to genomes in [0, 1]^n at the centre of what they
decode to, so the engine and the policies see an ordinary genome.

Resume is bit-for-bit without pickling Optuna: the study is rebuilt from the told candidates,
and every proposal uses a sampler seeded from the strategy's checkpointed generator.
"""
from __future__ import annotations

import math

from evo_msa.errors import UserError
from evo_msa.nas.strategies.base import Strategy

STARTUP = 10  # random configurations before TPE models (Optuna's default n_startup_trials)


class TPESearch(Strategy):
    """Optuna's TPE sampler behind the ask/tell interface."""

    name = "tpe"

    def __init__(self, space, settings, seed=0, objectives=1):
        super().__init__(space, settings, seed, objectives)
        try:
            import optuna
        except ImportError:
            raise UserError("--strategy tpe needs optuna (in the checkout: pip install -e "
                            "'.[bench]')") \
                from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.params = _parameters(space)  # (name, distribution, slot, gene) per slot
        self.trial_of: dict[int, int] = {}  # candidate id -> Optuna trial number
        self.study = self._new_study()

    def describe(self) -> str:
        """What the strategy does, for the search's first lines."""
        return (f"tpe (Optuna): {STARTUP} random configurations, then TPE's picks")

    design, model, design_size = "random startup", "TPE model", STARTUP

    def _new_study(self):
        return self.optuna.create_study(directions=["maximize"] * self.objectives)

    def _sampler(self):
        # a sampler per proposal, seeded from the strategy's own (checkpointed) generator: the
        # same stream after a resume; constant_liar keeps parallel proposals apart while
        # others are in flight
        return self.optuna.samplers.TPESampler(multivariate=True, constant_liar=True,
                                              n_startup_trials=STARTUP,
                                              seed=self.rng.randrange(2**31))

    def _refill(self):
        if self.done or self.room <= 0:
            return
        self.study.sampler = self._sampler()
        if self.first_modelled is None and len(self.study.get_trials(
                deepcopy=False, states=(self.optuna.trial.TrialState.COMPLETE,))) >= STARTUP:
            self.first_modelled = self.next_id  # TPE samples from a model from now on
        trial = self.study.ask({name: dist for name, dist, _, _ in self.params})
        genome = [0.0] * self.space.size
        for name, _, slot, gene in self.params:
            genome[slot] = _to_unit(trial.params[name], gene)
        self.generation = self.next_id // self.s.pop_size
        self.trial_of[self._new(genome).id] = trial.number

    def _on_tell(self, cand, trained):
        number = self.trial_of.get(cand.id)
        if number is not None:
            self.study.tell(number, list(cand.score))
        self._count_budget()

    # ---- checkpoint: the study is rebuilt from the candidates ----------------------------
    def _extra_state(self):
        return {}

    def _load_extra_state(self, extra):
        self.study, self.trial_of = self._new_study(), {}
        dists = {name: dist for name, dist, _, _ in self.params}
        for cand in sorted(self.candidates.values(), key=lambda c: c.id):
            params = {name: _from_unit(cand.genome[slot], gene)
                      for name, _, slot, gene in self.params}
            if cand.score is not None:
                self.study.add_trial(self.optuna.trial.create_trial(
                    params=params, distributions=dists, values=list(cand.score)))
            else:  # asked before the stop: in flight again, told later
                self.study.enqueue_trial(params)
                self.trial_of[cand.id] = self.study.ask(dists).number


def _parameters(space):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out, slot = [], 0
    for g in space.genes:
        for k in range(g.size):
            name = f"{g.path}[{k}]" if g.size > 1 else g.path
            if g.type == "mask":
                dist = CategoricalDistribution([False, True])
            elif g.type in ("categorical",):
                dist = CategoricalDistribution(list(range(len(g.choices))))
            elif g.type == "ordinal":
                dist = IntDistribution(0, len(g.choices) - 1)
            elif g.type == "int":
                dist = IntDistribution(int(g.low), int(g.high), log=g.log)
            else:
                dist = FloatDistribution(float(g.low), float(g.high),
                                         log=g.type == "log-float")
            out.append((name, dist, slot, g))
            slot += 1
    return out


def _to_unit(value, gene) -> float:
    """The genome slot value that decodes to `value` (the centre of its interval)."""
    if gene.type == "mask":
        return 0.75 if value else 0.25
    if gene.type in ("categorical", "ordinal"):
        return (int(value) + 0.5) / len(gene.choices)
    lo, hi = float(gene.low), float(gene.high)
    if hi == lo:
        return 0.5
    if gene.type == "log-float" or (gene.type == "int" and gene.log):
        return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    if gene.type == "int":
        return (value - lo + 0.5) / (hi - lo + 1)
    return (value - lo) / (hi - lo)


def _from_unit(u: float, gene):
    """The Optuna parameter value a genome slot decodes to."""
    if gene.type == "mask":
        return u >= 0.5
    value = gene._scalar(u)
    if gene.type in ("categorical", "ordinal"):
        k = len(gene.choices)
        return min(int(min(max(u, 0.0), 1.0) * k), k - 1)
    return value
