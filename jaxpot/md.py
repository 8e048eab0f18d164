"""jax-md energy functions and simulation helpers (DESIGN.md, "md.py").

``energy_fn`` turns any ``Potential`` into jax-md's contract::

    neighbor_fn, energy_fn = jaxpot.md.energy_fn(potential, displacement_fn, box, species)
    nbrs = neighbor_fn.allocate(R)                 # on the host, once (not jittable)
    E = energy_fn(R, neighbor=nbrs)                # eV; jax.grad(energy_fn)(R, neighbor=nbrs) = -forces
    nbrs = nbrs.update(R_new)                      # inside jit, every step
    if nbrs.did_buffer_overflow: nbrs = neighbor_fn.allocate(R)   # and re-run the last chunk

The neighbour list lives on the device in jax-md's ``Sparse`` format (``idx`` [2, capacity]:
receivers, senders; index ``N`` in unused slots), with spare capacity (``capacity_multiplier``)
and a skin (``dr_threshold``). From it the energy function builds, on device, the padded
``jraph.GraphsTuple`` that every jaxpot model reads (DESIGN.md "Graph"): ``N`` real nodes plus
one padding node, one real graph plus the padding graph, unused slots and pairs beyond the
cutoff turned into zero-length padding edges on the padding node and moved behind the real
edges. ``shifts = d_ij - (r_j - r_i)`` with ``d_ij`` the displacement function's vector, so the
model's edge vectors are exactly the displacement function's, and forces (``jax.grad``), jax-md's
pressure and stress (derivatives w.r.t. ``box`` / ``perturbation``) all flow through it. The
model code runs unchanged.

Spaces: ``space.free()`` (``box=None``), ``space.periodic(side)`` and
``space.periodic_general(box, fractional_coordinates=...)``. jax-md's own neighbour list uses the
minimum image, which is only right when the list cutoff is below half of every plane spacing
of the cell. For smaller cells (a primitive cell, a thin slab) ``energy_fn`` switches to a
dense all-images construction on device: the lattice translations that can reach within the
cutoff are enumerated once on the host from the box (static), every candidate
``(i, j, image)`` is tested on device, and those within the list cutoff are compacted into a
fixed capacity (``ImageNeighborList``: the same interface, plus the image of every pair).

Units (ASE's): Å, eV, amu masses, time in ASE's unit ``Å sqrt(amu / eV)`` (= 10.18 fs), so a
time step of ``t`` fs is ``t * ase.units.fs``, temperatures enter as ``kT = ase.units.kB * T``
(eV) and momenta are ASE's momenta unchanged. ``simulate`` does these conversions.
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import jraph
import numpy as np
from jax_md import dataclasses as jmd_dataclasses
from jax_md import partition, space

from jaxpot import graph as graph_lib

Sparse = partition.NeighborListFormat.Sparse
PEC = partition.PartitionErrorCode

__all__ = ["ImageNeighborList", "energy_fn", "simulate", "needs_images", "plane_spacings", "ENSEMBLES"]

ENSEMBLES = ("nve", "nvt_langevin", "nvt_nose_hoover", "npt", "fire")


# ----------------------------------------------------------------------------------------
# Boxes (host side)
# ----------------------------------------------------------------------------------------


def _lattice_rows(box) -> np.ndarray:
    """jax-md box (scalar side, [3] sides or [3, 3] with lattice vectors as columns) -> rows."""
    b = np.asarray(box, dtype=np.float64)
    if b.size == 1:
        return np.eye(3) * float(b.reshape(()))
    if b.ndim == 1:
        return np.diag(b)
    return b.T.copy()


def _lattice_rows_jnp(box) -> jnp.ndarray:
    b = jnp.asarray(box)
    if b.size == 1:
        return jnp.eye(3, dtype=b.dtype) * b.reshape(())
    if b.ndim == 1:
        return jnp.diag(b)
    return b.T


def plane_spacings(box) -> np.ndarray:
    """[3] distances between lattice planes (Å) of a jax-md box."""
    rows = _lattice_rows(box)
    recip = np.linalg.inv(rows).T  # rows b_a with a_i . b_j = delta_ij
    return 1.0 / np.linalg.norm(recip, axis=1)


def needs_images(box, cutoff: float) -> bool:
    """True when a pair can interact through more than its minimum image (cutoff >= h_min / 2)."""
    return bool(box is not None and float(cutoff) >= 0.5 * float(np.min(plane_spacings(box))))


def _image_offsets(box, cutoff: float, margin: float) -> np.ndarray:
    """[S, 3] integer lattice offsets n with every |f + n| (f the minimum-image fractional
    difference in [-1/2, 1/2)) that can come within ``cutoff * (1 + margin)``; n = 0 first."""
    recip = np.linalg.inv(_lattice_rows(box)).T
    reach = np.ceil(cutoff * (1.0 + margin) * np.linalg.norm(recip, axis=1) + 0.5).astype(int)
    axes = [np.arange(-k, k + 1) for k in reach]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    order = np.argsort(np.abs(grid).sum(axis=1), kind="stable")  # (0, 0, 0) first
    return grid[order].astype(np.float64)


def _current_box(default_box, kwargs):
    if "new_box" in kwargs:
        return kwargs["new_box"]
    return kwargs.get("box", default_box)


# ----------------------------------------------------------------------------------------
# The multi-image neighbour list for small cells
# ----------------------------------------------------------------------------------------


@jmd_dataclasses.dataclass
class ImageNeighborList:
    """jax-md's ``NeighborList`` interface for cells smaller than twice the cutoff.

    Attributes:
      idx: [2, capacity] int32, receivers (row 0) and senders (row 1) as jax-md's ``Sparse``
        format; ``N`` in unused slots.
      images: [capacity, 3] lattice offsets ``n`` (fractional, integer valued) of each pair:
        ``d = d_min(r_j, r_i) + box n`` at ``reference_position``.
      reference_position: positions when the list was built.
      error: ``partition.PartitionError`` (overflow; cell too small for the image set).
      max_occupancy: capacity (static).
    """

    idx: jnp.ndarray
    images: jnp.ndarray
    reference_position: jnp.ndarray
    error: partition.PartitionError
    max_occupancy: int = jmd_dataclasses.static_field()
    format: partition.NeighborListFormat = jmd_dataclasses.static_field()
    update_fn: Callable = jmd_dataclasses.static_field()

    def update(self, position, **kwargs) -> "ImageNeighborList":
        return self.update_fn(position, self, **kwargs)

    @property
    def did_buffer_overflow(self):
        return self.error.code & (PEC.NEIGHBOR_LIST_OVERFLOW | PEC.CELL_LIST_OVERFLOW)

    @property
    def cell_size_too_small(self):
        return self.error.code & PEC.CELL_SIZE_TOO_SMALL

    @property
    def malformed_box(self):
        return self.error.code & PEC.MALFORMED_BOX


def image_neighbor_list(
    displacement_fn: Callable,
    box,
    r_cutoff: float,
    dr_threshold: float = 0.0,
    capacity_multiplier: float = 1.25,
    image_margin: float = 0.1,
) -> partition.NeighborListFns:
    """All-images neighbour list on device (``Sparse`` format plus an image per pair).

    Candidates are every ``(j, i, n)`` with ``n`` one of the static lattice offsets that can
    reach within ``r_cutoff + dr_threshold`` (with ``image_margin`` to spare, for boxes that
    shrink under NPT); self pairs are kept for ``n != 0`` (an atom sees its own images).
    Memory is ``N^2 S`` candidates, meant for the small cells that need it.
    """
    cutoff = float(r_cutoff) + float(dr_threshold)
    offsets = _image_offsets(box, cutoff, image_margin)
    reach = np.abs(offsets).max(axis=0)
    num_images = len(offsets)
    default_box = jnp.asarray(box)
    threshold_sq = (float(dr_threshold) / 2.0) ** 2

    def candidates(position, **kwargs):
        n = position.shape[0]
        b = _current_box(default_box, kwargs)
        disp = functools.partial(displacement_fn, **kwargs)
        d0 = jax.vmap(lambda rj: jax.vmap(lambda ri: disp(rj, ri))(position))(position)  # [N, N, 3]
        lattice = space.transform(b, jnp.asarray(offsets, position.dtype))  # [S, 3]
        r2 = jnp.sum((d0[:, :, None, :] + lattice[None, None]) ** 2, axis=-1)  # [N, N, S]
        self_zero = jnp.eye(n, dtype=bool)[:, :, None] & (jnp.arange(num_images) == 0)[None, None, :]
        mask = (r2 < cutoff**2) & ~self_zero
        # The image set stays complete while cutoff * |b_a| + 1/2 <= reach_a for the current box.
        recip = jnp.linalg.inv(_lattice_rows_jnp(b)).T
        needed = cutoff * jnp.linalg.norm(recip, axis=1) + 0.5
        too_small = jnp.any(needed > jnp.asarray(reach, needed.dtype))
        return mask.reshape(-1), too_small

    @functools.partial(jax.jit, static_argnums=1)
    def build(position, capacity, error_code, **kwargs):
        n = position.shape[0]
        mask, too_small = candidates(position, **kwargs)
        cs = jnp.cumsum(mask)
        occupancy = cs[-1]
        slot = jnp.where(mask, cs - 1, capacity)  # out of range: dropped
        flat = jnp.arange(mask.shape[0])
        receivers = flat // (n * num_images)
        senders = (flat // num_images) % n
        image = flat % num_images
        full = jnp.full((capacity,), n, jnp.int32)
        rcv = full.at[slot].set(receivers.astype(jnp.int32), mode="drop")
        snd = full.at[slot].set(senders.astype(jnp.int32), mode="drop")
        img_idx = jnp.zeros((capacity,), jnp.int32).at[slot].set(image.astype(jnp.int32), mode="drop")
        images = jnp.asarray(offsets, position.dtype)[img_idx]
        error = partition.PartitionError(error_code)
        error = error.update(PEC.NEIGHBOR_LIST_OVERFLOW, occupancy > capacity)
        error = error.update(PEC.CELL_SIZE_TOO_SMALL, too_small)
        return jnp.stack([rcv, snd]), images, error, occupancy

    @jax.jit
    def count(position, **kwargs):
        return jnp.sum(candidates(position, **kwargs)[0])

    def allocate(position, extra_capacity: int = 0, **kwargs) -> ImageNeighborList:
        n = position.shape[0]
        occupancy = int(count(position, **kwargs))
        capacity = int(occupancy * capacity_multiplier + n * extra_capacity)
        capacity = max(1, min(capacity, n * n * num_images))
        idx, images, error, _ = build(position, capacity, jnp.zeros((), jnp.uint8), **kwargs)
        return ImageNeighborList(idx, images, position, error, capacity, Sparse, update)

    def update(position, neighbors: ImageNeighborList, **kwargs) -> ImageNeighborList:
        def rebuild(_):
            idx, images, error, _ = build(position, neighbors.max_occupancy, neighbors.error.code, **kwargs)
            return ImageNeighborList(idx, images, position, error, neighbors.max_occupancy, Sparse, update)

        if dr_threshold == 0:
            return rebuild(None)
        disp = functools.partial(displacement_fn, **kwargs)
        moved = jax.vmap(disp)(position, neighbors.reference_position)
        far = jnp.any(jnp.sum(moved**2, axis=-1) > threshold_sq)
        return jax.lax.cond(far, rebuild, lambda _: neighbors, None)

    return partition.NeighborListFns(allocate, update)


# ----------------------------------------------------------------------------------------
# The energy function
# ----------------------------------------------------------------------------------------


def _graph_from_pairs(positions, vectors, receivers, senders, species, cutoff, cell, pbc) -> jraph.GraphsTuple:
    """Padded graph (DESIGN.md layout) from [K] candidate pairs with their vectors (on device).

    Pairs that are unused (index N) or beyond ``cutoff`` become padding edges on the padding
    node N with zero shift, and are moved behind the real edges, so that ``n_edge`` is right.
    """
    n, k = positions.shape[0], receivers.shape[0]
    valid = (receivers < n) & (senders < n) & (jnp.sum(vectors**2, axis=-1) < cutoff**2)
    n_valid = jnp.sum(valid)
    index = jnp.where(valid, jnp.cumsum(valid) - 1, n_valid + jnp.cumsum(~valid) - 1)  # a permutation
    receivers = jnp.zeros((k,), jnp.int32).at[index].set(jnp.where(valid, receivers, n).astype(jnp.int32))
    senders = jnp.zeros((k,), jnp.int32).at[index].set(jnp.where(valid, senders, n).astype(jnp.int32))
    pos = jnp.concatenate([positions, jnp.zeros((1, 3), positions.dtype)])
    raw = pos[receivers] - pos[senders]
    vectors = jnp.zeros_like(vectors).at[index].set(jnp.where(valid[:, None], vectors, 0.0))
    shifts = jnp.where((receivers < n)[:, None], vectors - raw, 0.0)
    return jraph.GraphsTuple(
        nodes={"positions": pos, "species": jnp.concatenate([species, jnp.zeros((1,), species.dtype)])},
        edges={"shifts": shifts},
        globals={"cell": jnp.stack([cell, jnp.zeros_like(cell)]), "pbc": jnp.stack([pbc, jnp.zeros_like(pbc)])},
        senders=senders,
        receivers=receivers,
        n_node=jnp.array([n, 1], jnp.int32),
        n_edge=jnp.stack([n_valid, k - n_valid]).astype(jnp.int32),
    )


def energy_fn(
    potential,
    displacement_fn: Callable,
    box,
    species: Sequence[int | str],
    *,
    dr_threshold: float = 0.5,
    capacity_multiplier: float = 1.25,
    fractional_coordinates: bool = False,
    disable_cell_list: bool = False,
    multi_image: bool | None = None,
    image_margin: float = 0.1,
) -> tuple[partition.NeighborListFns, Callable]:
    """``(neighbor_fn, energy_fn)`` for a ``Potential`` in jax-md's conventions.

    Args:
      potential: a ``jaxpot.Potential`` (any model; its code runs unchanged).
      displacement_fn: from ``jax_md.space.free()``, ``periodic(side)`` or
        ``periodic_general(box, fractional_coordinates=...)``.
      box: ``None`` for free space; else the same box given to the space (scalar side,
        [3] sides, or [3, 3] with the lattice vectors as columns, jax-md's convention).
      species: atomic numbers (or symbols) of the N atoms, in order.
      dr_threshold: neighbour-list skin (Å): pairs are listed up to ``cutoff + dr_threshold``
        and the list is rebuilt when an atom has moved more than half of it.
      capacity_multiplier: spare capacity of the neighbour list.
      fractional_coordinates: positions are fractional (``periodic_general``'s default); the
        model then sees ``transform(box, R)``.
      disable_cell_list: use jax-md's all-pairs candidates instead of its cell list.
      multi_image: force (True) or forbid (False) the all-images list; default: when the
        cell is smaller than twice ``cutoff + dr_threshold`` (``needs_images``).
      image_margin: extra reach of the image set (fraction of the cutoff), so that the box
        may shrink under NPT; a box that shrinks further sets ``nbrs.cell_size_too_small``.

    Returns:
      ``neighbor_fn`` (``allocate(R, **kw)`` on the host, ``update(R, nbrs, **kw)`` /
      ``nbrs.update(R, **kw)`` inside jit) and ``energy_fn(R, neighbor, **kwargs) -> eV``;
      ``kwargs`` (``box``, ``perturbation``) go to ``displacement_fn`` as jax-md's
      ``npt_nose_hoover`` and ``quantity.pressure`` / ``quantity.stress`` pass them.

    Raises:
      ValueError: an element the potential does not know, or ``multi_image=True`` without a
        periodic box.

    Free space uses jax-md's all-pairs candidates (O(N^2) memory at allocation and rebuilds),
    fine for molecules up to a few thousand atoms. Every listed slot, padding included, goes
    through the model, so the cost per step is that of ``capacity`` edges:
    ``capacity_multiplier`` and the skin (``dr_threshold``) trade rebuilds and reallocations
    against edges computed.
    """
    numbers = _atomic_numbers(species)
    species_idx = jnp.asarray(graph_lib.species_indices(numbers, potential.species, "the species"), jnp.int32)
    cutoff = float(potential.cutoff)
    list_cutoff = cutoff + float(dr_threshold)
    periodic = box is not None
    if multi_image is None:
        multi_image = periodic and needs_images(box, list_cutoff)
    if multi_image and not periodic:
        raise ValueError("multi_image=True needs a periodic box")
    default_box = jnp.asarray(box) if periodic else None
    dtype = jnp.float64 if potential.dtype == "float64" else jnp.float32
    energy_of_graph = potential.energy_fn
    params = potential.params

    if multi_image:
        neighbor_fn = image_neighbor_list(
            displacement_fn, box, cutoff, dr_threshold, capacity_multiplier, image_margin
        )
    else:
        jmd_box = box if periodic else 1.0
        if periodic and np.ndim(box) == 2 and not np.allclose(np.triu(box), box):
            disable_cell_list = True  # jax-md's cell list needs an upper-triangular box
        neighbor_fn = partition.neighbor_list(
            displacement_fn,
            jmd_box,
            cutoff,
            dr_threshold=dr_threshold,
            capacity_multiplier=capacity_multiplier,
            disable_cell_list=disable_cell_list or not periodic,
            fractional_coordinates=fractional_coordinates,
            format=Sparse,
        )
        neighbor_fn = partition.NeighborListFns(_hashable_cell_size(neighbor_fn.allocate), neighbor_fn.update)

    def energy(position, neighbor=None, **kwargs):
        if neighbor is None:
            raise ValueError("jaxpot.md energy_fn needs neighbor=... (from neighbor_fn.allocate / nbrs.update)")
        n = position.shape[0]
        if n != species_idx.shape[0]:
            raise ValueError(f"got {n} positions for {species_idx.shape[0]} species")
        receivers, senders = neighbor.idx[0], neighbor.idx[1]
        r, s = jnp.minimum(receivers, n - 1), jnp.minimum(senders, n - 1)
        disp = functools.partial(displacement_fn, **kwargs)
        b = _current_box(default_box, kwargs) if periodic else None
        if isinstance(neighbor, ImageNeighborList):
            ref = neighbor.reference_position
            delta = jax.vmap(disp)(position, ref)  # each atom's (small) motion since the build
            lattice = space.transform(b, neighbor.images.astype(position.dtype))
            if kwargs.get("perturbation") is not None:
                lattice = space.raw_transform(kwargs["perturbation"], lattice)
            vectors = jax.vmap(disp)(ref[r], ref[s]) + lattice + delta[r] - delta[s]
        else:
            vectors = jax.vmap(disp)(position[r], position[s])
        real = space.transform(b, position) if (periodic and fractional_coordinates) else position
        if periodic:
            cell, pbc = _lattice_rows_jnp(b).astype(dtype), jnp.ones((3,), bool)
            if kwargs.get("perturbation") is not None:
                # jax-md's stress strains the displacements; models that read positions and the
                # cell (Ewald message passing) must see the same strain: x -> (1 + ε) x
                eps = jnp.asarray(kwargs["perturbation"], dtype)
                if eps.ndim == 0:  # isotropic (NPT's pressure): a scalar 1 + ε
                    real, cell = real * eps, cell * eps
                else:
                    real, cell = real @ eps.T, cell @ eps.T
        else:
            cell, pbc = jnp.zeros((3, 3), dtype), jnp.zeros((3,), bool)
        g = _graph_from_pairs(
            real.astype(dtype), vectors.astype(dtype), receivers, senders, species_idx, cutoff, cell, pbc
        )
        return energy_of_graph(params, g)[0]

    return neighbor_fn, energy


def _hashable_cell_size(allocate: Callable) -> Callable:
    """jax-md stores the fractional cell size, a jax array, in a static (metadata) field, which
    breaks pytree comparisons between two lists; store it as a float."""

    def wrapped(position, extra_capacity: int = 0, **kwargs):
        nbrs = allocate(position, extra_capacity, **kwargs)
        if nbrs.cell_size is not None and not isinstance(nbrs.cell_size, (int, float)) and np.size(nbrs.cell_size) == 1:
            nbrs = jmd_dataclasses.replace(nbrs, cell_size=float(np.asarray(nbrs.cell_size)))
        return nbrs

    return wrapped


def _atomic_numbers(species) -> np.ndarray:
    from jaxpot.elements import to_atomic_numbers

    if hasattr(species, "numbers"):
        return np.asarray(species.numbers)
    return np.asarray(to_atomic_numbers(np.asarray(species).reshape(-1).tolist()), dtype=np.int64)


# ----------------------------------------------------------------------------------------
# Simulations from ASE Atoms
# ----------------------------------------------------------------------------------------


class _System:
    """An ASE structure in jax-md's coordinates: positions, box, masses, rotation back."""

    def __init__(self, atoms):
        pbc = np.asarray(atoms.pbc, bool)
        if pbc.any() and not pbc.all():
            raise ValueError(
                f"simulate() handles molecules (pbc all False) and bulk cells (pbc all True), got pbc={pbc.tolist()}; "
                "for a slab, make it periodic in all three directions with vacuum along the normal."
            )
        self.periodic = bool(pbc.all())
        self.cell = np.asarray(atoms.cell.array, np.float64)
        if self.periodic:
            if abs(np.linalg.det(self.cell)) < 1e-9:
                raise ValueError("the periodic cell has no volume")
            rcell, q = atoms.cell.standard_form()  # rcell = cell @ q.T, lower triangular rows
            self.rotation = q  # x_original = x_standard @ q
            self.box = np.asarray(rcell, np.float64).T  # upper triangular, lattice vectors as columns
            self.position = np.asarray(atoms.get_scaled_positions(wrap=True), np.float64)
        else:
            self.rotation = np.eye(3)
            self.box = None
            self.position = np.asarray(atoms.positions, np.float64)

    def space(self):
        from jax_md import space as jspace

        if self.periodic:
            return jspace.periodic_general(jnp.asarray(self.box), fractional_coordinates=True)
        return jspace.free()

    def real(self, position, box) -> np.ndarray:
        """Positions in the original frame (Å)."""
        position = np.asarray(position, np.float64)
        if not self.periodic:
            return position
        return position @ (self.cell * self._scale(box))

    def _scale(self, box) -> float:
        if box is None or not self.periodic:
            return 1.0
        return float(np.cbrt(np.linalg.det(np.asarray(box, np.float64)) / np.linalg.det(self.box)))

    def vectors_out(self, v) -> np.ndarray:
        return np.asarray(v, np.float64) @ self.rotation

    def vectors_in(self, v) -> np.ndarray:
        return np.asarray(v, np.float64) @ self.rotation.T

    def cell_at(self, box) -> np.ndarray:
        return self.cell * self._scale(box)


def _quiet(fn: Callable) -> Callable:
    """Silence jax-md's int64 -> int32 scatter FutureWarning (its neighbour list under x64)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="scatter inputs have incompatible types", category=FutureWarning)
            return fn(*args, **kwargs)

    return wrapper


@_quiet
def simulate(
    potential,
    atoms,
    ensemble: str = "nve",
    temperature: float = 300.0,
    timestep: float = 0.5,
    steps: int = 1000,
    write_every: int = 10,
    out: str | None = None,
    seed: int = 0,
    *,
    friction: float = 0.01,
    tau_t: float | None = None,
    pressure: float = 0.0,
    tau_p: float | None = None,
    fmax: float = 0.05,
    dr_threshold: float = 0.5,
    capacity_multiplier: float = 1.25,
    progress: bool = True,
) -> list:
    """Run MD (or a FIRE relaxation) of ``atoms`` with jax-md, in jitted chunks.

    Args:
      potential: a ``jaxpot.Potential``.
      atoms: ``ase.Atoms``, a molecule (no pbc) or a bulk cell (pbc in all directions); its
        momenta are used when set, else Maxwell-Boltzmann momenta at ``temperature``.
      ensemble: "nve" (velocity Verlet), "nvt_langevin", "nvt_nose_hoover", "npt" (isotropic
        Nose-Hoover barostat and thermostat chains) or "fire" (relaxation).
      temperature: K.
      timestep: fs.
      steps: MD steps (for "fire": the most steps).
      write_every: steps per jitted chunk (``lax.fori_loop``); one frame is kept per chunk.
      out: extended XYZ trajectory (overwritten), or None.
      seed: random seed (momenta, Langevin noise).
      friction: Langevin friction (1/fs).
      tau_t: thermostat time constant (fs), default ``100 * timestep``.
      pressure: NPT target pressure (GPa).
      tau_p: barostat time constant (fs), default ``1000 * timestep``.
      fmax: FIRE stops when every force component is below this (eV/Å), checked per chunk.
      dr_threshold: neighbour-list skin (Å).
      capacity_multiplier: spare neighbour-list capacity.
      progress: tqdm progress bar.

    Returns:
      The frames (``ase.Atoms`` with energy and forces attached, momenta, and ``info`` with
      ``step``, ``time`` (fs), ``temperature`` (K), ``kinetic_energy``, ``total_energy``,
      ``reallocations`` (neighbour-list reallocations so far, each re-running a chunk),
      ``wall_time`` (s since the first chunk was started; the first frame's includes compilation),
      ``conserved_energy`` (NVE: total energy; Nose-Hoover NVT and NPT: jax-md's invariant of
      the extended system, which the integrator conserves);
      ``volume`` and ``pressure`` (GPa) for NPT; ``dipole`` where the potential has one),
      the first at step 0 and the last the final state. The same frames are written to ``out``.
    """
    import ase.io
    from ase import units
    from jax_md import minimize, quantity
    from jax_md import simulate as jmd
    from tqdm.auto import tqdm

    if ensemble not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r}; choose one of {list(ENSEMBLES)}")
    if steps < 0 or write_every < 1:
        raise ValueError(f"need steps >= 0 and write_every >= 1, got steps={steps}, write_every={write_every}")
    if timestep <= 0 or temperature < 0:
        raise ValueError(f"need timestep > 0 fs and temperature >= 0 K, got {timestep}, {temperature}")
    system = _System(atoms)
    if ensemble == "npt" and not system.periodic:
        raise ValueError("NPT needs a periodic cell (pbc all True)")
    displacement, shift = system.space()
    box0 = None if system.box is None else jnp.asarray(system.box)
    npt_margin = 0.25  # NPT: room for the cell to shrink by a quarter before the lists need rebuilding
    multi_image = None
    if ensemble == "npt":
        multi_image = needs_images(system.box, (potential.cutoff + dr_threshold) * (1.0 + npt_margin))
    neighbor_fn, energy = energy_fn(
        potential, displacement, box0, atoms.numbers, dr_threshold=dr_threshold,
        capacity_multiplier=capacity_multiplier, fractional_coordinates=system.periodic, multi_image=multi_image,
        image_margin=npt_margin if ensemble == "npt" else 0.1,
    )
    dt = timestep * units.fs
    kT = units.kB * temperature
    masses = jnp.asarray(atoms.get_masses(), jnp.float64)
    position = jnp.asarray(system.position)
    key = jax.random.PRNGKey(seed)
    momenta = atoms.get_momenta()
    momenta = jnp.asarray(system.vectors_in(momenta)) if np.any(momenta) else None
    tau_t_ = (tau_t if tau_t is not None else 100 * timestep) * units.fs
    tau_p_ = (tau_p if tau_p is not None else 1000 * timestep) * units.fs

    def box_kw(state) -> dict:
        return {"box": jmd.npt_box(state)} if ensemble == "npt" else {}

    def make(energy_or_zero):
        """jax-md's (init, apply) for ``ensemble`` on an energy function."""
        if ensemble == "nve":
            return jmd.nve(energy_or_zero, shift, dt)
        if ensemble == "nvt_langevin":
            return jmd.nvt_langevin(energy_or_zero, shift, dt, kT, gamma=friction / units.fs)
        if ensemble == "nvt_nose_hoover":
            return jmd.nvt_nose_hoover(energy_or_zero, shift, dt, kT, tau=tau_t_)
        if ensemble == "npt":
            return jmd.npt_nose_hoover(
                energy_or_zero, shift, dt, pressure * units.GPa, kT, barostat_kwargs={"tau": tau_p_},
                thermostat_kwargs={"tau": tau_t_},
            )
        return minimize.fire_descent(energy_or_zero, shift)

    _, apply = make(energy)
    # The initial state is built on a zero energy (jax-md's init functions are jitted and
    # would compile the model once more just for the first force); the first chunk computes
    # the real force before its first step.
    init, _ = make(lambda r, **_: 0.0 * jnp.sum(r))

    def init_state(nbrs):
        if ensemble == "nve":
            return init(key, position, kT, mass=masses, momenta=momenta, neighbor=nbrs)
        if ensemble == "npt":
            return init(key, position, box0, mass=masses, momenta=momenta, neighbor=nbrs)
        if ensemble == "fire":
            return init(position, neighbor=nbrs)
        return init(key, position, mass=masses, momenta=momenta, neighbor=nbrs)

    def observe(state, nbrs):
        """The frame's observables and the force at ``state.position``: energy and force (and,
        under NPT, the strain derivative) come from one ``value_and_grad``. That force also
        refreshes ``state.force``, which the zero-energy ``init`` left at zero, so the compiled
        chunk holds the model twice (the step's force and this), not three times."""
        ke = quantity.kinetic_energy(momentum=state.momentum, mass=state.mass)
        obs = {"kinetic_energy": ke, "position": state.position, "momentum": state.momentum}
        if ensemble == "npt":
            box = jmd.npt_box(state)

            def strained(position, eps):  # as jax-md's quantity.pressure, with the energy in the same pass
                return energy(position, neighbor=nbrs, box=box, perturbation=1.0 + eps)

            e_pot, (de_dr, de_deps) = jax.value_and_grad(strained, argnums=(0, 1))(
                state.position, jnp.zeros((), state.position.dtype)
            )
            volume = quantity.volume(3, box)
            obs.update(box=box, pressure=(2.0 * ke - de_deps) / (3.0 * volume))
            obs["conserved_energy"] = jmd.npt_nose_hoover_invariant(
                lambda *_, **__: e_pot, state, pressure * units.GPa, kT
            )
        else:
            e_pot, de_dr = jax.value_and_grad(lambda position: energy(position, neighbor=nbrs))(state.position)
            if ensemble == "nvt_nose_hoover":
                obs["conserved_energy"] = jmd.nvt_nose_hoover_invariant(lambda *_, **__: e_pot, state, kT)
            elif ensemble == "nve":
                obs["conserved_energy"] = e_pot + ke
        obs.update(energy=e_pot, forces=-de_dr)
        return obs

    list_cutoff = float(potential.cutoff) + float(dr_threshold)

    def update_list(state, nbrs, ref_scale):
        """``nbrs.update`` inside the loop; under NPT also rebuilt once the box has changed size
        by more than a quarter of the skin at the list cutoff (jax-md only watches atoms)."""
        if ensemble != "npt":
            return nbrs.update(state.position), ref_scale
        box = jmd.npt_box(state)
        scale = jnp.cbrt(jnp.abs(jnp.linalg.det(box)))
        before = nbrs.reference_position
        if dr_threshold > 0:
            stale = jnp.abs(scale / ref_scale - 1.0) * list_cutoff > 0.25 * dr_threshold
            # Half a cell away in fractional coordinates: the update's motion test rebuilds.
            before = jnp.where(stale, before + 0.5, before)
            nbrs = jmd_dataclasses.replace(nbrs, reference_position=before)
        nbrs = nbrs.update(state.position, box=box)
        rebuilt = jnp.any(nbrs.reference_position != before)
        return nbrs, jnp.where(rebuilt, scale, ref_scale)

    def chunk(state, nbrs, ref_scale, n):
        def body(_, carry):
            state, nbrs, ref_scale = carry
            nbrs, ref_scale = update_list(state, nbrs, ref_scale)
            state = apply(state, neighbor=nbrs)
            return state, nbrs, ref_scale

        state, nbrs, ref_scale = jax.lax.fori_loop(0, n, body, (state, nbrs, ref_scale))
        obs = observe(state, nbrs)
        return state.set(force=obs["forces"]), nbrs, ref_scale, obs

    # The number of steps is traced (a while loop), so one compilation serves every chunk,
    # the shorter last one and the initial frame (0 steps: it computes the first force) included.
    run_chunk = jax.jit(chunk)

    start_kw = {"box": box0} if ensemble == "npt" else {}
    nbrs = neighbor_fn.allocate(position, **start_kw)
    for extra in (1, 2, 4, 8, 16):  # a capacity_multiplier below 1 can overflow at once
        if not nbrs.did_buffer_overflow:
            break
        nbrs = neighbor_fn.allocate(position, extra_capacity=extra, **start_kw)
    state = init_state(nbrs)
    dof = 3 * len(atoms)
    dipoles = _dipole_fn(potential)
    frames: list = []
    reallocations = 0
    handle = open(out, "w") if out else None

    def record(obs, step: int):
        frame = atoms.copy()
        box = np.asarray(obs["box"]) if "box" in obs else system.box
        frame.positions = system.real(obs["position"], box)
        if system.periodic:
            frame.set_cell(system.cell_at(box), scale_atoms=False)
        frame.set_momenta(system.vectors_out(obs["momentum"]))
        e_pot, ke = float(obs["energy"]), float(obs["kinetic_energy"])
        from ase.calculators.singlepoint import SinglePointCalculator

        frame.calc = SinglePointCalculator(
            frame, energy=e_pot, free_energy=e_pot, forces=system.vectors_out(obs["forces"])
        )
        frame.info.update(
            step=step, time=step * timestep, temperature=2.0 * ke / (dof * units.kB), kinetic_energy=ke,
            total_energy=e_pot + ke, reallocations=reallocations, wall_time=time.perf_counter() - wall_start,
        )
        if "conserved_energy" in obs:
            frame.info["conserved_energy"] = float(obs["conserved_energy"])
        if "pressure" in obs:
            frame.info.update(volume=float(frame.get_volume()), pressure=float(obs["pressure"]) / units.GPa)
        if dipoles is not None:
            frame.info["dipole"] = dipoles(frame)
        frames.append(frame)
        if handle is not None:
            ase.io.write(handle, frame, format="extxyz")
            handle.flush()

    wall_start = time.perf_counter()
    try:
        ref_scale = jnp.cbrt(jnp.abs(jnp.linalg.det(box0))) if ensemble == "npt" else jnp.ones(())
        state, nbrs, ref_scale, obs = run_chunk(state, nbrs, ref_scale, jnp.int32(0))
        record(obs, 0)
        done = 0
        bar = tqdm(total=steps, disable=not progress, desc=f"jaxpot md {ensemble}", unit="step")
        while done < steps:
            n = min(write_every, steps - done)
            for _attempt in range(8):
                new_state, new_nbrs, new_scale, obs = run_chunk(state, nbrs, ref_scale, jnp.int32(n))
                if new_nbrs.cell_size_too_small:
                    raise RuntimeError(
                        "the cell shrank below what the neighbour list's image set covers; "
                        "restart from the last frame (a fresh image set is built from its cell)"
                    )
                if not new_nbrs.did_buffer_overflow:
                    break
                # Reallocate from the chunk's starting positions (with more room at every
                # retry), then re-run the chunk.
                nbrs = neighbor_fn.allocate(state.position, extra_capacity=2**_attempt, **box_kw(state))
                if ensemble == "npt":
                    ref_scale = jnp.cbrt(jnp.abs(jnp.linalg.det(jmd.npt_box(state))))
                reallocations += 1
            else:
                raise RuntimeError("the neighbour list kept overflowing; is the system exploding?")
            if ensemble == "npt" and not isinstance(nbrs, ImageNeighborList):
                h = float(np.min(plane_spacings(np.asarray(obs["box"]))))
                if h <= 2.0 * potential.cutoff:
                    raise RuntimeError(
                        f"the cell shrank to plane spacing {h:.2f} Å, below twice the cutoff; the minimum-image "
                        "neighbour list no longer holds: restart from the last frame (it then uses all images)"
                    )
            state, nbrs, ref_scale = new_state, new_nbrs, new_scale
            done += n
            bar.update(n)
            record(obs, done)
            if not np.all(np.isfinite(np.asarray(obs["position"]))):
                raise RuntimeError(f"non-finite positions at step {done}: the simulation blew up (time step too large?)")
            if ensemble == "fire" and float(np.max(np.abs(np.asarray(obs["forces"])))) < fmax:
                break
        bar.close()
    finally:
        if handle is not None:
            handle.close()
    return frames


def _dipole_fn(potential) -> Callable | None:
    """``atoms -> [3] e·Å`` when the potential predicts dipoles, else None."""
    if getattr(potential, "dipole", None) is None and getattr(potential, "dipole_fn", None) is None:
        return None

    def fn(atoms):
        result = potential.calculate(atoms)
        value = result.get("dipole")
        return None if value is None else np.asarray(value, np.float64)

    return fn


def kinetic_temperature(momenta, masses) -> float:
    """Kinetic temperature (K) from ASE momenta [N, 3] and masses [N] (3N degrees of freedom)."""
    from ase import units

    momenta, masses = np.asarray(momenta, np.float64), np.asarray(masses, np.float64)
    return float(np.sum(momenta**2 / masses[:, None]) / (momenta.size * units.kB))

