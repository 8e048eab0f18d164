"""Equiformer-specific tests (the conformance suite covers symmetry, forces, stress, padding, ...):
the segment softmax on padded graphs, invariance and cutoff-continuity of the attention weights,
the equivariant layer norm, a few training steps and a jax-md energy function."""

from __future__ import annotations

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms

import jaxpot
from jaxpot.graph import from_atoms
from jaxpot.heads import AtomisticModel
from jaxpot.nn.layer_norm import EquivariantLayerNorm
from jaxpot.nn.segment import segment_softmax
from conftest import CUTOFF, ethanol, make_potential

_POT: dict = {}


def equiformer64() -> jaxpot.Potential:
    if "pot" not in _POT:
        _POT["pot"] = make_potential("equiformer", "float64")
    return _POT["pot"]


def test_segment_softmax_on_a_padded_graph():
    """Sums to 1 over each node's active incoming edges, 0 for nodes without any; edges with
    weight 0 or an out-of-range receiver (jax-md padding) get 0; finite values and gradients,
    also with huge logits on inactive edges; equals a dense weighted softmax per node."""
    rng = np.random.default_rng(0)
    num_nodes = 6  # node 4 has only a zero-weight edge, node 5 none
    receivers = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 6, 6])  # 6: out of range (padding)
    weights = np.array([1.0, 0.3, 0.0, 1.0, 1e-3, 1.0, 0.5, 0.5, 1.0, 0.0, 0.0, 1.0, 1.0])
    logits = rng.normal(size=(receivers.size, 3)) * 5
    logits[2] = logits[9] = logits[10] = 1e4  # inactive edges must not dominate the max
    alpha = np.asarray(segment_softmax(jnp.asarray(logits), jnp.asarray(receivers), num_nodes, jnp.asarray(weights)))
    assert np.all(np.isfinite(alpha))
    sums = np.zeros((num_nodes + 1, 3))
    np.add.at(sums, receivers, alpha)
    np.testing.assert_allclose(sums[:4], 1.0, atol=1e-12)
    np.testing.assert_allclose(sums[4:], 0.0, atol=0)
    assert np.all(alpha[[2, 9, 10, 11, 12]] == 0.0)
    for node in range(4):
        rows = np.flatnonzero((receivers == node) & (weights > 0))
        w = weights[rows, None] * np.exp(logits[rows] - logits[rows].max(0))
        np.testing.assert_allclose(alpha[rows], w / w.sum(0), rtol=1e-12, atol=1e-300)

    probe = rng.normal(size=logits.shape)

    def loss(x, w):
        return jnp.sum(segment_softmax(x, jnp.asarray(receivers), num_nodes, w) * probe)

    gx, gw = jax.grad(loss, argnums=(0, 1))(jnp.asarray(logits), jnp.asarray(weights))
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gw))
    # the softmax is shift-invariant per node: the gradient sums to zero over a node's edges
    sums = np.zeros((num_nodes + 1, 3))
    np.add.at(sums, receivers, np.asarray(gx))
    np.testing.assert_allclose(sums, 0.0, atol=1e-10)


def attention_weights(pot: jaxpot.Potential, atoms: Atoms):
    """Attention weights [E, H] of every block, with the graph's (receiver, sender) pairs."""
    g = pot.prepare(pot.graph(atoms))
    key = ("features", id(pot))
    if key not in _POT:  # one compilation per graph shape, not op-by-op dispatch
        _POT[key] = jax.jit(lambda p, graph: pot.module.apply(
            p, graph, method=AtomisticModel.features, mutable=["intermediates"]))
    _, state = _POT[key](pot.params, g)
    backbone = state["intermediates"]["backbone"]
    alphas = [np.asarray(backbone[b]["attention"]["attention_weights"][0]) for b in sorted(backbone) if b.startswith("block_")]
    return alphas, np.asarray(g.receivers), np.asarray(g.senders)


def test_attention_weights_are_invariant():
    """The same weights after a rotation and after a rotation with inversion."""
    pot = equiformer64()
    atoms = ethanol()
    a0, rcv, snd = attention_weights(pot, atoms)
    q = np.asarray(e3nn.rand_matrix(jax.random.PRNGKey(7), ()), np.float64)
    u, _, vt = np.linalg.svd(q)
    for sign in (1, -1):  # rotation, rotation with inversion
        moved = atoms.copy()
        moved.positions = atoms.positions @ (sign * (u @ vt)).T
        a1, rcv1, snd1 = attention_weights(pot, moved)
        np.testing.assert_array_equal(rcv, rcv1)
        np.testing.assert_array_equal(snd, snd1)
        for x, y in zip(a0, a1):
            np.testing.assert_allclose(y, x, atol=1e-10)
    # a real node's weights sum to 1 per head; not all equal (the attention is not trivial)
    n = len(atoms)
    sums = np.zeros((rcv.max() + 1, a0[0].shape[1]))
    np.add.at(sums, rcv, a0[0])
    np.testing.assert_allclose(sums[:n], 1.0, atol=1e-12)
    assert np.std(a0[0][rcv < n]) > 1e-3


