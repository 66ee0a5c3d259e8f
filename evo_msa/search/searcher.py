"""A Ray Tune `Searcher` that drives a search strategy (the DEAP population lives here, in the
driver; trials receive plain dicts).

suggest()           strategy.ask() -> policy (dedup / cheap constraint) -> a trial config
on_trial_complete() fitness (or penalty) -> strategy.tell(), leaderboard row, checkpoint
save()/restore()    the whole state as JSON, the same file `--resume` reads
"""
from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from ray.tune.search import Searcher

from evo_msa.report.leaderboard import USABLE, genes_to_columns, to_frame, write_csv_atomic
from evo_msa.search.policies import EvaluationPolicy
from evo_msa.search.strategy import Strategy

STATE_FILE = "state.json"


class EvolutionSearcher(Searcher):
    def __init__(self, strategy: Strategy, policy: EvaluationPolicy, *, run_dir: str | Path,
                 trial_seed: int = 0, device: str = "cpu", log: Callable[[str], None] = print):
        super().__init__(metric="fitness", mode=policy.space.direction)
        self.strategy, self.policy = strategy, policy
        self.run_dir = Path(run_dir)
        self.trial_seed, self.device, self.log = trial_seed, device, log
        self.rows: list[dict] = []  # the leaderboard
        self.trials: dict[str, dict] = {}  # trial id -> {cid, key, params}
        self.started = time.time()
        self.elapsed_before = 0.0  # seconds spent before a resume
        self.reported_generations = 0

    # ---- Tune interface --------------------------------------------------------------------
    def suggest(self, trial_id: str):
        while True:
            if self.strategy.done:
                return Searcher.FINISHED
            cand = self.strategy.ask()
            if cand is None:
                return None  # the generation is in flight; Tune asks again later
            prep = self.policy.prepare(cand.genome)
            if prep.verdict == "train":
                self.trials[trial_id] = {"cid": cand.id, "key": prep.key, "params": prep.params}
                return {"run_config": prep.config.to_dict(), "candidate": cand.id,
                        "seed": self.trial_seed, "device": self.device,
                        "metric": self.policy.space.metric}
            # answered without training: a known architecture or a rejected one
            self._finish(cand.id, prep.fitness, prep.verdict, {"params": prep.params},
                         note=prep.note)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        info = self.trials.pop(trial_id, None)
        if info is None:
            return
        result = result or {}
        fitness = result.get("fitness")
        status = result.get("status", "ok")
        if error or fitness is None:
            status, fitness = "error", self.policy.penalty
            result.setdefault("error", "the trial process failed (see the Ray trial logs)")
        elif status in ("error", "nan") or not math.isfinite(float(fitness)):
            status, fitness = ("error" if status == "error" else "nan"), self.policy.penalty
        elif status == "running":  # ASHA stopped it: its best fitness so far stands
            status = "early-stopped"
        if status == "ok":
            self.policy.remember(info["key"], float(fitness), info["cid"])
        extra = {k: v for k, v in result.items() if k.startswith("valid_")}
        extra.update(params=info["params"], seconds=result.get("seconds"),
                     epochs=result.get("epochs"))
        self._finish(info["cid"], float(fitness), status, extra, note=result.get("error", ""))

    def save(self, checkpoint_path: str) -> None:
        tmp = f"{checkpoint_path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(self.get_state(), fh)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as fh:
            self.set_state(json.load(fh))

    def get_state(self) -> dict:
        return {"strategy": self.strategy.state_dict(), "rows": self.rows,
                "known": self.policy.known, "elapsed": self._elapsed(),
                "reported_generations": self.reported_generations,
                "rng": {"python": _py_state(random.getstate()),
                        "numpy": _np_state(np.random.get_state()),
                        "torch": torch.get_rng_state().tolist()}}

    def set_state(self, state: dict) -> None:
        self.strategy.load_state_dict(state["strategy"])
        self.rows = list(state["rows"])
        self.policy.known = {k: tuple(v) for k, v in state["known"].items()}
        self.elapsed_before, self.started = state["elapsed"], time.time()
        self.reported_generations = state["reported_generations"]
        rng = state["rng"]
        random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
        np.random.set_state((rng["numpy"][0], np.array(rng["numpy"][1], dtype=np.uint32),
                             *rng["numpy"][2:]))
        torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
        self.trials = {}

    # ---- bookkeeping -----------------------------------------------------------------------
    def _finish(self, cid: int, fitness: float, status: str, extra: dict, note: str = "") -> None:
        cand = self.strategy.candidates[cid]
        decoded = self.policy.space.decode(cand.genome, self.policy.info.modalities)
        self.rows.append({"generation": cand.generation, "id": cid,
                          "parents": "|".join(map(str, cand.parents)), "status": status,
                          "fitness": fitness, "note": note, **genes_to_columns(decoded),
                          **extra, "genome": json.dumps([round(x, 6) for x in cand.genome])})
        self.strategy.tell(cid, self.policy.score(fitness))
        self._report_progress()
        self.checkpoint()

    def checkpoint(self) -> None:
        """Everything a `--resume` needs, after every evaluation (small files, atomic writes)."""
        self.save(str(self.run_dir / STATE_FILE))
        write_csv_atomic(to_frame(self.rows), self.run_dir / "leaderboard.csv")

    def _elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def _report_progress(self) -> None:
        """One compact line per finished generation (instead of Ray's per-trial tables)."""
        history = self.strategy.best_per_generation
        while self.reported_generations < len(history):
            g = self.reported_generations
            fits = [r["fitness"] for r in self.rows if r["generation"] == g
                    and r["status"] in USABLE]
            best = -history[g] if self.policy.space.direction == "min" else history[g]
            med = statistics.median(fits) if fits else math.nan
            failed = sum(r["generation"] == g and r["status"] in ("error", "nan", "rejected")
                         for r in self.rows)
            done = len(history)
            total = self.strategy.s.generations
            elapsed = self._elapsed()
            eta = elapsed / done * (total - done) if done < total else 0.0
            self.log(f"gen {g + 1:>2}/{total}  evaluated {len(fits):>3}"
                     f" (+{failed} failed/rejected)  best {best:.4f}  median {med:.4f}"
                     f"  elapsed {_clock(elapsed)}  eta {_clock(eta)}")
            self.reported_generations += 1


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def _py_state(state):
    return [state[0], list(state[1]), state[2]]


def _np_state(state):
    return [state[0], state[1].tolist(), *[float(x) if isinstance(x, float) else x for x in state[2:]]]
