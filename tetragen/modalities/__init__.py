"""Kinds of content, one folder each; importing this package imports every folder, and each registers itself.

A new kind of content is a new folder here whose `__init__.py` calls `tetragen.registry.register_modality` with a
`Modality` record (its datasets, file writers, headline metric, report block and server routes); nothing else in
tetragen names it. Then its families name it as what they make (`Family.makes`).
"""
import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.ispkg and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
