"""Ewald message passing (jaxpot.longrange): k-sets, structure factors, invariances, long range,
stress, save/load and jax-md. The conformance suite runs "<backbone>+ewald" too (conftest)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

import jaxpot
from jaxpot.longrange import kspace

pytestmark = pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")

# k_c = 1.8 Å⁻¹ reaches the {100} and {110} reciprocal vectors of cubic Si (1.16, 1.64 Å⁻¹)
EWALD = {"k_cutoff": 1.8, "num_rbf": 8, "downprojection": 4, "num_hidden": 1, "num_radial": 4,
         "angular_degree": 23, "max_cell_length": 13.0}
_POT: dict = {}


def potential(model="painn", ewald=True, **kw) -> jaxpot.Potential:
    key = (model, ewald is not None and ewald is not False, tuple(sorted(kw.items())))
    if key not in _POT:
        hp = {"schnet": {"features": 8, "num_interactions": 1, "num_rbf": 6},
              "painn": {"features": 8, "num_interactions": 1, "num_rbf": 4},
              "mace": jaxpot.models.small_hyperparameters("mace") | {"num_interactions": 1}}[model]
        options = (EWALD | kw) if ewald else None
        _POT[key] = jaxpot.Potential.create(model, ["H", "C", "O", "Si"], 4.0, dtype="float64", seed=1,
                                            ewald=options, **hp)
    return _POT[key]


def sic_cell(seed=0) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.numbers[[1, 6]] = 6
    atoms.rattle(0.05, seed=seed)
    return atoms


def unimodular_copy(atoms: Atoms, u: np.ndarray) -> Atoms:
    """The same crystal described by the cell basis ``u @ cell`` (``det u = ±1``)."""
    moved = atoms.copy()
    moved.set_cell(u @ atoms.cell.array, scale_atoms=False)
    moved.wrap()
    return moved


U = np.array([[1, 2, 0], [0, 1, 0], [1, 1, 1]])  # det 1


def test_structure_factor_and_messages_match_a_direct_sum(rng):
    cell = sic_cell().cell.array
    k, w = kspace.reciprocal_k_vectors(jnp.asarray(cell[None]), jnp.array([True]), 1.8, 3)
    k, w = np.asarray(k[0]), np.asarray(w[0])
    inside = w > 0
    assert inside.sum() == 9  # {100}: 3 and {110}: 6, one of each ±k
    r = rng.normal(size=(5, 3)) * 3
    h = rng.normal(size=(5, 2))
    membership = jnp.ones((1, 5))
    phase = jnp.asarray(r) @ jnp.asarray(k).T
    real, imag = kspace.structure_factor(jnp.asarray(h), phase, membership)
    direct = np.einsum("nc,nk->kc", h, np.exp(-1j * r @ k.T))
    np.testing.assert_allclose(np.asarray(real[0]), direct.real, atol=1e-12)
    np.testing.assert_allclose(np.asarray(imag[0]), direct.imag, atol=1e-12)
    filt = rng.normal(size=(1, k.shape[0], 2))
    m = kspace.ewald_messages(jnp.asarray(h), phase, membership, jnp.asarray(filt))
    direct_m = np.einsum("kc,nk->nc", filt[0] * direct, np.exp(1j * r @ k.T)).real
    np.testing.assert_allclose(np.asarray(m), direct_m, atol=1e-12)


def test_ball_messages_in_real_space_equal_the_k_space_sum(rng):
    """The ball's shell-by-shell pair kernels reorder the same quadrature sum (to rounding)."""
    kc, n_rad, degree = 0.6, 3, 7
    k, w = kspace.ball_quadrature(kc, n_rad, degree)
    radii, radial_w, directions, angular_w = kspace.ball_shells(kc, n_rad, degree)
    np.testing.assert_allclose(k, (radii[:, None, None] * directions[None]).reshape(-1, 3), atol=1e-15)
    r = rng.normal(size=(7, 3)) * 4
    h = rng.normal(size=(7, 3))
    gid = np.array([0, 0, 0, 1, 1, 1, 1])
    membership = jnp.asarray((gid[None] == np.arange(2)[:, None]).astype(float))
    shell_filter = rng.normal(size=(n_rad, 3))
    filt = np.repeat(shell_filter, len(angular_w), axis=0) * w[:, None]  # Φ(|k|) times the k-point weight
    m_k = kspace.ewald_messages(jnp.asarray(h), jnp.asarray(r @ k.T), membership,
                                jnp.broadcast_to(jnp.asarray(filt), (2,) + filt.shape))
    same = jnp.asarray((gid[:, None] == gid[None, :]).astype(float))
    kernels = kspace.shell_kernels(jnp.asarray(r), jnp.asarray(k.reshape(n_rad, -1, 3)), jnp.asarray(angular_w), same)
    m_pairs = kspace.pair_messages(jnp.asarray(h), kernels, jnp.asarray(shell_filter * radial_w[:, None]))
    np.testing.assert_allclose(np.asarray(m_pairs), np.asarray(m_k), atol=1e-12)


