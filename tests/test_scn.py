"""SCN / eSCN building blocks (Wigner-D, edge frames, SO(2) convolution, sphere grids) and models."""

from __future__ import annotations

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np
import pytest

import jaxpot  # noqa: F401  (float64 on)
from jaxpot.nn.so2 import SO2Convolution
from jaxpot.nn.sphere_grid import default_resolution, grid_matrices
from jaxpot.nn.wigner import edge_frame, roll_matrix, safe_unit, truncated_indices, wigner_d


def sh_irreps(lmax):
    return e3nn.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)])


def rotation(seed):
    q = np.asarray(e3nn.rand_matrix(jax.random.PRNGKey(seed), ()), dtype=np.float64)
    u, _, vt = np.linalg.svd(q)
    return u @ vt


def test_wigner_d_rotates_spherical_harmonics():
    lmax = 5
    wigner = jax.jit(wigner_d, static_argnums=1)
    vectors = np.random.default_rng(0).normal(size=(7, 3))
    for seed in range(3):
        q = rotation(seed)
        d = np.asarray(wigner(jnp.asarray(q), lmax))
        y = e3nn.spherical_harmonics(sh_irreps(lmax), vectors, normalize=True).array
        y_rot = e3nn.spherical_harmonics(sh_irreps(lmax), vectors @ q.T, normalize=True).array
        np.testing.assert_allclose(y_rot, y @ d.T, atol=1e-12)
        np.testing.assert_allclose(d @ d.T, np.eye(d.shape[0]), atol=1e-12)
        np.testing.assert_allclose(d, sh_irreps(lmax).D_from_matrix(jnp.asarray(q)), atol=1e-10)
    # a representation: D(Q1 Q2) = D(Q1) D(Q2)
    q1, q2 = rotation(5), rotation(6)
    np.testing.assert_allclose(wigner(jnp.asarray(q1 @ q2), 3), wigner(jnp.asarray(q1), 3) @ wigner(jnp.asarray(q2), 3), atol=1e-12)


def test_edge_frame_sends_edge_to_y_axis():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(50, 3))
    # both charts, their border (u_y = 0) and both poles
    v = np.concatenate([v, [[0, 1, 0], [0, -1, 0], [1, 0, 0], [0, 0, -2], [1e-9, -1, 0], [1, 1e-12, 0]]])
    unit, r = safe_unit(jnp.asarray(v))
    frames = np.asarray(edge_frame(unit))
    np.testing.assert_allclose(np.einsum("eij,ej->ei", frames, unit), np.tile([0.0, 1.0, 0.0], (len(v), 1)), atol=1e-12)
    np.testing.assert_allclose(frames @ np.swapaxes(frames, 1, 2), np.broadcast_to(np.eye(3), frames.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(frames), 1.0, atol=1e-12)
    # in the edge frame an edge's own harmonics have only m = 0 components
    d = np.asarray(wigner_d(jnp.asarray(frames), 4))
    y = e3nn.spherical_harmonics(sh_irreps(4), np.asarray(unit), normalize=True).array
    in_frame = np.einsum("eab,eb->ea", d, y)
    m0 = truncated_indices(4, 0)
    others = np.setdiff1d(np.arange(25), m0)
    np.testing.assert_allclose(in_frame[:, others], 0.0, atol=1e-12)
    # padded (zero) edges: finite unit vector and gradient
    g = jax.grad(lambda x: jnp.sum(edge_frame(safe_unit(x)[0]) ** 2 * 0.3))(jnp.zeros((2, 3)))
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("hidden", [None, 8])
def test_so2_convolution_commutes_with_rolls(hidden):
    lmax, mmax = 4, 2
    idx = truncated_indices(lmax, mmax)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(6, len(idx), 3)))
    edge = jnp.asarray(rng.normal(size=(6, 5)))
    conv = SO2Convolution(lmax, mmax, 4, hidden_channels=hidden)
    params = conv.init(jax.random.PRNGKey(0), x, edge if hidden else None)
    apply = lambda x: conv.apply(params, x, edge if hidden else None)  # noqa: E731
    for psi in (0.3, 2.1, -1.0):
        roll = roll_matrix(psi, lmax, jnp.float64)[idx][:, idx]
        np.testing.assert_allclose(apply(jnp.einsum("ab,ebc->eac", roll, x)), jnp.einsum("ab,ebc->eac", roll, apply(x)), atol=1e-12)


