"""The Potential: a backbone, its heads and metadata, and the pure functions built from them.

Everything physical is a transform of one ``energy(params, graph) -> [G]`` (DESIGN.md,
"Potential")::

    forces  = -dE/dR                                   (energy_and_forces)
    stress  = (1/V) dE/dε, ε a symmetric strain of positions, shifts and cell
                                                       (energy_forces_stress; ASE sign convention)
    Hessian = d²E/dR²                                  (hessian; jax.hessian, or HVPs in chunks)

Tensor heads (``Potential.create(..., properties=("dipole", "polarizability"))``) share the
backbone's forward pass with the energy: ``make_outputs_fn`` returns every head's output and
``predict`` adds forces (and stress) to it; ``Potential.dipole_fn()`` [G, 3] e·Å and
``Potential.polarizability_fn()`` [G, 3, 3] Å³ are pure functions of ``(params, graph)``, so
``jax.jacfwd`` w.r.t. positions gives their derivatives (IR and Raman intensities).

The pure functions take the padded graph (DESIGN.md "Graph") and return per-graph values for
every graph including the padding graph; use ``jaxpot.graph.graph_mask`` to select real ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxpot import graph as graph_lib
from jaxpot.heads import HEADS, AtomisticModel, EnergyHead
from jaxpot.models import registry
from jaxpot.nn import graph_sum, node_graph_index
from jaxpot.validation import matrix_to_voigt

EnergyFn = Callable[[Any, jraph.GraphsTuple], jnp.ndarray]

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


# ----------------------------------------------------------------------------------------
# Pure transforms of an energy function
# ----------------------------------------------------------------------------------------


def make_energy_fn(module: nn.Module, e0: np.ndarray, scale: float = 1.0, shift: float = 0.0) -> EnergyFn:
    """``energy(params, graph) -> [G]`` eV: ``sum_i (scale * e_i + shift + E0[species_i])``.

    The reference energies are summed in float64 (totals of hundreds of eV lose meV in
    float32); the learned part keeps the model's dtype.
    """
    e0 = np.asarray(e0, dtype=np.float64)

    def energy(params, graph: jraph.GraphsTuple) -> jnp.ndarray:
        atomic = module.apply(params, graph)  # [N]
        atomic = scale * atomic + shift
        reference = jnp.asarray(e0)[graph.nodes["species"]]
        return graph_sum(atomic, graph.n_node) + graph_sum(reference, graph.n_node)

    return energy


def make_outputs_fn(module: nn.Module, e0: np.ndarray, scale: float = 1.0, shift: float = 0.0) -> Callable:
    """``outputs(params, graph) -> {"energy" [G] eV, and the module's heads: "charges" [N] e,
    "dipole" [G, 3] e·Å, "polarizability" [G, 3, 3] Å³}``, one backbone pass for all."""
    e0 = np.asarray(e0, dtype=np.float64)

    def outputs(params, graph: jraph.GraphsTuple) -> dict:
        out = dict(module.apply(params, graph, method=AtomisticModel.outputs))
        atomic = scale * out.pop("atomic_energies") + shift
        reference = jnp.asarray(e0)[graph.nodes["species"]]
        out["energy"] = graph_sum(atomic, graph.n_node) + graph_sum(reference, graph.n_node)
        return out

    return outputs


def _masked_total(energies: jnp.ndarray, graph: jraph.GraphsTuple) -> jnp.ndarray:
    return jnp.sum(jnp.where(graph_lib.graph_mask(graph), energies, 0.0))


def energy_and_forces(energy_fn: EnergyFn) -> Callable:
    """``(params, graph) -> (energies [G], forces [N, 3])`` with ``F = -dE/dR``."""

    def fn(params, graph):
        def total(positions):
            g = graph._replace(nodes={**graph.nodes, "positions": positions})
            e = energy_fn(params, g)
            return _masked_total(e, graph), e

        (_, energies), grad = jax.value_and_grad(total, has_aux=True)(graph.nodes["positions"])
        return energies, -grad

    return fn


def strain_graph(graph: jraph.GraphsTuple, strain: jnp.ndarray) -> jraph.GraphsTuple:
    """Apply ``x -> x (1 + ε)`` per graph to positions, shifts and cell; ``strain`` [G, 3, 3].

    The strain is symmetrised first, so that ``dE/dε`` is the (symmetric) virial.
    """
    eps = 0.5 * (strain + jnp.swapaxes(strain, -1, -2))
    n_nodes, n_edges = graph.nodes["positions"].shape[0], graph.senders.shape[0]
    node_eps = eps[node_graph_index(graph.n_node, n_nodes)]
    edge_eps = eps[node_graph_index(graph.n_edge, n_edges)]
    pos = graph.nodes["positions"]
    shifts = graph.edges["shifts"].astype(pos.dtype)
    cell = graph.globals["cell"].astype(pos.dtype)
    return graph._replace(
        nodes={**graph.nodes, "positions": pos + jnp.einsum("ni,nij->nj", pos, node_eps)},
        edges={**graph.edges, "shifts": shifts + jnp.einsum("ei,eij->ej", shifts, edge_eps)},
        globals={**graph.globals, "cell": cell + jnp.einsum("gai,gij->gaj", cell, eps)},
    )


def energy_forces_stress(energy_fn: EnergyFn) -> Callable:
    """``(params, graph) -> (energies [G], forces [N, 3], stress [G, 3, 3])``.

    Stress is ``(1/V) dE/dε`` in eV/Å³, ASE's convention (a cell that wants to shrink has
    positive stress); 0 for graphs without volume (molecules and the padding graph).
    """

    def fn(params, graph):
        positions = graph.nodes["positions"]
        strain = jnp.zeros((graph.n_node.shape[0], 3, 3), positions.dtype)

        def total(pos, eps):
            g = strain_graph(graph._replace(nodes={**graph.nodes, "positions": pos}), eps)
            e = energy_fn(params, g)
            return _masked_total(e, graph), e

        (_, energies), (d_pos, d_strain) = jax.value_and_grad(total, argnums=(0, 1), has_aux=True)(
            positions, strain
        )
        return energies, -d_pos, _stress_from_virial(graph, d_strain, positions.dtype)

    return fn


def _stress_from_virial(graph: jraph.GraphsTuple, d_strain: jnp.ndarray, dtype) -> jnp.ndarray:
    volume = jnp.abs(jnp.linalg.det(graph.globals["cell"].astype(dtype)))
    periodic = jnp.any(graph.globals["pbc"], axis=-1) & (volume > 0)
    safe_volume = jnp.where(periodic, volume, 1.0)
    return jnp.where(periodic[:, None, None], d_strain / safe_volume[:, None, None], 0.0)


def predict(outputs_fn: Callable, forces: bool = True, stress: bool = False) -> Callable:
    """``(params, graph) -> outputs_fn's dict`` plus ``"forces"`` [N, 3] eV/Å (``forces``) and
    ``"stress"`` [G, 3, 3] eV/Å³ (``stress``; implies forces), from one forward and one
    backward pass; the tensor heads ride along as auxiliary outputs."""

    def fn(params, graph):
        positions = graph.nodes["positions"]
        if stress:
            strain = jnp.zeros((graph.n_node.shape[0], 3, 3), positions.dtype)

            def total(pos, eps):
                out = outputs_fn(params, strain_graph(graph._replace(nodes={**graph.nodes, "positions": pos}), eps))
                return _masked_total(out["energy"], graph), out

            (_, out), (d_pos, d_strain) = jax.value_and_grad(total, argnums=(0, 1), has_aux=True)(positions, strain)
            return {**out, "forces": -d_pos, "stress": _stress_from_virial(graph, d_strain, positions.dtype)}
        if forces:

            def total(pos):
                out = outputs_fn(params, graph._replace(nodes={**graph.nodes, "positions": pos}))
                return _masked_total(out["energy"], graph), out

            (_, out), d_pos = jax.value_and_grad(total, has_aux=True)(positions)
            return {**out, "forces": -d_pos}
        return outputs_fn(params, graph)

    return fn


def hessian(energy_fn: EnergyFn, chunk_size: int | None = None) -> Callable:
    """``(params, graph) -> [N, 3, N, 3]`` eV/Å², second derivatives of the total energy.

    ``chunk_size=None`` uses ``jax.hessian`` (forward-over-reverse, all 3N columns at once).
    With a ``chunk_size``, columns are Hessian-vector products of the linearised gradient,
    ``chunk_size`` at a time, so memory stays bounded for large systems.
    """

    def fn(params, graph):
        def total(positions):
            g = graph._replace(nodes={**graph.nodes, "positions": positions})
            return _masked_total(energy_fn(params, g), graph)

        positions = graph.nodes["positions"]
        n = positions.shape[0]
        if chunk_size is None:
            return jax.hessian(total)(positions)
        _, hvp = jax.linearize(jax.grad(total), positions)
        basis = jnp.eye(3 * n, dtype=positions.dtype).reshape(3 * n, n, 3)
        columns = jax.lax.map(hvp, basis, batch_size=chunk_size)  # [3N, N, 3]
        return jnp.transpose(columns.reshape(n, 3, n, 3), (2, 3, 0, 1))

    return fn


# ----------------------------------------------------------------------------------------
# The Potential object
# ----------------------------------------------------------------------------------------


def _species_numbers(species: Sequence[int | str]) -> tuple[int, ...]:
    from jaxpot.elements import to_atomic_numbers

    out = to_atomic_numbers(species)
    if len(set(out)) != len(out):
        raise ValueError(f"species {list(species)} lists an element twice")
    if not out:
        raise ValueError("a Potential needs at least one species")
    return tuple(out)


def _dummy_graph(num_species: int) -> jraph.GraphsTuple:
    """A two-atom graph used only to initialise parameter shapes."""
    g = jraph.GraphsTuple(
        nodes={"positions": np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), "species": np.zeros(2, np.int32)},
        edges={"shifts": np.zeros((2, 3))},
        globals={"cell": np.zeros((1, 3, 3)), "pbc": np.zeros((1, 3), bool)},
        senders=np.array([0, 1], np.int32),
        receivers=np.array([1, 0], np.int32),
        n_node=np.array([2], np.int32),
        n_edge=np.array([2], np.int32),
    )
    return graph_lib.pad(g, 3, 2, 2)


def init_params(module: AtomisticModel, seed: int, num_species: int, dtype=jnp.float32):
    """Flax variables of ``module`` (every head included), from a two-atom dummy graph."""
    graph = _to_device(_dummy_graph(num_species), dtype)
    # jitted: op-by-op (eager) initialisation of the e3nn models dispatches thousands of small
    # ops and took 2-6x longer; the parameters are bit-identical
    init = jax.jit(lambda key, g: module.init(key, g, method=AtomisticModel.outputs))
    return init(jax.random.PRNGKey(seed), graph)


def head_options(properties, readout: dict | None = None) -> dict[str, dict]:
    """Normalise ``properties`` to ``{head name: options}`` (see ``Potential.create``).

    Accepts None, a sequence of names or a mapping name -> options (or None); "energy" and
    "forces" are always predicted and may be listed. Options default to the energy readout's
    hidden widths and activation.
    """
    if properties is None:
        return {}
    if isinstance(properties, str):
        properties = [properties]
    items = properties.items() if isinstance(properties, dict) else ((p, None) for p in properties)
    base = {k: v for k, v in (readout or {}).items() if k in ("hidden", "activation")}
    out: dict[str, dict] = {}
    for name, options in items:
        if name in ("energy", "forces", "stress"):
            continue
        if name not in HEADS:
            raise ValueError(
                f"unknown property {name!r}; a Potential can predict energy, forces, stress and {sorted(HEADS)}"
            )
        options = dict(options or {})
        fields = {f.name for f in dataclasses.fields(HEADS[name])} - {"parent", "name"}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for the {name} head; its options are {sorted(fields)}")
        out[name] = {**base, **options}
    return out


@dataclasses.dataclass
class Potential:
    """A machine-learned interatomic potential: model, parameters and metadata.

    Build one with ``Potential.create``; load a saved one with ``jaxpot.load``. The pure
    functions (``energy_fn``, ``energy_and_forces_fn``, ...) take ``(params, graph)`` and are
    what training, jax-md and spectra use; the methods (``energy``, ``forces``, ``calculate``,
    ...) jit them with this Potential's parameters, once per shape bucket.

    Attributes:
      model: registry name of the backbone.
      hparams: backbone hyperparameters (without ``num_species``/``cutoff``).
      species: atomic numbers, the species table that ``nodes["species"]`` indexes.
      cutoff: neighbour cutoff in Å.
      params: flax variables of the ``AtomisticModel``.
      e0: [S] per-species reference energies in eV.
      scale, shift: atomic energy = ``scale * model output + shift`` (eV).
      readout: ``EnergyHead`` hyperparameters.
      dtype: "float32" or "float64": dtype of parameters and positions inside the model.
      heads: tensor heads and their options, ``{"dipole": {...}, "polarizability": {...}}``
        (``jaxpot.heads.DipoleHead`` / ``PolarizabilityHead`` fields); empty for energy only.
    """

    model: str
    hparams: dict
    species: tuple[int, ...]
    cutoff: float
    params: Any
    e0: np.ndarray
    scale: float = 1.0
    shift: float = 0.0
    readout: dict = dataclasses.field(default_factory=dict)
    dtype: str = "float32"
    heads: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.species = tuple(int(z) for z in self.species)
        self.e0 = np.asarray(self.e0, dtype=np.float64).reshape(len(self.species))
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        # lists (from JSON or YAML) as tuples: flax module fields must be hashable
        self.heads = {
            k: {o: tuple(x) if isinstance(x, list) else x for o, x in dict(v).items()} for k, v in (self.heads or {}).items()
        }
        unknown = sorted(set(self.heads) - set(HEADS))
        if unknown:
            raise ValueError(f"unknown head(s) {unknown}; known: {sorted(HEADS)}")
        self._cache: dict[str, Callable] = {}

    # -- construction -------------------------------------------------------------------

    @staticmethod
    def build_module(
        model: str, hparams: dict, num_species: int, cutoff: float, readout: dict, heads: dict | None = None
    ) -> AtomisticModel:
        hparams = dict(hparams)
        ewald = hparams.pop("ewald", None)  # long-range add-on, any backbone (jaxpot.longrange)
        if ewald is None or ewald is False:
            backbone = registry.build(model, num_species=num_species, cutoff=cutoff, **hparams)
        else:
            from jaxpot.longrange import block_options, ewald_options, with_ewald

            options = ewald_options(ewald)
            # saved before the option existed: the block acted on the output ("output")
            if options.get("placement", "output") == "layers":
                if "ewald" not in registry.hyperparameters(model):
                    raise ValueError(f"model {model!r} has no per-layer Ewald blocks; use ewald={{'placement': 'output'}}")
                layered = tuple(sorted(block_options(options).items()))
                backbone = registry.build(model, num_species=num_species, cutoff=cutoff, ewald=layered, **hparams)
            else:
                backbone = with_ewald(registry.build(model, num_species=num_species, cutoff=cutoff, **hparams), options)
        heads = heads or {}
        unknown = sorted(set(heads) - set(HEADS))
        if unknown:
            raise ValueError(f"unknown head(s) {unknown}; known: {sorted(HEADS)}")
        extra = {f"{name}_head": HEADS[name](**options) for name, options in heads.items()}
        return AtomisticModel(backbone=backbone, energy_head=EnergyHead(**readout), **extra)

    @classmethod
    def create(
        cls,
        model: str,
        species: Sequence[int | str],
        cutoff: float = 5.0,
        *,
        seed: int = 0,
        e0: Sequence[float] | dict | None = None,
        scale: float = 1.0,
        shift: float = 0.0,
        readout: dict | None = None,
        dtype: str = "float32",
        properties: Sequence[str] | dict | None = None,
        **hparams,
    ) -> "Potential":
        """A new Potential with randomly initialised parameters.

        Args:
          model: registry name ("schnet", "painn", ...).
          species: elements (symbols or atomic numbers) the potential covers.
          cutoff: Å.
          seed: parameter initialisation seed.
          e0: per-species reference energies (list in ``species`` order, or {symbol: eV}).
          scale, shift: applied to the model's atomic energies.
          readout: ``EnergyHead`` options; default hidden width features // 2 and the
            backbone's own activation (shifted softplus for SchNet, SiLU otherwise).
          dtype: "float32" (default) or "float64".
          properties: tensor heads besides the energy: ``("dipole", "polarizability")``, or a
            mapping to head options, e.g. ``{"polarizability": {"shift": 0.8, "scale": 0.5}}``
            (``jaxpot.heads.DipoleHead`` / ``PolarizabilityHead`` fields). Default: energy only.
          **hparams: backbone hyperparameters (see ``jaxpot.models.hyperparameters(model)``), and
            ``ewald``: ``True`` or a mapping of ``jaxpot.longrange.EwaldBlock`` options, to add
            Ewald message passing (long range, ICML 2023) to any backbone; saved with the
            hyperparameters. Its ``placement`` is ``"layers"`` (a block beside every interaction,
            the paper's; the default for SchNet, PaiNN and MACE) or ``"output"`` (one block on
            the final scalars; the default for the other backbones).
        """
        numbers = _species_numbers(species)
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        cls_ = registry.model_class(model)
        if readout is None:
            width = hparams.get("features", registry.hyperparameters(model).get("features") or 64)
            hidden = list(getattr(cls_, "readout_hidden", [max(int(width) // 2, 1)]))  # MACE: () (own readouts)
            readout = {"hidden": hidden, "activation": getattr(cls_, "readout_activation", "silu")}
            if getattr(cls_, "readout_sum", False):  # MACE: its scalars are per-layer atomic energies
                readout["sum_scalars"] = True
        if isinstance(e0, dict):
            from ase.data import atomic_numbers, chemical_symbols

            table = {atomic_numbers.get(k, k) if isinstance(k, str) else int(k): float(v) for k, v in e0.items()}
            missing = [chemical_symbols[z] for z in numbers if z not in table]
            if missing:
                raise ValueError(f"e0 has no reference energy for {missing}")
            e0 = [table[z] for z in numbers]
        e0 = np.zeros(len(numbers)) if e0 is None else np.asarray(e0, dtype=np.float64)
        ewald = hparams.get("ewald")
        if ewald is not None and ewald is not False:  # the paper's placement where the backbone has it
            from jaxpot.longrange import ewald_options, kspace

            default = "layers" if "ewald" in registry.hyperparameters(model) else "output"
            options = {"placement": default} | ewald_options(ewald)
            # enough directions for the frequency cutoff (EwaldBlock's fixed default, 17, is
            # right only at 0.4 Å⁻¹; saves made before this keep their degree when loaded)
            options.setdefault("angular_degree", kspace.angular_degree_for(float(options.get("k_cutoff", 0.4))))
            hparams = dict(hparams, ewald=options)
        heads = head_options(properties, readout)
        module = cls.build_module(model, hparams, len(numbers), cutoff, readout, heads)
        params = init_params(module, seed, len(numbers))
        pot = cls(model, dict(hparams), numbers, float(cutoff), params, e0, scale, shift, dict(readout), "float32", heads)
        return pot.astype(dtype)

    @property
    def module(self) -> AtomisticModel:
        if "module" not in self._cache:
            self._cache["module"] = self.build_module(
                self.model, self.hparams, len(self.species), self.cutoff, self.readout, self.heads
            )
        return self._cache["module"]  # type: ignore[return-value]

    def astype(self, dtype: str) -> "Potential":
        """The same potential computing in ``dtype`` ("float32" or "float64").

        The copy is kept (per dtype), so repeated calls, e.g. a float64 Hessian for every
        spectrum of a float32 model, reuse its compiled functions. ``replace`` makes a new
        Potential with an empty cache, so changed parameters never see a stale copy.
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        if dtype == self.dtype:
            return self
        key = f"astype_{dtype}"
        if key not in self._cache:
            params = jax.tree_util.tree_map(
                lambda x: jnp.asarray(x, DTYPES[dtype]) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x,
                self.params,
            )
            self._cache[key] = dataclasses.replace(self, params=params, dtype=dtype)
        return self._cache[key]

    def replace(self, **changes) -> "Potential":
        """A copy with some fields changed (e.g. ``params``, ``e0``, ``scale``)."""
        return dataclasses.replace(self, **changes)

    # -- pure functions -----------------------------------------------------------------

    @property
    def energy_fn(self) -> EnergyFn:
        """Pure ``(params, graph) -> [G]`` energies in eV."""
        return make_energy_fn(self.module, self.e0, self.scale, self.shift)

    @property
    def energy_and_forces_fn(self) -> Callable:
        return energy_and_forces(self.energy_fn)

    @property
    def energy_forces_stress_fn(self) -> Callable:
        return energy_forces_stress(self.energy_fn)

    def hessian_fn(self, chunk_size: int | None = None) -> Callable:
        return hessian(self.energy_fn, chunk_size)

    @property
    def properties(self) -> tuple[str, ...]:
        """What this potential predicts: energy, forces, stress and its tensor heads."""
        return ("energy", "forces", "stress") + tuple(k for k in HEADS if k in self.heads)

    @property
    def outputs_fn(self) -> Callable:
        """Pure ``(params, graph) -> {"energy" [G], "charges" [N], "dipole" [G, 3], ...}``."""
        return make_outputs_fn(self.module, self.e0, self.scale, self.shift)

    def predict_fn(self, forces: bool = True, stress: bool = False) -> Callable:
        """Pure ``(params, graph) -> dict``: every head's output plus forces (and stress)."""
        return predict(self.outputs_fn, forces, stress)

    def _head_fn(self, head: str, key: str) -> Callable:
        if head not in self.heads:
            raise ValueError(
                f"this {self.model} potential has no {head} head; create one with "
                f"Potential.create(..., properties=({head!r},)) and train it on {head} labels"
            )
        outputs = self.outputs_fn

        def fn(params, graph):
            return outputs(params, graph)[key]

        return fn

    def dipole_fn(self) -> Callable:
        """Pure ``(params, graph) -> [G, 3]`` dipoles in e·Å (centroid as origin for ions)."""
        return self._head_fn("dipole", "dipole")

    def charges_fn(self) -> Callable:
        """Pure ``(params, graph) -> [N]`` partial charges in e, summing to each graph's charge."""
        return self._head_fn("dipole", "charges")

    def polarizability_fn(self) -> Callable:
        """Pure ``(params, graph) -> [G, 3, 3]`` polarizabilities in Å³ (symmetric)."""
        return self._head_fn("polarizability", "polarizability")

    # -- convenience on graphs and atoms ------------------------------------------------

    def _jit(self, key: str, make: Callable[[], Callable]) -> Callable:
        if key not in self._cache:
            self._cache[key] = jax.jit(make())
        return self._cache[key]

    def graph(self, atoms, **kwargs) -> jraph.GraphsTuple:
        """``jaxpot.graph.from_atoms`` with this potential's cutoff and species."""
        return graph_lib.from_atoms(atoms, self.cutoff, self.species, **kwargs)

    def prepare(self, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
        """Move a host graph to the device in this potential's dtype."""
        return _to_device(graph, DTYPES[self.dtype])

    def energy(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
        """[G] energies (eV) of a padded graph, padding graph included."""
        fn = self._jit("energy", lambda: self.energy_fn)
        return fn(self.params, self.prepare(graph))

    def energy_and_forces(self, graph: jraph.GraphsTuple) -> tuple[jnp.ndarray, jnp.ndarray]:
        """([G] eV, [N, 3] eV/Å) for a padded graph."""
        fn = self._jit("energy_and_forces", lambda: self.energy_and_forces_fn)
        return fn(self.params, self.prepare(graph))

    def forces(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
        return self.energy_and_forces(graph)[1]

    def energy_forces_stress(self, graph: jraph.GraphsTuple):
        """([G] eV, [N, 3] eV/Å, [G, 3, 3] eV/Å³) for a padded graph."""
        fn = self._jit("energy_forces_stress", lambda: self.energy_forces_stress_fn)
        return fn(self.params, self.prepare(graph))

    def stress(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
        return self.energy_forces_stress(graph)[2]

    def hessian(self, graph: jraph.GraphsTuple, chunk_size: int | None = None) -> jnp.ndarray:
        """[N, 3, N, 3] eV/Å² for a padded graph (padding rows are zero)."""
        fn = self._jit(f"hessian_{chunk_size}", lambda: self.hessian_fn(chunk_size))
        return fn(self.params, self.prepare(graph))

    def dipole(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
        """[G, 3] e·Å dipoles of a padded graph."""
        return self._jit("dipole", self.dipole_fn)(self.params, self.prepare(graph))

    def polarizability(self, graph: jraph.GraphsTuple) -> jnp.ndarray:
        """[G, 3, 3] Å³ polarizabilities of a padded graph."""
        return self._jit("polarizability", self.polarizability_fn)(self.params, self.prepare(graph))

    def calculate(self, atoms, stress: bool | None = None) -> dict[str, np.ndarray]:
        """Energy, forces, (for periodic cells) stress and the heads' outputs of one ``ase.Atoms``.

        Returns ``{"energy": float eV, "forces": [n, 3] eV/Å, "stress": [6] eV/Å³}`` with stress in
        ASE's Voigt order (xx, yy, zz, yz, xz, xy), present when the cell is periodic; with
        tensor heads also ``"charges"`` [n] e, ``"dipole"`` [3] e·Å, ``"polarizability"`` [3, 3]
        Å³, all from one compiled call. A total charge in ``atoms.info["charge"]`` constrains
        the charges.
        """
        if stress is None:
            stress = bool(np.any(atoms.pbc))
        g = self.graph(atoms)
        n = len(atoms)
        if self.heads:
            charge = float(atoms.info.get("charge", 0.0))
            g = g._replace(globals={**g.globals, "charge": np.array([charge] + [0.0] * (len(g.n_node) - 1))})
            fn = self._jit(f"predict_{bool(stress)}", lambda: self.predict_fn(True, bool(stress)))
            out = {k: np.asarray(v, dtype=np.float64) for k, v in fn(self.params, self.prepare(g)).items()}
            result = {"energy": float(out["energy"][0]), "forces": out["forces"][:n].copy()}
            if stress:
                result["stress"] = matrix_to_voigt(out["stress"][0])
            if "dipole" in out:
                result["charges"] = out["charges"][:n].copy()
                result["dipole"] = out["dipole"][0].copy()
            if "polarizability" in out:
                result["polarizability"] = out["polarizability"][0].copy()
            return result
        if stress:
            e, f, s = self.energy_forces_stress(g)
            return {
                "energy": float(e[0]),
                "forces": np.asarray(f[:n], dtype=np.float64),
                "stress": matrix_to_voigt(np.asarray(s[0], dtype=np.float64)),
            }
        e, f = self.energy_and_forces(g)
        return {"energy": float(e[0]), "forces": np.asarray(f[:n], dtype=np.float64)}

    def evaluate(
        self,
        structures,
        batch_size: int = 32,
        stress: bool = False,
        progress: bool = False,
        *,
        max_atoms: int | None = None,
        max_edges: int | None = None,
    ) -> list[dict[str, Any]]:
        """Energies and forces (and stress) of many structures, many per compiled call.

        The structures are packed in file order into batches with one fixed budget of atoms,
        edges and graphs (``jaxpot.data.GraphLoader``), so a whole list compiles once; budgets
        are bucketed, so different lists meet a handful of shapes.

        Args:
          structures: ``ase.Atoms`` or a list of them (molecules and periodic cells mixed).
          batch_size: structures per compiled call.
          stress: also return stress for periodic structures.
          progress: tqdm progress bar over batches.
          max_atoms, max_edges: batch budgets (default: ``batch_size`` of the largest).

        Returns:
          One dict per structure, in order: ``energy`` (float eV), ``forces`` ([n, 3] eV/Å) and,
          with ``stress`` and a periodic cell, ``stress`` ([6] eV/Å³, ASE's Voigt order); with
          tensor heads also ``charges`` ([n] e), ``dipole`` ([3] e·Å), ``polarizability``
          ([3, 3] Å³), every structure taken as neutral.
        """
        from tqdm.auto import tqdm

        from jaxpot.data import GraphLoader

        frames = graph_lib.iter_atoms(structures)
        if not frames:
            return []
        loader = GraphLoader(
            frames, self.cutoff, self.species, batch_size, shuffle=False, labels=False,
            max_atoms=max_atoms, max_edges=max_edges,
        )
        plan = loader.batch_indices(0)
        out: list[dict[str, Any]] = [{} for _ in frames]
        for indices, g in tqdm(zip(plan, loader.epoch(0)), total=len(plan), disable=not progress, desc="evaluate"):
            heads: dict[str, np.ndarray] = {}
            if self.heads:
                fn = self._jit(f"predict_{bool(stress)}", lambda: self.predict_fn(True, bool(stress)))
                pred = {k: np.asarray(v, dtype=np.float64) for k, v in fn(self.params, self.prepare(g)).items()}
                e, f, s = pred.pop("energy"), pred.pop("forces"), pred.pop("stress", None)
                heads = pred
            elif stress:
                e, f, s = (np.asarray(x, dtype=np.float64) for x in self.energy_forces_stress(g))
            else:
                e, f = (np.asarray(x, dtype=np.float64) for x in self.energy_and_forces(g))
            offsets = np.concatenate([[0], np.cumsum(np.asarray(g.n_node))])
            for k, i in enumerate(indices):
                result = {"energy": float(e[k]), "forces": f[offsets[k] : offsets[k + 1]].copy()}
                if stress and np.any(frames[i].pbc):
                    result["stress"] = matrix_to_voigt(s[k])
                for key, value in heads.items():
                    result[key] = (value[offsets[k] : offsets[k + 1]] if key == "charges" else value[k]).copy()
                out[i] = result
        return out

    # -- persistence --------------------------------------------------------------------

    def save(self, path) -> None:
        """Write ``config.json`` and ``params.msgpack`` into directory ``path``."""
        from jaxpot.io import save

        save(self, path)

    @property
    def num_parameters(self) -> int:
        return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(self.params)))


def _to_device(graph: jraph.GraphsTuple, dtype) -> jraph.GraphsTuple:
    """Float arrays -> ``dtype``, integer and bool arrays unchanged, all as jnp arrays."""

    def cast(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree_util.tree_map(cast, graph)
