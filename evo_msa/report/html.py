"""`evo-msa report RUN_DIR`: one self-contained HTML page for a search run (or an `evo-msa train`
output).

Self-contained so that it opens offline and travels as one file (mail, CI artefact): figures are
base64 PNG data URIs, the CSS is inline, there is no script and no external resource. Every text
taken from the run's files goes through html.escape. A part the run does not have (no final
training yet, a single objective, a training run's missing search) is one line in its section,
never an error; a damaged JSON file is a one-line UserError.
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evo_msa.errors import UserError
from evo_msa.io import atomic_write, file_kind
from evo_msa.metrics import Objective
from evo_msa.record import rundir
from evo_msa.record.best import objectives, read_best
from evo_msa.record.leaderboard import read_leaderboard
from evo_msa.record.rundir import load_csv, load_json

SECTIONS = {"summary": "Run summary", "progress": "Progress", "top": "Top architectures",
            "genes": "Genes vs fitness", "pareto": "Pareto front",
            "final": "Final metrics", "curves": "Learning curves"}
MAX_CURVES = 24  # learning-curve figures on the page (top genomes first); the rest are counted
esc = html.escape


@dataclass
class RunFiles:
    """What a run directory holds, read once; None where a file is absent."""

    path: Path
    search: dict | None = None  # search.json
    metrics: dict | None = None  # metrics.json of `evo-msa train`
    best: dict | None = None  # best_genome.json
    final: dict | None = None  # final.json
    elapsed: float | None = None  # search seconds, from the checkpoint
    leaderboard: pd.DataFrame | None = None
    objectives: list[Objective] = field(default_factory=lambda: [Objective("loss")])

    @property
    def is_search(self) -> bool:
        """Is it a search (not a training run)?"""
        return self.search is not None or self.leaderboard is not None

    @classmethod
    def read(cls, path: str | Path) -> "RunFiles":
        """Read every record of the run directory `path` (a one-line UserError when it is none)."""
        path = Path(path)
        if not path.is_dir():
            if path.exists():
                raise UserError(f"{path}: is {file_kind(path.stat().st_mode)}, not a run "
                                "directory")
            raise UserError(f"{path}: no such run directory")
        run = cls(path, search=_json(path / rundir.SEARCH, "the search options"),
                  metrics=_json(path / rundir.METRICS_JSON, "a training run's metrics"),
                  best=read_best(path), final=_json(path / rundir.FINAL_JSON, "final metrics"))
        if run.search is None and run.metrics is None and not (path / rundir.LEADERBOARD).is_file():
            raise UserError(f"{path}: not a run directory (no {rundir.SEARCH}, "
                            f"{rundir.LEADERBOARD} or {rundir.METRICS_JSON} there)")
        board = path / rundir.LEADERBOARD
        if board.is_file():
            run.leaderboard = read_leaderboard(board)
        state = _json(path / rundir.STATE, "the search checkpoint")
        if isinstance(state, dict) and isinstance(state.get("elapsed"), (int, float)):
            run.elapsed = float(state["elapsed"])
        run.objectives = _objectives(run)
        return run


def _json(path: Path, what: str):
    return load_json(path, what, required=False)


def _objectives(run: RunFiles) -> list[Objective]:
    """The fitness objectives: best_genome.json or final.json record them; while a search still
    runs neither exists, and the run's copy of the space says."""
    for record in (run.best, run.final):
        if isinstance(record, dict) and record.get("objectives"):
            return objectives(record)
    for copy in rundir.RunDir(run.path).space_copies():
        try:
            from evo_msa.space import load_space

            return list(load_space(copy).fitness.objectives)
        except (UserError, OSError, ValueError):
            continue
    return [Objective("loss")]


# ---- small HTML helpers ------------------------------------------------------------------------

