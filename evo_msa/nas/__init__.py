"""Search layer: strategy (DEAP) -> policies (dedup, constraints, penalty) -> Tune searcher ->
trials (Tune function trainable) -> runner (outputs, final trainer)."""
