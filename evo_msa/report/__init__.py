"""Rendering a run's records: the figures (plots.py) and the self-contained HTML report (html.py).
Reads records through evo_msa.record; parses no file itself."""
