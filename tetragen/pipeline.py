"""What `tetragen.load(run_dir)` returns: a family's pipeline, and the typed capabilities every pipeline offers.

Each capability is a `typing.Protocol` declaring every attribute its callers read. A pipeline lists the capabilities
of its run in `capabilities` (a masked LM without a classifier cannot classify, though its class has the method),
and callers ask `require(pipe, name)` — which checks both that name and the Protocol with `isinstance` — before they
use it. Shared code never probes a pipeline or a model with `hasattr`/`getattr`.

| capability        | Protocol           | what a run with it does                                                   |
|-------------------|--------------------|---------------------------------------------------------------------------|
| `generate`        | `GeneratesText`    | `generate(prompt, max_new_tokens, ...)` / `stream(...)`: text from a prompt |
| `fill_mask`       | `FillsMasks`       | `fill_mask(text, top_k)`: candidates for each `[MASK]`, one list per mask |
| `classify`        | `ClassifiesText`   | `classify(text)`: the probability of each label                           |
| `classify_images` | `ClassifiesImages` | `classify(images)`: the most likely class of each image                   |
| `sample`          | `Samples`          | `sample(n, seed=|seeds=, labels=)`: new content; `interpolate(a, b)`      |
| `prompt`          | `Prompts`          | `sample(n, prompt=|prompts=, seed=|seeds=)`: content from a text prompt   |
| `reconstruct`     | `Reconstructs`     | `reconstruct(items, labels)`: content through the model and back          |
| `encode`          | `Encodes`          | `interpolate_images(items, steps)`: a walk between real items' codes      |
| `tokenize`        | `Tokenizes`        | `encode(items) -> token ids`, `decode(ids) -> items`                      |
| `steer`           | `Steered`          | `sampling_options`: settings chosen at sampling time (sampler, steps, ...) |
| `edit`            | `Edits`            | `edit(items, mask=, strength=)`: given content redrawn (img2img, inpaint) |

A family's capability that no server route or job knows yet is still usable from Python and the CLI; a new kind
of content adds its routes and report blocks in its modality (tetragen/registry.py), not here.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

import torch

from .errors import UserError


@runtime_checkable
class Pipeline(Protocol):
    """What every loaded run has."""
    config: Any                      # the run's RunConfig
    model: torch.nn.Module
    assets: Any                      # what the run keeps beside its weights (tokenizer, class names)
    capabilities: frozenset[str]     # what this run can do (names of CAPABILITIES)

    def evaluate(self, data, *, n: int, seed: int, iw_samples: int) -> tuple[dict, list[str]]:
        """The run's metrics on `data` and the lines `tetragen eval` prints for them. `n`, `seed`: samples scored
        by sample metrics; `iw_samples`: importance samples of likelihood bounds (where the model has one)."""


@runtime_checkable
class GeneratesText(Pipeline, Protocol):
    tokenizer: Any                   # encode(text) -> ids, decode(ids) -> text

    def generate(self, prompt: str = "", max_new_tokens: int = 200, **sampling) -> str: ...

    def stream(self, prompt: str = "", max_new_tokens: int = 200, **sampling) -> Iterator[str]: ...


@runtime_checkable
class FillsMasks(Pipeline, Protocol):
    tokenizer: Any

    def fill_mask(self, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]: ...


@runtime_checkable
class ClassifiesText(Pipeline, Protocol):
    tokenizer: Any

    def classify(self, text: str) -> dict[str, float]: ...


@runtime_checkable
class ClassifiesImages(Pipeline, Protocol):
    def classify(self, images) -> Any: ...


@runtime_checkable
class Samples(Pipeline, Protocol):
    """Draws new content from noise; a class-conditional one (`conditional`) in a class of `classes`. Sample i comes
    from seeds[i] (or seed + i) and its own class alone, computed in forward passes of exactly `batch_size` rows,
    so it is the same whatever else is drawn with it (the server batches requests on this)."""
    classes: list[str]
    num_classes: int
    conditional: bool
    batch_size: int

    def sample(self, n: int | None = None, *, seed: int | None = None, seeds=None, labels=None) -> Any: ...

    def class_index(self, label) -> int: ...

    def labels_for(self, n: int, labels=None) -> torch.Tensor | None: ...

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, label=None) -> Any: ...


@runtime_checkable
class Prompts(Pipeline, Protocol):
    """Draws content from a text prompt (or from its classes' prompts: `labels_for`): sample i from prompts[i] (or
    `prompt` for all) and seeds[i] (or seed + i) alone, in forward passes of exactly `batch_size` rows."""
    num_classes: int
    batch_size: int

    def sample(self, n: int | None = None, *, seed: int | None = None, seeds=None, labels=None,
               prompt: str | None = None, prompts=None, **sampling) -> Any: ...

    def labels_for(self, n: int, labels=None) -> torch.Tensor | None: ...


@runtime_checkable
class Reconstructs(Pipeline, Protocol):
    def reconstruct(self, items, labels=None) -> Any: ...


@runtime_checkable
class Encodes(Pipeline, Protocol):
    def interpolate_images(self, items, steps: int = 8, *, labels=None, label=None) -> Any: ...


@runtime_checkable
class Tokenizes(Pipeline, Protocol):
    def encode(self, items) -> Any: ...

    def decode(self, ids) -> Any: ...


@runtime_checkable
class Steered(Pipeline, Protocol):
    """Chooses how it samples at sampling time, without retraining (a diffusion model's solver, its step count, its
    guidance). `sampling_options` maps each setting its `sample` (and `edit`) take as a keyword to what a form or a
    help line needs: {"help": text, "default": value, and "choices": [...] or "min"/"max" with "type" "int" or
    "float"}; `check_sampling(**settings)` refuses a setting unknown or out of range in one UserError that starts
    with the setting's name ("steps: 0 is out of range; ...") and returns every setting, the run's defaults filled
    in."""
    sampling_options: dict[str, dict]

    def check_sampling(self, **settings) -> dict[str, Any]: ...


@runtime_checkable
class Edits(Pipeline, Protocol):
    """Redraws given content: `edit(items, mask=..., strength=..., seed=|seeds=, labels=, **sampling)`: item i
    noised to `strength` (0: as given, 1: drawn anew) and drawn back from there with seeds[i] (or seed + i); with
    `mask` (1 where the item is drawn anew, 0 where it is kept) only the masked part changes. `read_edit_input`
    reads a file (a path or its bytes) into what `edit` takes: an item of another size or mode converted to the
    run's with a warning, a mask refused in one UserError (named by `name`) unless it is binary and of the run's
    size."""
    def read_edit_input(self, file, *, mask: bool = False, name: str = "") -> Any: ...

    def edit(self, items, *, strength: float | None = None, mask=None, seed: int | None = None, seeds=None,
             labels=None, **sampling) -> Any: ...


# name -> (what a run with it does, as it reads after "does not"; its Protocol)
CAPABILITY_TYPES: dict[str, tuple[str, type]] = {
    "generate": ("write text from a prompt", GeneratesText),
    "fill_mask": ("fill in [MASK]s", FillsMasks),
    "classify": ("classify text", ClassifiesText),
    "classify_images": ("classify images", ClassifiesImages),
    "sample": ("draw samples", Samples),
    "prompt": ("draw from a text prompt", Prompts),
    "reconstruct": ("reconstruct its inputs", Reconstructs),
    "encode": ("place real inputs in a latent space", Encodes),
    "tokenize": ("turn its inputs into tokens and back", Tokenizes),
    "steer": ("choose its sampler, steps or guidance at sampling time", Steered),
    "edit": ("edit given inputs (img2img, inpainting)", Edits),
}
CAPABILITIES = {name: what for name, (what, _) in CAPABILITY_TYPES.items()}


def require(pipe: Pipeline, capability: str, run: Any, instead: str = "") -> None:
    """A one-line UserError unless the loaded run at `run` has `capability`; it names the families that have it
    and, with `instead`, what to do. A run that lists a capability its pipeline does not implement is a bug in its
    family, reported as such."""
    what, protocol = CAPABILITY_TYPES[capability]
    if capability in pipe.capabilities:
        if not isinstance(pipe, protocol):
            raise TypeError(f"the {pipe.config.family} family lists {capability!r} but its pipeline "
                            f"{type(pipe).__name__} does not implement {protocol.__name__}")
        return
    from .registry import families_with
    takers = [f for f in families_with(capability) if f != pipe.config.family]
    can = f" ({', '.join(takers)} runs do)" if takers else ""
    rest = f"; {instead}" if instead else ""
    raise UserError(f"{run}: a {pipe.config.family} run does not {what}{can}{rest}")


__all__ = ["CAPABILITIES", "CAPABILITY_TYPES", "ClassifiesImages", "ClassifiesText", "Encodes", "FillsMasks",
           "Edits", "GeneratesText", "Pipeline", "Prompts", "Reconstructs", "Samples", "Steered", "Tokenizes",
           "require"]
