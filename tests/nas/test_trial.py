"""The batch trial without Ray: outcomes per training, per-epoch reports for ASHA, failures
isolated by bisection, out-of-memory splitting (the CPU twin of the GPU path)."""
import json
from pathlib import Path

import torch

from evo_msa.config import RunConfig
from evo_msa.data import DataInfo, load_data
from evo_msa.nas.evaluators.haemsa import HaemsaEvaluator, isolate_failures
from evo_msa.nas.execution.tune import run_trial
from evo_msa.space import load_space

TINY = Path(__file__).resolve().parents[2] / "search_spaces" / "tiny.yaml"

SMALL = {"model": {"expert_dim": 8, "unified_dim": 8, "level_widths": [8, 8, 8, 8],
                   "tower_dim": 4}, "train": {"epochs": 3, "patience": 3, "batch_size": 64}}


def member(i, seed=0, **train):
    cfg = RunConfig.from_dict({**SMALL, "train": {**SMALL["train"], **train}}).to_dict()
    return {"eval_id": i, "seed": seed, "config": cfg}


def test_a_batch_reports_every_epoch_and_one_outcome_per_training():
    data = load_data("synthetic:mosi?n=300")
    reports = []
    config = {"members": [member(0), member(0, seed=1), member(1, lr=1e12, grad_clip=0.0)]}
    evaluator = HaemsaEvaluator(load_space(TINY), DataInfo.from_data(data), data=data)
    final = run_trial(config, evaluator, reports.append)
    outcomes = json.loads(final["outcomes"])
    assert [(o["eval_id"], o["seed"], o["status"]) for o in outcomes] == [
        (0, 0, "ok"), (0, 1, "ok"), (1, 0, "nan")]
    assert all(o["metrics"]["loss"] > 0 for o in outcomes[:2])
    assert final["population"] == 3 and final["device"] == "cpu" and final["node"]
    epochs = [r["epoch"] for r in reports[:-1]]
    assert epochs == [1, 2, 3]  # ASHA's time axis
    partial = json.loads(reports[1]["outcomes"])  # what an early-stopped batch keeps
    assert {o["status"] for o in partial} == {"early-stopped"} and len(partial) == 2
    assert reports[-1] is final and final["fitness"] == min(o["metrics"]["loss"]
                                                            for o in outcomes[:2])
    # each epoch also carries the final outcomes of the trainings that have ended: the diverged
    # one after its first epoch, all three at the last, as in the final report
    ended = [json.loads(r["ended"]) for r in reports[:-1]]
    assert [(o["eval_id"], o["status"]) for o in ended[0]] == [(1, "nan")] and ended[0] == ended[1]
    assert sorted(ended[2], key=lambda o: (o["eval_id"], o["seed"])) == outcomes


def test_out_of_memory_splits_the_batch_and_failures_stay_with_their_member():
    calls = []

    def train(indices):
        calls.append(list(indices))
        if len(indices) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        if 5 in indices:
            raise ValueError("member 5 has a broken config")
        return [{"eval": i, "status": "ok"} for i in indices]

    def failed(indices, exc):
        return [{"eval": i, "status": "error", "error": str(exc)} for i in indices]

    out = isolate_failures(train, list(range(8)), failed)
    assert [o["eval"] for o in out] == list(range(8))  # order kept
    assert [o["status"] for o in out] == ["ok"] * 5 + ["error"] + ["ok"] * 2
    assert "broken" in out[5]["error"]
    assert calls[0] == list(range(8)) and [4, 5] in calls and [5] in calls
    assert max(len(c) for c in calls[1:]) <= 4  # never the whole batch again


def test_ray_tune_writing_to_a_full_disk_is_one_error_not_tracebacks(capsys):
    import errno
    import logging
    import os

    import pytest

    from evo_msa.io import StorageError
    from evo_msa.nas.execution.tune import storage_failures

    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    ray_logger = logging.getLogger("ray")
    handler = logging.StreamHandler()  # as Ray's own handler on the "ray" logger
    ray_logger.addHandler(handler)
    try:
        with storage_failures("RUN/ray") as failed:
            try:
                raise full
            except OSError:  # Tune logs its failed writes with their traceback
                logging.getLogger("ray.tune.execution.experiment_state").error(
                    "Saving experiment state failed", exc_info=True)
            logging.getLogger("ray.tune").error("an unrelated error")
        assert len(failed) == 1 and isinstance(failed[0], StorageError)
        assert str(failed[0]) == "RUN/ray: Ray Tune cannot write its files (No space left on device)"
        err = capsys.readouterr().err
        assert "Traceback" not in err and "an unrelated error" in err  # others still show
        with storage_failures("RUN/ray") as failed:
            raise full  # Tune itself raising it (creating the tuner)
        assert len(failed) == 1
        with pytest.raises(ValueError):
            with storage_failures("RUN/ray"):
                raise ValueError("not a storage error")
    finally:
        ray_logger.removeHandler(handler)