def test_so2_convolution_is_the_general_roll_equivariant_map():
    """eSCN's claim (Sec. 4): in the edge frame, the SO(3)-equivariant linear maps are exactly the
    maps commuting with rolls about the edge axis, and those are exactly the SO(2) convolutions.
    Here: every plain SO2Convolution (one channel) commutes with rolls, and its weights span the
    whole commutant (its dimension counted independently, as the rank of the roll average)."""
    lmax, mmax = 3, 2
    idx = truncated_indices(lmax, mmax)
    k = len(idx)
    rolls = [np.asarray(roll_matrix(2 * np.pi * t / 7, lmax, jnp.float64))[idx][:, idx] for t in range(7)]

    def average(a):  # projection onto the commutant: exact with 7 > 2 mmax equally spaced rolls
        return sum(r.T @ a @ r for r in rolls) / len(rolls)

    basis = np.eye(k * k).reshape(k * k, k, k)
    commutant_dim = np.linalg.matrix_rank(np.stack([average(b).ravel() for b in basis]), tol=1e-9)
    assert commutant_dim == (lmax + 1) ** 2 + sum(2 * (lmax - m + 1) ** 2 for m in range(1, mmax + 1))

    conv = SO2Convolution(lmax, mmax, 1)
    x0 = jnp.zeros((1, k, 1))
    params = conv.init(jax.random.PRNGKey(1), x0)
    flat, unravel = ravel_pytree(params)

    def matrix(p):  # the conv as a [K, K] matrix
        return jax.jacfwd(lambda x: conv.apply(unravel(p), x[None, :, None])[0, :, 0])(jnp.zeros(k))

    m = np.asarray(matrix(flat))
    np.testing.assert_allclose(average(m), m, atol=1e-12)
    span = np.asarray(jax.jacfwd(lambda p: matrix(p).ravel())(flat))  # linear in the weights
    assert np.linalg.matrix_rank(span, tol=1e-9) == commutant_dim


def test_sphere_grid_round_trip_and_aliasing():
    lmax = 4
    rng = np.random.default_rng(3)
    x = rng.normal(size=((lmax + 1) ** 2, 2)) * 0.5
    to_grid, from_grid = grid_matrices(lmax, *default_resolution(lmax))
    np.testing.assert_allclose(from_grid @ (to_grid @ x), x, atol=1e-13)
    # truncated (edge-frame) grid: the |m| <= mmax coefficients round-trip too
    t, f = grid_matrices(lmax, *default_resolution(lmax), truncate=1)
    xt = x[truncated_indices(lmax, 1)]
    np.testing.assert_allclose(f @ (t @ xt), xt, atol=1e-13)
    # a quadratic non-linearity is projected exactly: equivariant to rounding
    q = rotation(4)
    d = np.asarray(wigner_d(jnp.asarray(q), lmax))

    def nonlinear(x, act, res):
        tg, fg = grid_matrices(lmax, *res)
        return fg @ act(tg @ x)

    for act, tol in ((np.square, 1e-12),):
        np.testing.assert_allclose(nonlinear(d @ x, act, default_resolution(lmax)), d @ nonlinear(x, act, default_resolution(lmax)), atol=tol)
    # SiLU aliases: the equivariance error is bounded and falls as the grid is refined
    silu = lambda v: v / (1 + np.exp(-v))  # noqa: E731
    errors = []
    for n in (lmax + 1, 2 * (lmax + 1), 4 * (lmax + 1)):  # n_theta; n_phi = 2 n_theta - 1
        res = (n, 2 * n - 1)
        errors.append(np.abs(nonlinear(d @ x, silu, res) - d @ nonlinear(x, silu, res)).max())
    # measured (amplitudes up to ~8 on the grid): 0.17, 8e-3, 2e-4
    assert errors[0] > 10 * errors[1] > 100 * errors[2]
    assert errors[2] < 1e-3


