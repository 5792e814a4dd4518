"""Sampling pipelines and writers shared across families (image grids, .npz arrays)."""