def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if isinstance(value, float):
        if value.is_integer():  # counts read back from CSV as floats (epochs, params)
            return f"{value:,.0f}" if abs(value) >= 10000 else f"{value:.0f}"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def _table(header: list[str], rows: list[list], marks: list[str] | None = None) -> str:
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(marks[i])}"' if marks and marks[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(_fmt(v))}</td>" for v in row) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _pairs(rows: list[tuple[str, object]]) -> str:
    return ('<table class="kv">' + "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in rows) + "</table>")


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _img(fig, alt: str) -> str:
    """The figure as an inline PNG (closed afterwards: a report draws many)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _what(objectives: list[Objective]) -> str:
    return ", ".join(f"{o.metric} ({o.direction})" for o in objectives)


# ---- the sections ------------------------------------------------------------------------------

def _option_rows(opts: dict, objectives: list[Objective]) -> list[tuple[str, object]]:
    """The search options (search.json) a reader needs to tell runs apart."""
    def get(key):
        return opts.get(key, "?")

    strategy = (f"{get('strategy')} / {get('mode')}, pop {get('pop')}, generations "
                f"{get('generations')}, seed {get('seed')}"
                + (f", patience {opts['patience']}" if opts.get("patience") else "")
                + (", ASHA" if opts.get("asha") else ""))
    trials = (f"{get('cpus_per_trial')} CPU / {get('gpus_per_trial')} GPU each, "
              f"{opts.get('batch_genomes') or 'auto'} genome(s) per trial")
    final = (f"seeds {opts['final_seeds']}, top {get('final_top')}, up to "
             f"{get('final_epochs')} epochs" if opts.get("final_seeds")
             else "none (--final-seeds given empty)")
    return [("search space", opts.get("space")), ("data", opts.get("data")),
            ("fitness", f"validation {_what(objectives)}"), ("strategy", strategy),
            ("trials", trials), ("final training", final)]


def summary_section(run: RunFiles) -> str:
    """The run at a glance: options, data, counts, the best genome, provenance."""
    opts = run.search or {}
    origin = opts.get("provenance") or (run.metrics or {}).get("provenance") or {}
    rows: list[tuple[str, object]] = [("run directory", str(run.path)),
                                      ("kind", "search" if run.is_search else "training run")]
    if run.is_search:
        rows += _option_rows(opts, run.objectives)
        board = run.leaderboard
        if board is not None and len(board):
            counts = board["status"].value_counts() if "status" in board else pd.Series(dtype=int)
            rows.append(("evaluations", f"{len(board)} ("
                         + ", ".join(f"{n} {s}" for s, n in counts.items()) + "), "
                         f"{board['generation'].nunique() if 'generation' in board else '?'} "
                         "generation(s)"))
            rows.append(("search time", f"{_duration(run.elapsed)} (wall clock, without the "
                                        "final training)" if run.elapsed is not None else "–"))
        else:
            rows.append(("evaluations", "none yet"))
        if run.best:
            b = run.best
            rows.append(("best", f"#{b.get('id')} (generation {b.get('generation')}): "
                                 f"valid {b.get('metric')} {_fmt(b.get('fitness'))}, "
                                 f"{_fmt(b.get('params'))} parameters"))
    else:
        m = run.metrics or {}
        model = (m.get("run_config") or {}).get("model", {})
        rows += [("data", m.get("data")), ("seeds", m.get("seeds")),
                 ("parameters", m.get("params")), ("epochs (best)", f"{m.get('epochs')} "
                                                                    f"({m.get('best_epochs')})"),
                 ("model", ", ".join(f"{k} {v}" for k, v in model.items()
                                     if k in ("modalities", "depth", "level_widths", "encoder")))]
    if origin:
        versions = origin.get("versions") or {}
        synthetic = str(origin.get("data", "")).startswith("synthetic:")
        rows += [("data sha256", origin.get("data_sha256")
                  or ("– (synthetic data)" if synthetic else "–")),
                 ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
                 ("git commit", origin.get("git_commit")),
                 ("started", f"{origin.get('time', '?')} on {origin.get('host', '?')}")]
    rows.append(("report written", time.strftime("%Y-%m-%d %H:%M:%S")))
    return _pairs(rows)


def progress_section(run: RunFiles) -> str:
    """Fitness per evaluation and the best so far, with a table per generation."""
    from evo_msa.record.leaderboard import usable_rows
    from evo_msa.report.plots import leaderboard_progress_figure

    if not run.is_search:
        return ""  # a training run: no search, no section
    board = run.leaderboard
    if board is None or not len(usable_rows(board)):
        return _note(f"No usable evaluation yet ({rundir.LEADERBOARD} is missing or holds only "
                     "failed evaluations).")
    primary = run.objectives[0]
    ok = usable_rows(board)
    pick = min if primary.direction == "min" else max
    rows, so_far = [], None
    for gen, group in ok.groupby("generation"):
        values = group["fitness"].astype(float)
        best = pick(values)
        so_far = best if so_far is None else pick(so_far, best)
        rows.append([int(gen), len(group), best, float(values.median()), so_far])
    fig = leaderboard_progress_figure(board, primary)
    return (_img(fig, "fitness per evaluation and best so far")
            + _table(["generation", "usable evaluations", f"best {primary.metric}",
                      f"median {primary.metric}", "best so far"], rows))


def top_section(run: RunFiles, k: int) -> str:
    """The k best evaluations, one row per architecture."""
    from evo_msa.record.leaderboard import top_rows

    if not run.is_search:
        return ""
    if run.leaderboard is None or not len(run.leaderboard):
        return _note(f"No evaluation yet: {rundir.LEADERBOARD} is missing or empty.")
    top = top_rows(run.leaderboard, k, run.objectives[0])
    if not len(top):
        return _note(f"No usable evaluation: every one failed (see the notes in "
                     f"{rundir.LEADERBOARD}).")
    # several objectives: their own columns replace `fitness` (the first of them), and the
    # parameter count is shown once
    fits = [c for c in top.columns if c.startswith("fitness:") and c != "fitness:params"]
    genes = [c for c in top.columns if c.startswith("gene:")]
    # the status only when some row is not plainly trained (cached, early-stopped)
    status = ["status"] if "status" in top and (top["status"] != "ok").any() else []
    # one seed's spread, where evaluations trained several: is a lead over the next row real?
    spread = (["fitness_std"] if not fits and "fitness_std" in top
              and pd.to_numeric(top["fitness_std"], errors="coerce").notna().any() else [])
    cols = [c for c in ["id", "generation"] + status + ([] if fits else ["fitness"]) + spread
            if c in top] + fits + [c for c in ["pareto", "params", "epochs"] if c in top] + genes
    header = ["rank"] + [c[len("gene:"):] if c.startswith("gene:") else c for c in cols]
    # genes by their last name (lr, not train.lr) where that is still unambiguous: narrower
    short = [h.rsplit(".", 1)[-1] for h in header]
    header = [s if short.count(s) == 1 else h for s, h in zip(short, header)]
    rows = [[i + 1] + [row[c] for c in cols] for i, (_, row) in enumerate(top.iterrows())]
    marks = ["best" if i == 0 else "" for i in range(len(rows))]
    return (_note(f"The {len(rows)} best of {len(run.leaderboard)} evaluations on validation "
                  f"{run.objectives[0].metric}, one row per architecture.")
            + _table(header, rows, marks))


def genes_section(run: RunFiles) -> str:
    """Each gene against the fitness (stopped genomes marked)."""
    from evo_msa.record.leaderboard import stopped_rows, usable_rows
    from evo_msa.report.plots import genes_figure

    board = run.leaderboard
    if not run.is_search:
        return ""
    if board is None or not any(c.startswith("gene:") for c in board.columns):
        return _note("No genes to plot (no evaluation yet).")
    if not len(usable_rows(board)):
        return _note("No usable evaluation yet.")
    stopped = len(stopped_rows(board))
    note = (_note(f"Hollow marks: {stopped} genome(s) stopped at a rung of successive halving, "
                  "at their fitness there (fewer epochs than the others).") if stopped else "")
    return _img(genes_figure(board, run.objectives[0], log_genes=_log_genes(run.path)),
                "each gene against the fitness") + note


def _log_genes(path: Path) -> set[str]:
    """The genes the run's space scales logarithmically (their axes are logarithmic too)."""
    from evo_msa.space import load_space

    copies = rundir.RunDir(path).space_copies()
    if not copies:
        return set()
    try:
        space = load_space(copies[0])
    except UserError:
        return set()
    return {g.path for g in space.genes if g.log or g.type == "log-float"}


def pareto_section(run: RunFiles) -> str:
    """The Pareto front of a search with several objectives."""
    from evo_msa.record.leaderboard import usable_rows
    from evo_msa.report.plots import pareto_figure

    objs = run.objectives
    if not run.is_search or len(objs) < 2:
        return ""  # one objective (or a training run): no front, no section
    board = run.leaderboard
    cols = [f"fitness:{o.metric}" for o in objs]
    if board is None or not all(c in board for c in cols) or not len(usable_rows(board)):
        return _note("No usable evaluation with every objective yet.")
    ok = usable_rows(board)
    front = ok[ok["pareto"].astype(str).str.lower() == "true"] if "pareto" in ok else ok.iloc[:0]
    front = front.sort_values(cols[0], ascending=objs[0].ascending())
    genes = [c for c in front.columns if c.startswith("gene:")]
    rows = [[row["id"], row["generation"]] + [row[c] for c in cols] + [row[g] for g in genes]
            for _, row in front.iterrows()]
    return (_img(pareto_figure(board, objs), "Pareto front")
            + _note(f"{len(front)} non-dominated of {len(ok)} usable evaluations "
                    f"({_what(objs)}).")
            + _table(["id", "generation"] + [o.metric for o in objs]
                     + [g[len("gene:"):] for g in genes], rows))


def _metric_tables(entries: list[tuple[str, dict]]) -> str:
    """Per split, one row per metric and one column per trained configuration (mean ± std over
    its seeds): metrics outnumber the configurations, so the table grows down, not sideways."""
    out = []
    for split in ("test", "valid"):
        names: list[str] = []
        for _, summary in entries:
            names += [n for n in summary.get(split, {}) if n not in names]
        if not names:
            continue
        rows = [["seeds"] + [len(s.get("seeds", [])) for _, s in entries],
                ["params"] + [s.get("params") for _, s in entries]]
        for n in names:
            cells = [s.get(split, {}).get(n) for _, s in entries]
            rows.append([n] + [_mean_std(v) for v in cells])
        out.append(f'<div class="split"><h3>{esc(split)}</h3>'
                   + _table(["metric"] + [label for label, _ in entries], rows) + "</div>")
    return f'<div class="splits">{"".join(out)}</div>'


def _mean_std(v) -> str | None:
    """`0.8320 ± 0.0190`, or the mean alone for a deterministic model (std None)."""
    if not isinstance(v, dict):
        return None
    return f"{v['mean']:.4f}" if v.get("std") is None else f"{v['mean']:.4f} ± {v['std']:.4f}"


def final_model_part(final: dict) -> str:
    """What the final model is (single or ensemble, chosen on valid), its two test figures
    and the verdict against the baselines (final.json's final_model and verdict)."""
    fm = final.get("final_model")
    if not isinstance(fm, dict) or not isinstance(fm.get("members"), list):
        return ""
    members = ", ".join(f"#{m.get('id')} (rank {m.get('rank')}, weight {m.get('weight', 0):.2f})"
                        for m in fm["members"] if isinstance(m, dict))
    sel = fm.get("selection") or {}
    chose = ""
    if "valid_ensemble" in sel:
        chose = (f" Chosen on valid {sel.get('metric')}: greedy ensemble {sel['valid_ensemble']:.4f}"
                 f" against {sel.get('valid_single', math.nan):.4f} for the search's pick alone.")
    what = "An ensemble of " if fm.get("kind") == "ensemble" else "A single architecture: "
    test = fm.get("test") or {}
    names = list((test.get("per_seed") or {}))
    rows = [[n, _mean_std(test["per_seed"].get(n)),
             _number((test.get("seed_ensemble") or {}).get(n))] for n in names]
    out = _note(f"Final model ({esc(str(fm.get('folder')))}): {what}{members}.{chose}")
    out += _table(["test metric", "each seed's model (mean ± std)",
                   "the seeds' averaged predictions (predict)"], rows)
    verdict = [v for v in final.get("verdict") or [] if isinstance(v, dict) and "line" in v]
    if verdict:
        out += ("<h3>Verdict on test, against the best baseline per metric</h3><ul>"
                + "".join(f"<li>{esc(str(v['line']))}</li>" for v in verdict) + "</ul>")
    return out


def _number(v) -> str | None:
    """A figure with four decimals, or None."""
    return f"{v:.4f}" if isinstance(v, (int, float)) else None


def final_section(run: RunFiles) -> str:
    """The final trainer's metrics (mean and std over its seeds) beside the baselines."""
    if run.metrics is not None and not run.is_search:
        if (run.metrics.get("baseline") or {}).get("deterministic"):
            metrics = _without_std(run.metrics)
            return (_note("A deterministic model: one fit, the same for every seed.")
                    + _metric_tables([("this run", metrics)]))
        return (_note(f"Mean ± std over seeds {run.metrics.get('seeds')}.")
                + _metric_tables([("this run", run.metrics)]))
    genomes = (run.final or {}).get("genomes") or []
    if not genomes:
        return _note(f"No final training yet ({rundir.FINAL_JSON} is missing: the search is still "
                     "running, was interrupted, or ran with --final-seeds given empty).")
    entries = [(f"rank {g.get('rank')} · #{g.get('id')}", g) for g in genomes]
    note = (f"Retrained on train, early-stopped on valid, scored on test; mean ± std over "
            f"seeds {genomes[0].get('seeds')} on {run.final.get('device', '?')}.")
    base = run.final.get("baseline")
    if isinstance(base, dict):  # the built-in linear model chosen on valid, same splits
        label = f"{base.get('model')} ({base.get('modalities')})"
        entries.append((label, _baseline_summary(base)))
        note += (f" Beside it: {label}, the built-in baseline on the modality subset with the "
                 f"best valid loss (see baselines.csv).")
    return final_model_part(run.final) + _note(note) + _metric_tables(entries)


def _baseline_summary(row: dict) -> dict:
    """A baselines.csv row in the shape of a metrics summary (one deterministic fit: no std)."""
    out: dict = {"seeds": [0]}
    for key, value in row.items():
        split, _, metric = key.partition("_")
        if split in ("valid", "test") and metric and isinstance(value, (int, float)):
            out.setdefault(split, {})[metric] = {"mean": float(value), "std": None}
    return out


def _without_std(summary: dict) -> dict:
    """A summary of a deterministic fit: the means, no std."""
    return {**summary, **{split: {m: {"mean": v["mean"], "std": None}
                                  for m, v in summary[split].items()}
                          for split in ("test", "valid") if isinstance(summary.get(split), dict)}}


def curves_section(run: RunFiles) -> str:
    """Learning curves of the saved models, best genomes first."""
    from evo_msa.report.plots import curves_figure

    seeds, finals = rundir.seed_folder(rundir.ANY), rundir.final_folder(rundir.ANY, rundir.ANY)
    found = sorted(run.path.glob(f"{finals}/{seeds}/{rundir.HISTORY}"),
                   key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name
                                                             + " " + p.parent.name)])
    found = found or sorted(run.path.glob(f"{seeds}/{rundir.HISTORY}"),
                            key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    if not found:
        return _note(f"No learning curves: no saved model with a {rundir.HISTORY} "
                     f"({finals}/{seeds}/ or {seeds}/) yet.")
    figures = []
    for path in found[:MAX_CURVES]:
        history = load_csv(path, "a training history")
        if not len(history):
            continue
        meta = _json(path.parent / rundir.MODEL_JSON, "a saved model's description") or {}
        where = path.parent.relative_to(run.path)
        title = (f"{where.parent.name.replace('-', ' ')} · {where.name.replace('_', ' ')}"
                 if where.parent.name else where.name.replace("_", " "))
        figures.append(_img(curves_figure(history, meta.get("best_epoch") or 0, title),
                            f"learning curves {where}"))
    more = len(found) - MAX_CURVES
    return (f'<div class="grid">{"".join(figures)}</div>'
            + (_note(f"{more} more seed folder(s) not shown.") if more > 0 else ""))


# ---- the page ----------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
  max-width:1180px;margin:0 auto;padding:0 20px 40px;background:#fafafa}
header{border-bottom:2px solid #ddd;margin-bottom:8px}
h1{font-size:22px;margin:18px 0 4px} h2{font-size:18px;margin:28px 0 8px;
  border-bottom:1px solid #e3e3e3;padding-bottom:3px} h3{font-size:15px;margin:14px 0 6px}
nav a{margin-right:14px;color:#1a5fb4;text-decoration:none} nav{margin:6px 0 10px}
section{background:#fff;border:1px solid #e6e6e6;border-radius:6px;padding:2px 16px 12px;
  margin-top:16px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border:1px solid #e2e2e2;padding:3px 8px;text-align:left;white-space:nowrap}
thead th{background:#f0f3f7;position:sticky;top:0}
tbody tr:nth-child(even){background:#fafbfc}
tr.best td{background:#e6f4ea;font-weight:600}
table.kv th{background:#f6f6f6;width:170px;vertical-align:top}
table.kv td{white-space:normal;word-break:break-word}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:6px}
.note{color:#555;font-style:italic;margin:6px 0}
.splits{display:flex;flex-wrap:wrap;gap:0 28px} .split{min-width:0;max-width:100%}
"""


def render(run_dir: str | Path, top: int = 10) -> str:
    """The report page as one HTML string."""
    run = RunFiles.read(run_dir)
    bodies = {"summary": summary_section(run), "progress": progress_section(run),
              "top": top_section(run, top), "genes": genes_section(run),
              "pareto": pareto_section(run), "final": final_section(run),
              "curves": curves_section(run)}
    shown = [key for key in SECTIONS if bodies[key]]  # a section with nothing to say is left out
    nav = "".join(f'<a href="#{key}">{esc(SECTIONS[key])}</a>' for key in shown)
    sections = "".join(f'<section id="{key}"><h2>{esc(SECTIONS[key])}</h2>{bodies[key]}</section>'
                       for key in shown)
    title = f"evo-msa report: {run.path.resolve().name}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><nav>{nav}</nav></header>{sections}</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None, top: int = 10) -> Path:
    """Write the report (default RUN_DIR/report.html); returns its path."""
    page = render(run_dir, top)
    path = Path(out) if out else Path(run_dir) / rundir.REPORT
    if not path.parent.is_dir():
        raise UserError(f"{path}: its folder does not exist")
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
