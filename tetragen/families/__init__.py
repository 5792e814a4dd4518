"""Model families, one folder each; importing this package registers them all."""
from . import bert, cgan, cvae, dcgan, gpt, vae  # noqa: F401
