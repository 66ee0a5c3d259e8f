"""evo-msa: evolutionary architecture search for multimodal sentiment analysis.

Data flow, one package per step:
    data -> models -> objectives -> train -> (metrics) -> space -> search -> report
"""

__version__ = "0.1.0"
