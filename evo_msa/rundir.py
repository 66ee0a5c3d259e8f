"""The run directory: the one owner of every file a run writes, all through one atomic writer.

A search run (`evo-msa search --out DIR`):
    search.json          the options, so `--resume DIR` needs nothing else
    <space>.yaml         a copy of the search space
    state.json           the checkpoint (strategy, evaluations, RNG states), after every
                         evaluation; state.prev.json is the one before it
    leaderboard.csv      one row per evaluation
    best_genome.json     the best evaluation: genome, decoded genes, run config
    progress.png         best and median fitness per generation
    final.json/.csv      the final trainer: top genomes retrained with several seeds
    ray/                 Ray Tune's own trial folders (written by Ray)
    .lock                host and pid of the process using the run

A training run (`evo-msa train --out DIR`): metrics.json, metrics.csv, and per seed a saved
model seed_<s>/ (model.pt, model.json, history.csv, curves.png; see train.saved). The final
trainer of a search saves its models under final/rank<r>-id<k>/seed_<s>/.

Other modules compute what goes into a file; this one writes it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pandas as pd

from evo_msa.errors import UserError
from evo_msa.io import atomic_write, input_file, to_json

SEARCH = "search.json"
STATE = "state.json"
STATE_PREV = "state.prev.json"
LEADERBOARD = "leaderboard.csv"
BEST = "best_genome.json"
PROGRESS = "progress.png"
PARETO = "pareto.png"
FINAL_JSON = "final.json"
FINAL_CSV = "final.csv"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
LOCK = ".lock"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fh = None

    # ---- creation ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path | None, *, resume_hint: bool = True) -> "RunDir":
        """A new, empty run directory (default runs/<timestamp>)."""
        path = Path(path) if path else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: exists and is a file, not a directory (choose another --out)")
        if path.is_dir() and any(path.iterdir()):
            hint = f", or --resume {path}" if resume_hint else ""
            raise UserError(f"{path}: already exists and is not empty (choose another --out{hint})")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{path}: cannot create the run directory ({exc.strerror or exc})") \
                from None
        return cls(path)

    def file(self, name: str) -> Path:
        """A file of the run (`name` may name a subfolder: seed_0/model.pt)."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    # ---- the lock ------------------------------------------------------------------------
    def lock(self, log=print) -> "RunDir":
        """Claim the run for this process: a second search or resume on it is an error; a lock
        left by a process that died is taken over (the OS drops a dead process's flock)."""
        path = self.file(LOCK)
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = _describe_holder(fh.read())
            fh.close()
            raise UserError(f"{self.path}: in use by {holder}; wait for it to finish or stop it "
                            f"(Ctrl-C), then resume") from None
        fh.seek(0)
        previous = fh.read().strip()
        if previous:
            log(f"note   taking over the stale lock of {_describe_holder(previous)} "
                f"(no longer running)")
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        fh.flush()
        self._lock_fh = fh
        return self

    def unlock(self) -> None:
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                self.file(LOCK).unlink()
            self._lock_fh.close()
            self._lock_fh = None

    # ---- writing -------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        text = to_json(obj)
        return atomic_write(self.file(name), lambda tmp: tmp.write_text(text))

    def write_csv(self, name: str, frame: pd.DataFrame) -> Path:
        return atomic_write(self.file(name), lambda tmp: frame.to_csv(tmp, index=False))

    def write_figure(self, name: str, fig) -> Path:
        import matplotlib.pyplot as plt

        try:
            return atomic_write(self.file(name), lambda tmp: fig.savefig(tmp, format="png"))
        finally:
            plt.close(fig)

    def write_tensors(self, name: str, tensors: dict) -> Path:
        """A dict of tensors, readable with torch.load(weights_only=True)."""
        import torch

        return atomic_write(self.file(name), lambda tmp: torch.save(tensors, tmp))

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write(self.file(name), lambda tmp: tmp.write_text(text))

    def copy_in(self, source: str | Path, name: str) -> Path:
        return atomic_write(self.file(name), lambda tmp: shutil.copyfile(source, tmp))

    def checkpoint(self, state: dict) -> None:
        """Write state.json; the previous good one stays as state.prev.json. At no moment is
        there no state.json: the previous one is hard-linked aside before the new one replaces
        it."""
        text = to_json(state)
        current = self.file(STATE)
        if current.is_file():
            aside = self.file(f".{STATE_PREV}.tmp-{os.getpid()}")
            with contextlib.suppress(OSError):
                aside.unlink(missing_ok=True)
                os.link(current, aside)
                os.replace(aside, self.file(STATE_PREV))
        atomic_write(current, lambda tmp: tmp.write_text(text))

    # ---- reading -------------------------------------------------------------------------
    def read_json(self, name: str, what: str) -> Any:
        path = self.file(name)
        if not path.exists():
            raise UserError(f"{path}: missing ({what})")
        input_file(path, what)  # a directory or FIFO there: say so (a FIFO would block)
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: damaged, not valid JSON ({_reason(exc)})") from None
        except RecursionError:
            raise UserError(f"{path}: damaged, not usable JSON (nested too deeply)") from None

    def read_checkpoint(self) -> dict:
        """The last checkpoint; a damaged one is an error that says whether the previous
        checkpoint can be used instead (nothing is deleted)."""
        try:
            return self.read_json(STATE, "the search checkpoint")
        except UserError as err:
            prev = self.file(STATE_PREV)
            if prev.is_file():
                try:
                    n = len(json.loads(prev.read_text()).get("evaluations", []))
                    raise UserError(f"{err}; the previous checkpoint {prev.name} is intact "
                                    f"({n} evaluations): move it over {STATE} to resume from it") \
                        from None
                except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                    pass
            raise UserError(f"{err}; no usable previous checkpoint") from None


def _reason(exc: Exception) -> str:
    return getattr(exc, "msg", None) or str(exc).splitlines()[0]


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']} (since {info['since']})"
    except (json.JSONDecodeError, KeyError, TypeError):
        return "another process"
