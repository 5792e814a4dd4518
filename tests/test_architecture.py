"""The family contract keeps the shared code family-free: no import cycles, no family named in the shared modules,
one place for atomic file writes, and a family that is nothing but a registration works end to end."""
import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest

import tetragen
from tetragen import registry
from tetragen.pipeline import CAPABILITIES
from tetragen.registry import get_family, list_families

from .conftest import ROOT

PACKAGE = ROOT / "tetragen"
SHARED = [PACKAGE / "api.py", PACKAGE / "config.py", PACKAGE / "registry.py", PACKAGE / "pipeline.py",
          *sorted((PACKAGE / "train").glob("*.py")), *sorted((PACKAGE / "cli").glob("*.py")),
          *sorted((PACKAGE / "jobs").glob("*.py"))]


def test_no_import_cycles():
    tool = ROOT.parent / "shared" / "tools" / "import_cycles.py"
    if not tool.is_file():
        pytest.skip(f"{tool} is not here")
    r = subprocess.run([sys.executable, str(tool), str(PACKAGE)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_shared_code_names_no_family(path):
    """Neither in imports nor in comparisons: the shared code asks the family record or the pipeline."""
    names = "|".join(list_families())
    code = path.read_text(encoding="utf-8")
    imports = re.findall(rf"^\s*(?:from|import) [\w.]*families\.({names})\b.*$", code, re.M)
    compares = re.findall(rf"(?:[=!]=|\bin) *[\[(]?['\"]({names})['\"]", code)
    probes = re.findall(r"hasattr\((?:pipe|gen|model|self\.model)\b[^)]*\)", code)
    assert not imports and not compares and not probes, (imports, compares, probes)


def test_atomic_writes_live_in_one_place():
    writers = [p for p in PACKAGE.rglob("*.py") if "os.replace(" in p.read_text(encoding="utf-8")]
    # files.py writes; sources.py moves a downloaded file that was verified in a temporary folder into the cache
    assert sorted(p.relative_to(PACKAGE).as_posix() for p in writers) == ["data/sources.py", "files.py"]


def test_every_family_declares_known_capabilities_and_hooks():
    for name in list_families():
        f = get_family(name)
        assert f.capabilities and f.capabilities <= set(CAPABILITIES), name
        assert callable(f.load_data) and callable(f.read_assets), name


def test_a_family_that_is_only_a_registration_trains_loads_and_generates(corpus, tmp_path, monkeypatch):
    """A new family is one `register_family` call: api, trainer and CLI take it without a change."""
    toy = dataclasses.replace(get_family("gpt"), name="toylm", description="a registered copy of gpt")
    monkeypatch.setitem(registry._FAMILIES, "toylm", toy)
    assert "toylm" in list_families()
    tetragen.train("toylm", str(corpus), tmp_path / "run", preset="tiny", progress=False,
                   overrides=["train.max_steps=3", "train.warmup_steps=0", "train.eval_tokens=256"])
    pipe = tetragen.load(tmp_path / "run")
    assert pipe.config.family == "toylm" and len(pipe.generate("ab", 10, seed=0)) == 10
    metrics, lines = pipe.evaluate(tetragen.api.load_data(pipe.config, pipe.assets))
    assert np.isfinite(metrics["val_loss"]) and "val_bpc" in lines[-1]


def test_capability_errors_name_the_families_that_have_it(corpus, tmp_path):
    from tetragen.errors import UserError
    from tetragen.pipeline import require
    tetragen.train("gpt", str(corpus), tmp_path / "run", preset="tiny", progress=False,
                   overrides=["train.max_steps=1", "train.warmup_steps=0", "train.eval_tokens=256"])
    pipe = tetragen.load(tmp_path / "run")
    require(pipe, "generate", "run")
    with pytest.raises(UserError, match=r"a gpt run does not draw images \(.*dcgan.*\)"):
        require(pipe, "sample", "run")
