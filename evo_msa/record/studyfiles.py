"""The files of a study's result folders (`evo-msa study`, the studies package), by name.

    <results>/summary.csv, <studies folder>/RESULTS.md        every variant's metrics
    <study>/<dataset>/best_genome.json, README.md, <space>    a search variant's published pick
    <study>/<dataset>/best_so_far.csv/.png                    search variants side by side
    <study>/<dataset>/fitness_vs_final.png                    search fitness against retraining
    <variant>/provenance.json, command.txt                    how it ran
    <variant>/metrics.json/.csv (record.rundir), run_config.yaml (a train variant)
    <variant>/fitness_vs_final.csv, best_so_far.csv           a search variant
    <variant>/search_seed<s>/command.txt, retrained.json      one search of a search variant
    <variant>/per_seed.csv, missing.csv/.png                  a missing-modality variant
    <variant>/tsne.png, silhouette.csv                        a t-SNE variant
    <studies folder>/notes/<study>.md, notes/_header.md       the commentary RESULTS.md quotes
"""
from __future__ import annotations

SUMMARY = "summary.csv"
RESULTS_MD = "RESULTS.md"
RESULTS_FOLDER = "results"
NOTES_FOLDER = "notes"
NOTES_HEADER = "_header.md"
STUDY_SUMMARY_MD = "summary.md"  # a study's own note beside its results
PROVENANCE = "provenance.json"
COMMAND = "command.txt"
RUN_CONFIG = "run_config.yaml"
RETRAINED = "retrained.json"
README = "README.md"
BEST_SO_FAR_CSV = "best_so_far.csv"
BEST_SO_FAR_PNG = "best_so_far.png"
FITNESS_VS_FINAL_CSV = "fitness_vs_final.csv"
FITNESS_VS_FINAL_PNG = "fitness_vs_final.png"
PER_SEED = "per_seed.csv"
MISSING_CSV = "missing.csv"
MISSING_PNG = "missing.png"
TSNE = "tsne.png"
SILHOUETTE = "silhouette.csv"


def search_seed_folder(seed: int | str) -> str:
    """One search of a search variant (its small files)."""
    return f"search_seed{seed}"


def final_seed_folder(seed: int | str) -> str:
    """The retraining of one search's pick (scratch space)."""
    return f"final_seed{seed}"
