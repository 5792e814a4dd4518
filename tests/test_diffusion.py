"""The diffusion family beyond the family contract (test_families.py): the loss falls; every sampler draws images;
the solvers converge at their order on a Gaussian whose exact denoiser and ODE solution are known; a row depends on
its own seed and class alone whatever else is drawn, in sampling, editing and walks; classifier-free guidance at 0
and 1 and in between; img2img at strength 0 and 1; inpainting keeps the known pixels; every bad argument is one
line naming it; the denoisers take any image side."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.families.diffusion import schedule
from tetragen.families.diffusion.config import OBJECTIVES, SAMPLERS, DiffusionConfig
from tetragen.families.diffusion.model import Diffusion
from tetragen.families.diffusion.sample import DiffusionPipeline
from tetragen.families.diffusion.solvers import SOLVERS, time_grid
from tetragen.train.trainer import Trainer

from .conftest import make_image_folder


def tiny(source, *overrides):
    cfg = build_run_config("diffusion", preset="tiny", overrides=["train.eval_every=0", *overrides])
    cfg.data.source = str(source)
    return cfg, load_data(cfg)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny class-conditional run on three classes of shapes, trained for 20 steps."""
    base = tmp_path_factory.mktemp("diffusion")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(base / "cache"))
        images = make_image_folder(base / "images")
        cfg, data = tiny(images)
        Trainer(cfg, data, base / "run", progress=False).fit()
    return base / "run"


@pytest.fixture
def pipe(run):
    pipe = tetragen.load(run)
    pipe.batch_size = 4  # small blocks: fast, and 5+ images span several blocks
    return pipe


def mean_loss(model, data, draws: int = 8) -> float:
    """The loss over fixed batches and fixed noise (a pure function of the weights)."""
    torch.manual_seed(0)
    with torch.no_grad():
        return float(np.mean([float(model(data.train_batch(seed=1, step=i, micro=0, batch_size=32))[0])
                              for i in range(draws)]))


def test_the_loss_falls_on_the_tiny_preset(images, tmp_path):
    cfg, data = tiny(images, "train.max_steps=30")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    before = mean_loss(trainer.model, data)
    trainer.fit()
    after = mean_loss(trainer.model, data)
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_draws_images_of_the_run_shape(pipe, sampler):
    images = pipe.sample(3, seed=0, sampler=sampler, steps=2, labels="square")
    assert images.dtype == np.uint8 and images.shape == (3, 28, 28, 1)
    assert 0 < images.std()  # not one flat grey


# ----------------------------------------------------------------------------------------------------------------
# the solvers on an exact denoiser: data x0 ~ N(mu, s^2) per pixel

MU, S = 0.1, 0.2


def gaussian_predict(objective: str):
    """The exact network output for N(MU, S^2) data: E[x0 | x_t] and E[eps | x_t] in closed form."""
    def predict(x, t):
        alpha, sigma = schedule.alpha_sigma(t, objective)
        var = alpha ** 2 * S ** 2 + sigma ** 2
        x0 = MU + alpha * S ** 2 / var * (x - alpha * MU)
        eps = sigma / var * (x - alpha * MU)
        return {"flow": eps - x0, "eps": eps, "v": alpha * eps - sigma * x0}[objective]
    return predict


