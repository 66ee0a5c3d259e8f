"""Search spaces: genes decoded from a genome in [0, 1]^n, the fitness and the fidelity."""
from evo_msa.space.space import Gene, SearchSpace, load_space, parse_space

__all__ = ["Gene", "SearchSpace", "load_space", "parse_space"]
