"""Save and load a Potential: a directory with ``config.json`` and ``params.msgpack``.

No pickle: the config is JSON, the parameters are flax's msgpack state dict, so loading a
model never executes code from the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import flax.serialization
import jax
import numpy as np

# 2: ``hparams`` holds every backbone hyperparameter, defaults included, so that a later change
#    of a default does not change a saved model. 1: only those given to ``Potential.create``.
FORMAT_VERSION = 2

# Defaults that changed since format 1: a format-1 file that omits one of these meant the old value.
_FORMAT_1_DEFAULTS: dict[str, dict] = {"mace": {"product_weights": "independent"}}


def complete_hparams(model: str, hparams: dict) -> dict:
    """``hparams`` with the registry's defaults filled in (``num_species``/``cutoff`` excluded:
    the Potential holds them); extra keys such as ``ewald`` are kept."""
    from jaxpot.models import registry

    defaults = {k: v for k, v in registry.hyperparameters(model).items() if k not in ("num_species", "cutoff")}
    return {**defaults, **hparams}


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def _tuples(x):
    """JSON lists back to tuples (flax module fields must be hashable)."""
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    return x


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(potential, path) -> None:
    """Write ``potential`` to directory ``path`` (created if needed; files replaced atomically)."""
    from ase.data import chemical_symbols

    from jaxpot import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "jaxpot_version": __version__,
        "model": potential.model,
        "hparams": _jsonable(complete_hparams(potential.model, potential.hparams)),
        "species": list(potential.species),
        "symbols": [chemical_symbols[z] for z in potential.species],
        "cutoff": potential.cutoff,
        "e0": [float(x) for x in potential.e0],
        "scale": float(potential.scale),
        "shift": float(potential.shift),
        "readout": _jsonable(potential.readout),
        "dtype": potential.dtype,
        "heads": _jsonable(getattr(potential, "heads", {}) or {}),
    }
    params = jax.tree_util.tree_map(np.asarray, potential.params)
    _atomic_write(path / "params.msgpack", flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(params)))
    _atomic_write(path / "config.json", json.dumps(config, indent=2).encode())


def load(path):
    """Load a Potential saved with ``Potential.save`` / ``jaxpot.io.save``."""
    from jaxpot.potential import Potential, init_params

    path = Path(path)
    config_file, params_file = path / "config.json", path / "params.msgpack"
    for f in (config_file, params_file):
        if not f.exists():
            raise ValueError(f"{path} is not a saved jaxpot model: {f.name} is missing")
    config = json.loads(config_file.read_text())
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer jaxpot (format {config['format_version']}); upgrade jaxpot"
        )
    hparams, readout = _tuples(config["hparams"]), _tuples(config["readout"])
    if config.get("format_version", 0) < 2:
        hparams = {**_FORMAT_1_DEFAULTS.get(config["model"], {}), **hparams}
    heads = {k: dict(_tuples(v)) for k, v in config.get("heads", {}).items()}
    module = Potential.build_module(config["model"], hparams, len(config["species"]), config["cutoff"], readout, heads)
    template = jax.eval_shape(lambda: init_params(module, 0, len(config["species"])))
    restored = flax.serialization.msgpack_restore(params_file.read_bytes())
    try:
        params = flax.serialization.from_state_dict(template, restored)
    except (ValueError, KeyError) as err:
        raise ValueError(f"{params_file} does not match the model in {config_file}: {err}") from err
    for want, got in zip(jax.tree_util.tree_leaves(template), jax.tree_util.tree_leaves(params)):
        if tuple(want.shape) != tuple(np.shape(got)):
            raise ValueError(
                f"{params_file}: a parameter has shape {np.shape(got)}, the model expects {want.shape}"
            )
    return Potential(
        model=config["model"],
        hparams=dict(hparams),
        species=tuple(config["species"]),
        cutoff=float(config["cutoff"]),
        params=jax.tree_util.tree_map(np.asarray, params),
        e0=np.asarray(config["e0"], dtype=np.float64),
        scale=float(config["scale"]),
        shift=float(config["shift"]),
        readout=dict(readout),
        dtype=config.get("dtype", "float32"),
        heads=heads,
    )
