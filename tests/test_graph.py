"""Graphs: neighbour lists, padding layout, bucketing, batch/unbatch, masks."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list
from conftest import ethanol, skewed_cell

from jaxpot.graph import (
    batch,
    bucket_size,
    edge_mask,
    from_atoms,
    graph_mask,
    node_mask,
    pad,
    unbatch,
)
from jaxpot.neighbors import neighbor_list

SPECIES = [1, 6, 7, 8, 14]


def _pairs(i, j, shifts):
    return sorted(zip(i.tolist(), j.tolist(), np.round(shifts, 6).tolist()))


@pytest.mark.parametrize(
    "atoms, cutoff",
    [
        (molecule("CH3CH2OH"), 3.0),
        (bulk("Si", "diamond", a=5.43), 6.0),  # cutoff > half of the 3.84 Å primitive vectors
        (bulk("Cu", "fcc", a=3.6), 9.0),  # one-atom cell: many images of the same atom
        (skewed_cell(), 5.0),
    ],
)
def test_neighbor_list_matches_ase(atoms, cutoff):
    i, j, shifts = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    ai, aj, a_shift = ase_neighbor_list("ijS", atoms, cutoff)
    assert _pairs(i, j, shifts) == _pairs(ai, aj, a_shift @ atoms.cell.array)
    assert np.all(np.diff(j) >= 0), "edges are sorted by receiver"


def test_mixed_pbc_slab():
    slab = bulk("Si", "diamond", a=5.43, cubic=True)
    slab.pbc = [True, True, False]
    slab.cell[2, 2] += 10.0
    i, j, s = neighbor_list(slab.positions, slab.cell.array, slab.pbc, 4.0)
    ai, aj, a_s = ase_neighbor_list("ijS", slab, 4.0)
    assert _pairs(i, j, s) == _pairs(ai, aj, a_s @ slab.cell.array)


def test_bucket_ladder():
    sizes = [bucket_size(n) for n in range(1, 5000)]
    assert all(b >= n for b, n in zip(sizes, range(1, 5000)))
    assert all(b <= max(4, 1.25 * n) for b, n in zip(sizes, range(1, 5000)))
    assert len(set(sizes)) <= 4 * np.log2(5000 / 4) + 1  # four buckets per doubling


def test_padding_layout():
    atoms = ethanol()
    g = from_atoms(atoms, 3.0, SPECIES, n_node=16, n_edge=128, n_graph=3)
    n_real_edges = int(g.n_edge[0])
    assert g.nodes["positions"].shape == (16, 3) and g.senders.shape == (128,)
    assert g.n_node.tolist() == [9, 7, 0] and g.n_edge.sum() == 128
    assert np.all(g.senders[n_real_edges:] == 9) and np.all(g.receivers[n_real_edges:] == 9)
    assert graph_mask(g).tolist() == [True, False, False]
    assert node_mask(g).sum() == 9 and edge_mask(g).sum() == n_real_edges
    vectors = g.nodes["positions"][g.receivers] - g.nodes["positions"][g.senders] + g.edges["shifts"]
    assert np.all(np.linalg.norm(vectors[n_real_edges:], axis=1) == 0)


def test_default_sizes_are_buckets():
    g = from_atoms(ethanol(), 3.0, SPECIES)
    assert g.nodes["positions"].shape[0] == bucket_size(9) + 1  # the padding node on top
    assert g.senders.shape[0] == bucket_size(int(g.n_edge[0]))
    # a ladder-sized structure is not pushed a whole rung up by the padding node
    si = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    assert from_atoms(si, 3.0, [14]).nodes["positions"].shape[0] == 64 + 1


def test_batch_unbatch_round_trip():
    structures = [ethanol(), skewed_cell(), Atoms("H")]
    g = from_atoms(structures, 4.0, SPECIES)
    parts = unbatch(g)
    assert len(parts) == 3
    for atoms, part in zip(structures, parts):
        np.testing.assert_array_equal(part.nodes["positions"], atoms.positions)
        alone = from_atoms(atoms, 4.0, SPECIES)
        k = int(alone.n_edge[0])
        np.testing.assert_array_equal(part.senders, alone.senders[:k])
        np.testing.assert_array_equal(part.edges["shifts"], alone.edges["shifts"][:k])
    rebuilt = pad(batch(parts), *[x.shape[0] for x in (g.nodes["species"], g.senders, g.n_node)])
    np.testing.assert_array_equal(rebuilt.senders, g.senders)
    np.testing.assert_array_equal(rebuilt.nodes["positions"], g.nodes["positions"])


def test_labels_are_read_and_weighted():
    from ase.calculators.singlepoint import SinglePointCalculator

    a = ethanol()
    a.calc = SinglePointCalculator(a, energy=-1.5, forces=np.ones((len(a), 3)))
    b = skewed_cell()
    b.info["energy"] = 2.0
    b.info["stress"] = np.arange(6.0)  # Voigt
    g = from_atoms([a, b], 4.0, SPECIES, labels=True)
    assert g.globals["energy"][:2].tolist() == [-1.5, 2.0]
    assert g.globals["weight_forces"][:2].tolist() == [1.0, 0.0]
    assert g.globals["weight_stress"][:2].tolist() == [0.0, 1.0]
    assert g.globals["stress"][1][0, 1] == 5.0 and g.globals["stress"][1][1, 2] == 3.0
    np.testing.assert_array_equal(g.nodes["forces"][: len(a)], 1.0)


def test_padding_too_small_is_an_error():
    with pytest.raises(ValueError, match="padding needs one more node"):
        from_atoms(ethanol(), 3.0, SPECIES, n_node=9)
