"""The `evo-msa` command: a thin layer over the Python API (evo_msa.api)."""
from __future__ import annotations

import argparse
import os
import sys

from evo_msa.errors import UserError, did_you_mean
from evo_msa.record import rundir


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse without prefix matching (`--generation 2` is no `--generations 2`), and an
    unknown option named with the closest known one ("did you mean '--generations'?")."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        """Parse `args`; an unknown option is an error that names the closest known one."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self._unknown(parsed, extra)
        return parsed

    def error(self, message: str):
        """argparse's error, with the closest choice to a mistyped command or value."""
        import re

        bad = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if bad:
            choices = re.findall(r"'(.*?)'", bad.group(2))
            message += did_you_mean(bad.group(1), choices)
        super().error(message)

    def _unknown(self, parsed: argparse.Namespace, extra: list[str]) -> None:
        parser = self
        command = getattr(parsed, "command", None)
        for action in self._subparsers._group_actions if self._subparsers else []:
            parser = action.choices.get(command, parser)
        flags = [f for f in extra if f.startswith("-")]
        if not flags:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        flag = flags[0].partition("=")[0]
        known = [o for o in parser._option_string_actions if o.startswith("--")]
        parser.error(f"unknown option {flag!r}{did_you_mean(flag, known)}")


DATA_HELP = ("an MMSA-layout pickle, or synthetic:mosi / synthetic:iemocap / synthetic:sims "
             "(options: synthetic:mosi?seed=1&noise=vision)")


