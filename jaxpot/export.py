"""Deployment: a Potential as serialized StableHLO (``jax.export``), runnable without the model code.

``export(potential, out)`` writes a folder::

    out/
      exported.json                     species, cutoff, dtype, input/output layout, artifacts
      energy_forces_stress.e<E>.jaxexp  serialized jax.export.Exported, parameters baked in
                                        (one per edge capacity E; a single
      energy_forces_stress.jaxexp       file when the model is shape-polymorphic in edges)

The exported function is ``(positions, species, senders, receivers, shifts, n_node, n_edge,
cell, pbc) -> (energies [G], forces [N, 3], stress [G, 3, 3])`` on a padded graph in jaxpot's
layout (DESIGN.md "Graph"): real graphs first, then the padding graph that owns at least one
padding node. The numbers of atoms ``N`` and of graphs ``G`` are symbolic
(``jax.export.symbolic_shape``); the number of edges is symbolic too when the model allows it,
else (jaxpot's models sum messages in static chunks of edges) one artifact is written per edge
capacity of a ladder and the loader picks the smallest that fits, padding the rest.

``load_exported(path)`` deserializes and runs it with plain JAX: no flax module is built and
no model code runs. ``ExportedPotential.calculate(atoms)`` builds the host neighbour list with
``jaxpot.graph`` and returns energy, forces and (periodic) stress as ``Potential.calculate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = "jaxpot-export-1"
INPUTS = (
    ("positions", "[N, 3] float, Å"),
    ("species", "[N] int32, index into species"),
    ("senders", "[E] int32"),
    ("receivers", "[E] int32"),
    ("shifts", "[E, 3] float, Å: vectors = positions[receivers] - positions[senders] + shifts"),
    ("n_node", "[G] int32, the last graph(s) padding, owning >= 1 padding node"),
    ("n_edge", "[G] int32"),
    ("cell", "[G, 3, 3] float, Å, lattice vectors as rows"),
    ("pbc", "[G, 3] bool"),
)
OUTPUTS = (
    ("energies", "[G] eV, per graph (the padding graph's is meaningless)"),
    ("forces", "[N, 3] eV/Å"),
    ("stress", "[G, 3, 3] eV/Å³, (1/V) dE/dε, zero for non-periodic graphs"),
)


def _graph_fn(potential):
    import jraph

    efs = potential.energy_forces_stress_fn
    params = potential.params

    def fn(positions, species, senders, receivers, shifts, n_node, n_edge, cell, pbc):
        g = jraph.GraphsTuple(
            nodes={"positions": positions, "species": species},
            edges={"shifts": shifts},
            globals={"cell": cell, "pbc": pbc},
            senders=senders,
            receivers=receivers,
            n_node=n_node,
            n_edge=n_edge,
        )
        return efs(params, g)

    return fn


def _specs(dtype, n, e, g):
    f = jnp.dtype(dtype)
    return [
        jax.ShapeDtypeStruct((n, 3), f),
        jax.ShapeDtypeStruct((n,), jnp.int32),
        jax.ShapeDtypeStruct((e,), jnp.int32),
        jax.ShapeDtypeStruct((e,), jnp.int32),
        jax.ShapeDtypeStruct((e, 3), f),
        jax.ShapeDtypeStruct((g,), jnp.int32),
        jax.ShapeDtypeStruct((g,), jnp.int32),
        jax.ShapeDtypeStruct((g, 3, 3), f),
        jax.ShapeDtypeStruct((g, 3), jnp.bool_),
    ]


def edge_ladder(max_edges: int, min_edges: int = 64) -> list[int]:
    """Powers of two from ``min_edges`` up to the first one >= ``max_edges``."""
    out, e = [], int(min_edges)
    while True:
        out.append(e)
        if e >= max_edges:
            return out
        e *= 2


def export(
    potential,
    out,
    *,
    max_edges: int = 65536,
    edge_buckets: Sequence[int] | None = None,
    platforms: Sequence[str] | None = ("cpu", "cuda"),
    symbolic_edges: bool = True,
) -> Path:
    """Serialize ``potential``'s energy, forces and stress function into folder ``out``.

    Args:
      potential: a ``jaxpot.Potential`` (its dtype is the exported dtype).
      out: output folder (created).
      max_edges: the largest edge capacity exported when edges cannot be symbolic.
      edge_buckets: explicit edge capacities instead of the powers-of-two ladder.
      platforms: lowering platforms (default CPU and CUDA; None: the current backend).
      symbolic_edges: try a symbolic edge count first.

    Returns:
      ``out`` as a ``Path``.
    """
    from jax import export as jexport

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fn = jax.jit(_graph_fn(potential))
    dtype = "float64" if potential.dtype == "float64" else "float32"
    plats = tuple(platforms) if platforms else None
    artifacts = []

    def write(name: str, exported) -> None:
        (out / name).write_bytes(exported.serialize())

    symbolic = False
    if symbolic_edges and edge_buckets is None:
        n, e, g = jexport.symbolic_shape("n, e, g")
        try:
            exported = jexport.export(fn, platforms=plats)(*_specs(dtype, n, e, g))
        except Exception:  # noqa: BLE001 - the model is not polymorphic in the edge count
            exported = None
        if exported is not None:
            write("energy_forces_stress.jaxexp", exported)
            artifacts.append({"file": "energy_forces_stress.jaxexp", "n_edge": None})
            symbolic = True
    if not symbolic:
        buckets = sorted({int(b) for b in (edge_buckets or edge_ladder(max_edges))})
        n, g = jexport.symbolic_shape("n, g")
        for e in buckets:
            exported = jexport.export(fn, platforms=plats)(*_specs(dtype, n, e, g))
            name = f"energy_forces_stress.e{e}.jaxexp"
            write(name, exported)
            artifacts.append({"file": name, "n_edge": e})
    meta = {
        "format": FORMAT,
        "model": potential.model,
        "species": list(potential.species),
        "cutoff": potential.cutoff,
        "dtype": dtype,
        "symbolic": ["N", "G"] + (["E"] if symbolic else []),
        "inputs": [{"name": k, "layout": v} for k, v in INPUTS],
        "outputs": [{"name": k, "layout": v} for k, v in OUTPUTS],
        "artifacts": artifacts,
        "platforms": list(plats) if plats else [jax.default_backend()],
        "jax_version": jax.__version__,
    }
    from jaxpot import __version__

    meta["jaxpot_version"] = __version__
    (out / "exported.json").write_text(json.dumps(meta, indent=2))
    return out


class ExportedPotential:
    """A deserialized export: runs the StableHLO function, no flax model involved.

    Attributes:
      species: atomic numbers (the table ``species`` inputs index).
      cutoff: Å.
      dtype: "float32" or "float64".
      meta: the whole ``exported.json``.
    """

    def __init__(self, path):
        from jax import export as jexport

        path = Path(path)
        meta = json.loads((path / "exported.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a jaxpot export (format {meta.get('format')!r}, expected {FORMAT!r})")
        self.meta = meta
        self.species = tuple(int(z) for z in meta["species"])
        self.cutoff = float(meta["cutoff"])
        self.dtype = meta["dtype"]
        self._functions = []
        for art in meta["artifacts"]:
            exported = jexport.deserialize(bytearray((path / art["file"]).read_bytes()))
            self._functions.append((art["n_edge"], jax.jit(exported.call)))
        self._functions.sort(key=lambda t: -1 if t[0] is None else t[0])

    @property
    def edge_capacities(self) -> list[int | None]:
        return [e for e, _ in self._functions]

    def _pick(self, num_edges: int):
        for capacity, fn in self._functions:
            if capacity is None or capacity >= num_edges:
                return capacity, fn
        raise ValueError(
            f"the structure has {num_edges} edges within {self.cutoff} Å, more than the largest exported "
            f"capacity {self._functions[-1][0]}; export again with a larger max_edges"
        )

    def __call__(self, graph):
        """Run on a padded ``jraph.GraphsTuple`` (numpy or jax) in jaxpot's layout."""
        capacity, fn = self._pick(int(np.shape(graph.senders)[0]))
        if capacity is not None and capacity != np.shape(graph.senders)[0]:
            raise ValueError(f"graph has {np.shape(graph.senders)[0]} edges; pad it to {capacity} (see calculate)")
        f = jnp.float64 if self.dtype == "float64" else jnp.float32
        return fn(
            jnp.asarray(graph.nodes["positions"], f),
            jnp.asarray(graph.nodes["species"], jnp.int32),
            jnp.asarray(graph.senders, jnp.int32),
            jnp.asarray(graph.receivers, jnp.int32),
            jnp.asarray(graph.edges["shifts"], f),
            jnp.asarray(graph.n_node, jnp.int32),
            jnp.asarray(graph.n_edge, jnp.int32),
            jnp.asarray(graph.globals["cell"], f),
            jnp.asarray(graph.globals["pbc"], bool),
        )

    def graph(self, atoms):
        """The padded host graph of one structure (or a list), edges padded to an exported capacity."""
        from jaxpot import graph as graph_lib

        g = graph_lib.batch(graph_lib.graphs_from_atoms(atoms, self.cutoff, self.species))
        n_node, n_edge, n_graph = graph_lib.padded_sizes(g)
        capacity, _ = self._pick(int(np.sum(g.n_edge)))
        return graph_lib.pad(g, n_node, n_edge if capacity is None else capacity, n_graph)

    def calculate(self, atoms) -> dict[str, np.ndarray]:
        """``{"energy", "forces", "stress" (periodic)}`` of one ``ase.Atoms``, as ``Potential.calculate``."""
        from jaxpot.validation import matrix_to_voigt

        e, f, s = self(self.graph(atoms))
        result = {"energy": float(e[0]), "forces": np.asarray(f[: len(atoms)], np.float64)}
        if np.any(atoms.pbc):
            result["stress"] = matrix_to_voigt(np.asarray(s[0], np.float64))
        return result


def load_exported(path) -> ExportedPotential:
    """Load a folder written by ``export`` (or ``jaxpot export``)."""
    return ExportedPotential(path)
