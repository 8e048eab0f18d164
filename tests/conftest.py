"""Shared fixtures: small structures and cheap potentials for every registered model."""

from __future__ import annotations

import gc
import os

# The tests check what programs compute, not how fast XLA's code runs, and compiling is most of
# the suite's time. LLVM at -O0 without its expensive passes compiles 30-50 % faster (Equiformer's
# padded-graph gradient: 8.5 -> 4.2 s; its initialisation 15.8 -> 11.5 s; the suite 27.6 -> 18 min
# with the YNNPACK change of jaxpot/_xla_flags.py) and changes results at most by rounding
# (fast-math is off either way; XLA's own HLO passes still run). Set before JAX starts its CPU
# backend; a level the user sets in XLA_FLAGS wins. Subprocesses inherit it.
_TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *_TEST_XLA_FLAGS]).strip()

import jax  # after XLA_FLAGS
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

import jaxpot

SPECIES = ["H", "C", "N", "O", "Si"]
CUTOFF = 4.0


# Backbones with the Ewald long-range block (jaxpot.longrange), run by the conformance suite as
# "<model>+ewald" (PaiNN only; SchNet and MACE with the block in tests/test_ewald.py, to keep the suite's time). k_c = 1.5 Å⁻¹
# reaches reciprocal vectors of skewed_cell (|b_3| = 1.0 Å⁻¹); the angular rule of degree 23 keeps
# the molecules' rotation error below 1e-11 of the filter (kspace.angular_error_bound(5.6, 23)).
EWALD_SMALL = {"k_cutoff": 1.5, "num_rbf": 8, "downprojection": 4, "num_hidden": 1, "num_radial": 2,
               "angular_degree": 23, "max_cell_length": 8.0}
EWALD_VARIANTS = ["painn+ewald"]  # SchNet+Ewald and MACE+Ewald: tests/test_ewald.py


_POTENTIALS: dict = {}


def make_potential(name: str, dtype: str = "float64", seed: int = 0, **overrides) -> jaxpot.Potential:
    """A small potential of model ``name`` (or ``"<model>+ewald"``) with non-trivial E0s and scale.

    Kept per arguments (tests never modify a Potential), so the suite initialises each model
    once per dtype and reuses its compiled functions across tests: compilation is most of the
    suite's time.
    """
    key = (name, dtype, seed, repr(sorted(overrides.items())))
    if key not in _POTENTIALS:
        _POTENTIALS[key] = _new_potential(name, dtype, seed, **overrides)
    return _POTENTIALS[key]


def _new_potential(name: str, dtype: str, seed: int, **overrides) -> jaxpot.Potential:
    name, _, addon = name.partition("+")
    # "+ewald": one interaction, so one per-layer block (two layers: test_ewald.py), for the suite's time
    ewald = {"ewald": EWALD_SMALL, "num_interactions": 1} if addon == "ewald" else {}
    hparams = jaxpot.models.small_hyperparameters(name) | ewald | overrides
    e0 = {"H": -13.6, "C": -1029.0, "N": -1485.0, "O": -2042.0, "Si": -7880.0}
    return jaxpot.Potential.create(name, SPECIES, CUTOFF, seed=seed, e0=e0, scale=1.3, dtype=dtype, **hparams)


# Models that are equivariant only up to a measured, bounded error (EquiformerV2's sphere-grid
# activations alias at every finite grid, and it is chiral): the suite's exact (1e-9) checks do
# not apply; tests/test_equiformer_v2.py runs the same checks with their measured tolerances.
APPROXIMATELY_EQUIVARIANT = {"equiformer_v2"}
EXACT_MODELS = [m for m in jaxpot.models.available() if m not in APPROXIMATELY_EQUIVARIANT]


@pytest.fixture(params=EXACT_MODELS)
def model_name(request) -> str:
    return request.param


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``-n 2 --dist loadgroup``, README's test command), every test of one
    model runs in the same worker, so that worker alone compiles that model's Potential
    (``make_potential`` keeps one per process)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("model_name") if callspec else None
        if isinstance(name, str):
            item.add_marker(pytest.mark.xdist_group(name.partition("+")[0]))


@pytest.fixture
def pot64(model_name) -> jaxpot.Potential:
    return make_potential(model_name, "float64")


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


def _count_lines(path: str) -> int | None:
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return None


def _max_map_count() -> int:
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65530


@pytest.fixture(autouse=True)
def _release_compiled_code():
    """Drop JAX's compilation caches when this process holds many memory maps.

    XLA:CPU maps about 12 memory regions per compiled executable (code, constants, data), and
    the suite compiles thousands of them in one process; at Linux's ``vm.max_map_count``
    (65530 by default) the next compilation's mmap fails and LLVM segfaults inside
    ``backend_compile_and_load``. Cleared functions recompile on their next call.
    """
    yield
    maps = _count_lines("/proc/self/maps")
    if maps is not None and maps > 0.5 * _max_map_count():
        jax.clear_caches()
        gc.collect()
