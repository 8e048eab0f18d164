"""The conformance suite (DESIGN.md, "Tests every model passes").

Parametrised over every registered model (``jaxpot.models.available()``), so a new model is
tested by registering it. Finite differences run in float64.
"""

from __future__ import annotations

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms

import jaxpot
from jaxpot.graph import from_atoms, graph_mask, node_mask
from jaxpot.heads import AtomisticModel
from conftest import CUTOFF, EWALD_VARIANTS, EXACT_MODELS, ethanol, make_potential, acetamide, skewed_cell

# SO(3)- but not O(3)-equivariant models skip the inversion case: they are chiral by design
# (eSCN's SO(2) convolutions have imaginary weights, which tell mirror images apart; tests/test_scn.py).
SO3_ONLY: set[str] = {"escn"}
# Models whose outputs reach beyond the cutoff by design (long-range blocks) skip locality.
LONG_RANGE: set[str] = set(EWALD_VARIANTS)


@pytest.fixture(params=EXACT_MODELS + EWALD_VARIANTS)
def model_name(request) -> str:
    """Every registered backbone (but the approximately equivariant, conftest.py), and backbones with the Ewald block ("<model>+ewald")."""
    return request.param


def random_orthogonal(seed: int, inversion: bool) -> np.ndarray:
    q = np.asarray(e3nn.rand_matrix(jax.random.PRNGKey(seed), ()), dtype=np.float64)
    u, _, vt = np.linalg.svd(q)  # re-orthonormalise in float64 (rand_matrix is float32)
    q = u @ vt
    return -q if inversion else q


def features_fn(pot: jaxpot.Potential):
    """``atoms -> e3nn.IrrepsArray`` node features of the real atoms, jitted (one compilation per
    graph shape is cheaper than op-by-op dispatch for the larger backbones)."""
    apply = jax.jit(lambda params, g: pot.module.apply(params, g, method=AtomisticModel.features))

    def features(atoms: Atoms) -> e3nn.IrrepsArray:
        return apply(pot.params, pot.prepare(pot.graph(atoms)))[: len(atoms)]

    return features


@pytest.mark.parametrize("inversion", [False, True])
def test_rotation_and_inversion(pot64, model_name, inversion):
    if inversion and model_name.split("+")[0] in SO3_ONLY:
        pytest.skip("SO(3)-equivariant only: chiral by design")
    atoms = ethanol()
    q = random_orthogonal(3, inversion)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T
    r0, r1 = pot64.calculate(atoms), pot64.calculate(moved)
    assert abs(r0["energy"] - r1["energy"]) < 1e-9
    np.testing.assert_allclose(r1["forces"], r0["forces"] @ q.T, atol=1e-9)
    # every node feature transforms by its irreps (scalars invariant, 1o vectors rotate and flip)
    features = features_fn(pot64)
    f0, f1 = features(atoms), features(moved)
    np.testing.assert_allclose(f1.array, f0.transform_by_matrix(q).array, atol=1e-9)


def test_rotation_of_periodic_cell_and_stress(pot64):
    atoms = skewed_cell()
    q = random_orthogonal(5, inversion=False)
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    moved.positions = atoms.positions @ q.T
    r0, r1 = pot64.calculate(atoms), pot64.calculate(moved)
    assert abs(r0["energy"] - r1["energy"]) < 1e-9
    np.testing.assert_allclose(r1["forces"], r0["forces"] @ q.T, atol=1e-9)
    from jaxpot.validation import voigt_to_matrix

    s0, s1 = voigt_to_matrix(r0["stress"]), voigt_to_matrix(r1["stress"])
    np.testing.assert_allclose(s1, q @ s0 @ q.T, atol=1e-9)


def test_translation_invariance(pot64):
    atoms = ethanol()
    moved = atoms.copy()
    moved.positions += np.array([3.1, -7.2, 0.4])
    r0, r1 = pot64.calculate(atoms), pot64.calculate(moved)
    assert abs(r0["energy"] - r1["energy"]) < 1e-9
    np.testing.assert_allclose(r1["forces"], r0["forces"], atol=1e-9)


def test_permutation_equivariance(pot64):
    atoms = ethanol()
    perm = np.random.default_rng(0).permutation(len(atoms))
    r0, r1 = pot64.calculate(atoms), pot64.calculate(atoms[perm])
    assert abs(r0["energy"] - r1["energy"]) < 1e-9
    np.testing.assert_allclose(r1["forces"], r0["forces"][perm], atol=1e-9)


def test_forces_match_finite_differences(pot64):
    atoms = ethanol()
    forces = pot64.calculate(atoms)["forces"]
    h = 1e-4
    fd = np.zeros_like(forces)
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            fd[i, k] = -(pot64.calculate(plus)["energy"] - pot64.calculate(minus)["energy"]) / (2 * h)
    np.testing.assert_allclose(forces, fd, atol=1e-6, rtol=1e-5)