def solver_error(objective: str, sampler: str, steps: int) -> float:
    start = torch.linspace(-3, 3, 61, dtype=torch.float64).view(1, 1, 1, -1)  # x at t = 1
    alpha, sigma = schedule.alpha_sigma(1.0, objective)
    exact = MU + S * (start - alpha * MU) / math.sqrt(alpha ** 2 * S ** 2 + sigma ** 2)  # the ODE's solution at 0
    out = SOLVERS[sampler](gaussian_predict(objective), start, time_grid(1.0, steps), objective)
    return float((out - exact).abs().max())


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_each_solver_converges_and_the_second_order_ones_faster(objective):
    """Euler's error halves with each doubling of the steps (first order), Heun's quarters (second order); DPM-Solver++
    extrapolates in the middle of the path and steps its ends at first order, on the same even grid of times: several
    times below Euler's error from 32 steps on."""
    steps = (8, 16, 32, 64)
    errors = {s: [solver_error(objective, s, n) for n in steps] for s in SAMPLERS}
    for sampler, e in errors.items():
        assert all(a > b for a, b in zip(e, e[1:])), (sampler, e)  # shrinks with every doubling
    euler, heun, dpm = errors["euler"], errors["heun"], errors["dpm++"]
    assert 1.6 < euler[-2] / euler[-1] < 2.4, euler
    assert heun[-2] / heun[-1] > 3.2 and heun[-1] < 2e-3, heun
    assert dpm[-2] < euler[-2] / 3 and dpm[-1] < euler[-1] / 3, (dpm, euler)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_euler_with_many_steps_agrees_with_heun(objective):
    start = torch.linspace(-3, 3, 61, dtype=torch.float64).view(1, 1, 1, -1)
    predict, grid = gaussian_predict(objective), time_grid(1.0, 400)
    euler, heun = (SOLVERS[s](predict, start, grid, objective) for s in ("euler", "heun"))
    assert float((euler - heun).abs().max()) < 5e-3


# ----------------------------------------------------------------------------------------------------------------
# rows, guidance, edits

def test_a_row_is_its_own_seed_and_class_whatever_the_batch(pipe):
    seeds, labels = [5, 1, 5, 9, 2, 7], [0, 1, 0, 2, 1, 2]
    for settings in ({}, {"sampler": "heun", "steps": 2, "guidance_scale": 2.0}):
        batch = pipe.sample(seeds=seeds, labels=labels, **settings)
        assert np.array_equal(batch[0], batch[2]) and not np.array_equal(batch[0], batch[1])
        for i in (0, 3, 5):
            assert np.array_equal(batch[i], pipe.sample(seeds=[seeds[i]], labels=[labels[i]], **settings)[0])
    images = pipe.sample(seeds=seeds, labels=labels)
    edited = pipe.edit(images, strength=0.5, seeds=seeds, labels=labels)
    assert np.array_equal(edited[3], pipe.edit(images[3:4], strength=0.5, seeds=[9], labels=[2])[0])
    walk = pipe.interpolate(5, 9, steps=4, label=2)
    assert np.array_equal(walk[[0, -1]], pipe.sample(seeds=[5, 9], labels=[2, 2]))


def test_guidance_zero_ignores_the_class_and_one_asks_only_the_class(pipe, monkeypatch):
    a = pipe.sample(seeds=[3, 4], labels=[0, 0], guidance_scale=0.0)
    assert np.array_equal(a, pipe.sample(seeds=[3, 4], labels=[2, 2], guidance_scale=0.0))
    assert not np.array_equal(pipe.sample(seeds=[3, 4], labels=[0, 0], guidance_scale=1.0),
                              pipe.sample(seeds=[3, 4], labels=[2, 2], guidance_scale=1.0))
    asked = []
    real = pipe.model.predict

    def recording(x, t, y):
        asked.append(set(y.tolist()))
        return real(x, t, y)
    monkeypatch.setattr(pipe.model, "predict", recording)
    null = pipe.model.null_class
    pipe.sample(seeds=[3], labels=[1], guidance_scale=1.0)
    assert all(null not in s for s in asked)
    asked.clear()
    pipe.sample(seeds=[3], labels=[1], guidance_scale=0.0)
    assert all(s == {null} for s in asked)


