"""Metric functions, independent of any family."""
