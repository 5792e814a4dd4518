"""Run config: layering, overrides, validation, shipped YAML files and presets."""
import dataclasses
from pathlib import Path

import pytest

from tetragen.config import TrainConfig, build_run_config, validate_cross
from tetragen.errors import UserError
from tetragen.registry import get_family, list_families

ROOT = Path(__file__).resolve().parents[1]


def test_layering_preset_yaml_then_overrides(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("family: gpt\nmodel:\n  n_layer: 3\ntrain:\n  lr: 2.0e-3\n  max_steps: 50\n")
    cfg = build_run_config("gpt", preset="small", yaml_path=str(y), overrides=["train.lr=1e-3", "model.bias=true"])
    assert cfg.model.n_layer == 3          # YAML over preset
    assert cfg.model.n_embd == 384         # preset over default
    assert cfg.train.lr == 1e-3            # override over YAML ("1e-3" is read as a number)
    assert cfg.train.max_steps == 50
    assert cfg.model.bias is True


@pytest.mark.parametrize("item, fragment", [
    ("train.lr=abc", "train.lr: expected a number"),
    ("train.max_steps=1.5", "train.max_steps: expected an integer"),
    ("train.max_steps=0", "train.max_steps: 0 is out of range"),
    ("train.precision=fp16", "choose one of: fp32, bf16"),
    ("train.compile=maybe", "train.compile: expected true or false"),
    ("train.nope=1", "unknown key 'train.nope'"),
    ("optim.lr=1", "unknown key 'optim.lr'"),
    ("train.lr", "expected key=value"),
])
def test_bad_overrides_name_the_key(item, fragment):
    with pytest.raises(UserError, match=fragment.replace(".", r"\.").replace("'", ".")):
        build_run_config("gpt", overrides=[item])


def test_cross_checks():
    cfg = build_run_config("gpt", overrides=["model.n_embd=130", "model.n_head=4"])
    with pytest.raises(UserError, match="divisible"):
        validate_cross(cfg)
    cfg = build_run_config("gpt", overrides=["train.min_lr=1", "train.lr=0.1"])
    with pytest.raises(UserError, match="min_lr"):
        validate_cross(cfg)


COMMON_TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("family", list_families())
def test_every_family_has_the_common_train_keys_and_valid_presets(family):
    f = get_family(family)
    assert f.presets, f"{family} has no preset"
    for name, preset in f.presets.items():
        cfg = build_run_config(family, preset=name)
        validate_cross(cfg)
        # the train section is the one every family shares: the same keys, and the preset's values in them
        assert type(cfg.train) is TrainConfig and set(cfg.to_dict()["train"]) == COMMON_TRAIN_KEYS
        assert set(preset.get("train", {})) <= COMMON_TRAIN_KEYS, name
        for key, value in preset.get("train", {}).items():
            assert getattr(cfg.train, key) == value, f"{family} preset {name}: train.{key}"
        # and every common key takes an override the same way in every family
        over = build_run_config(family, preset=name, overrides=["train.lr=0.00123", "train.precision=auto",
                                                                "train.budget_minutes=2", "train.seed=7"])
        assert (over.train.lr, over.train.precision, over.train.budget_minutes, over.train.seed) == \
            (0.00123, "auto", 2.0, 7)


SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_yaml_loads_and_validates(path):
    import yaml
    family = yaml.safe_load(path.read_text())["family"]
    cfg = build_run_config(family, yaml_path=str(path))
    validate_cross(cfg)


def test_there_are_shipped_configs():
    assert SHIPPED, "configs/ should ship at least one run config"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_a_shipped_yaml_named_after_a_preset_is_that_preset(path):
    """configs/FAMILY/NAME.yaml and `--preset NAME` are two spellings of one recipe."""
    import yaml

    from tetragen.registry import get_family
    family = yaml.safe_load(path.read_text())["family"]
    if path.stem not in get_family(family).presets:
        pytest.skip(f"{path.stem} is not a {family} preset")
    assert build_run_config(family, yaml_path=str(path)).to_dict() == \
        build_run_config(family, preset=path.stem).to_dict()
