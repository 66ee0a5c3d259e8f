"""The run directory: the one owner of every file a run writes, all through one atomic writer.

A search run (`evo-msa search --out DIR`):
    search.json          the options, so `--resume DIR` needs nothing else
    <space>.yaml         a copy of the search space
    state.json           the checkpoint (strategy, evaluations, RNG states), after every
                         evaluation; state.prev.json is the one before it
    leaderboard.csv      one row per evaluation
    best_genome.json     the best evaluation: genome, decoded genes, run config
    progress.png         best and median fitness per generation (pareto.png: several objectives)
    final.json/.csv      the final trainer: top genomes retrained with several seeds
    final/rank<r>-id<k>/ their saved models, one seed_<s>/ each
    final/ensemble/      ensemble.json: the greedy ensemble of those (members and weights),
                         when it has several architectures (training.ensemble)
    baselines.csv        ridge / softmax on every modality subset: the bar the search must beat
    ray/                 Ray Tune's own trial folders (written by Ray)
    tensorboard/         `--track tensorboard`: eval_<id>/ per evaluation
    .lock                host and pid of the process using the run

A training run (`evo-msa train --out DIR`): metrics.json, metrics.csv, and per seed a saved
model seed_<s>/ (model.pt, model.json, history.csv, curves.png; see training.saved).
Either kind: report.html (`evo-msa report`).

Every name above is a constant or a helper below: other modules take names from here (and
compute what goes into a file); this one writes it.
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
from typing import TYPE_CHECKING, Any

from evo_msa.errors import UserError
from evo_msa.io import atomic_write, input_file, to_json

if TYPE_CHECKING:
    import pandas as pd

# ---- the names of a run's files and folders -------------------------------------------------
# a search run
SEARCH = "search.json"
SPACE_SUFFIX = ".yaml"  # <space>.yaml, see space_copy
STATE = "state.json"
STATE_PREV = "state.prev.json"
LEADERBOARD = "leaderboard.csv"
BEST = "best_genome.json"
PROGRESS = "progress.png"
PARETO = "pareto.png"
FINAL_JSON = "final.json"
FINAL_CSV = "final.csv"
FINAL = "final"  # the final trainer's saved models, see final_folder
ENSEMBLE = f"{FINAL}/ensemble"  # the final trainer's greedy ensemble (its members' folders)
ENSEMBLE_JSON = "ensemble.json"
RAY = "ray"
TENSORBOARD = "tensorboard"
LOCK = ".lock"
# a training run
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
BASELINES = "baselines.csv"  # the built-in baselines beside a search (nas.references)
# either
REPORT = "report.html"
# a saved model's folder (training.saved)
MODEL_PT = "model.pt"
MODEL_JSON = "model.json"
HISTORY = "history.csv"
CURVES = "curves.png"
# written beside a file the user names, outside any run directory
PREDICT_METRICS_SUFFIX = ".metrics.json"  # preds.csv -> preds.metrics.json
SIDECAR_SUFFIX = ".json"  # model.onnx -> model.onnx.json

ANY = "*"  # as a helper's argument: the glob pattern of every such name


def space_copy(space_name: str) -> str:
    """The run's copy of the search space (space_copy(ANY): the glob pattern)."""
    return f"{space_name}{SPACE_SUFFIX}"


def seed_folder(seed: int | str) -> str:
    """A saved model's folder, one per training seed (seed_folder(ANY): the glob pattern)."""
    return f"seed_{seed}"


def final_folder(rank: int | str, eval_id: int | str) -> str:
    """The folder of the final trainer's rank-th genome (search evaluation `eval_id`), which
    holds a seed_folder per seed."""
    return f"{FINAL}/rank{rank}-id{eval_id}"


def tensorboard_folder(eval_id: int) -> str:
    """One evaluation's TensorBoard run (`--track tensorboard`)."""
    return f"{TENSORBOARD}/eval_{eval_id:05d}"


