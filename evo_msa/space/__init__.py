from evo_msa.space.space import Gene, SearchSpace, load_space, parse_space

__all__ = ["Gene", "SearchSpace", "load_space", "parse_space"]
