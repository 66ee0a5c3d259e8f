"""The final trainer: the best evaluations' run configs retrained with several seeds (one
population per genome), trained on train, early-stopped on valid; then the final model chosen on
valid (the search's pick, or a greedy ensemble of the best distinct architectures: nas.ensemble),
scored on test once, and the verdict against the baselines (nas.verdict).

Two test figures per model, named apart in final.json:
    per_seed        mean ± std over the seeds of each seed's model (what one training gives;
                    the verdict compares this one, like for like with seeded baselines)
    seed_ensemble   the seeds' averaged predictions (what `evo-msa predict RUN` gives)
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import pandas as pd

from evo_msa.config import RunConfig, TrainConfig
from evo_msa.data.dataset import MSAData, Split
from evo_msa.errors import UserError
from evo_msa.nas.ensemble import ROUNDS, greedy_selection, scorer, selection_objective
from evo_msa.nas.options import final_settings
from evo_msa.nas.references import reference, reference_line
from evo_msa.nas.verdict import baselines_from_frame, read_compared, verdict
from evo_msa.provenance import provenance
from evo_msa.record import rundir
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.rundir import RunDir
from evo_msa.space import SearchSpace

SPLITS_NOTE = {"per_seed": "mean and std over the seeds of each seed's model",
               "seed_ensemble": "the seeds' averaged predictions (what `evo-msa predict` gives)"}


def final_config(ev: Evaluation, final_epochs: int) -> RunConfig:
    """The evaluation's config, trained to convergence instead of the fitness budget."""
    cfg = RunConfig.from_dict(ev.config, f"evaluation #{ev.id}")
    cfg.train.epochs = max(cfg.train.epochs, final_epochs)
    cfg.train.patience = max(cfg.train.patience, TrainConfig.patience)
    return cfg


def final_trainer(run: RunDir, space: SearchSpace, data: MSAData, top: list[Evaluation],
                  opts, log: Callable[[str], None] = print) -> dict:
    """Retrain `top` (the search's pick first; with --ensemble K, the K best distinct
    architectures at least), choose the final model on valid, score it on test, write
    final.json/.csv (and final/ensemble/ for an ensemble); final.json's content."""
    from evo_msa.training.multiseed import format_summary, train_seeds  # torch: only here
    from evo_msa.training.trainer import resolve_device

    seeds = list(opts.final_seeds)
    device = str(resolve_device(opts.device))
    baseline = (run.read_csv(rundir.BASELINES, "the baselines") if run.has(rundir.BASELINES)
                else None)
    candidates = ensemble_size(opts, space)
    shown = max(1, getattr(opts, "final_top", 0) or 1)
    entries, tables, seconds = [], [], []
    for rank, ev in enumerate(top, 1):
        cfg = final_config(ev, final_settings(opts, space)[0])
        extra = (f", ensemble candidate {rank}/{candidates} (--ensemble)"
                 if rank > shown and rank <= candidates else "")
        log(f"final  #{ev.id} (rank {rank}{extra}): seeds {seeds}, up to {cfg.train.epochs} "
            f"epochs, on {device}")
        t0 = time.perf_counter()
        summary, table = train_seeds(data, cfg, seeds, device=device, log=log, save=run,
                                     folder=rundir.final_folder(rank, ev.id),
                                     provenance=provenance(opts.data))
        seconds.append(time.perf_counter() - t0)
        log(format_summary(summary))
        if baseline is not None:
            log(f"  beside {reference_line(baseline)}")
        table.insert(0, "rank", rank)
        table.insert(1, "id", ev.id)
        tables.append(table)
        entries.append({"rank": rank, "id": ev.id, "search_fitness": list(ev.fitness),
                        "genome": ev.genome, "run_config": cfg.to_dict(),
                        "folder": rundir.final_folder(rank, ev.id), **summary})
    if len(top) > shown:
        log(f"  the {len(top) - shown} ensemble candidate(s) beyond the best took "
            f"{sum(seconds[shown:]):.0f}s of the final training's {sum(seconds):.0f}s")
    final = {"objectives": space.fitness.to_dict()["objectives"], "device": device,
             "data": opts.data, "genomes": entries, "provenance": provenance(opts.data),
             "figures": SPLITS_NOTE}
    if baseline is not None:  # the linear model chosen on valid, scored on the same test split
        final["baseline"] = reference(baseline)
    final["final_model"] = choose_final_model(run, space, data, entries, candidates, opts.data,
                                              log)
    bars = baselines_from_frame(baseline) if baseline is not None else []
    for folder in getattr(opts, "compare", []):
        try:
            bars.append(read_compared(folder, opts.data))
        except UserError as exc:  # checked when the search started; gone since: say so
            log(f"note   --compare {folder} left out of the verdict: {exc}")
    if bars:
        final["verdict"] = verdict(final["final_model"]["test"]["per_seed"], bars, data.task)
        final["baselines"] = [{"name": b.name, "test": {m: {"mean": mean, "std": std}
                                                        for m, (mean, std) in b.test.items()}}
                              for b in bars]
    run.write_csv(rundir.FINAL_CSV, pd.concat(tables, ignore_index=True))
    run.write_json(rundir.FINAL_JSON, final)
    for line in conclusion(final):
        log(line)
    return final


