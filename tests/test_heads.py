"""Dipole, charge and polarizability heads on every backbone: tensor behaviour under
rotation, inversion and translation; charge constraint; padding; save/load; training."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import acetamide, ethanol, make_potential

import jaxpot
from jaxpot import graph as graph_lib
from jaxpot.heads import irrep2e_to_matrix

PROPERTIES = ("dipole", "polarizability")


def random_orthogonal(seed: int, inversion: bool) -> np.ndarray:
    q = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))[0]
    q = q * np.sign(np.linalg.det(q))  # a rotation
    return -q if inversion else q
_CACHE: dict = {}


def tensor_potential(name: str) -> jaxpot.Potential:
    if name not in _CACHE:
        _CACHE[name] = make_potential(name, "float64", properties=PROPERTIES)
    return _CACHE[name]


def outputs(pot, atoms_list, charges=None, **sizes) -> dict:
    """Heads' outputs of a list of molecules in one padded graph (numpy, real graphs only)."""
    g = graph_lib.from_atoms(atoms_list, pot.cutoff, pot.species, **sizes)
    q = np.zeros(len(g.n_node)) if charges is None else np.concatenate([charges, np.zeros(len(g.n_node) - len(charges))])
    g = g._replace(globals={**g.globals, "charge": q})
    fn = pot._jit("test_outputs", lambda: pot.outputs_fn)
    out = fn(pot.params, pot.prepare(g))
    n, k = sum(len(a) for a in atoms_list), len(atoms_list)
    return {"charges": np.asarray(out["charges"])[:n], "dipole": np.asarray(out["dipole"])[:k],
            "polarizability": np.asarray(out["polarizability"])[:k]}


# Sphere-grid activations (SCN, eSCN) make the heads equivariant only up to the grid's aliasing
# (measured and bounded in tests/test_scn.py); eSCN is also chiral, so its mirror images differ.
GRID_MODELS = {"scn", "escn"}
CHIRAL = {"escn"}


def test_tensor_heads_transform_as_tensors(model_name):
    """Dipole rotates (and flips under inversion) as a vector, polarizability as R α Rᵀ (and is
    symmetric, and even under inversion); both are translation invariant (centroid origin),
    charges sum to each molecule's total charge, and padding and batching change nothing."""
    pot = tensor_potential(model_name)
    atoms = ethanol()
    q_rot, q_inv = random_orthogonal(7, False), random_orthogonal(8, True)
    rotated, inverted, moved = atoms.copy(), atoms.copy(), atoms.copy()
    rotated.positions = atoms.positions @ q_rot.T
    inverted.positions = atoms.positions @ q_inv.T
    moved.positions = atoms.positions + np.array([3.0, -7.5, 11.0])
    # one compiled call (same bucket): neutral, rotated, inverted (charge +1), translated (charge +1)
    sizes = {"n_node": 40, "n_edge": 320, "n_graph": 5}  # one compilation for both calls
    out = outputs(pot, [atoms, rotated, inverted, moved], charges=[0.0, 0.0, 1.0, 1.0], **sizes)
    mu, alpha, q = out["dipole"], out["polarizability"], out["charges"]
    n = len(atoms)
    np.testing.assert_allclose(q.reshape(4, n).sum(axis=1), [0.0, 0.0, 1.0, 1.0], atol=1e-10)
    tol = 1e-5 if model_name in GRID_MODELS else 1e-9
    np.testing.assert_allclose(mu[1], q_rot @ mu[0], atol=tol)
    np.testing.assert_allclose(alpha[1], q_rot @ alpha[0] @ q_rot.T, atol=tol)
    np.testing.assert_allclose(alpha, np.swapaxes(alpha, 1, 2), atol=1e-12)
    assert np.abs(alpha[0] - np.trace(alpha[0]) / 3 * np.eye(3)).max() > 1e-6  # anisotropic
    # charge +1: the charges shift by 1/n each, the dipole about the centroid by sum (1/n)(r - c) = 0
    np.testing.assert_allclose(q[3 * n:], q[:n] + 1.0 / n, atol=1e-10)
    np.testing.assert_allclose(mu[3], mu[0], atol=1e-9)
    np.testing.assert_allclose(alpha[3], alpha[0], atol=1e-9)
    if model_name not in CHIRAL:
        np.testing.assert_allclose(mu[2], q_inv @ mu[0], atol=tol)
        np.testing.assert_allclose(alpha[2], q_inv @ alpha[0] @ q_inv.T, atol=tol)
    features = jax.eval_shape(lambda: pot.module.apply(pot.params, pot.prepare(pot.graph(atoms)),
                                                       method=jaxpot.heads.AtomisticModel.features))
    if features.irreps.filter(keep="1o").dim == 0:  # charges only: mu = sum q_i (r_i - centroid)
        centred = atoms.positions - atoms.positions.mean(axis=0)
        np.testing.assert_allclose(mu[0], q[:n] @ centred, atol=1e-10)
    # padding and batching: another molecule first, much more padding
    other = acetamide()
    padded = outputs(pot, [other, atoms], **sizes)
    np.testing.assert_allclose(padded["dipole"][1], mu[0], atol=1e-10)
    np.testing.assert_allclose(padded["polarizability"][1], alpha[0], atol=1e-10)
    np.testing.assert_allclose(padded["charges"][len(other):], q[:n], atol=1e-10)