@pytest.mark.parametrize("model", ["schnet", "mace"])
def test_both_evaluation_orders_agree(model, monkeypatch):
    """Pairs (small batches) and k-space (large graphs) give the same energies, forces and
    stress (float64) on a padded batch of a crystal and two molecules."""
    pot = potential(model, k_cutoff=0.4, angular_degree=17)
    g = pot.graph([sic_cell(), water_dimer(5.0), water_dimer(12.0)], n_node=30, n_edge=220, n_graph=5)
    results = {}
    for pairs in (True, False):
        monkeypatch.setattr(kspace, "pairs_are_cheaper", lambda *args, pairs=pairs: pairs)
        fn = jax.jit(jaxpot.potential.energy_forces_stress(pot.energy_fn))  # a fresh trace per order
        results[pairs] = [np.asarray(x) for x in fn(pot.params, pot.prepare(g))]
    for a, b in zip(results[True], results[False]):
        np.testing.assert_allclose(a[:3], b[:3], atol=1e-10)


def test_k_set_is_the_same_in_every_cell_basis():
    atoms = sic_cell()
    cells = np.stack([atoms.cell.array, U @ atoms.cell.array])
    assert round(abs(np.linalg.det(U))) == 1
    m = kspace.max_index_for(1.8, 13.0)
    assert np.linalg.norm(cells[1], axis=1).max() < 13.0
    k, w = kspace.reciprocal_k_vectors(jnp.asarray(cells), jnp.array([True, True]), 1.8, m)
    sets = []
    for g in range(2):
        kk = np.asarray(k[g])[np.asarray(w[g]) > 0]
        kk = kk * np.where(kk[:, :1] < -1e-9, -1.0, 1.0)  # one representative of ±k
        sets.append(kk[np.lexsort(np.round(kk, 6).T)])
    assert sets[0].shape == sets[1].shape == (9, 3)
    np.testing.assert_allclose(sets[0], sets[1], atol=1e-12)
    np.testing.assert_allclose(np.asarray(w[0]).max(), np.asarray(w[1]).max(), rtol=1e-12)


def test_energy_invariant_under_cell_basis_and_translations():
    pot = potential()
    atoms = sic_cell()
    ref = pot.calculate(atoms)
    other = unimodular_copy(atoms, U)
    moved = atoms.copy()
    moved.positions += np.array([0.7, -1.3, 2.2])
    moved.positions[3] += atoms.cell.array[1]  # one atom by a lattice vector
    for variant in (other, moved):
        r = pot.calculate(variant)
        assert abs(r["energy"] - ref["energy"]) < 1e-9
        np.testing.assert_allclose(r["stress"], ref["stress"], atol=1e-9)
    bare = potential(ewald=False)
    assert abs(ref["energy"] - bare.calculate(atoms)["energy"]) > 1e-4  # the block contributes


def test_supercell_has_the_same_energy_per_cell():
    """k-point weights (2π)³/V make the block's messages the same in a supercell."""
    pot = potential()
    atoms = sic_cell()
    assert abs(pot.calculate(atoms.repeat((2, 1, 1)))["energy"] - 2 * pot.calculate(atoms)["energy"]) < 1e-8


def test_stress_matches_finite_strain():
    pot = potential()
    atoms = sic_cell(seed=3)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.04, 0.0], [0.0, 0.97, 0.02], [0.03, 0.0, 1.02]]),
                   scale_atoms=True)
    stress = pot.calculate(atoms)["stress"]
    volume, h = atoms.get_volume(), 1e-5
    fd = np.zeros(6)
    for v, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        e = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] += sign * h / (1 if a == b else 2)
            eps[b, a] += 0 if a == b else sign * h / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            e.append(pot.calculate(strained)["energy"])
        fd[v] = (e[0] - e[1]) / (2 * h) / volume
    np.testing.assert_allclose(stress, fd, atol=1e-8, rtol=1e-5)
    # the Ewald part carries stress of its own (k and V change with the cell)
    assert np.abs(stress - potential(ewald=False).calculate(atoms)["stress"]).max() > 1e-5


