"""Batches of padded graphs with one fixed shape, so a whole data set compiles once.

``GraphLoader`` builds every structure's unpadded graph once, then per epoch packs the
structures (in a shuffled order) greedily into batches under three budgets — nodes, edges and
graphs — and pads every batch to exactly those budgets. All batches of all epochs have the
same shapes and the same pytree structure (every label of the data set is present in every
batch, zero-filled with ``weight_<label> = 0`` where a structure lacks it), so a jitted step
traces once.

Determinism: epoch ``e`` visits the structures in ``numpy.random.default_rng((seed, e))
.permutation(n)`` order and the packing is a pure function of that order, so
``loader.epoch(e, start=k)`` resumes a run at step ``k`` of epoch ``e`` exactly.

The number of batches may vary slightly from epoch to epoch when the atom or edge budget (not
the graph budget) closes batches: ``num_batches(e)`` is exact for epoch ``e`` (it packs that
epoch's order), and ``len(loader)`` is the count of the epoch the next ``iter(loader)`` will
produce. With the default budgets every batch holds ``batch_size`` structures (only the last
may hold fewer), so the count is ``ceil(n / batch_size)`` every epoch.
"""

from __future__ import annotations

import functools
import queue
import threading
from typing import Iterator, Sequence

import jraph
import numpy as np

from jaxpot import graph as graph_lib


