"""The training configuration file (YAML or JSON), validated before anything runs.

Example::

    model:
      name: painn            # jaxpot.models.available()
      cutoff: 5.0
      dtype: float32
      hparams: {features: 64, num_interactions: 3}
      properties: [dipole]   # tensor heads besides the energy: dipole, polarizability
                             # (or a mapping to head options, see jaxpot.heads)
    data:
      train: data/train.xyz
      valid: null            # or a file; else valid_fraction of train
      valid_fraction: 0.05
      test: null
      keys: {energy: energy, forces: forces}
      units: {energy: eV, length: Å}
      e0: fit                # fit | isolated | a file with isolated atoms | {H: -13.6, ...}
      batch_size: 5
      seed: 0
    training: {epochs: 100, learning_rate: 0.001, weights: {energy: 1, forces: 100, dipole: 1}}
    output: runs/painn

Unknown or mistyped keys are errors that name them (with the closest valid key).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

from jaxpot.train.trainer import TrainingOptions


@dataclasses.dataclass
class ModelConfig:
    name: str = "painn"
    cutoff: float = 5.0
    dtype: str = "float32"
    hparams: dict = dataclasses.field(default_factory=dict)
    species: list | None = None  # default: every element in the training data
    seed: int = 0
    properties: list | dict | None = None  # tensor heads: [dipole, polarizability] or {name: options}


@dataclasses.dataclass
class DataConfig:
    train: str = ""
    valid: str | None = None
    test: str | None = None
    valid_fraction: float = 0.05
    n_train: int | None = None
    n_valid: int | None = None
    n_test: int | None = None  # held out from the train file (when data.test is not given)
    index: str = ":"
    keys: dict | None = None
    units: dict | None = None
    e0: Any = "fit"
    batch_size: int = 5
    valid_batch_size: int | None = None
    max_atoms: int | None = None
    max_edges: int | None = None
    seed: int = 0


@dataclasses.dataclass
class Config:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    training: TrainingOptions = dataclasses.field(default_factory=TrainingOptions)
    output: str = "training"


def _check_keys(section: str, given: dict, cls) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in given if k not in fields]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), list(fields), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"unknown key(s) in {section}: {', '.join(hints)}; valid keys are {sorted(fields)}"
        )


def _check_type(section: str, key: str, value: Any, annotation) -> Any:
    """Light type check with int->float promotion; the message names the key."""
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    if value is None and type(None) in options:
        return value
    for opt in options:
        base = typing.get_origin(opt) or opt
        if base is Any:
            return value
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base in (str, dict, list, bool) and isinstance(value, base):
            return value
    names = [getattr(o, "__name__", str(o)) for o in options]
    raise ValueError(f"{section}.{key} must be {' or '.join(names)}, got {value!r} ({type(value).__name__})")


def _section(section: str, given: dict | None, cls):
    given = dict(given or {})
    if not isinstance(given, dict):
        raise ValueError(f"{section} must be a mapping, got {type(given).__name__}")
    _check_keys(section, given, cls)
    types = typing.get_type_hints(cls)
    values = {k: _check_type(section, k, v, types[k]) for k, v in given.items()}
    return cls(**values)


def config_from_dict(raw: dict) -> Config:
    """Validate a parsed config; ``ValueError`` names unknown keys and wrong types."""
    if not isinstance(raw, dict):
        raise ValueError("the config must be a mapping with sections model, data, training, output")
    _check_keys("the config", raw, Config)
    config = Config(
        model=_section("model", raw.get("model"), ModelConfig),
        data=_section("data", raw.get("data"), DataConfig),
        training=_section("training", raw.get("training"), TrainingOptions),
        output=str(raw.get("output", "training")),
    )
    if not config.data.train:
        raise ValueError("data.train is required: the file with the training structures")
    from jaxpot.potential import head_options

    head_options(config.model.properties)  # unknown heads or head options are errors now
    from jaxpot.models import hyperparameters

    known = (set(hyperparameters(config.model.name)) - {"num_species", "cutoff"}) | {"ewald"}  # jaxpot.longrange
    unknown = sorted(set(config.model.hparams) - known)
    if unknown:
        close = {k: difflib.get_close_matches(k, sorted(known), n=1) for k in unknown}
        hints = [f"{k!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for k, c in close.items()]
        raise ValueError(f"unknown model.hparams for {config.model.name!r}: {', '.join(hints)}; valid: {sorted(known)}")
    return config


def load_config(path) -> Config:
    """Read and validate a YAML (or JSON) config file."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ValueError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err
    return config_from_dict(raw or {})


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)