def water_dimer(separation: float) -> Atoms:
    a, b = molecule("H2O"), molecule("H2O")
    b.rotate(70, "x")
    b.positions += [separation, 0.3, -0.2]
    return a + b


@pytest.mark.parametrize("model", ["schnet", "painn", "mace"])
def test_couples_atoms_beyond_the_cutoff(model):
    """Beyond the 4 Å cutoff the bare backbone sees two separate monomers; the block does not."""
    seps = (6.0, 8.0, 10.0)
    bare = [potential(model, ewald=False).calculate(water_dimer(d))["energy"] for d in seps]
    assert max(bare) - min(bare) < 1e-10
    pot = potential(model, k_cutoff=0.4, angular_degree=17)
    long = [pot.calculate(water_dimer(d)) for d in seps]
    energies = [r["energy"] for r in long]
    assert min(abs(energies[0] - energies[1]), abs(energies[1] - energies[2])) > 1e-7
    f = long[1]["forces"]
    assert np.abs(f[:3].sum(axis=0)).max() > 1e-7  # a net force between the monomers
    np.testing.assert_allclose(f.sum(axis=0), 0.0, atol=1e-10)


def test_aperiodic_kernel_error_is_within_its_bound(rng):
    """The ball quadrature of cos(k·r) against its exact angular mean sin(kr)/(kr)."""
    kc, n_rad, degree = 0.4, 8, 17
    k, w = kspace.ball_quadrature(kc, n_rad, degree)
    radii = np.linalg.norm(k.reshape(n_rad, -1, 3)[:, 0], axis=-1)
    shell_w = w.reshape(n_rad, -1).sum(axis=1)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-12)
    for dist in (3.0, 9.0, 15.0, 20.0):
        r = rng.normal(size=(200, 3))
        r = dist * r / np.linalg.norm(r, axis=1, keepdims=True)
        quad = np.cos(r @ k.T) @ w
        exact = np.sum(shell_w * np.sinc(radii * dist / np.pi))
        bound = np.sum(shell_w * kspace.angular_error_bound(radii * dist, degree))
        err = np.abs(quad - exact).max()
        assert err <= bound + 1e-15
        assert bound < 1e-4 * np.abs(exact) + 1e-4  # useful, not vacuous
    # an exact case: all radial terms below degree 17 are integrated to rounding
    assert np.abs(np.cos(np.array([[0.0, 0.0, 0.5]]) @ k.T) @ w - np.sum(shell_w * np.sinc(radii * 0.5 / np.pi))).max() < 1e-14


def test_aperiodic_energy_rotation_error_is_small():
    """Measured rotation error of the energy of a water dimer 12 Å apart, paper's k_c = 0.4 Å⁻¹."""
    pot = potential("painn", k_cutoff=0.4, angular_degree=17)
    atoms = water_dimer(12.0)
    e0 = pot.calculate(atoms)["energy"]
    errors = []
    for seed in range(4):
        q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
        moved = atoms.copy()
        moved.positions = atoms.positions @ q.T
        errors.append(abs(pot.calculate(moved)["energy"] - e0))
    e_long = abs(e0 - potential("painn", ewald=False).calculate(atoms)["energy"])
    assert max(errors) < 1e-6 * max(e_long, 1e-3)


def test_save_and_load_keep_the_block(tmp_path):
    pot = potential()
    pot.save(tmp_path / "m")
    loaded = jaxpot.load(tmp_path / "m")
    assert loaded.hparams["ewald"]["k_cutoff"] == EWALD["k_cutoff"]
    atoms = sic_cell()
    assert abs(loaded.calculate(atoms)["energy"] - pot.calculate(atoms)["energy"]) < 1e-12


def test_bad_options():
    with pytest.raises(ValueError, match="unknown ewald option"):
        jaxpot.Potential.create("schnet", ["H"], 4.0, ewald={"kcut": 1.0}, features=4, num_interactions=1)
    with pytest.raises(ValueError, match="placement must be one of"):
        jaxpot.Potential.create("schnet", ["H"], 4.0, ewald={"placement": "first"}, features=4, num_interactions=1)
    with pytest.raises(ValueError, match="no per-layer Ewald blocks"):
        jaxpot.Potential.create("nequip", ["H"], 4.0, ewald={"placement": "layers"}, **jaxpot.models.small_hyperparameters("nequip"))


