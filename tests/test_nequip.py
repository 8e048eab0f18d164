"""NequIP beyond the conformance suite: the full hidden irreps, both parities.

The registered small model keeps only scalars after its last layer (as the reference code),
so the suite sees 0e features only; here the odd- and even-parity features of l <= 2 are checked.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from conftest import ethanol, make_potential
from test_conformance import random_orthogonal

from jaxpot.heads import AtomisticModel


def test_hidden_features_of_both_parities_are_equivariant():
    pot = make_potential("nequip", scalar_output=False)
    features = jax.jit(functools.partial(pot.module.apply, method=AtomisticModel.features))
    atoms = ethanol()
    n = len(atoms)
    q = random_orthogonal(7, inversion=True)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T
    f0 = features(pot.params, pot.prepare(pot.graph(atoms)))[:n]
    f1 = features(pot.params, pot.prepare(pot.graph(moved)))[:n]
    # after two layers: every l <= 2 of both parities but 0o (first reached in layer 3)
    assert {(ir.l, ir.p) for _, ir in f0.irreps} == {(0, 1), (1, -1), (1, 1), (2, 1), (2, -1)}
    for chunk in f0.chunks:  # every irrep is used, odd ones included
        assert chunk is not None and np.abs(np.asarray(chunk)).max() > 1e-6
    np.testing.assert_allclose(f1.array, f0.transform_by_matrix(q).array, atol=1e-9)
