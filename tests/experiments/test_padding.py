"""experiments/padding.py: padded parameters are at least the members' own; identical genomes
pad nothing against each other."""
import importlib.util
from pathlib import Path

from evo_msa.data import DataInfo, make_synthetic
from evo_msa.models import member_parameters
from evo_msa.space import load_space

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("padding", ROOT / "experiments" / "padding.py")
padding = importlib.util.module_from_spec(spec)
spec.loader.exec_module(padding)


def test_padding_counts_against_own_parameters(capsys):
    data = make_synthetic("mosi", seed=0, n=60)
    info = DataInfo.from_data(data)
    space = load_space(ROOT / "search_spaces" / "haemsa_small_data.yaml")
    import random

    rng = random.Random(0)
    cfgs = [space.to_config(space.sample(rng), available=data.modalities) for _ in range(4)]
    own = [member_parameters(c, info) for c in cfgs]
    assert padding.padded(cfgs, info) >= sum(own)
    # identical members pad nothing against each other
    # (a population of one keeps the saved-model layout, so compare populations of 2 and 4)
    assert padding.padded([cfgs[0]] * 4, info) == 2 * padding.padded([cfgs[0]] * 2, info)
    padding.main(["--data", "synthetic:mosi?n=60", "--genomes", "3"])
    assert "mean of 3 draws: one population" in capsys.readouterr().out