def trimer(x: float) -> Atoms:
    """O at the origin with an H at 1 Å and a C at distance x on the other side (crossing the cutoff)."""
    return Atoms("OHC", positions=[[0, 0, 0], [-0.6, 0.8, 0.0], [x, 0.0, 0.0]])


def test_attention_is_continuous_at_the_cutoff():
    """When C enters O's cutoff, its attention weight starts at 0 and the weight of O's other
    neighbour does not jump (the paper's plain softmax would drop it from 1 to about 1/2), so the
    energy of a node that keeps other neighbours is continuous at second order too."""
    pot = equiformer64()

    def weights(x):
        alphas, rcv, snd = attention_weights(pot, trimer(x))
        return {(int(r), int(s)): [a[e] for a in alphas] for e, (r, s) in enumerate(zip(rcv, snd)) if r < 3}

    far = weights(CUTOFF + 1e-3)
    assert (0, 2) not in far and far[(0, 1)][0][0] == pytest.approx(1.0)
    entering, jumps = [], []
    for delta in (1e-2, 1e-3):
        near = weights(CUTOFF - delta)
        entering.append(max(np.abs(a).max() for a in near[(0, 2)]))
        jumps.append(max(np.abs(a - b).max() for a, b in zip(near[(0, 1)], far[(0, 1)])))
    # u(r_c - delta) ~ delta^3 (DimeNet's envelope, p = 6): measured 3e-6 at delta = 1e-2
    assert entering[1] < 1e-8 and entering[1] < entering[0] / 100
    assert jumps[1] < 1e-8 and jumps[1] < jumps[0] / 100
    # logits are not the reason: without the envelope C's share would be finite
    from jaxpot.nn.segment import segment_softmax as plain

    assert plain(jnp.array([[0.0], [0.0]]), jnp.array([0, 0]), 1)[1, 0] == 0.5

    e_far = pot.calculate(trimer(CUTOFF + 1.0))["energy"]
    gaps = [abs(pot.calculate(trimer(CUTOFF - d))["energy"] - e_far) for d in (1e-2, 1e-3)]
    assert gaps[1] < 1e-8 and gaps[1] <= gaps[0] / 20 + 1e-14


def test_equivariant_layer_norm():
    """Equivariant (rotation and inversion), scalars normalised to zero mean and unit variance,
    each l > 0 block to unit mean square; smooth (finite gradient) at zero input."""
    irreps = e3nn.Irreps("6x0e+2x0o+4x1o+3x2e")
    x = e3nn.normal(irreps, jax.random.PRNGKey(0), (5,)) * 3.0
    x = x.astype(jnp.float64)
    norm = EquivariantLayerNorm()
    params = norm.init(jax.random.PRNGKey(1), x)
    y = norm.apply(params, x)
    q = -np.asarray(e3nn.rand_matrix(jax.random.PRNGKey(2), ()), np.float64)
    np.testing.assert_allclose(
        norm.apply(params, x.transform_by_matrix(q)).array, y.transform_by_matrix(q).array, atol=1e-10
    )
    s = y.filter(keep="0e").array
    np.testing.assert_allclose(s.mean(-1), 0.0, atol=1e-10)
    np.testing.assert_allclose((s**2).mean(-1), 1.0, rtol=1e-4)
    v = y.filter(keep="1o").array
    np.testing.assert_allclose((v**2).mean(-1), 1.0, rtol=1e-4)
    grad = jax.grad(lambda a: jnp.sum(norm.apply(params, e3nn.IrrepsArray(irreps, a)).array ** 2))(
        jnp.zeros((2, irreps.dim))
    )
    assert np.all(np.isfinite(grad))


def test_no_nan_with_edges_beyond_the_cutoff():
    """jax-md neighbour lists keep edges beyond the cutoff (the skin): they take no part."""
    pot = equiformer64()
    atoms = ethanol()
    near = pot.calculate(atoms)
    g = from_atoms(atoms, CUTOFF + 2.0, pot.species)  # more edges, some of them beyond r_c
    e, f = pot.energy_and_forces(g)
    assert abs(float(e[0]) - near["energy"]) < 1e-9
    np.testing.assert_allclose(np.asarray(f)[: len(atoms)], near["forces"], atol=1e-9)
