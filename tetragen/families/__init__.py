"""Model families, one folder each; importing this package imports every folder, and each registers itself.

A new family is a new folder here whose `__init__.py` calls `tetragen.registry.register_family`; nothing else in
tetragen names it.
"""
import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.ispkg and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
