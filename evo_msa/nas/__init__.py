"""The search (neural-architecture search over a YAML search space), in layers with small
interfaces, as in NNI's nas/{space, strategy, evaluator, execution}:

    strategies/   which genome next: ask/tell, checkpointable (evolution, random, ...)
    policies      between strategy and evaluator: decode, dedup, constraints, seeds, penalty
    evaluators/   how a genome becomes a measurement: HAEMSA trainings, lookup tables
    engine        the loop: strategy -> policy -> evaluations -> outcomes -> strategy
    execution/    where evaluations run: Ray Tune trials, or inline
    runner        `evo-msa search`: prepare, claim the run directory, evolve, conclude
    final         the final trainer: the best genome(s) retrained with several seeds, the final
                  model chosen on valid (single, or a greedy ensemble: ensemble), scored on test
                  once, and the verdict against the baselines (verdict)
    ray_session/  Ray behind one adapter (one job per module; private Ray APIs in private.py)
    interrupt, options, tracking: Ctrl-C, the CLI options, TensorBoard
"""
