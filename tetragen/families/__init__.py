"""Model families, one folder each; importing this package registers them all."""
from . import bert, cvae, gpt, vae  # noqa: F401
