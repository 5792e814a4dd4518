"""Model families, one folder each; importing this package registers them all."""
from . import gpt  # noqa: F401
