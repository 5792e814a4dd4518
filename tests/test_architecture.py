"""The contract keeps the shared code free of families and kinds of content: no import cycles, no family named in
the shared modules and no pipeline or model probed with hasattr/getattr, no modality or metric named where jobs, the
CLI and the API dispatch, one place for atomic file writes, and a family that is nothing but a registration works
end to end (a whole plugin modality and family: tests/test_plugin.py)."""
import ast
import dataclasses
import re

import numpy as np
import pytest

import tetragen
from tetragen import registry
from tetragen.pipeline import CAPABILITIES
from tetragen.registry import get_family, list_families

from .conftest import ROOT

PACKAGE = ROOT / "tetragen"
SHARED_PACKAGES = ("train", "cli", "jobs", "serve", "sample", "data", "eval")
SHARED = [PACKAGE / "api.py", PACKAGE / "config.py", PACKAGE / "registry.py", PACKAGE / "pipeline.py",
          *(p for d in SHARED_PACKAGES for p in sorted((PACKAGE / d).glob("*.py")))]
# where the product dispatches through the records: these name no kind of content and no metric either
DISPATCH = [p for p in SHARED if p.parent.name in ("jobs", "cli") or p.name == "api.py"]


def _module_graph(package) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside functions."""
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                edges |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def test_no_import_cycles():
    graph = _module_graph(PACKAGE)
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    graph = _module_graph(pkg)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_shared_code_names_no_family_and_probes_nothing(path):
    """Neither in imports nor in comparisons: the shared code asks the family record or the pipeline's Protocols,
    never hasattr/getattr on a pipeline or a model."""
    names = "|".join(list_families())
    code = path.read_text(encoding="utf-8")
    imports = re.findall(rf"^\s*(?:from|import) [\w.]*families\.({names})\b.*$", code, re.M)
    compares = re.findall(rf"(?:[=!]=|\bin) *[\[(]?['\"]({names})['\"]", code)
    probes = re.findall(r"(?:has|get)attr\((?:pipe|gen|model|self\.model|self\.pipe|getattr\(model)\b[^)]*\)", code)
    assert not imports and not compares and not probes, (imports, compares, probes)


@pytest.mark.parametrize("path", DISPATCH, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_dispatching_code_names_no_modality_and_no_metric(path):
    from tetragen.registry import get_modality, list_modalities
    kinds = "|".join(list_modalities())
    metrics = "|".join(sorted({k for m in list_modalities() for k in get_modality(m).headline}
                              | {key for m in list_modalities() for key, _ in get_modality(m).columns.values()}))
    code = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("#"))
    named = re.findall(rf"['\"]({kinds}|{metrics})['\"]", code)
    assert not named, named


def test_atomic_writes_live_in_one_place():
    writers = [p for p in PACKAGE.rglob("*.py") if "os.replace(" in p.read_text(encoding="utf-8")]
    # files.py writes; sources.py moves a downloaded file that was verified in a temporary folder into the cache
    assert sorted(p.relative_to(PACKAGE).as_posix() for p in writers) == ["data/sources.py", "files.py"]


def test_every_family_declares_known_capabilities_hooks_and_modalities():
    from tetragen.registry import list_modalities
    for name in list_families():
        f = get_family(name)
        assert f.capabilities and f.capabilities <= set(CAPABILITIES), name
        assert callable(f.load_data) and callable(f.read_assets), name
        assert f.makes in list_modalities() and f.reads in ("", *list_modalities()), name


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
    with pytest.raises(UserError, match=r"a gpt run does not draw samples \(.*dcgan.*\)"):
        require(pipe, "sample", "run")