def predict_metrics_path(predictions: Path) -> Path:
    """Where `evo-msa predict --out preds.csv` writes its metrics."""
    return predictions.with_suffix(PREDICT_METRICS_SUFFIX)


def sidecar_path(path: Path) -> Path:
    """The JSON file that describes `path` (an exported model.onnx), beside it."""
    return path.with_suffix(path.suffix + SIDECAR_SUFFIX)


class RunDir:
    """A run's folder: creates it, locks it, and writes every file in it atomically.

        run = RunDir.create("runs/x")      # new and empty (an error if it holds anything)
        run.write_json(METRICS_JSON, {...})   # names from the constants and helpers above
        run.file(f"{seed_folder(0)}/{MODEL_PT}")   # a path, with its folders created

    `RunDir(path)` opens an existing run (a resume); `lock()` claims it for this process.
    """

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
        """A file of the run (`name` may name a subfolder: seed_0/model.pt); its folder is
        created."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def has(self, name: str) -> bool:
        """Does the run hold the file `name`?"""
        return (self.path / name).is_file()

    def space_copies(self) -> list[Path]:
        """The run's copies of its search space (one, in a run that `search` wrote)."""
        return sorted(self.path.glob(space_copy(ANY)))

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
        """Release the lock (`lock`) and remove its file."""
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                self.file(LOCK).unlink()
            self._lock_fh.close()
            self._lock_fh = None

    # ---- writing -------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        """Write `obj` as JSON to the run's file `name`, atomically."""
        text = to_json(obj)
        return atomic_write(self.file(name), lambda tmp: tmp.write_text(text))

    def write_csv(self, name: str, frame: pd.DataFrame) -> Path:
        """Write a CSV (no index) to the run's file `name`, atomically."""
        return atomic_write(self.file(name), lambda tmp: frame.to_csv(tmp, index=False))

    def write_figure(self, name: str, fig) -> Path:
        """Save a matplotlib figure as PNG to the run's file `name`, atomically, and close it."""
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
        """Write text to the run's file `name`, atomically."""
        return atomic_write(self.file(name), lambda tmp: tmp.write_text(text))

    def copy_in(self, source: str | Path, name: str) -> Path:
        """Copy `source` into the run as `name`, atomically."""
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
        """A JSON file of the run, parsed (see `load_json`); missing is an error."""
        return load_json(self.file(name), what)

    def read_csv(self, name: str, what: str) -> pd.DataFrame:
        """A CSV file of the run, read (see `load_csv`); missing is an error."""
        return load_csv(self.file(name), what)

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


def load_json(path: str | Path, what: str, *, required: bool = True) -> Any:
    """The one reader of a run's JSON files: the parsed content, or a one-line UserError for a
    damaged file or something that is not a file there (a FIFO would block); a missing file is
    an error when `required`, else None."""
    path = Path(path)
    if not path.exists():
        if required:
            raise UserError(f"{path}: missing ({what})")
        return None
    input_file(path, what)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: damaged, not valid JSON ({_reason(exc)})") from None
    except RecursionError:
        raise UserError(f"{path}: damaged, not usable JSON (nested too deeply)") from None


def load_csv(path: str | Path, what: str, **options) -> pd.DataFrame:
    """The one reader of a run's CSV files (`options` go to pandas.read_csv). Only empty cells
    are missing: a status "nan" or a gene's "None" stays text. A damaged file, or something
    that is not a file there, is a one-line UserError."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: missing ({what})")
    input_file(path, what)  # a FIFO would block read_csv
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""], **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: damaged, not a readable CSV "
                        f"({str(exc).splitlines()[0][:120]})") from None


def _reason(exc: Exception) -> str:
    return getattr(exc, "msg", None) or str(exc).splitlines()[0]


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']} (since {info['since']})"
    except (json.JSONDecodeError, KeyError, TypeError):
        return "another process"
