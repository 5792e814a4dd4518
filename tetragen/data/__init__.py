"""Datasets: named sources verified by checksum, user files, tokenizers and batching."""