def test_guidance_extrapolates_from_the_null_class_to_the_class(pipe, monkeypatch):
    """With an output that is its class id, scale g gives null + g (class - null): a constant each step."""
    g, null = 2.5, pipe.model.null_class
    monkeypatch.setattr(pipe.model, "predict", lambda x, t, y: torch.zeros_like(x) + y.float().view(-1, 1, 1, 1) / 8)
    guided = pipe.sample(seeds=[1, 2], labels=[0, 2], guidance_scale=g, sampler="euler")
    combined = {0: null + g * (0 - null), 2: null + g * (2 - null)}
    monkeypatch.setattr(pipe.model, "predict", lambda x, t, y: torch.zeros_like(x) + torch.tensor(
        [combined[int(k)] for k in y], dtype=x.dtype).view(-1, 1, 1, 1) / 8)
    assert np.array_equal(guided, pipe.sample(seeds=[1, 2], labels=[0, 2], guidance_scale=1.0, sampler="euler"))


def test_img2img_strength_zero_is_the_image_and_one_a_new_draw(pipe):
    images = pipe.sample(seeds=[1, 2, 3], labels=[0, 1, 2])
    assert np.array_equal(pipe.edit(images, strength=0.0, seed=7, labels=[0, 1, 2]), images)
    # a flow's path at t = 1 is pure noise: the image is forgotten, and the draw is sample()'s
    fresh = pipe.sample(seeds=[7, 8, 9], labels=[0, 1, 2])
    assert np.array_equal(pipe.edit(images, strength=1.0, seed=7, labels=[0, 1, 2]), fresh)
    near = pipe.edit(images, strength=0.1, seed=7, labels=[0, 1, 2])
    far = pipe.edit(images, strength=0.9, seed=7, labels=[0, 1, 2])
    assert np.abs(near.astype(int) - images).mean() < np.abs(far.astype(int) - images).mean()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_inpainting_keeps_the_known_pixels(pipe, sampler):
    images = pipe.sample(seeds=[1, 2], labels=[0, 1])
    mask = np.zeros((28, 28), dtype=bool)
    mask[8:20, 8:20] = True
    out = pipe.edit(images, mask=mask, seed=4, labels=[2, 2], sampler=sampler, steps=3)
    assert np.array_equal(out[:, ~mask], images[:, ~mask])
    assert not np.array_equal(out[:, mask], images[:, mask])
    per_image = np.stack([mask, np.zeros_like(mask)]).astype(np.uint8)  # the second image is kept whole
    out = pipe.edit(images, mask=per_image, seed=4, labels=[2, 2], sampler=sampler, steps=3)
    assert np.array_equal(out[1], images[1])


# ----------------------------------------------------------------------------------------------------------------
# bad arguments: one line each, naming the argument

def bad_calls(pipe):
    images = pipe.sample(seeds=[1, 2], labels=[0, 1])
    return [
        ("steps", lambda: pipe.sample(2, seed=0, steps=0)),
        ("steps", lambda: pipe.sample(2, seed=0, steps=10 ** 6)),
        ("steps", lambda: pipe.sample(2, seed=0, steps=2.5)),
        ("sampler", lambda: pipe.sample(2, seed=0, sampler="ddpm")),
        ("guidance_scale", lambda: pipe.sample(2, seed=0, guidance_scale=-1.0)),
        ("guidance_scale", lambda: pipe.sample(2, seed=0, guidance_scale=float("nan"))),
        ("strength", lambda: pipe.edit(images, strength=-0.1, seed=0)),
        ("strength", lambda: pipe.edit(images, strength=1.5, seed=0)),
        ("mask", lambda: pipe.edit(images, mask=np.full((28, 28), 0.5), seed=0)),
        ("mask", lambda: pipe.edit(images, mask=np.zeros((32, 32)), seed=0)),
        ("mask", lambda: pipe.edit(images, mask=np.zeros((3, 28, 28)), seed=0)),
        ("images", lambda: pipe.edit(np.zeros((2, 32, 32, 1), np.uint8), seed=0)),
        ("images", lambda: pipe.edit(np.zeros((2, 28, 28, 3), np.uint8), seed=0)),
        ("images", lambda: pipe.edit(images.astype(np.float32), seed=0)),
        ("--steps", lambda: pipe.interpolate(0, 1, steps=1)),
        ("--class", lambda: pipe.sample(2, seed=0, labels="triangle")),
    ]