def test_stress_matches_finite_strain(pot64):
    atoms = skewed_cell()
    stress = pot64.calculate(atoms)["stress"]  # Voigt xx yy zz yz xz xy
    volume = atoms.get_volume()
    h = 1e-5
    pairs = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    fd = np.zeros(6)
    for v, (a, b) in enumerate(pairs):
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] += sign * h / (1 if a == b else 2)
            eps[b, a] += 0 if a == b else sign * h / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            energies.append(pot64.calculate(strained)["energy"])
        fd[v] = (energies[0] - energies[1]) / (2 * h) / volume
    np.testing.assert_allclose(stress, fd, atol=1e-7, rtol=1e-5)


def test_padding_invariance(pot64):
    atoms = ethanol()
    small = pot64.graph(atoms)
    big = from_atoms(atoms, pot64.cutoff, pot64.species, n_node=64, n_edge=512, n_graph=4)
    e0, f0 = pot64.energy_and_forces(small)
    e1, f1 = pot64.energy_and_forces(big)
    assert abs(float(e0[0]) - float(e1[0])) < 1e-9
    np.testing.assert_allclose(np.asarray(f1)[: len(atoms)], np.asarray(f0)[: len(atoms)], atol=1e-9)
    _, _, s0 = pot64.energy_forces_stress(pot64.graph(skewed_cell()))
    _, _, s1 = pot64.energy_forces_stress(
        from_atoms(skewed_cell(), pot64.cutoff, pot64.species, n_node=40, n_edge=1024, n_graph=3)
    )
    np.testing.assert_allclose(np.asarray(s1)[0], np.asarray(s0)[0], atol=1e-10)


def test_batching_invariance(pot64):
    structures = [ethanol(), skewed_cell(), acetamide()]
    e, f, s = pot64.energy_forces_stress(pot64.graph(structures))
    offset = 0
    for k, atoms in enumerate(structures):
        alone = pot64.calculate(atoms, stress=True)
        assert abs(float(e[k]) - alone["energy"]) < 1e-9
        np.testing.assert_allclose(np.asarray(f)[offset : offset + len(atoms)], alone["forces"], atol=1e-9)
        from jaxpot.validation import matrix_to_voigt

        np.testing.assert_allclose(matrix_to_voigt(np.asarray(s[k])), alone["stress"], atol=1e-10)
        offset += len(atoms)


def test_smooth_at_cutoff(pot64, model_name):
    """A pair crossing the cutoff changes energy and forces continuously, to second order.

    Long-range models keep changing beyond the cutoff: there the reference is the linear
    extrapolation of energy and forces from outside (``2 X(c + d) - X(c + 3d)``), which a model
    smooth across the cutoff meets to second order as well."""

    def dimer(r):
        return Atoms("CO", positions=[[0, 0, 0], [r, 0, 0]])

    long_range = model_name in LONG_RANGE
    far = pot64.calculate(dimer(CUTOFF + 1.0))
    gaps, forces = [], []
    for delta in (1e-2, 1e-3):
        inside = pot64.calculate(dimer(CUTOFF - delta))
        ref_e, ref_f = far["energy"], 0.0
        if long_range:
            out1, out3 = pot64.calculate(dimer(CUTOFF + delta)), pot64.calculate(dimer(CUTOFF + 3 * delta))
            ref_e, ref_f = 2 * out1["energy"] - out3["energy"], 2 * out1["forces"] - out3["forces"]
        gaps.append(abs(inside["energy"] - ref_e))
        forces.append(np.abs(inside["forces"] - ref_f).max())
    beyond = pot64.calculate(dimer(CUTOFF + 1e-3))
    assert long_range or abs(beyond["energy"] - far["energy"]) < 1e-12
    assert gaps[1] < 1e-5 and forces[1] < 1e-3
    # energy gap shrinks at least quadratically, force at least linearly
    assert gaps[1] <= gaps[0] / 20 + 1e-12
    assert forces[1] <= forces[0] / 5 + 1e-12


@pytest.mark.parametrize("model_name", sorted(set(EXACT_MODELS) - LONG_RANGE))
def test_locality(model_name):
    pot = make_potential(model_name)
    a, b = ethanol(), acetamide()
    b.positions += np.array([CUTOFF + 12.0, 0.0, 0.0])
    both = a + b
    ra, rb, rab = pot.calculate(a), pot.calculate(b), pot.calculate(both)
    assert abs(rab["energy"] - ra["energy"] - rb["energy"]) < 1e-8
    np.testing.assert_allclose(rab["forces"], np.concatenate([ra["forces"], rb["forces"]]), atol=1e-9)


