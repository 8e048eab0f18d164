"""Error metrics accumulated over batches on the host: MAE and RMSE per quantity."""

from __future__ import annotations

import jraph
import numpy as np

from jaxpot.graph import graph_mask, node_mask


# Named tensor components reported on their own (the polarizability's six unique ones).
COMPONENTS = {
    "dipole": (("x", (0,)), ("y", (1,)), ("z", (2,))),
    "polarizability": (("xx", (0, 0)), ("yy", (1, 1)), ("zz", (2, 2)), ("xy", (0, 1)), ("xz", (0, 2)), ("yz", (1, 2))),
}


class ErrorMetrics:
    """Accumulates absolute and squared errors; ``result()`` gives MAE and RMSE.

    Energies are reported per atom (``energy_per_atom``) and per structure (``energy``);
    forces, stress, dipole and polarizability per component, over all components and for each
    one (``dipole_x`` .. ``dipole_z``; ``polarizability_xx``, ``_yy``, ``_zz``, ``_xy``,
    ``_xz``, ``_yz``). Units are the data's (eV, eV/Å,
    eV/Å³, e·Å, Å³). Keeps the values too, for parity plots.
    """

    def __init__(self, keep_values: bool = False):
        self.sums: dict[str, list[float]] = {}
        self.keep_values = keep_values
        self.values: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    def _add(self, key: str, pred: np.ndarray, ref: np.ndarray) -> None:
        if pred.size == 0:
            return
        err = np.asarray(pred, np.float64) - np.asarray(ref, np.float64)
        s = self.sums.setdefault(key, [0.0, 0.0, 0])
        s[0] += float(np.abs(err).sum())
        s[1] += float((err**2).sum())
        s[2] += err.size
        if self.keep_values:
            self.values.setdefault(key, []).append((np.ravel(ref), np.ravel(pred)))

    def update(self, pred: dict, graph: jraph.GraphsTuple) -> None:
        """Add one padded batch (numpy or jax arrays)."""
        gmask = np.asarray(graph_mask(graph))
        n_node = np.asarray(graph.n_node)
        for key in ("energy", "stress", "dipole", "polarizability"):
            if key in pred and key in graph.globals:
                w = gmask & (np.asarray(graph.globals.get(f"weight_{key}", np.ones_like(gmask))) > 0)
                p, r = np.asarray(pred[key])[w], np.asarray(graph.globals[key])[w]
                self._add(key, p, r)
                if key == "energy":
                    self._add("energy_per_atom", p / n_node[w], r / n_node[w])
                for name, index in COMPONENTS.get(key, ()):
                    self._add(f"{key}_{name}", p[(slice(None),) + index], r[(slice(None),) + index])
        if "forces" in pred and "forces" in graph.nodes:
            w_graph = gmask & (np.asarray(graph.globals.get("weight_forces", np.ones_like(gmask))) > 0)
            nodes = np.asarray(node_mask(graph)) & np.repeat(w_graph, n_node)
            self._add("forces", np.asarray(pred["forces"])[nodes], np.asarray(graph.nodes["forces"])[nodes])

    def result(self) -> dict[str, float]:
        out = {}
        for key, (abs_sum, sq_sum, n) in self.sums.items():
            out[f"{key}_mae"] = abs_sum / n
            out[f"{key}_rmse"] = float(np.sqrt(sq_sum / n))
        return out

    def parity(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(reference, predicted) values of ``key`` collected with ``keep_values=True``."""
        pairs = self.values.get(key, [])
        if not pairs:
            return np.zeros(0), np.zeros(0)
        return np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs])