def test_irrep2e_to_matrix_rotates_as_rank2_tensor():
    """The 2e path (for backbones with l=2 features): e3nn's D(R) on the irrep is R M Rᵀ."""
    import e3nn_jax as e3nn

    x = e3nn.normal("1x2e", jax.random.PRNGKey(0), (4,)).astype(np.float64)
    q = random_orthogonal(3, True)
    m, m_rot = irrep2e_to_matrix(x.array), irrep2e_to_matrix(x.transform_by_matrix(q).array)
    np.testing.assert_allclose(m_rot, q @ m @ q.T, atol=1e-6)
    np.testing.assert_allclose(np.trace(m, axis1=-2, axis2=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(m, np.swapaxes(m, -1, -2), atol=1e-12)


def test_save_load_and_api(tmp_path):
    pot = tensor_potential("painn")
    assert pot.heads.keys() == set(PROPERTIES) and "dipole" in pot.properties
    pot.save(tmp_path / "m")
    loaded = jaxpot.load(tmp_path / "m")
    assert loaded.heads == pot.heads and loaded.dtype == "float64"
    assert loaded.astype("float32").heads == pot.heads
    same = jax.tree_util.tree_map(lambda x, y: bool(np.array_equal(x, y)), pot.params, loaded.params)
    assert all(jax.tree_util.tree_leaves(same)) and "dipole_head" in loaded.params["params"]
    atoms = ethanol()
    b = loaded.calculate(atoms)
    np.testing.assert_allclose(b["charges"].sum(), 0.0, atol=1e-12)
    # pure functions for derivatives w.r.t. positions (spectra): [G, 3], [G, 3, 3]
    g = loaded.prepare(loaded.graph(atoms))
    mu, alpha = jax.jit(lambda p, g: (loaded.dipole_fn()(p, g), loaded.polarizability_fn()(p, g)))(loaded.params, g)
    assert mu.shape == (2, 3) and alpha.shape == (2, 3, 3)
    np.testing.assert_allclose(mu[0], b["dipole"], atol=1e-12)
    np.testing.assert_allclose(alpha[0], b["polarizability"], atol=1e-12)
    many = loaded.evaluate([atoms, acetamide()], batch_size=2)
    np.testing.assert_allclose(many[0]["dipole"], b["dipole"], atol=1e-10)
    np.testing.assert_allclose(many[0]["polarizability"], b["polarizability"], atol=1e-10)
    assert many[1]["charges"].shape == (len(acetamide()),)
    calc = jaxpot.Calculator(loaded)
    atoms.calc = calc
    assert atoms.get_dipole_moment().shape == (3,) and "polarizability" in calc.results
    energy_only = make_potential("schnet", "float32")
    with pytest.raises(ValueError, match="no dipole head"):
        energy_only.dipole_fn()
    assert "dipole" not in jaxpot.Calculator(energy_only).implemented_properties
    with pytest.raises(ValueError, match="unknown property"):
        make_potential("schnet", properties=("quadrupole",))
    with pytest.raises(ValueError, match="unknown option"):
        make_potential("schnet", properties={"dipole": {"widht": 3}})


@pytest.mark.parametrize("model_name", ["schnet", "painn"])  # scalar-only and 0e + 1o backbones
def test_training_lowers_dipole_and_polarizability_errors(tmp_path, model_name):
    """A few steps on dipoles (bundled GFN2-xTB ethanol) and a synthetic polarizability
    (isotropic plus the geometry's second moment: a smooth, learnable rank-2 tensor)."""
    from jaxpot.data import GraphLoader, read
    from jaxpot.reference.bundled import ethanol_path
    from jaxpot.train import TrainingOptions, evaluate, train

    frames = read(ethanol_path(), index=":12")
    for atoms in frames:
        r = atoms.positions - atoms.positions.mean(axis=0)
        atoms.info["polarizability"] = 4.0 * np.eye(3) + 0.2 * r.T @ r
    hparams = jaxpot.models.small_hyperparameters(model_name)
    pot = jaxpot.Potential.create(model_name, ["H", "C", "O"], 4.0, properties=PROPERTIES, **hparams)
    labels = {"dipole": "dipole", "polarizability": "polarizability"}  # no forces: no backward pass
    loader = GraphLoader(frames, 4.0, pot.species, 2, seed=0, labels=labels)
    valid = GraphLoader(frames, 4.0, pot.species, 12, shuffle=False, labels=labels)
    before = evaluate(pot, valid)[0]
    options = TrainingOptions(epochs=3, learning_rate=1e-2, progress=False, swa_start=None, ema_decay=0.0,
                              weights={"dipole": 10.0, "polarizability": 1.0})
    result = train(pot, loader, valid, options, tmp_path / "run")
    after = result.history[-1]["valid"]
    assert after["dipole_mae"] < 0.7 * before["dipole_mae"]
    assert after["polarizability_mae"] < 0.7 * before["polarizability_mae"]
    assert {"polarizability_xy_mae", "dipole_z_rmse"} <= set(after)
    assert jaxpot.load(tmp_path / "run" / "model").heads.keys() == set(PROPERTIES)
