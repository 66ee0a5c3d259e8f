"""`python -m evo_msa`: the `evo-msa` command."""
from evo_msa.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
