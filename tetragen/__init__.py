"""tetragen: build, train, evaluate and serve GANs, VAEs, transformers and hybrids."""
from .api import load, train
from .registry import get_family, list_families

__version__ = "0.1.0"
__all__ = ["load", "train", "get_family", "list_families", "__version__"]