def test_isolated_atom(pot64):
    atom = Atoms("O", positions=[[0.0, 0.0, 0.0]])
    r = pot64.calculate(atom)
    assert np.isfinite(r["energy"])
    np.testing.assert_array_equal(r["forces"], np.zeros((1, 3)))
    # the reference energy is part of the total
    assert abs(r["energy"] - (-2042.0)) < 100.0


def test_symmetric_site_has_zero_force(pot64):
    """Every atom of diamond is a Td site: forces vanish and stress is isotropic (norms smooth at 0)."""
    from ase.build import bulk

    r = pot64.calculate(bulk("Si", "diamond", a=5.43))
    np.testing.assert_allclose(r["forces"], 0.0, atol=1e-10)
    np.testing.assert_allclose(r["stress"][:3], r["stress"][0], atol=1e-10)
    np.testing.assert_allclose(r["stress"][3:], 0.0, atol=1e-10)


def test_no_nan_on_padded_input(model_name):
    pot = make_potential(model_name, "float32")
    g = pot.prepare(from_atoms([ethanol(), Atoms("H")], pot.cutoff, pot.species, n_node=48, n_edge=256, n_graph=5))
    mask = graph_mask(g)

    def loss(params, positions):
        gg = g._replace(nodes={**g.nodes, "positions": positions})
        e, f = pot.energy_and_forces_fn(params, gg)
        nodes = node_mask(gg)[:, None]
        return jnp.sum(jnp.where(mask, e, 0.0) ** 2) * 1e-6 + jnp.sum(jnp.where(nodes, f, 0.0) ** 2), (e, f)

    # one compilation: the unmasked energies and forces (padding slots included) come back as aux
    (value, (e, f)), (g_params, g_pos) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        pot.params, g.nodes["positions"])
    assert np.isfinite(float(value))
    for leaf in jax.tree_util.tree_leaves(g_params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert np.all(np.isfinite(np.asarray(g_pos)))
    assert np.all(np.isfinite(np.asarray(e))) and np.all(np.isfinite(np.asarray(f)))


def test_one_compilation_per_bucket(model_name):
    pot = make_potential(model_name, "float32")
    traces = []

    def energy(params, graph):
        traces.append(1)  # runs once per trace, i.e. per compilation
        return pot.energy_fn(params, graph)

    fn = jax.jit(energy)
    structures = [ethanol(seed=k) for k in range(3)] + [acetamide(seed=k) for k in range(3)]
    shapes = set()
    for atoms in structures:
        g = from_atoms(atoms, pot.cutoff, pot.species, n_node=16, n_edge=160, n_graph=2)
        shapes.add((g.nodes["positions"].shape, g.senders.shape))
        fn(pot.params, pot.prepare(g)).block_until_ready()
    assert len(shapes) == 1 and len(traces) == 1
    # default bucketing: molecules of similar size share a bucket
    sizes = {pot.graph(a).senders.shape for a in structures[:3]}
    for atoms in structures[:3]:
        fn(pot.params, pot.prepare(pot.graph(atoms))).block_until_ready()
    assert len(traces) == 1 + len(sizes)


def test_float32_and_float64_agree(model_name):
    p32 = make_potential(model_name, "float32")
    p64 = p32.astype("float64")
    atoms = ethanol()
    r32, r64 = p32.calculate(atoms), p64.calculate(atoms)
    assert abs(r32["energy"] - r64["energy"]) < 2e-3  # float64 E0 sum keeps totals exact
    np.testing.assert_allclose(r32["forces"], r64["forces"], atol=1e-3)
    e, f = p32.energy_and_forces(p32.graph(atoms))
    assert f.dtype == jnp.float32


def test_hessian_is_symmetric_and_matches_forces(pot64):
    atoms = ethanol()
    g = pot64.graph(atoms)
    n = len(atoms)
    # (the chunked route, Hessian-vector products, is model-independent: tests/test_spectra.py)
    h = np.asarray(pot64.hessian(g))[:n, :, :n, :]
    flat = h.reshape(3 * n, 3 * n)
    np.testing.assert_allclose(flat, flat.T, atol=1e-8)
    # one column against finite differences of the forces
    step = 1e-5
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions[2, 1] += step
    minus.positions[2, 1] -= step
    column = -(pot64.calculate(plus)["forces"] - pot64.calculate(minus)["forces"]) / (2 * step)
    np.testing.assert_allclose(h[:, :, 2, 1], column, atol=1e-5)


def test_species_embedding_matters(model_name):
    """Changing an element changes the energy (the species table is used)."""
    pot = make_potential(model_name)
    a = ethanol()
    b = a.copy()
    b.numbers[0] = 7  # C -> N
    ea = pot.calculate(a)["energy"] - pot.e0[pot.species.index(6)]
    eb = pot.calculate(b)["energy"] - pot.e0[pot.species.index(7)]
    assert abs(ea - eb) > 1e-6
