"""What a vqvae run reads: its grids as every grid family reads them (tetragen/data/grids.py), with model.temporal
checked against the frames the data sets (model.channels)."""
from __future__ import annotations

from ...data.grids import load_run_grids


def load_data(cfg, assets=None, task: str = "lm"):
    data = load_run_grids(cfg, assets, task)
    cfg.model.check_frames()
    return data
