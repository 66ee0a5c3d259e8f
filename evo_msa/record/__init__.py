"""The record layer: what a search and a training leave behind, written and read in one place.

    rundir.py       the run directory: every file name, the atomic writes, the one JSON reader
    evaluation.py   the evaluation record (one genome as the search saw it)
    ranking.py      the k best evaluations (one per architecture), the Pareto front
    leaderboard.py  leaderboard.csv: built from the records, read back (the one CSV reader)
    best.py         best_genome.json: its content, its reader, the objectives it names
    studyfiles.py   the file names of a study's result folders

It sits below both the search (`nas`, `studies`) and the presentation (`report`): they import
from here, never the other way round (ARCHITECTURE.md).
"""
