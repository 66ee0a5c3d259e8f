"""HAEMSA trainings as the evaluator: a genome decodes into a run config, and a batch of members
(genomes x seeds) trains as one population on train, scored on valid. The test split is not even
held here, so selection can never touch it.

A batch that runs out of GPU memory is split in halves and retried, not penalised; one training
that diverges or fails is penalised alone (a member whose config breaks the batch is found by
bisection). Per epoch, `progress` gets each training's best validation metrics so far (what an
early-stopped batch keeps) and the final outcomes of the trainings that have ended (stopped at a
rung, by patience or at the budget): a trial reports those as they come, not at its end.

The space's `fidelity` (space.fidelity) halves the genomes of a batch at its rungs, or screens
them on the frozen encoder first (one objective; with several, every genome trains its whole
budget): they are ranked by the first measured objective, the mean over their seeds.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

from evo_msa.data.dataset import DataInfo, MSAData
from evo_msa.metrics import Objective
from evo_msa.models import member_parameters
from evo_msa.nas.evaluators.base import Description, Evaluator, Member, Outcome, Progress
from evo_msa.space import SearchSpace
from evo_msa.space.fidelity import Fidelity
from evo_msa.space.fitness import NETWORK_OBJECTIVES
from evo_msa.status import Status

# genomes per CPU trial under a frozen-encoder screen: at keep 1/2, batches of 4 found as good
# a genome per CPU-minute as batches of 8 on MOSI (experiments/results/finetune_budget/), and
# the strategy proposes half as many blind before its first results
SCREEN_BATCH = 4


class HaemsaEvaluator(Evaluator):
    """HAEMSA trainings: a genome decodes into a run config, members train together as one
    population (with successive halving when the space's fidelity asks)."""

    kind = "haemsa"
    needs_ray = True

    def __init__(self, space: SearchSpace, info: DataInfo, data: MSAData | None = None,
                 data_spec: str | None = None, device: str = "cpu"):
        """`data` (its test split is dropped here), or `data_spec`: each process that evaluates
        reads it itself, once (trials on the nodes of a cluster with a shared filesystem)."""
        super().__init__(space)
        if data is not None:  # a bad encoder or text fails here, before any run starts
            for name in text_encoders(space):
                from evo_msa.models.pretrained import check_text

                check_text(data, name)
        self.info, self.device, self.data_spec = info, device, data_spec
        self._data = data.without_test() if data is not None else None
        measured = [o for o in space.fitness.objectives if o.metric not in NETWORK_OBJECTIVES]
        self.watch = [o.metric for o in measured]  # validation metrics computed every epoch
        self.objective = measured[0] if measured else None  # what early stopping compares

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.data_spec is not None:
            state["_data"] = None  # read where it runs, not shipped
        return state

    @property
    def data(self) -> MSAData:
        """The search's data (train and valid; read on first use where it runs)."""
        if self._data is None:
            self._data = search_split(self.data_spec)
        return self._data

    def describe(self, genome: list[float]) -> Description:
        """Decode a genome into its genes, run config, architecture key and parameter count (or why
        it cannot be built)."""
        avail = self.info.modalities
        cfg = self.space.to_config(genome, available=avail)
        genes = self.space.decode(genome, avail)
        key = self.space.architecture_key(cfg, self.info.seq_lens)
        try:
            return Description(genes, cfg.to_dict(), key, member_parameters(cfg, self.info))
        except ValueError as exc:  # e.g. a modality mask that keeps none of the data's
            return Description(genes, cfg.to_dict(), key, rejected=str(exc))

    def identity(self, genome: list[float]) -> str:
        """Without counting parameters (a tenth of describe's time)."""
        cfg = self.space.to_config(genome, available=self.info.modalities)
        return self.space.architecture_key(cfg, self.info.seq_lens)

    def describe_data(self) -> str:
        """The data's one-line description (the kind alone before it is read)."""
        return self.data.describe() if self._data is not None or self.data_spec else self.kind

    def cpu_batch_cap(self) -> int | None:
        """1 where a genome may fine-tune a pretrained encoder: its layers' compute is each
        member's own (MOSI, MiniLM, 2 cores: ~19 s an epoch per member with every layer), so a
        trial trains one genome and the strategy hears of each result at once; SCREEN_BATCH
        where the space screens genomes on the frozen encoder (the screen ranks a batch)."""
        if not self.space.fine_tunes:
            return None
        return SCREEN_BATCH if self.space.fidelity.screen else 1

    def max_epochs(self) -> int:
        """train.epochs: its largest value when it is a gene, else the space's fixed value."""
        return int(max(self.space.values_of("train.epochs")))

    def evaluate(self, members: list[Member], progress: Progress | None = None
                 ) -> list[Outcome]:
        """Train the members as one population; one outcome per member (a failed member gets ERROR
        or NAN, never an exception)."""
        from evo_msa.training.trainer import resolve_device

        device = resolve_device(self.device)
        best: dict[int, tuple[float, Outcome]] = {}  # member index -> best so far
        # final outcomes as trainings end (a batch retrained after a failure: the first)
        ended: dict[tuple[int, int], Outcome] = {}

        def on_end(outcomes: list[Outcome]) -> None:
            for o in outcomes:
                ended.setdefault((o.eval_id, o.seed), o)

        def on_epoch(epoch: int, valid: dict[int, dict | None]) -> None:
            for i, metrics in valid.items():
                if metrics is None or self.objective is None:
                    continue
                value = self.objective.loss(metrics.get(self.objective.metric, math.nan))
                if i not in best or (math.isfinite(value) and value < best[i][0]):
                    best[i] = (value, Outcome(members[i].eval_id, members[i].seed,
                                              Status.EARLY_STOPPED, dict(metrics), epoch))
            progress(epoch, [o for _, o in best.values()], list(ended.values()))

        fidelity = None if self.space.fitness.multi else self.space.fidelity
        return train_members(self.data, members, device, self.watch,
                             on_epoch if progress is not None else None,
                             fidelity=fidelity, rank=self.objective,
                             on_end=on_end if progress is not None else None)


def text_encoders(space: SearchSpace) -> list[str]:
    """The pretrained text encoders a space's genomes may use (pretrained.model)."""
    return [n for n in dict.fromkeys(space.values_of("pretrained.model")) if n]


def train_members(data: MSAData, members: list[Member], device, watch: list[str],
                  on_epoch=None, fidelity: Fidelity | None = None,
                  rank: Objective | None = None,
                  on_end: Callable[[list[Outcome]], None] | None = None) -> list[Outcome]:
    """One outcome per member, splitting the population in halves on out-of-memory; with
    `fidelity` and a `rank` objective, successive halving of the genomes (eval ids) or their
    screen on the frozen encoder; `on_end(outcomes)` with the final outcomes of members as they
    end."""
    from evo_msa.config import RunConfig
    from evo_msa.training.halving import Halving
    from evo_msa.training.trainer import train_population

    def outcome(i: int, r) -> Outcome:
        return Outcome(members[i].eval_id, members[i].seed, r.status, r.metrics.get("valid", {}),
                       r.epochs, r.error, r.rung)

    def train(indices: list[int], frozen: bool = False) -> list[Outcome]:
        cfgs = [RunConfig.from_dict(members[i].config, "trial config") for i in indices]
        hook = end = halving = None
        if frozen:  # the screen: the same heads over the frozen encoder's cached states
            cfgs = [c.with_overrides({"pretrained.finetune_layers": 0}, "screen") for c in cfgs]
        else:
            if on_epoch is not None:
                hook = lambda epoch, valid: on_epoch(epoch, {indices[j]: v for j, v in valid.items()})  # noqa: E731
            if on_end is not None:
                end = lambda done: on_end([outcome(indices[j], r) for j, r in done.items()])  # noqa: E731
            rungs = fidelity.rungs_for(max(c.train.epochs for c in cfgs)) if fidelity else ()
            if rungs and rank is not None:
                halving = Halving(rungs, fidelity.keep, tuple(members[i].eval_id for i in indices),
                                  rank, frozenset(members[i].eval_id for i in indices
                                                  if members[i].whole))
        results = train_population(data, cfgs, [members[i].seed for i in indices],
                                   device=device, eval_splits=("valid",), watch=watch,
                                   on_epoch=hook, halving=halving, on_end=end)
        return [outcome(i, r) for i, r in zip(indices, results)]

    def failed(indices: list[int], exc: BaseException) -> list[Outcome]:
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        return [Outcome(members[i].eval_id, members[i].seed, Status.ERROR,
                        error=f"{type(exc).__name__}: {text}") for i in indices]

    done: dict[int, Outcome] = {}
    if fidelity is not None and fidelity.screen and rank is not None:
        done = screen(members, fidelity.keep, rank,
                      lambda ids: isolate_failures(lambda part: train(part, frozen=True), ids,
                                                   failed))
        if done and on_end is not None:
            on_end(list(done.values()))
    rest = [i for i in range(len(members)) if i not in done]
    done.update(zip(rest, isolate_failures(train, rest, failed)))
    return [done[i] for i in range(len(members))]


def screen(members: list[Member], keep: float, rank: Objective,
           train_frozen: Callable[[list[int]], list[Outcome]]) -> dict[int, Outcome]:
    """The frozen-encoder screen of a batch (fidelity.screen): the members of the genomes that
    would fine-tune (not re-trainings: `whole`) train with the encoder frozen, the genomes are
    ranked by the mean over their seeds of `rank`, and the best ceil(keep x n) go on to their
    own fine-tuning. Returns the outcomes of the members screened out (rung 1, their frozen
    fitness, EARLY_STOPPED unless the frozen training failed); nothing when all would go on."""
    def fine_tunes(m: Member) -> bool:
        pretrained = m.config.get("pretrained") or {}
        return bool(pretrained.get("model")) and pretrained.get("finetune_layers", 0) != 0

    candidates = [i for i, m in enumerate(members) if not m.whole and fine_tunes(m)]
    genomes = list(dict.fromkeys(members[i].eval_id for i in candidates))
    n_keep = max(1, math.ceil(keep * len(genomes) - 1e-9))
    if n_keep >= len(genomes):
        return {}
    frozen = dict(zip(candidates, train_frozen(candidates)))
    values: dict[int, list[float]] = {}
    for i, o in frozen.items():
        value = rank.loss(o.metrics.get(rank.metric, math.nan)) \
            if o.status is Status.OK else math.inf
        values.setdefault(members[i].eval_id, []).append(value if math.isfinite(value)
                                                         else math.inf)
    ranked = sorted(genomes, key=lambda g: (sum(values[g]) / len(values[g]), genomes.index(g)))
    kept = set(ranked[:n_keep])
    return {i: dataclasses.replace(
                o, rung=1, stage=f"screened out on the frozen encoder (best {n_keep} of "
                                 f"{len(genomes)} fine-tuned)",
                status=Status.EARLY_STOPPED if o.status is Status.OK else o.status)
            for i, o in frozen.items() if members[i].eval_id not in kept}


def isolate_failures(train: Callable[[list[int]], list], indices: list[int],
                     failed: Callable[[list[int], BaseException], list]) -> list:
    """Train `indices` together; if that raises (out of GPU memory, or one member's config
    breaks the program), train each half on its own, recursively. A batch that does not fit
    is so split until it does; a member that fails alone is the only one penalised."""
    import torch

    try:
        return train(indices)
    except Exception as exc:  # noqa: BLE001 - any failure of a candidate is its fitness
        if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(indices) == 1:
            return failed(indices, exc)
        half = len(indices) // 2
        return (isolate_failures(train, indices[:half], failed)
                + isolate_failures(train, indices[half:], failed))


@functools.lru_cache(maxsize=1)
def search_split(spec: str) -> MSAData:
    """--data-on-nodes: the data read here, on the trial's node (once per actor: Tune reuses
    it for the next trial), without the test split, as the driver would have sent it."""
    from evo_msa.data import load_data

    return load_data(spec).without_test()

