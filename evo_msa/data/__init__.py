"""Data: MMSA-layout pickles (loaded safely) and synthetic data, as `MSAData`."""
from evo_msa.data.dataset import MODALITIES, DataInfo, MSAData, Split
from evo_msa.data.loader import load_data
from evo_msa.data.safe_pickle import safe_load
from evo_msa.data.synthetic import make_synthetic

__all__ = ["MODALITIES", "DataInfo", "MSAData", "Split", "load_data", "make_synthetic", "safe_load"]