FORMAT = argparse.ArgumentDefaultsHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The `evo-msa` parser: one subcommand per API function, and `study`."""
    parser = Parser(prog="evo-msa", description=(
        "Evolutionary architecture search for multimodal sentiment analysis (HAEMSA)."))
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_search, _add_baseline, _add_predict, _add_export, _add_report,
                _add_data, _add_leaderboard, _add_study):
        add(sub)
    return parser


def _add_train(sub) -> None:
    """`evo-msa train`."""
    metrics_out = f"output directory ({rundir.METRICS_JSON}, {rundir.METRICS_CSV})"
    t = sub.add_parser("train", formatter_class=FORMAT, help="train one architecture with several seeds",
                       description="Train a HAEMSA model (the default hand-set one, an --arch "
                                   "YAML, or a searched --genome) and report test metrics.")
    t.add_argument("--data", default="synthetic:mosi", help=DATA_HELP)
    src = t.add_mutually_exclusive_group()
    src.add_argument("--arch", help="run-config YAML with sections model/loss/train/pretrained")
    src.add_argument("--genome", help=f"{rundir.BEST} of a search (needs --space)")
    t.add_argument("--space", help="the search space the genome belongs to")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="training seeds (trained together as one population)")
    t.add_argument("--epochs", type=_positive_int, help="override train.epochs")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--out", required=True, help=metrics_out)


def _add_search(sub) -> None:
    """`evo-msa search`."""
    from evo_msa.nas.options import SearchOptions

    s = sub.add_parser("search", formatter_class=FORMAT, help="evolve architectures on Ray Tune",
                       description="Evolve HAEMSA genomes; every fitness evaluation is a short "
                                   "training, batches of genomes train together as one Ray Tune "
                                   "trial; the best genome is retrained with several seeds and "
                                   "scored on test.")
    SearchOptions.add_arguments(s)
    where = s.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="run directory (default runs/<timestamp>)")
    where.add_argument("--resume", default=None, metavar="RUN_DIR",
                       help="continue an interrupted search where its checkpoint left off")
    s.add_argument("--force", action="store_true",
                   help="with --resume: continue even though the run's space copy, data or "
                        "options changed since it started")


def _add_baseline(sub) -> None:
    """`evo-msa baseline`."""
    metrics_out = f"output directory ({rundir.METRICS_JSON}, {rundir.METRICS_CSV})"
    b = sub.add_parser("baseline", formatter_class=FORMAT, help="a simple model on the same data",
                       description="Ridge / softmax regression or a one-hidden-layer MLP on the "
                                   "time-pooled, concatenated features, or the plain fine-tuned "
                                   "text encoder (finetune: mean pooling, one linear layer); "
                                   "penalty or epoch chosen on valid; same metrics and files as "
                                   "`train`.")
    b.add_argument("--data", default="synthetic:mosi", help=DATA_HELP)
    b.add_argument("--model", required=True, choices=["ridge", "mlp", "softmax", "finetune"])
    b.add_argument("--text-model", default=None, metavar="DIR",
                   help="finetune: the pretrained encoder (directory or alias; default "
                        "all-MiniLM-L6-v2)")
    b.add_argument("--modalities", default=None,
                   help="comma-separated subset, e.g. text,audio (default: all the data has)")
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    b.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    b.add_argument("--out", required=True, help=metrics_out)


def _add_predict(sub) -> None:
    """`evo-msa predict`."""
    seed = rundir.seed_folder("<s>")
    p = sub.add_parser("predict", formatter_class=FORMAT, help="predict with a saved model",
                       description="Predict a split of a dataset with a saved model: a seed "
                                   "folder, an `evo-msa train` output or a search run (the mean "
                                   "of its seeds). Metrics too when the split has labels.")
    p.add_argument("--model", required=True, metavar="RUN_DIR",
                   help=f"{seed} folder, train output, or search run directory")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--split", default="test", help="which split of the data file")
    p.add_argument("--out", default=None,
                   help=f"predictions CSV (metrics go to <stem>{rundir.PREDICT_METRICS_SUFFIX} "
                        "beside it)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")


def _add_export(sub) -> None:
    """`evo-msa export`."""
    seed = rundir.seed_folder("<s>")
    e = sub.add_parser("export", formatter_class=FORMAT, help="export a saved model to ONNX",
                       description="Write a saved model as ONNX (raw features in, predictions "
                                   "out; the normalisation is inside the graph) and check it "
                                   "against PyTorch in onnxruntime. Needs the export extra.")
    e.add_argument("--model", required=True, metavar="RUN_DIR",
                   help=f"{seed} folder (or a run: its first seed)")
    e.add_argument("--out", required=True, help="the .onnx file to write")


def _add_report(sub) -> None:
    """`evo-msa report`."""
    r = sub.add_parser("report", formatter_class=FORMAT, help="one self-contained HTML page for a run",
                       description="Summary, progress, top-k table, genes vs fitness, Pareto "
                                   "front, final metrics and learning curves of a search run (or "
                                   "an `evo-msa train --out` directory) as one HTML file that "
                                   "opens offline.")
    r.add_argument("run_dir", metavar="RUN_DIR", help="search run directory or train output")
    r.add_argument("--out", default=None, help=f"the HTML file (default RUN_DIR/{rundir.REPORT})")
    r.add_argument("--top", type=_positive_int, default=10, help="rows of the top-k table")


def _add_data(sub) -> None:
    """`evo-msa data`."""
    d = sub.add_parser("data", formatter_class=FORMAT, help="describe a dataset or say what is wrong",
                       description="Splits, modalities with shapes and dtypes, labels, missing "
                                   "values of a dataset; or one line saying why it cannot be used "
                                   "(exit 2).")
    d.add_argument("data", metavar="DATA", help=DATA_HELP)
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.add_argument("--text-model", default=None, metavar="DIR",
                   help="a pretrained text encoder (directory or alias, e.g. all-MiniLM-L6-v2): "
                        "count the utterances' tokens and those cut at --max-tokens")
    d.add_argument("--max-tokens", type=int, default=50, help="tokens kept per utterance")


def _add_leaderboard(sub) -> None:
    """`evo-msa leaderboard`."""
    lb = sub.add_parser("leaderboard", formatter_class=FORMAT, help="print and merge leaderboards")
    lb.add_argument("runs", nargs="+", help=f"run directories (or {rundir.LEADERBOARD} files)")
    lb.add_argument("--top", type=int, default=10, help="rows to show")
    lb.add_argument("--out", default=None, help="write the merged leaderboard to this CSV")
    shown = lb.add_mutually_exclusive_group()
    shown.add_argument("--wide", action="store_true",
                       help="every column, uncut (default: what fits 100 characters)")
    shown.add_argument("--columns", default=None, metavar="A,B,...",
                       help="these columns (a gene by its path or field, e.g. "
                            "id,fitness,model.depth)")


def _add_study(sub) -> None:
    """`evo-msa study` (`experiment`, its old name)."""
    # `experiment` was the command's first name: still accepted, with a notice (see main)
    ex = sub.add_parser("study", aliases=["experiment"], formatter_class=FORMAT,
                        help="run a study (experiments/*.yaml)",
                        description="Run a study's baselines, trainings and searches; write "
                                    "CSV/PNG/JSON and the command into results/ beside the study "
                                    "file (experiments/results/) and regenerate summary.csv and "
                                    "RESULTS.md.")
    from evo_msa.studies import add_arguments as study_arguments
    study_arguments(ex)


def cmd_train(args) -> int:
    """`evo-msa train`: api.train."""
    from evo_msa import api

    api.train(data=args.data, arch=args.arch, genome=args.genome, space=args.space,
              seeds=args.seeds, epochs=args.epochs, device=args.device, out=args.out)
    return 0


def cmd_search(args) -> int:
    """`evo-msa search`: the runner (a resume with --resume), under a heartbeat."""
    from evo_msa.progress import Heartbeat

    with Heartbeat(print) as beat:  # torch and Ray take seconds to import on a slow machine
        beat.doing("loading torch and Ray")
        from evo_msa.nas.options import SearchOptions
        from evo_msa.nas.runner import search
        from evo_msa.record import rundir

        if args.force and not args.resume:
            raise UserError("--force goes with --resume")
        if args.resume:
            given = SearchOptions.given(args)
            if given:
                raise UserError(f"--resume continues a run with its own options (its "
                                f"{rundir.SEARCH}); drop --{given[0].replace('_', '-')}")
            search(SearchOptions(), resume=args.resume, force=args.force, log=beat.log)
        else:
            search(SearchOptions.from_args(args, out=args.out), log=beat.log)
    return 0


def cmd_baseline(args) -> int:
    """`evo-msa baseline`: api.baseline."""
    from evo_msa import api

    mods = [m.strip() for m in args.modalities.split(",")] if args.modalities else None
    api.baseline(data=args.data, model=args.model, modalities=mods, seeds=args.seeds,
                 device=args.device, out=args.out, text_model=args.text_model)
    return 0


def cmd_predict(args) -> int:
    """`evo-msa predict`: api.predict."""
    from evo_msa import api

    api.predict(args.model, args.data, split=args.split, out=args.out, device=args.device)
    return 0


def cmd_export(args) -> int:
    """`evo-msa export`: api.export."""
    from evo_msa import api

    api.export(args.model, args.out)
    return 0


def cmd_leaderboard(args) -> int:
    """`evo-msa leaderboard`: the best rows of one or several runs, merged."""
    from evo_msa.api import MAX_ROWS, count_option
    from evo_msa.record.leaderboard import read_leaderboards, run_objective, top_rows
    from evo_msa.report.table import console_table

    count_option("--top", args.top, MAX_ROWS)
    frame = read_leaderboards(args.runs)
    shown = top_rows(frame, args.top, run_objective(args.runs))
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    print(console_table(shown, wide=args.wide, columns=columns))
    print(f"{len(frame)} evaluations in {len(args.runs)} run(s): {_counts(frame['status'])}")
    if args.out:
        frame.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


def _counts(status) -> str:
    """'16 trained (5 of them stopped at a rung), 3 cached, ...': a genome stopped at a rung
    of successive halving was trained, to its rung."""
    from evo_msa.status import Status

    values = status.astype(str)
    trained = values.isin(Status.trained_values()).sum()
    stopped = (values == Status.EARLY_STOPPED.value).sum()
    parts = [f"{trained} trained" + (f" ({stopped} of them stopped at a rung)" if stopped
                                     else "")]
    for s in (Status.CACHED, Status.REJECTED, Status.NAN, Status.ERROR):
        n = (values == s.value).sum()
        if n:
            parts.append(f"{n} {s.value}")
    return ", ".join(parts)


def cmd_report(args) -> int:
    """`evo-msa report`: api.report."""
    from evo_msa import api

    api.report(args.run_dir, args.out, top=args.top)
    return 0


def cmd_data(args) -> int:
    """`evo-msa data`: describe a dataset (or say why it cannot be used)."""
    import json

    from evo_msa import api
    from evo_msa.data.describe import format_description

    info = api.describe_data(args.data, text_model=args.text_model, max_tokens=args.max_tokens)
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0


def cmd_study(args) -> int:
    """`evo-msa study`: run study files (studies.main)."""
    from evo_msa.studies import main as run_study

    return run_study(args)


HANDLERS = {"train": cmd_train, "search": cmd_search, "baseline": cmd_baseline,
            "leaderboard": cmd_leaderboard, "predict": cmd_predict, "export": cmd_export,
            "report": cmd_report, "data": cmd_data, "study": cmd_study}


def main(argv: list[str] | None = None) -> int:
    """Run one `evo-msa` command; a UserError is one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    if args.command == "experiment":  # the deprecated name of `study`
        print("evo-msa experiment: note: the command is now `evo-msa study` (same arguments)",
              file=sys.stderr)
        args.command = "study"
    try:
        return HANDLERS[args.command](args)
    except UserError as exc:
        print(f"evo-msa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `evo-msa data X | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # as the Python docs do
        return 0
    except KeyboardInterrupt:
        print(f"evo-msa {args.command}: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        print(f"evo-msa {args.command}: stopped by {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
