"""The `evo-msa` command: train, search, leaderboard."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evo_msa.errors import UserError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="evo-msa", description=(
        "Evolutionary architecture search for multimodal sentiment analysis (HAEMSA)."))
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", formatter_class=fmt, help="train one architecture with several seeds",
                       description="Train a HAEMSA model (the default hand-set one, an --arch "
                                   "YAML, or a searched --genome) and report test metrics.")
    t.add_argument("--data", default="synthetic:mosi",
                   help="an MMSA-layout pickle, or synthetic:mosi / synthetic:iemocap / synthetic:sims "
                        "(options: synthetic:mosi?seed=1&noise=vision)")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--arch", help="run-config YAML with sections model/objective/train")
    src.add_argument("--genome", help="best_genome.json of a search (needs --space)")
    t.add_argument("--space", help="the search space the genome belongs to")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds")
    t.add_argument("--epochs", type=_positive_int, help="override train.epochs")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--out", required=True, help="output directory (metrics.json, metrics.csv)")

    s = sub.add_parser("search", formatter_class=fmt, help="evolve architectures on Ray Tune",
                       description="Evolve HAEMSA genomes; every fitness evaluation is a short "
                                   "training run as a Ray Tune trial; the best genome is retrained "
                                   "with several seeds and scored on test.")
    s.add_argument("--space", help="search-space YAML (e.g. search_spaces/haemsa.yaml)")
    s.add_argument("--data", default="synthetic:mosi", help="as for `train`")
    s.add_argument("--pop", type=int, default=32, help="population size")
    s.add_argument("--generations", type=int, default=6,
                   help="generations (steady-state/random: budget = pop x generations evaluations)")
    s.add_argument("--patience", type=int, default=None,
                   help="stop when the best fitness has not improved for this many generations")
    s.add_argument("--strategy", choices=["evolution", "random"], default="evolution",
                   help="random: uniform samples with the same budget (baseline)")
    s.add_argument("--mode", choices=["generational", "steady-state"], default="generational",
                   help="generational (the paper) or steady-state (asynchronous aging evolution)")
    s.add_argument("--seed", type=int, default=0, help="seed of the search and of every trial")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="trials use CUDA when --gpus-per-trial > 0 (auto) ")
    s.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs reserved per trial")
    s.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPU share per trial: 0.25 runs four trials on one GPU (a scheduling "
                        "share, not a memory cap)")
    s.add_argument("--asha", action="store_true", help="stop weak trials early (ASHA)")
    s.add_argument("--address", default=None,
                   help="Ray cluster to join ('auto' for the running one); default: local Ray")
    s.add_argument("--final-seeds", type=int, default=5,
                   help="seeds of the final retraining (0 skips it)")
    s.add_argument("--final-top", type=int, default=1, help="retrain the K best genomes")
    s.add_argument("--final-epochs", type=int, default=50,
                   help="epoch cap of the final retraining (early stopping on valid)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="run directory (default runs/<timestamp>)")
    where.add_argument("--resume", default=None, metavar="RUN_DIR",
                       help="continue an interrupted search where its checkpoint left off")

    lb = sub.add_parser("leaderboard", formatter_class=fmt, help="print and merge leaderboards")
    lb.add_argument("runs", nargs="+", help="run directories (or leaderboard.csv files)")
    lb.add_argument("--top", type=int, default=10, help="rows to show")
    lb.add_argument("--out", default=None, help="write the merged leaderboard to this CSV")
    return parser


def cmd_train(args) -> int:
    from evo_msa.config import RunConfig, load_run_config
    from evo_msa.data import load_data
    from evo_msa.space import load_space
    from evo_msa.train import format_summary, train_seeds, write_results

    if args.space and not args.genome:
        raise UserError("--space is only used with --genome")
    if args.arch:
        cfg = load_run_config(args.arch)
    elif args.genome:
        if not args.space:
            raise UserError("--genome needs --space (the run directory's copy of the space YAML)")
        cfg = None  # decoded below, once the data's modalities are known
    else:
        cfg = RunConfig()
    data = load_data(args.data)
    if cfg is None:
        space = load_space(args.space)
        cfg = space.to_config(_read_genome(args.genome, space.size), available=data.modalities)
    if args.epochs:
        cfg.train.epochs = args.epochs
    print(data.describe())
    print(f"training {len(args.seeds)} seed(s), modalities {cfg.model.modalities}, "
          f"depth {cfg.model.depth}, weighting {cfg.objective.weighting}")
    summary, table = train_seeds(data, cfg, args.seeds, device=args.device)
    summary["run_config"] = cfg.to_dict()
    summary["data"] = args.data
    write_results(Path(args.out), summary, table)
    print(format_summary(summary))
    print(f"wrote {args.out}/metrics.json and metrics.csv")
    return 0


def _read_genome(path: str, size: int) -> list[float]:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such genome file") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg})") from None
    genome = raw.get("genome") if isinstance(raw, dict) else raw
    if (not isinstance(genome, list) or len(genome) != size
            or not all(isinstance(x, (int, float)) for x in genome)):
        raise UserError(f"{path}: 'genome' must be a list of {size} numbers for this space")
    return [float(x) for x in genome]


def cmd_search(args) -> int:
    from evo_msa.search.runner import SearchOptions, search

    if args.resume:
        search(SearchOptions(space=""), resume=args.resume)
        return 0
    if not args.space:
        raise UserError("--space is required (e.g. --space search_spaces/haemsa.yaml)")
    opts = SearchOptions(space=args.space, data=args.data, pop=args.pop,
                         generations=args.generations, patience=args.patience,
                         strategy=args.strategy, mode=args.mode, seed=args.seed,
                         device=args.device, cpus_per_trial=args.cpus_per_trial,
                         gpus_per_trial=args.gpus_per_trial, asha=args.asha,
                         address=args.address, final_seeds=args.final_seeds,
                         final_top=args.final_top, final_epochs=args.final_epochs,
                         out=args.out)
    search(opts)
    return 0


def cmd_leaderboard(args) -> int:
    from evo_msa.report.leaderboard import USABLE, read_leaderboards

    frame = read_leaderboards(args.runs)
    direction = _run_direction(args.runs)
    ok = frame[frame["status"].isin(USABLE)]
    shown = ok.sort_values("fitness", ascending=direction == "min").head(args.top)
    cols = [c for c in ["run", "generation", "id", "status", "fitness", "params", "seconds"]
            if c in shown] + [c for c in shown.columns if c.startswith("gene:")]
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(shown[cols].to_string(index=False))
    print(f"{len(frame)} evaluations in {len(args.runs)} run(s); "
          f"{(frame['status'] != 'ok').sum()} not trained (cached, failed or rejected)")
    if args.out:
        frame.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


def _run_direction(runs: list[str]) -> str:
    """Fitness direction from the first run's best_genome.json (min when unknown)."""
    for run in runs:
        best = Path(run) / "best_genome.json"
        if best.is_file():
            return json.loads(best.read_text()).get("direction", "min")
    return "min"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "search": cmd_search, "leaderboard": cmd_leaderboard}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"evo-msa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
