"""The datasets known by name: what `tetragen data ls` lists, `tetragen data fetch NAME` gets, and the quickstart
looks for (`at_hand`). Each kind of content names its own (`Modality.datasets`)."""
from __future__ import annotations

from ..errors import UserError
from ..registry import get_modality, list_modalities
from .sources import NamedDataset


def named_datasets() -> dict[str, NamedDataset]:
    """Every dataset `data ls` lists and `data fetch` gets, built when asked so that it reflects the data modules'
    current tables."""
    return {d.name: d for m in list_modalities() for d in get_modality(m).datasets()}


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
