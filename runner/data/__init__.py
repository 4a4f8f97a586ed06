"""Datasets, decoding and preprocessing recipes (no deep-learning framework imports here)."""
