"""The final trainer: the best evaluations' run configs retrained with several seeds (one
population per genome), trained on train, early-stopped on valid, scored on test."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from evo_msa.config import RunConfig, TrainConfig
from evo_msa.data.dataset import MSAData
from evo_msa.nas.references import reference, reference_line
from evo_msa.provenance import provenance
from evo_msa.record import rundir
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.rundir import RunDir
from evo_msa.space import SearchSpace


def final_config(ev: Evaluation, final_epochs: int) -> RunConfig:
    """The evaluation's config, trained to convergence instead of the fitness budget."""
    cfg = RunConfig.from_dict(ev.config, f"evaluation #{ev.id}")
    cfg.train.epochs = max(cfg.train.epochs, final_epochs)
    cfg.train.patience = max(cfg.train.patience, TrainConfig.patience)
    return cfg


def final_trainer(run: RunDir, space: SearchSpace, data: MSAData, top: list[Evaluation],
                  opts, log: Callable[[str], None] = print) -> dict:
    """Retrain the search's `top` genomes with the final seeds (the final trainer): final.json and
    final.csv, a saved model per seed."""
    from evo_msa.training.multiseed import format_summary, train_seeds  # torch: only here
    from evo_msa.training.trainer import resolve_device

    seeds = list(opts.final_seeds)
    device = str(resolve_device(opts.device))
    baseline = (run.read_csv(rundir.BASELINES, "the baselines") if run.has(rundir.BASELINES)
                else None)
    entries, tables = [], []
    for rank, ev in enumerate(top, 1):
        cfg = final_config(ev, opts.final_epochs)
        log(f"final  #{ev.id} (rank {rank}): seeds {seeds}, up to {cfg.train.epochs} epochs, "
            f"on {device}")
        summary, table = train_seeds(data, cfg, seeds, device=device, log=log, save=run,
                                     folder=rundir.final_folder(rank, ev.id),
                                     provenance=provenance(opts.data))
        log(format_summary(summary))
        if baseline is not None:
            log(f"  beside {reference_line(baseline)}")
        table.insert(0, "rank", rank)
        table.insert(1, "id", ev.id)
        tables.append(table)
        entries.append({"rank": rank, "id": ev.id, "search_fitness": list(ev.fitness),
                        "genome": ev.genome, "run_config": cfg.to_dict(), **summary})
    final = {"objectives": space.fitness.to_dict()["objectives"], "device": device,
             "data": opts.data, "genomes": entries, "provenance": provenance(opts.data)}
    if baseline is not None:  # the linear model chosen on valid, scored on the same test split
        final["baseline"] = reference(baseline)
    run.write_csv(rundir.FINAL_CSV, pd.concat(tables, ignore_index=True))
    run.write_json(rundir.FINAL_JSON, final)
    return final
