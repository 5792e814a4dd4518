"""What `tetragen.load(run_dir)` returns: a family's pipeline, and the protocol every pipeline follows.

The CLI, the server and the evaluators use a loaded run only through this protocol; they ask `capabilities` what a
run can do rather than probing its attributes. A family's pipeline also has the methods its capabilities name:

| capability    | method                                                                               |
|---------------|--------------------------------------------------------------------------------------|
| `generate`    | `stream(prompt, max_new_tokens, ...)` / `generate(...)`: text from a text prompt      |
| `fill_mask`   | `fill_mask(text, top_k)`: candidates for each `[MASK]`                                |
| `classify`    | `classify(text)`: the probability of each label                                        |
| `classify_images` | `classify(images)`: the most likely class of each image                           |
| `sample`      | `sample(n, seed=, labels=)`: new images; `interpolate(seed_a, seed_b, steps)`          |
| `prompt`      | `sample(n, prompt=..., seed=)`: images from a text prompt                              |
| `reconstruct` | `reconstruct(images, labels)`: images through the model and back                     |
| `encode`      | `interpolate_images(images, steps)`: a walk between the codes of real images          |
| `tokenize`    | `encode(images) -> token ids`, `decode(ids) -> images`                                |
"""
from __future__ import annotations

from typing import Any, Protocol

import torch

from .errors import UserError

CAPABILITIES = {  # name -> what a run with it does, as it reads after "does not"
    "generate": "write text from a prompt",
    "fill_mask": "fill in [MASK]s",
    "classify": "classify text",
    "classify_images": "classify images",
    "sample": "draw images",
    "prompt": "draw images from a text prompt",
    "reconstruct": "reconstruct images",
    "encode": "place real images in a latent space",
    "tokenize": "turn images into tokens and back",
}


class Pipeline(Protocol):
    config: Any                      # the run's RunConfig
    model: torch.nn.Module
    assets: Any                      # what the run keeps beside its weights (tokenizer, class names)
    capabilities: frozenset[str]     # what this run can do (names of CAPABILITIES)

    def evaluate(self, data, *, n: int, seed: int, iw_samples: int) -> tuple[dict, list[str]]:
        """The run's metrics on `data` and the lines `tetragen eval` prints for them. `n`, `seed`: samples scored
        by image metrics; `iw_samples`: importance samples of likelihood bounds (where the model has one)."""


def require(pipe: Pipeline, capability: str, run: Any, instead: str = "") -> None:
    """A one-line UserError unless the loaded run at `run` has `capability`; it names the families that have it
    and, with `instead`, what to do."""
    if capability in pipe.capabilities:
        return
    from .registry import families_with
    takers = [f for f in families_with(capability) if f != pipe.config.family]
    can = f" ({', '.join(takers)} runs do)" if takers else ""
    rest = f"; {instead}" if instead else ""
    raise UserError(f"{run}: a {pipe.config.family} run does not {CAPABILITIES[capability]}{can}{rest}")
