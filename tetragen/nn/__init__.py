"""Shared neural-network blocks with no family logic in them."""
