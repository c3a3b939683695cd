"""Data sets, offline: the NTU reader, splits, the data-set format, occlusion, synthetic data."""