def ensemble_size(opts, space: SearchSpace) -> int:
    """How many distinct architectures the greedy ensemble chooses from (0: none). A Pareto
    front has no single metric to ensemble for."""
    k = final_settings(opts, space)[1]
    return k if k >= 2 and not space.fitness.multi else 0


def choose_final_model(run: RunDir, space: SearchSpace, data: MSAData, entries: list[dict],
                       candidates: int, data_spec: str, log: Callable[[str], None]) -> dict:
    """The final model, chosen on valid only: the search's pick (entries[0]) or the greedy
    ensemble of the first `candidates` entries when it scores better on valid. Test is read
    after the choice, once, for every entry (their seed ensembles are reported too)."""
    from evo_msa.data.loader import load_split
    from evo_msa.training.ensemble import Member, combine, write_ensemble
    from evo_msa.training.saved import load_model, model_folders

    members = [Member(run.file(e["folder"]), 1.0,
                      [load_model(f) for f in model_folders(run.file(e["folder"]))],
                      label=f"#{e['id']}") for e in entries]
    fitness = space.fitness
    valid, _, _ = load_split(data_spec, "valid")
    valid_outs = _outputs(members, valid, data.task)
    seed_means = [combine(outs) for outs in valid_outs]
    truth = _labels(valid, data.task)
    names = list(_metrics(seed_means[0], truth, data))
    objective = selection_objective(fitness.metric, fitness.direction, data.task, names)
    score = scorer(objective, truth, task=data.task, scale=data.scale,
                   label_names=data.label_names)
    single = score(seed_means[0])
    chosen, weights, selection = [0], [1.0], {
        "metric": objective.metric, "direction": objective.direction, "valid_single": single}
    if candidates >= 2 and len(entries) >= 2:
        pool = seed_means[:candidates]
        sel = greedy_selection(pool, score, objective, ROUNDS)
        better = math.isfinite(sel.score) and (not math.isfinite(single)
                                               or objective.better(sel.score, single))
        mix = ", ".join(f"#{entries[i]['id']} x{sel.weights[i]:.2f}" for i in sel.members)
        log(f"ensemble greedy selection on valid {objective.metric} over {len(pool)} "
            f"architectures, {ROUNDS} rounds: {mix}: {sel.score:.4f} against {single:.4f} for "
            f"#{entries[0]['id']} alone -> {'the ensemble' if better else 'the single model'}")
        selection.update({"rounds": ROUNDS, "candidates": [entries[i]["id"]
                                                            for i in range(len(pool))],
                          "counts": sel.counts, "valid_ensemble": sel.score,
                          "trace": sel.trace, "chosen": "ensemble" if better else "single"})
        if better:
            chosen, weights = sel.members, [sel.weights[i] for i in sel.members]
    kind = "ensemble" if len(chosen) > 1 else "single"
    picked = [{"rank": entries[i]["rank"], "id": entries[i]["id"], "weight": w,
               "folder": entries[i]["folder"], "genome": entries[i]["genome"]}
              for i, w in zip(chosen, weights)]
    folder = picked[0]["folder"]
    if kind == "ensemble":
        folder = rundir.ENSEMBLE
        write_ensemble(run, folder, [{k: m[k] for k in ("rank", "id", "weight", "folder")}
                                     for m in picked], task=data.task,
                       metric=objective.metric, rounds=ROUNDS)
    out = {"kind": kind, "folder": folder, "members": picked, "seeds": entries[0]["seeds"],
           "selection": selection,
           "valid": _figures([valid_outs[i] for i in chosen], weights, truth, data)}

    test, _, _ = load_split(data_spec, "test")  # read once, after the choice
    test_truth = _labels(test, data.task)
    test_outs = _outputs(members, test, data.task)
    for e, outs in zip(entries, test_outs):
        e["test_seed_ensemble"] = _metrics(combine(outs), test_truth, data)
    for e, outs in zip(entries, valid_outs):
        e["valid_seed_ensemble"] = _metrics(combine(outs), truth, data)
    out["test"] = _figures([test_outs[i] for i in chosen], weights, test_truth, data)
    return out