class GraphLoader:
    """Fixed-shape batches of padded ``jraph.GraphsTuple`` (numpy) over a list of structures.

    Args:
      structures: ``ase.Atoms`` (labels as ``jaxpot.data.read`` leaves them).
      cutoff: neighbour cutoff in Å.
      species: the Potential's species (symbols or atomic numbers).
      batch_size: at most this many structures per batch (``n_graph = batch_size + 1``).
      max_atoms: node budget ``n_node`` of every batch, padding node included (a batch holds
        at most ``max_atoms - 1`` real atoms). Default ``bucket_size(batch_size * A + 1)``, A the
        largest structure's atom count, so ``batch_size`` of the largest structures fit.
      max_edges: edge budget ``n_edge``. Default ``bucket_size(batch_size * E)``, E the largest
        edge count.
      shuffle: shuffle the order every epoch (``default_rng((seed, epoch))``); else file order.
      seed: shuffle seed.
      drop_last: drop an epoch's last batch when it holds fewer than ``batch_size`` structures.
      prefetch: batches assembled ahead in a background thread (0: assemble in the caller).
      labels: passed to ``jaxpot.graph``: True reads the canonical labels, a dict maps
        label -> key, False reads none.
      min_distance: refuse atom pairs closer than this (Å).

    Raises:
      ValueError: a structure that alone exceeds a budget (named by its index), or any
        error of ``jaxpot.graph`` (unknown element, overlapping atoms, bad labels, ...).
    """

    def __init__(
        self,
        structures,
        cutoff: float,
        species: Sequence[int | str],
        batch_size: int,
        *,
        max_atoms: int | None = None,
        max_edges: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        prefetch: int = 2,
        labels: bool | dict[str, str] = True,
        min_distance: float = 0.1,
    ):
        from jaxpot.potential import _species_numbers

        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.cutoff = float(cutoff)
        self.species = _species_numbers(species)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.prefetch = int(prefetch)
        structures = graph_lib.iter_atoms(structures)
        if not structures:
            raise ValueError("GraphLoader got no structures")
        self.graphs: list[jraph.GraphsTuple] = graph_lib.graphs_from_atoms(
            structures, self.cutoff, self.species, labels=labels, min_distance=min_distance
        )
        self.num_atoms = np.array([int(g.n_node[0]) for g in self.graphs], dtype=np.int64)
        self.num_edges = np.array([int(g.n_edge[0]) for g in self.graphs], dtype=np.int64)

        n_node = int(max_atoms) if max_atoms is not None else graph_lib.bucket_size(
            self.batch_size * int(self.num_atoms.max()) + 1
        )
        n_edge = int(max_edges) if max_edges is not None else graph_lib.bucket_size(
            self.batch_size * int(self.num_edges.max())
        )
        self._budget = (n_node, n_edge, self.batch_size + 1)
        too_many_atoms = np.flatnonzero(self.num_atoms >= n_node)
        if len(too_many_atoms):
            k = int(too_many_atoms[0])
            raise ValueError(
                f"structure {k} has {self.num_atoms[k]} atoms and does not fit max_atoms={n_node} "
                f"(a batch needs one padding node more than its atoms); raise max_atoms to at least "
                f"{int(self.num_atoms.max()) + 1} ({len(too_many_atoms)} structure(s) too large)."
            )
        too_many_edges = np.flatnonzero(self.num_edges > n_edge)
        if len(too_many_edges):
            k = int(too_many_edges[0])
            raise ValueError(
                f"structure {k} has {self.num_edges[k]} edges within cutoff {self.cutoff} Å and does not fit "
                f"max_edges={n_edge}; raise max_edges to at least {int(self.num_edges.max())} "
                f"({len(too_many_edges)} structure(s) too large)."
            )
        self._label_templates = self._find_label_templates()
        self._next_epoch = 0
        self._plans = functools.lru_cache(maxsize=4)(self._plan)

    # -- shapes -------------------------------------------------------------------------

    @property
    def budget(self) -> tuple[int, int, int]:
        """``(n_node, n_edge, n_graph)`` of every batch."""
        return self._budget

    @property
    def num_structures(self) -> int:
        return len(self.graphs)

    def _find_label_templates(self) -> dict[str, tuple[str, tuple[int, ...], np.dtype]]:
        """label -> (field, trailing shape, dtype) for every label any structure has."""
        templates = {}
        for g in self.graphs:
            for field in ("nodes", "globals"):
                for key, value in getattr(g, field).items():
                    if key in graph_lib.LABEL_KEYS and key not in templates:
                        templates[key] = (field, value.shape[1:], value.dtype)
        return templates

    # -- order and packing --------------------------------------------------------------

    def order(self, epoch: int) -> np.ndarray:
        """The order in which epoch ``epoch`` visits the structures."""
        n = len(self.graphs)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng((self.seed, int(epoch))).permutation(n)

    def _plan(self, epoch: int) -> tuple[np.ndarray, ...]:
        n_node, n_edge, n_graph = self._budget
        batches, current, atoms, edges = [], [], 0, 0
        for i in self.order(epoch):
            a, e = int(self.num_atoms[i]), int(self.num_edges[i])
            if current and (len(current) + 1 >= n_graph or atoms + a >= n_node or edges + e > n_edge):
                batches.append(np.array(current, dtype=np.int64))
                current, atoms, edges = [], 0, 0
            current.append(int(i))
            atoms += a
            edges += e
        if current:
            batches.append(np.array(current, dtype=np.int64))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return tuple(batches)

    def batch_indices(self, epoch: int) -> tuple[np.ndarray, ...]:
        """Structure indices of every batch of epoch ``epoch`` (greedy packing of its order)."""
        return self._plans(int(epoch))

    def num_batches(self, epoch: int) -> int:
        """Number of batches in epoch ``epoch``."""
        return len(self.batch_indices(epoch))

    def __len__(self) -> int:
        """Batches in the epoch that the next ``iter(loader)`` produces."""
        return self.num_batches(self._next_epoch)

    # -- batches ------------------------------------------------------------------------

    def make_batch(self, indices: Sequence[int]) -> jraph.GraphsTuple:
        """The padded batch of the given structures (numpy, shapes ``budget``)."""
        g = graph_lib.batch([self.graphs[int(i)] for i in indices])
        n_nodes, n_graphs = int(np.sum(g.n_node)), len(g.n_node)
        nodes, globals_ = dict(g.nodes), dict(g.globals)
        for key, (field, shape, dtype) in self._label_templates.items():
            target = nodes if field == "nodes" else globals_
            if key not in target:
                rows = n_nodes if field == "nodes" else n_graphs
                target[key] = np.zeros((rows,) + shape, dtype)
                globals_[f"weight_{key}"] = np.zeros(n_graphs)
        g = g._replace(nodes=nodes, globals=globals_)
        return graph_lib.pad(g, *self._budget)

    def epoch(self, epoch: int, start: int = 0) -> "Epoch":
        """The batches of epoch ``epoch`` from step ``start`` on (an iterable with ``len``)."""
        plan = self.batch_indices(epoch)
        if not 0 <= int(start) <= len(plan):
            raise ValueError(f"start={start} is outside epoch {epoch}, which has {len(plan)} batches")
        return Epoch(self, plan[int(start):])

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter(loader)`` produce epoch ``epoch``."""
        self._next_epoch = int(epoch)

    def __iter__(self) -> Iterator[jraph.GraphsTuple]:
        """Epoch 0 on the first call, then 1, 2, ... (see ``set_epoch``)."""
        e = self._next_epoch
        self._next_epoch += 1
        return iter(self.epoch(e))


class Epoch:
    """The batches of one epoch: ``len()`` and iteration, prefetched in a background thread."""

    def __init__(self, loader: GraphLoader, plan: Sequence[np.ndarray]):
        self.loader = loader
        self.plan = tuple(plan)

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[jraph.GraphsTuple]:
        if self.loader.prefetch <= 0:
            return (self.loader.make_batch(b) for b in self.plan)
        return _background(self.loader.make_batch, self.plan, self.loader.prefetch)


def _background(make, items, size: int) -> Iterator:
    """Yield ``make(item)`` for each item, computed up to ``size`` ahead in a daemon thread.

    Exceptions in the thread are raised in the consumer; a consumer that stops early (break,
    garbage collection) stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in items:
                if stop.is_set() or not put(("item", make(item))):
                    return
            put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(("error", exc))

    thread = threading.Thread(target=work, name="jaxpot-GraphLoader", daemon=True)

    def generate():
        thread.start()
        try:
            while True:
                kind, value = q.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()
            thread.join(timeout=10)

    return generate()
