"""Local-frame models (GNN-LF, LEFTNet) at degenerate frames: linear molecules, symmetric sites,
planar molecules. Energies must stay finite, O(3) invariant and smooth there (no kinks from
normalising a vanishing frame axis or from |pseudo-scalar|), and forces must match finite
differences."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from conftest import make_potential

from jaxpot.graph import from_atoms
from test_conformance import random_orthogonal

MODELS = ["gnnlf", "leftnet"]
_POTENTIALS: dict = {}


def potential(name):
    if name not in _POTENTIALS:
        _POTENTIALS[name] = make_potential(name, "float64", seed=1)
    return _POTENTIALS[name]


def energy_and_forces(pot, atoms):
    """(eV, [n, 3] eV/Å) with one fixed padding for every molecule here: one compilation."""
    graph = from_atoms(atoms, pot.cutoff, pot.species, n_node=12, n_edge=80, n_graph=2)
    energy, forces = pot.energy_and_forces(graph)
    return float(energy[0]), np.asarray(forces)[: len(atoms)]


def co2(bend: float = 0.0) -> Atoms:
    """O=C=O, linear at ``bend = 0`` (Å, the carbon moved off the axis)."""
    return Atoms("OCO", positions=[[-1.16, 0.0, 0.0], [0.0, bend, 0.0], [1.16, 0.0, 0.0]])


def formaldehyde(pyramidal: float = 0.0) -> Atoms:
    """H2CO, planar at ``pyramidal = 0`` (Å, the carbon moved out of the plane)."""
    atoms = molecule("H2CO")
    atoms.positions[1, 0] += pyramidal  # molecule lies in the yz plane; C is atom 1
    return atoms


def fd_forces(pot, atoms, h=1e-4):
    fd = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            fd[i, k] = -(energy_and_forces(pot, plus)[0] - energy_and_forces(pot, minus)[0]) / (2 * h)
    return fd


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("structure", ["CO2", "C2H2", "CH4"])
def test_degenerate_frames_are_finite_invariant_and_conservative(name, structure):
    pot = potential(name)
    atoms = co2() if structure == "CO2" else molecule(structure)
    energy, forces = energy_and_forces(pot, atoms)
    assert np.isfinite(energy) and np.all(np.isfinite(forces))
    for seed, inversion in [(11, False), (12, True)]:
        q = random_orthogonal(seed, inversion)
        moved = atoms.copy()
        moved.positions = atoms.positions @ q.T
        moved_energy, moved_forces = energy_and_forces(pot, moved)
        assert abs(moved_energy - energy) < 1e-9
        np.testing.assert_allclose(moved_forces, forces @ q.T, atol=1e-9)
    np.testing.assert_allclose(forces, fd_forces(pot, atoms), atol=1e-6, rtol=1e-5)
    # symmetry: the centre of a symmetric molecule feels no force; linear molecules stay linear
    if structure in ("CO2", "CH4"):
        np.testing.assert_allclose(forces[1 if structure == "CO2" else 0], 0.0, atol=1e-10)
    if structure != "CH4":
        axis = atoms.positions[-1] - atoms.positions[0]
        axis /= np.linalg.norm(axis)
        off_axis = forces - np.outer(forces @ axis, axis)
        np.testing.assert_allclose(off_axis, 0.0, atol=1e-10)
    else:  # the four H are equivalent (Td)
        norms = np.linalg.norm(forces[1:], axis=1)
        np.testing.assert_allclose(norms, norms[0], rtol=1e-8)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("path", ["bend CO2", "pyramidalise H2CO"])
def test_energy_is_smooth_through_degenerate_frames(name, path):
    """Along a path through a symmetric (linear or planar) geometry the energy is even in the
    displacement; smooth means it departs quadratically (``E(2d) - E(0) = 4 (E(d) - E(0))``),
    where a kink (|v·b|, a normalised vanishing axis) would give a factor 2."""
    pot = potential(name)
    make = co2 if path == "bend CO2" else formaldehyde
    e0 = energy_and_forces(pot, make(0.0))[0]
    d = 2e-3
    e1, e1m, e2 = (energy_and_forces(pot, make(x))[0] for x in (d, -d, 2 * d))
    assert abs(e1 - e1m) < 1e-10  # mirror images
    assert abs(e1 - e0) > 1e-12  # the path is not trivially flat
    assert (e2 - e0) / (e1 - e0) == pytest.approx(4.0, rel=0.02)


@pytest.mark.parametrize("name", MODELS)
def test_runs_in_jax_md(name):
    """The frames are built on device from jax-md's neighbour list, and energy and forces
    equal the Potential's."""
    import jax
    import jax.numpy as jnp
    from jax_md import space

    import jaxpot.md as md

    pot = potential(name)
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    displacement, _ = space.free()
    neighbor_fn, energy_fn = md.energy_fn(pot, displacement, None, atoms.numbers)
    position = jnp.asarray(atoms.positions)
    nbrs = neighbor_fn.allocate(position)
    energy, grad = jax.jit(jax.value_and_grad(energy_fn))(position, neighbor=nbrs)
    reference_energy, reference_forces = energy_and_forces(pot, atoms)
    assert abs(float(energy) - reference_energy) < 1e-9
    np.testing.assert_allclose(-np.asarray(grad), reference_forces, atol=1e-9)