def test_each_bad_argument_is_one_line_naming_it(pipe):
    for name, call in bad_calls(pipe):
        with pytest.raises(UserError) as e:
            call()
        message = str(e.value)
        assert "\n" not in message and message.startswith(name), (name, message)


def test_an_unconditional_run_takes_no_class_and_no_guidance(images, tmp_path):
    cfg, data = tiny(images, "model.cond=none", "model.denoiser=dit", "model.patch_size=4",
                     "train.max_steps=2")
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    pipe = tetragen.load(tmp_path / "run")
    assert not pipe.conditional and pipe.sample(2, seed=0).shape == (2, 28, 28, 1)
    with pytest.raises(UserError, match="^guidance_scale: .* unconditional"):
        pipe.sample(2, seed=0, guidance_scale=2.0)
    with pytest.raises(UserError, match="unconditional"):
        pipe.sample(2, seed=0, labels=1)


# ----------------------------------------------------------------------------------------------------------------
# the model and the saved run

@pytest.mark.parametrize("denoiser", ["unet", "dit"])
@pytest.mark.parametrize("size,channels,mult", [(28, 1, "1,2,2"), (28, 1, "1,2,2,2"), (30, 3, "1,2"), (64, 3, "1,2,2")])
def test_the_denoisers_take_any_side(denoiser, size, channels, mult):
    c = DiffusionConfig(image_size=size, channels=channels, num_classes=4, denoiser=denoiser, width=8,
                        channel_mult=mult, heads=2, depth=1, dit_width=16, patch_size=4)
    model = Diffusion(c)
    x = torch.randn(2, channels, size, size)
    assert model.predict(x, torch.rand(2), torch.tensor([0, 4])).shape == x.shape
    loss, _ = model({"x": x, "y": torch.tensor([1, 3])})
    assert torch.isfinite(loss)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_each_objective_trains_and_samples(images, tmp_path, objective):
    cfg, data = tiny(images, f"model.objective={objective}", "train.max_steps=2")
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    out = tetragen.load(tmp_path / "run").sample(2, seed=0, steps=2)
    assert out.shape == (2, 28, 28, 1)


def test_save_and_load_give_the_same_images(run):
    a = tetragen.load(run)
    model = Diffusion(a.config.model)
    model.load_state_dict(a.model.state_dict())
    b = DiffusionPipeline(model, a.classes, a.config)
    assert np.array_equal(a.sample(4, seed=11, sampler="heun", steps=2),
                          b.sample(4, seed=11, sampler="heun", steps=2))
    assert np.array_equal(tetragen.load(run).sample(4, seed=11), a.sample(4, seed=11))


def test_config_errors_are_one_line():
    for over, needle in ((["model.channel_mult=1,x"], "model.channel_mult"),
                         (["model.eval_sweep=4,0"], "model.eval_sweep"),
                         (["model.dit_width=30", "model.heads=4"], "model.dit_width")):
        with pytest.raises(UserError, match=needle):
            cfg = build_run_config("diffusion", preset="tiny", overrides=over)
            cfg.model.validate()


def test_eval_scores_each_step_count_of_the_sweep(run):
    pipe = tetragen.load(run)
    pipe.config.model.eval_sweep = "1,2"
    metrics, lines = pipe.evaluate(load_data(pipe.config, pipe.assets), n=6)
    assert {"fid", "class_acc", "fid_steps1", "fid_steps2", "class_acc_steps2"} <= set(metrics)
    assert metrics["fid_steps1"] != metrics["fid_steps2"]
    assert lines[1].startswith("sampler dpm++, 4 steps, guidance scale 1.5")
    assert lines[-1].startswith("FID by sampler steps (dpm++): 1: ")