def _outputs(members, split: Split, task: str) -> list[list[np.ndarray]]:
    from evo_msa.training.ensemble import averageable

    return [[averageable(m.predict(split), task) for m in member.models] for member in members]


def _labels(split: Split, task: str) -> np.ndarray:
    return split.regression if task == "regression" else split.classification


def _metrics(combined: np.ndarray, truth: np.ndarray, data: MSAData) -> dict[str, float]:
    from evo_msa.metrics import compute_metrics
    from evo_msa.training.ensemble import metric_input

    return compute_metrics(metric_input(combined, data.task), truth, task=data.task,
                           scale=data.scale, label_names=data.label_names)


def _figures(outs: list[list[np.ndarray]], weights: list[float], truth: np.ndarray,
             data: MSAData) -> dict:
    """per_seed (mean and std over seeds of the members' seed-s models combined) and
    seed_ensemble (the combination of the members' seed means)."""
    from evo_msa.training.ensemble import combine
    from evo_msa.training.multiseed import pool

    per_seed = [_metrics(combine([o[s] for o in outs], weights), truth, data)
                for s in range(len(outs[0]))]
    table = pd.DataFrame([{f"test_{k}": v for k, v in m.items()} for m in per_seed])
    return {"per_seed": pool(table)["test"],
            "seed_ensemble": _metrics(combine([combine(o) for o in outs], weights), truth, data)}


def conclusion(final: dict) -> list[str]:
    """The console's last lines: what the final model is, its two test figures, the verdict."""
    from evo_msa.nas.verdict import HEADLINE

    fm = final["final_model"]
    what = (f"#{fm['members'][0]['id']} (rank {fm['members'][0]['rank']})"
            if fm["kind"] == "single" else "an ensemble of "
            + ", ".join(f"#{m['id']} x{m['weight']:.2f}" for m in fm["members"]))
    lines = [f"final model: {what}, {len(fm['seeds'])} seed(s) each ({fm['folder']})"]
    task = "regression" if "mae" in fm["test"]["per_seed"] else "classification"
    shown = [m for m in HEADLINE[task] if m in fm["test"]["per_seed"]]
    per_seed = ", ".join(f"{m} {fm['test']['per_seed'][m]['mean']:.4f} +- "
                         f"{fm['test']['per_seed'][m]['std']:.4f}" for m in shown)
    pooled = ", ".join(f"{m} {fm['test']['seed_ensemble'][m]:.4f}" for m in shown)
    lines += [f"  test, each seed's model (mean +- std over seeds): {per_seed}",
              f"  test, the seeds' averaged predictions (as `evo-msa predict` gives): {pooled}"]
    if final.get("verdict"):
        lines.append("verdict on test, against the best baseline per metric:")
        lines += [f"  {v['line']}" for v in final["verdict"]]
    return lines