# ----------------------------------------------------------------------------------------
# The models: what is exact, what is bounded, and that they train and run in jax-md
# ----------------------------------------------------------------------------------------

import dataclasses  # noqa: E402

from conftest import ethanol, make_potential  # noqa: E402

from jaxpot.heads import AtomisticModel  # noqa: E402


def amplified(pot, factor=3.0):
    """The same potential with every weight times ``factor``: sphere-grid inputs of order one
    and more, as in a trained model (at initialisation they are ~1e-2, where SiLU is nearly
    quadratic and the grid's aliasing is invisible)."""
    return dataclasses.replace(pot, params=jax.tree_util.tree_map(lambda p: p * factor, pot.params))


def feature_errors(pot, inversion=False, seed=3):
    """``(max |f(Q x) - D(Q) f(x)|, max |f|)`` over ethanol's node features."""
    atoms = ethanol()
    q = rotation(seed) * (-1 if inversion else 1)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T

    def feats(a):
        g = pot.prepare(pot.graph(a))
        return pot.module.apply(pot.params, g, method=AtomisticModel.features)[: len(a)]

    f0, f1 = feats(atoms), feats(moved)
    return float(np.abs(f1.array - f0.transform_by_matrix(q).array).max()), float(np.abs(f0.array).max())


def test_scn_without_grid_at_mmax0_is_exactly_o3_equivariant():
    """mmax = 0 messages see and write only m = 0 edge-frame coefficients: exact, inversion too."""
    pot = amplified(make_potential("scn", use_grid=False, mmax=0))
    for inversion in (False, True):
        err, size = feature_errors(pot, inversion)
        assert size > 1.0 and err < 1e-12 * max(size, 1.0) * 100


def test_grid_nonlinearity_error_is_bounded_and_falls_with_resolution():
    """Equivariance error of the node features relative to their size, weights x3 (float64).
    Measured for eSCN at grids 3 x 5, default (6 x 11 on nodes, 6 x 7 on the mmax = 1 edge
    frames), 12 x 23: 6.9e-2, 1.2e-2, 9.6e-4. At initialisation (the conformance instance) the default grid gives ~3e-12."""
    for name in ("escn", "scn"):
        errors = []
        for res in ((3, 5), None, (12, 23)):
            err, size = feature_errors(amplified(make_potential(name, grid_resolution=res)))
            errors.append(err / size)
        print(name, errors)
        assert errors[0] > 4 * errors[1] > 16 * errors[2]
        assert errors[1] < 2e-2


def test_scn_taps_make_mmax1_approximately_equivariant():
    """The paper's default mmax = 1: the message network on m = +-1 coefficients is not
    roll-equivariant; averaging over num_taps rolls bounds the error (weights x3, no grid, so
    only the taps count). Measured relative errors: 1 tap 0.79, 3 taps 7.0e-2, 6 taps 1.0e-2."""
    errors = []
    for taps in (1, 3, 6):
        err, size = feature_errors(amplified(make_potential("scn", mmax=1, num_taps=taps, use_grid=False)))
        errors.append(err / size)
    print(errors)
    assert errors[0] > 5 * errors[1] > 25 * errors[2]
    assert errors[2] < 3e-2


def test_escn_is_chiral_but_rotation_invariant():
    """SO(2) convolutions with imaginary weights tell mirror images apart (SO(3), not O(3)).
    At initialisation (energies ~5e3 eV, rounding ~1e-12) measured: mirror 5.4e-9, rotation 0."""
    pot = make_potential("escn")
    atoms = ethanol()
    q = rotation(7)
    rotated, mirrored = atoms.copy(), atoms.copy()
    rotated.positions = atoms.positions @ q.T
    mirrored.positions = -atoms.positions
    e0, e_rot, e_mir = (pot.calculate(a)["energy"] for a in (atoms, rotated, mirrored))
    assert abs(e_mir - e0) > 100 * abs(e_rot - e0) + 1e-10

