"""The model registry: ``build(name, **hparams)`` for every backbone in the zoo."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn

_MODELS: dict[str, type[nn.Module]] = {}
_SMALL: dict[str, dict[str, Any]] = {}


def register(name: str, small: dict[str, Any] | None = None) -> Callable[[type], type]:
    """Class decorator: register a backbone under ``name``.

    ``small`` are hyperparameters for a cheap instance of the same architecture (few
    features and layers), used by the conformance suite and examples; they must exercise
    every code path the defaults do.
    """

    def wrap(cls: type) -> type:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = cls
        _SMALL[name] = dict(small or {})
        return cls

    return wrap


def available() -> list[str]:
    """Names of the registered backbones."""
    return sorted(_MODELS)


def model_class(name: str) -> type[nn.Module]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {available()}") from None


def hyperparameters(name: str) -> dict[str, Any]:
    """The hyperparameters of ``name`` and their defaults (the paper's)."""
    cls = model_class(name)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in ("parent", "name") or not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
        else:
            out[f.name] = None
    return out


def small_hyperparameters(name: str) -> dict[str, Any]:
    """Cheap hyperparameters of ``name`` for tests and examples."""
    model_class(name)
    return dict(_SMALL[name])


def build(name: str, **hparams: Any) -> nn.Module:
    """Build the backbone ``name``; unknown hyperparameters raise ``ValueError`` naming them."""
    known = hyperparameters(name)
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for model {name!r}; its hyperparameters are "
            f"{sorted(known)}"
        )
    return model_class(name)(**hparams)
