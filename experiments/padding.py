"""Padded / own parameters of drawn generations: what a population's padding costs.

Draws `--genomes` genomes of a space (three draws, seeds 0-2) on a package's shapes and counts
the parameters of the population models the trainer builds (as one population, and as its
width-grouped populations) against the members' own parameters.

    python experiments/padding.py --data ../shared/data/mosi-acl17/mosi_acl17_minilm.pkl \
        --space search_spaces/haemsa_small_data.yaml
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch  # noqa: E402

from evo_msa.data import DataInfo, load_data  # noqa: E402
from evo_msa.models import HAEMSA, member_parameters  # noqa: E402
from evo_msa.space import load_space  # noqa: E402
from evo_msa.training.trainer import plan_populations  # noqa: E402


def padded(cfgs, info) -> int:
    """Parameters of the population model of `cfgs` (every member padded in it)."""
    model = HAEMSA(cfgs, info).build("cpu", [0] * len(cfgs))
    return sum(p.numel() for p in model.parameters())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="synthetic:mosi")
    ap.add_argument("--space", default=str(ROOT / "search_spaces" / "haemsa_small_data.yaml"))
    ap.add_argument("--genomes", type=int, default=32)
    args = ap.parse_args(argv)
    data = load_data(args.data)
    info, space = DataInfo.from_data(data), load_space(args.space)
    ratios = []
    for seed in range(3):
        rng = random.Random(seed)
        cfgs = [space.to_config(space.sample(rng), available=data.modalities)
                for _ in range(args.genomes)]
        own = sum(member_parameters(c, info) for c in cfgs)

        groups = plan_populations(cfgs, torch.device("cpu"))
        one = padded([cfgs[i] for i in range(len(cfgs))], info) / own
        grouped = sum(padded([cfgs[i] for i in g], info) for g in groups) / own
        ratios.append((one, grouped))
        print(f"draw {seed}: one population {one:.2f}x, width-grouped ({len(groups)} "
              f"populations) {grouped:.2f}x", flush=True)
    print(f"mean of 3 draws: one population {sum(r[0] for r in ratios) / 3:.2f}x, "
          f"width-grouped {sum(r[1] for r in ratios) / 3:.2f}x")


if __name__ == "__main__":
    main()