def test_angular_degree_follows_the_frequency_cutoff():
    """Potential.create picks the sphere rule for k_c (the fixed 17 would leave a rotation error of
    order 1 at 17 Å with k_c = 1.2) and saves it; a degree given by the user is kept."""
    from jaxpot.longrange import kspace

    assert [kspace.angular_degree_for(k) for k in (0.4, 0.8, 1.2)] == [17, 27, 35]
    assert kspace.angular_error_bound(1.2 * 17.0, 17) > 1.0
    assert kspace.angular_error_bound(1.2 * 17.0, 35) < 1e-5
    hp = {"features": 4, "num_interactions": 1}
    for options, degree in (({"k_cutoff": 1.2}, 35), ({}, 17), ({"k_cutoff": 1.2, "angular_degree": 21}, 21)):
        pot = jaxpot.Potential.create("schnet", ["H"], 4.0, ewald=options, **hp)
        assert pot.hparams["ewald"]["angular_degree"] == degree


def test_a_block_beside_every_interaction(tmp_path):
    """The paper's placement (the default for SchNet, PaiNN and MACE): one block per interaction,
    fed the layer's input scalars; "output" is one block on the final scalars, and a model saved
    before the option existed (no ``placement``) loads as "output" with its energies."""
    hp = {"features": 8, "num_interactions": 2, "num_rbf": 4}
    layered = jaxpot.Potential.create("painn", ["H", "O"], 4.0, dtype="float64", seed=1, ewald=EWALD, **hp)
    assert layered.hparams["ewald"]["placement"] == "layers"
    backbone = layered.params["params"]["backbone"]
    assert {"ewald_0", "ewald_1"} <= set(backbone)
    output = jaxpot.Potential.create("painn", ["H", "O"], 4.0, dtype="float64", seed=1,
                                     ewald=EWALD | {"placement": "output"}, **hp)
    assert set(output.params["params"]["backbone"]) == {"backbone", "ewald"}  # EwaldBackbone
    atoms = water_dimer(8.0)
    assert abs(layered.calculate(atoms)["energy"] - output.calculate(atoms)["energy"]) > 1e-6

    output.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["hparams"]["ewald"]["placement"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = jaxpot.load(tmp_path / "m")
    assert loaded.calculate(atoms)["energy"] == output.calculate(atoms)["energy"]
    with pytest.raises(ValueError, match="angular_degree must be odd"):
        kspace.sphere_quadrature(16)


def test_padding_gives_no_nan_and_graphs_pick_their_k_set():
    pot = potential()
    g = pot.graph([sic_cell(), water_dimer(5.0)], n_node=20, n_edge=160, n_graph=4)  # padded
    e, f, s = pot.energy_forces_stress(g)
    assert np.all(np.isfinite(np.asarray(f))) and np.all(np.isfinite(np.asarray(s)))
    np.testing.assert_allclose(np.asarray(e[:2]), [pot.calculate(sic_cell())["energy"],
                                                   pot.calculate(water_dimer(5.0))["energy"]], atol=1e-9)
    grads = jax.grad(lambda p: jnp.sum(pot.energy_fn(p, pot.prepare(g))))(pot.params)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(grads))


def test_runs_in_jax_md_with_stress():
    from jax_md import quantity, space

    import jaxpot.md as md

    pot = potential()
    atoms = sic_cell()
    box = jnp.asarray(atoms.cell.array.T)
    displacement, _ = space.periodic_general(box, fractional_coordinates=True)
    neighbor_fn, energy_fn = md.energy_fn(pot, displacement, box, atoms.numbers, fractional_coordinates=True)
    position = jnp.asarray(atoms.get_scaled_positions())
    nbrs = neighbor_fn.allocate(position)

    @jax.jit
    def evaluate(r, nbrs):
        energy, grad = jax.value_and_grad(energy_fn)(r, neighbor=nbrs)
        return energy, quantity.stress(energy_fn, r, box, neighbor=nbrs)

    energy, stress = evaluate(position, nbrs)
    ref = pot.calculate(atoms)
    np.testing.assert_allclose(float(energy), ref["energy"], atol=1e-9)
    # jax-md's stress (box perturbation) is -(ASE stress)
    np.testing.assert_allclose(-np.asarray(stress).ravel()[[0, 4, 8, 5, 2, 1]], ref["stress"], atol=1e-9)
