"""best_genome.json: the search's pick, written and parsed here only.

    best_genome_record(...)   the content the runner writes
    read_best(run)            the parsed file of a run directory (None when absent)
    read_genome(path, size)   the genome of a best_genome.json a user names (or a bare list)
    objectives(best)          the fitness objectives it was selected on (primary first)
    loss_of(best)             its primary fitness as a loss (smaller is better)
"""
from __future__ import annotations

from pathlib import Path

from evo_msa.errors import UserError
from evo_msa.metrics import Objective
from evo_msa.record import rundir
from evo_msa.record.evaluation import Evaluation
from evo_msa.space.fitness import Fitness


def best_genome_record(best: Evaluation, values: tuple[float, ...] | list[float],
                       evaluations: int, fitness: Fitness, space_file: str) -> dict:
    """The content of best_genome.json: the pick, the fitness it stands by (`values`: the mean
    over `evaluations` evaluations of its architecture) and the objectives it was selected on."""
    return {"id": best.id, "generation": best.generation, "fitness": values[0],
            "evaluations": evaluations, "metric": fitness.metric,
            "direction": fitness.direction, "objectives": fitness.to_dict()["objectives"],
            "fitness_values": list(values), "space": space_file, "genome": best.genome,
            "decoded": best.genes, "params": best.params, "run_config": best.config}


def read_best(run: str | Path, *, required: bool = False) -> dict | None:
    """A run directory's best_genome.json (or the file itself), parsed; None when absent and
    not `required`."""
    path = Path(run)
    if path.is_dir():
        path = path / rundir.BEST
    best = rundir.load_json(path, "the search's best genome", required=required)
    if best is not None and not isinstance(best, dict):
        raise UserError(f"{path}: not a best genome record (expected a JSON object)")
    return best


def read_genome(path: str | Path, size: int) -> list[float]:
    """The genome of a best_genome.json (or a bare list) for a space of `size` genes: a file a
    user names (`--genome`, a study's `genome:`), read with a size limit."""
    from evo_msa.io import read_json

    raw = read_json(path, "genome", 16 << 20)  # a best_genome.json is a few KB
    genome = raw.get("genome") if isinstance(raw, dict) else raw
    if (not isinstance(genome, list) or len(genome) != size
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in genome)):
        raise UserError(f"{path}: 'genome' must be a list of {size} numbers for this space")
    return [float(x) for x in genome]


def objectives(best: dict) -> list[Objective]:
    """The fitness objectives a best_genome.json (or final.json) records, primary first; a
    record of an older run names only its primary `metric` and `direction`."""
    if best.get("objectives"):
        return [Objective(o["metric"], o.get("direction", "")) for o in best["objectives"]]
    return [Objective(best.get("metric", "loss"), best.get("direction", ""))]


def loss_of(best: dict) -> float:
    """The record's primary fitness as a loss (the smaller the better)."""
    fit = best.get("fitness")
    return objectives(best)[0].loss(fit[0] if isinstance(fit, list) else fit)
