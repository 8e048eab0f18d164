"""Atomic graphs: ASE ``Atoms`` -> padded ``jraph.GraphsTuple`` (DESIGN.md, "Graph").

Layout::

    nodes   = {"positions": [N, 3] Å, "species": [N] int32 (index into the species table),
               "forces": [N, 3] (labels only)}
    edges   = {"shifts": [E, 3] Å}          # vectors = pos[receivers] - pos[senders] + shifts
    globals = {"cell": [G, 3, 3] Å, "pbc": [G, 3] bool,
               labels: "energy" [G], "stress" [G, 3, 3], "dipole" [G, 3], ...,
               "weight_<label>" [G] (1 where the structure has that label)}

Padding follows ``jraph.pad_with_graphs``: one extra graph at the end holds every padding
node and padding edge; padding edges join the first padding node to itself, so they have
zero length. Sizes are rounded up to a geometric ladder of buckets (``bucket_size``) so a
data set compiles a handful of times, not once per batch. Everything here is numpy on the
host; ``edge_vectors`` is the one function meant to run on device.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import jax.numpy as jnp
import jraph
import numpy as np

from jaxpot.neighbors import neighbor_list
from jaxpot.validation import check_label, check_min_distance, check_structure

LABEL_KEYS = ("energy", "forces", "stress", "dipole", "polarizability", "charges")
NODE_LABELS = ("forces", "charges")

# The bucket ladder: c * 2**k for c in 4..7, i.e. steps of at most 25 %.
_LADDER_MANTISSAS = (4, 5, 6, 7)


def bucket_size(n: int, minimum: int = 4) -> int:
    """Smallest ladder value ``c * 2**k`` (c in 4..7) that is >= max(n, minimum).

    Consecutive ladder values differ by at most 25 %, so padding wastes at most a quarter of
    the work while a data set of varying sizes meets only a few distinct shapes.
    """
    n = max(int(n), int(minimum))
    k = 0
    while True:
        for c in _LADDER_MANTISSAS:
            if c << k >= n:
                return c << k
        k += 1


def species_indices(numbers: Sequence[int], species: Sequence[int], name: str = "structure") -> np.ndarray:
    """Map atomic numbers to indices into ``species``; unknown elements raise ``ValueError``."""
    from ase.data import chemical_symbols

    table = {int(z): i for i, z in enumerate(species)}
    numbers = np.asarray(numbers, dtype=np.int64)
    unknown = sorted({int(z) for z in numbers if int(z) not in table})
    if unknown:
        names = [chemical_symbols[z] if 0 <= z < len(chemical_symbols) else str(z) for z in unknown]
        known = [chemical_symbols[int(z)] for z in species]
        raise ValueError(
            f"{name} contains element(s) {names} that the potential does not know "
            f"(its species are {known}); train a model that includes them, or remove these atoms."
        )
    return np.array([table[int(z)] for z in numbers], dtype=np.int32)


def _labels_of(atoms, n: int, name: str, keys: dict[str, str] | None) -> dict[str, np.ndarray]:
    """Labels from ``atoms.calc`` results, ``atoms.info`` and ``atoms.arrays``."""
    keys = {k: k for k in LABEL_KEYS} | (keys or {})
    results = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}
    out = {}
    for label, key in keys.items():
        if label not in LABEL_KEYS:
            raise ValueError(f"unknown label {label!r}; jaxpot reads {list(LABEL_KEYS)}")
        value = None
        for source in (atoms.info, atoms.arrays, results):
            if key in source:
                value = source[key]
                break
        if value is None and label == "energy" and "free_energy" in results and key == "energy":
            value = results["free_energy"]
        if value is not None:
            out[label] = check_label(label, value, n, name)
    return out


def _single(
    atoms,
    cutoff: float,
    species: Sequence[int],
    labels: bool | dict[str, str],
    min_distance: float,
    name: str,
) -> jraph.GraphsTuple:
    numbers = np.asarray(atoms.numbers)
    positions = np.asarray(atoms.positions, dtype=np.float64)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    check_structure(numbers, positions, cell, pbc, name)
    species_idx = species_indices(numbers, species, name)
    senders, receivers, shifts = neighbor_list(positions, cell, pbc, cutoff)
    vectors = positions[receivers] - positions[senders] + shifts
    check_min_distance(senders, receivers, np.linalg.norm(vectors, axis=1), min_distance, name)
    n = len(numbers)
    nodes = {"positions": positions, "species": species_idx}
    globals_ = {"cell": cell[None], "pbc": pbc[None]}
    if labels:
        found = _labels_of(atoms, n, name, labels if isinstance(labels, dict) else None)
        for key, value in found.items():
            if key in NODE_LABELS:
                nodes[key] = value
            else:
                globals_[key] = value[None]
    return jraph.GraphsTuple(
        nodes=nodes,
        edges={"shifts": shifts},
        globals=globals_,
        senders=senders,
        receivers=receivers,
        n_node=np.array([n], np.int32),
        n_edge=np.array([len(senders)], np.int32),
    )


def batch(graphs: Sequence[jraph.GraphsTuple]) -> jraph.GraphsTuple:
    """Concatenate graphs (numpy), offsetting senders/receivers.

    Labels present in only some graphs are filled with zeros, and ``weight_<label>`` [G]
    records which graphs have them (for a node label, per graph as well).
    """
    if not graphs:
        raise ValueError("batch() needs at least one graph")
    offsets = np.cumsum([0] + [int(np.sum(g.n_node)) for g in graphs[:-1]])
    weights: dict[str, np.ndarray] = {}

    def rows(g: jraph.GraphsTuple, field: str) -> int:
        return int({"nodes": np.sum(g.n_node), "edges": np.sum(g.n_edge), "globals": len(g.n_node)}[field])

    def concat(field: str) -> dict[str, np.ndarray]:
        out = {}
        for key in sorted({k for g in graphs for k in getattr(g, field)}):
            template = next(np.asarray(getattr(g, field)[key]) for g in graphs if key in getattr(g, field))
            parts, has = [], []
            for g in graphs:
                present = key in getattr(g, field)
                parts.append(np.asarray(getattr(g, field)[key]) if present
                             else np.zeros((rows(g, field),) + template.shape[1:], template.dtype))
                has.append(np.asarray(g.globals.get(f"weight_{key}", np.ones(len(g.n_node)))) if present
                           else np.zeros(len(g.n_node)))
            out[key] = np.concatenate(parts, axis=0)
            if key in LABEL_KEYS:
                weights[f"weight_{key}"] = np.concatenate(has)
        return out

    nodes, edges, globals_ = concat("nodes"), concat("edges"), concat("globals")
    globals_.update(weights)
    return jraph.GraphsTuple(
        nodes=nodes,
        edges=edges,
        globals=globals_,
        senders=np.concatenate([g.senders + o for g, o in zip(graphs, offsets)]).astype(np.int32),
        receivers=np.concatenate([g.receivers + o for g, o in zip(graphs, offsets)]).astype(np.int32),
        n_node=np.concatenate([g.n_node for g in graphs]).astype(np.int32),
        n_edge=np.concatenate([g.n_edge for g in graphs]).astype(np.int32),
    )


def pad(graph: jraph.GraphsTuple, n_node: int, n_edge: int, n_graph: int) -> jraph.GraphsTuple:
    """Pad an unpadded (batched) graph to exactly ``n_node``, ``n_edge``, ``n_graph``.

    Needs ``n_node > sum(graph.n_node)`` and ``n_graph > len(graph.n_node)``: the padding graph
    owns at least one node. Its cell is zero and pbc False, so it has no volume.
    """
    real_nodes, real_edges, real_graphs = int(np.sum(graph.n_node)), int(np.sum(graph.n_edge)), len(graph.n_node)
    if n_node <= real_nodes or n_edge < real_edges or n_graph <= real_graphs:
        raise ValueError(
            f"cannot pad a graph with {real_nodes} nodes, {real_edges} edges, {real_graphs} graphs "
            f"to ({n_node}, {n_edge}, {n_graph}): padding needs one more node and one more graph "
            "than the real ones, and at least as many edges."
        )

    def pad_rows(d: dict, rows: int) -> dict:
        return {
            k: np.concatenate([v, np.zeros((rows,) + v.shape[1:], v.dtype)], axis=0) for k, v in d.items()
        }

    extra_graphs = n_graph - real_graphs
    n_node_arr = np.concatenate([graph.n_node, [n_node - real_nodes], np.zeros(extra_graphs - 1, np.int32)])
    n_edge_arr = np.concatenate([graph.n_edge, [n_edge - real_edges], np.zeros(extra_graphs - 1, np.int32)])
    return jraph.GraphsTuple(
        nodes=pad_rows(graph.nodes, n_node - real_nodes),
        edges=pad_rows(graph.edges, n_edge - real_edges),
        globals=pad_rows(graph.globals, extra_graphs),
        senders=np.concatenate([graph.senders, np.full(n_edge - real_edges, real_nodes, np.int32)]),
        receivers=np.concatenate([graph.receivers, np.full(n_edge - real_edges, real_nodes, np.int32)]),
        n_node=n_node_arr.astype(np.int32),
        n_edge=n_edge_arr.astype(np.int32),
    )


def padded_sizes(graph: jraph.GraphsTuple) -> tuple[int, int, int]:
    """Bucketed (n_node, n_edge, n_graph) for an unpadded graph, with room for padding.

    The padding node comes on top of the bucket of real atoms (``bucket_size(n) + 1``), so a
    structure whose size is a ladder value (64, 512, 4096 atoms: common supercells) is not
    pushed up a whole rung (4097 -> 5120 nodes, 25 % more work) by that one node.
    """
    return (
        bucket_size(int(np.sum(graph.n_node))) + 1,
        bucket_size(int(np.sum(graph.n_edge))),
        len(graph.n_node) + 1,
    )


def from_atoms(
    atoms,
    cutoff: float,
    species: Sequence[int],
    *,
    labels: bool | dict[str, str] = False,
    n_node: int | None = None,
    n_edge: int | None = None,
    n_graph: int | None = None,
    min_distance: float = 0.1,
) -> jraph.GraphsTuple:
    """One ``ase.Atoms`` or a list of them -> one padded, batched ``jraph.GraphsTuple``.

    Args:
      atoms: ``ase.Atoms`` or a sequence of them (molecules and periodic cells may be mixed).
      cutoff: neighbour cutoff in Å.
      species: atomic numbers of the potential's species table; ``nodes["species"]`` indexes it.
      labels: read energy/forces/stress/dipole/polarizability/charges from ``atoms.info``,
        ``atoms.arrays`` or the attached calculator; a dict maps label -> key to read.
      n_node, n_edge, n_graph: padded sizes; by default the bucket sizes (``bucket_size``).
      min_distance: refuse atom pairs closer than this (Å).

    Raises:
      ValueError: empty structure, unknown element, NaN/inf positions, overlapping atoms,
        singular periodic cell, labels of the wrong shape, or sizes too small to pad into.
    """
    many = not hasattr(atoms, "positions")
    structures = list(atoms) if many else atoms
    if many and not structures:
        raise ValueError("from_atoms() got an empty list of structures")
    g = batch(graphs_from_atoms(structures, cutoff, species, labels=labels, min_distance=min_distance))
    auto = padded_sizes(g)
    return pad(g, n_node or auto[0], n_edge or auto[1], n_graph or auto[2])


def graphs_from_atoms(
    atoms,
    cutoff: float,
    species: Sequence[int],
    *,
    labels: bool | dict[str, str] = False,
    min_distance: float = 0.1,
) -> list[jraph.GraphsTuple]:
    """One unpadded graph (numpy) per structure, checked and labelled as ``from_atoms`` does.

    For data loaders that build every structure's graph once and later ``batch`` and ``pad``
    any group of them. Errors name the structure by its index in the list ("structure k").
    """
    many = not hasattr(atoms, "positions")
    structures = list(atoms) if many else [atoms]
    if not structures:
        raise ValueError("graphs_from_atoms() got an empty list of structures")
    return [
        _single(a, cutoff, species, labels, min_distance, f"structure {k}" if many else "structure")
        for k, a in enumerate(structures)
    ]


def unbatch(graph: jraph.GraphsTuple) -> list[jraph.GraphsTuple]:
    """Split a (padded) batch into its real graphs, each unpadded, indices rebased (numpy)."""
    graph = to_numpy(graph)
    n_node, n_edge = np.asarray(graph.n_node), np.asarray(graph.n_edge)
    real = int(np.sum(graph_mask(graph)))
    node_off = np.concatenate([[0], np.cumsum(n_node)])
    edge_off = np.concatenate([[0], np.cumsum(n_edge)])
    out = []
    for k in range(real):
        ns, ne = slice(node_off[k], node_off[k + 1]), slice(edge_off[k], edge_off[k + 1])
        out.append(
            jraph.GraphsTuple(
                nodes={key: v[ns] for key, v in graph.nodes.items()},
                edges={key: v[ne] for key, v in graph.edges.items()},
                globals={key: v[k : k + 1] for key, v in graph.globals.items()},
                senders=graph.senders[ne] - node_off[k],
                receivers=graph.receivers[ne] - node_off[k],
                n_node=n_node[k : k + 1],
                n_edge=n_edge[k : k + 1],
            )
        )
    return out


def to_numpy(graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
    """Bring every array of a graph to the host as numpy."""
    import jax

    return jax.tree_util.tree_map(np.asarray, graph)


def _xp(graph):
    return np if isinstance(graph.n_node, np.ndarray) else jnp


def graph_mask(graph: jraph.GraphsTuple):
    """[G] bool, True for real graphs.

    Real graphs come first and are never empty; then the padding graph (it owns the padding
    nodes) and possibly empty padding graphs, as ``jraph.pad_with_graphs`` lays them out.
    """
    xp = _xp(graph)
    num_real = xp.sum(graph.n_node > 0) - 1
    return xp.arange(graph.n_node.shape[0]) < num_real


def node_mask(graph: jraph.GraphsTuple):
    """[N] bool, True for nodes of real graphs."""
    xp = _xp(graph)
    n_real = xp.sum(xp.where(graph_mask(graph), graph.n_node, 0))
    return xp.arange(graph.nodes["species"].shape[0]) < n_real


def edge_mask(graph: jraph.GraphsTuple):
    """[E] bool, True for edges of real graphs."""
    xp = _xp(graph)
    n_real = xp.sum(xp.where(graph_mask(graph), graph.n_edge, 0))
    return xp.arange(graph.senders.shape[0]) < n_real


def edge_vectors(graph: jraph.GraphsTuple, positions: jnp.ndarray | None = None) -> jnp.ndarray:
    """[E, 3] Å, ``pos[receivers] - pos[senders] + shifts`` (on device, differentiable)."""
    pos = graph.nodes["positions"] if positions is None else positions
    return pos[graph.receivers] - pos[graph.senders] + graph.edges["shifts"].astype(pos.dtype)


def num_structures(graph: jraph.GraphsTuple) -> int:
    """Number of real graphs in a padded batch."""
    return int(np.sum(np.asarray(graph_mask(graph))))


def iter_atoms(items: Iterable) -> list:
    """Accept one Atoms or an iterable of them; return a list."""
    return [items] if hasattr(items, "positions") else list(items)
