"""Model families, one folder each; importing this package registers them all."""
from . import bert, gpt  # noqa: F401
