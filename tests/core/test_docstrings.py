"""Every public definition of ``unified`` (each module's ``__all__``, and the
public methods and properties of exported classes) has a docstring; so does
every public definition of each delegate's ``delegate.py``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import unified


def _modules():
    for info in pkgutil.walk_packages(unified.__path__, prefix="unified."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)
    delegates = importlib.import_module("unified.delegates")
    for info in pkgutil.iter_modules(delegates.__path__):
        if info.ispkg and not info.name.startswith("_"):  # every delegate package has a delegate.py
            yield importlib.import_module(f"unified.delegates.{info.name}.delegate")


def _public_definitions():
    for module in _modules():
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or obj.__module__ != module.__name__:
                continue
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(value, property):
                        value = value.fget
                    elif isinstance(value, (classmethod, staticmethod)):
                        value = value.__func__
                    if inspect.isfunction(value):
                        yield f"{module.__name__}.{name}.{attr}", value


def test_every_public_definition_has_a_docstring():
    found = list(_public_definitions())
    assert len(found) > 100
    missing = [qualname for qualname, obj in found if not (obj.__doc__ or "").strip()]
    assert not missing, f"{len(missing)} public definitions without a docstring: {missing}"
