"""Shared fixtures: small structures and cheap potentials for every registered model."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

import jaxpot

SPECIES = ["H", "C", "N", "O", "Si"]
CUTOFF = 4.0


def make_potential(name: str, dtype: str = "float64", seed: int = 0, **overrides) -> jaxpot.Potential:
    """A small potential of model ``name`` with non-trivial E0s and scale."""
    hparams = jaxpot.models.small_hyperparameters(name) | overrides
    e0 = {"H": -13.6, "C": -1029.0, "N": -1485.0, "O": -2042.0, "Si": -7880.0}
    return jaxpot.Potential.create(name, SPECIES, CUTOFF, seed=seed, e0=e0, scale=1.3, dtype=dtype, **hparams)


@pytest.fixture(params=jaxpot.models.available())
def model_name(request) -> str:
    return request.param


_CACHE: dict = {}


@pytest.fixture
def pot64(model_name) -> jaxpot.Potential:
    key = (model_name, "float64")
    if key not in _CACHE:
        _CACHE[key] = make_potential(model_name, "float64")
    return _CACHE[key]


def ethanol(seed: int = 0, rattle: float = 0.05) -> Atoms:
    """Ethanol without symmetry (rattled)."""
    atoms = molecule("CH3CH2OH")
    atoms.positions += np.random.default_rng(seed).normal(scale=rattle, size=atoms.positions.shape)
    return atoms


def acetamide(seed: int = 1) -> Atoms:
    atoms = molecule("CH3CONH2")
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def skewed_cell(seed: int = 2) -> Atoms:
    """A small, skewed, periodic SiC-like cell (cutoff larger than half of it), rattled."""
    atoms = bulk("Si", "diamond", a=5.43)  # primitive fcc cell: 3.84 Å vectors at 60 degrees
    atoms = atoms.repeat((1, 1, 2))
    atoms.numbers[1] = 6
    atoms.positions += np.random.default_rng(seed).normal(scale=0.08, size=atoms.positions.shape)
    return atoms


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
