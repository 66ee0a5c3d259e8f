"""Studies: `evo-msa study experiments/<study>.yaml [--quick] [--data-dir DIR]`.

A study YAML names its datasets and its variants; `run_study` trains, searches and scores them
through evo_msa.api and writes only small files (CSV, JSON, PNG, the exact command, the git
commit) into ``results/<study>/<dataset>/<variant>/`` beside the study file
(``experiments/results/...``), then summary.csv there and ``RESULTS.md`` beside it, with the
commentary of ``notes/<study>.md`` (spec.Layout; the working directory does not matter). Paths
in a study file (spaces, genomes) are relative to the repository root, the study folder's
parent; dataset paths to the data dir (default ``../shared/data`` from that root). Heavy
outputs (saved weights, Ray's folders) go to a scratch folder. ``--quick`` runs the same study
at toy size on the synthetic data into a temporary folder (CI runs every study that way).

    name: main_table
    description: evolved HAEMSA against the baselines
    seeds: [0, 1, 2, 3, 4]                 # training seeds of every train/baseline variant
    datasets:
      - {name: mosi_acl17_minilm, path: mosi-acl17/mosi_acl17_minilm.pkl, quick: synthetic:mosi}
    variants:
      - {name: baselines, kind: baselines, models: auto, subsets: all}   # every modality subset
      - {name: default, kind: train}                                     # hand-set HAEMSA
      - {name: evolved, kind: train, genome: experiments/results/x/{dataset}/best_genome.json,
         space: experiments/results/x/{dataset}/haemsa_small_data.yaml}
      - {name: evo, kind: search, space: search_spaces/haemsa.yaml, search_seeds: [0, 1, 2],
         options: {pop: 16, generations: 6}}
      - {name: no_depth, kind: train, genome_from: evo, overrides: {model.depth: 0}}
      - {name: missing, kind: missing, of: evolved}      # zero each modality at test time
      - {name: tsne, kind: tsne, of: [evolved, no_depth]}
    quick: {seeds: [0, 1], epochs: 2, pop: 4, generations: 2}   # --quick sizes

Kinds, each run by `<kind>_variant(ctx, variant)`: baseline (one model, one modality subset),
baselines (every model x subset), train (the default config, an `arch`, a `genome`+`space`, or
`genome_from` a search variant of the same study; `overrides` of run-config fields on top;
those known before the run train together as one population), search (one search per search
seed, the winner by search fitness, the best genomes retrained like `evo-msa train` with the
study's seeds), missing, tsne (need a trained variant's saved models, which stay in the
scratch folder of the same invocation, or are retrained there when absent).

Modules, in the order a study runs: spec (the study file, where results go, the context of a
variant, what every variant writes), variants (baselines, train, search), analysis (missing
modalities, t-SNE, study figures), summary (summary.csv, RESULTS.md), study (the loop and the
CLI).
"""
from evo_msa.studies.spec import load_study
from evo_msa.studies.study import add_arguments, main, run_study
from evo_msa.studies.summary import write_summary

__all__ = ["add_arguments", "load_study", "main", "run_study", "write_summary"]
