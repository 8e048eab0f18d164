"""Harmonic IR and Raman spectra of a model: Hessian and tensor derivatives as JAX transforms.

``derivatives`` differentiates a Potential's pure functions with respect to positions, in
float64 (DESIGN.md "Precision"): the Hessian by ``jax.hessian`` (or chunked Hessian-vector
products, ``chunk_size``), the dipole and polarizability derivatives by ``jax.jacfwd`` of
``Potential.dipole_fn()`` / ``polarizability_fn()``. ``analyse`` turns any set of derivatives
(from a model, a reference method, or a file) into a ``HarmonicSpectrum``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxpot.spectra.harmonic import NormalModes, harmonic_analysis
from jaxpot.spectra.intensities import ir_intensities, raman_activities


@dataclasses.dataclass(frozen=True)
class HarmonicSpectrum:
    """Normal modes with their IR intensities and Raman activities.

    Attributes:
      modes: the vibrations (``jaxpot.spectra.harmonic.NormalModes``).
      ir: [M] km/mol, or None without dipole derivatives.
      raman: [M] Å⁴/amu, or None without polarizability derivatives.
      depolarization: [M] ratios (plane-polarised light), or None.
    """

    modes: NormalModes
    ir: np.ndarray | None = None
    raman: np.ndarray | None = None
    depolarization: np.ndarray | None = None

    @property
    def wavenumbers(self) -> np.ndarray:
        return self.modes.wavenumbers

    def table(self) -> str:
        """A plain-text table: mode, wavenumber (cm⁻¹; imaginary ones with an "i"), IR (km/mol),
        Raman (Å⁴/amu), depolarisation ratio."""
        head = f"{'mode':>4} {'cm^-1':>10}"
        head += f" {'IR km/mol':>11}" if self.ir is not None else ""
        head += f" {'Raman A^4/amu':>14} {'depol':>7}" if self.raman is not None else ""
        rows = [head]
        for k, nu in enumerate(self.wavenumbers):
            row = f"{k:>4d} {abs(nu):>9.2f}" + ("i" if nu < 0 else " ")  # imaginary modes: 123.45i
            row += f" {self.ir[k]:>11.3f}" if self.ir is not None else ""
            row += f" {self.raman[k]:>14.3f} {self.depolarization[k]:>7.3f}" if self.raman is not None else ""
            rows.append(row)
        return "\n".join(rows)


def analyse(hessian, masses, positions, dipole_derivatives=None, polarizability_derivatives=None,
            *, periodic: bool = False) -> HarmonicSpectrum:
    """Harmonic analysis with optional intensities.

    Args:
      hessian: [3N, 3N] or [N, 3, N, 3] eV/Å².
      masses: [N] amu. positions: [N, 3] Å.
      dipole_derivatives: [3N, 3] or [N, 3, 3] e (``[i, b, a] = dμ_a/dx_ib``), or None.
      polarizability_derivatives: [3N, 3, 3] or [N, 3, 3, 3] Å² (``[i, b, a, c] = dα_ac/dx_ib``), or None.
      periodic: project only translations.
    """
    modes = harmonic_analysis(hessian, masses, positions, periodic=periodic)
    ir = None if dipole_derivatives is None else ir_intensities(dipole_derivatives, modes)
    raman = depol = None
    if polarizability_derivatives is not None:
        raman, depol = raman_activities(polarizability_derivatives, modes)
    return HarmonicSpectrum(modes, ir, raman, depol)


def tensor_derivatives(tensor_fn: Callable, params, graph, n_atoms: int) -> jnp.ndarray:
    """``d tensor / d positions`` of the first graph: [n, 3, *shape] (``[i, b, ...] = dT/dx_ib``)
    for ``tensor_fn(params, graph) -> [G, *shape]``, by forward mode (3 N_pad JVPs)."""

    def first(positions):
        g = graph._replace(nodes={**graph.nodes, "positions": positions})
        return tensor_fn(params, g)[0]

    jac = jax.jacfwd(first)(graph.nodes["positions"])  # [*shape, N_pad, 3]
    jac = jnp.moveaxis(jnp.moveaxis(jac, -1, 0), -1, 0)  # [N_pad, 3, *shape]
    return jac[:n_atoms]


def response_fn(outputs_fn: Callable, keys: tuple[str, ...] = (), chunk_size: int | None = None) -> Callable:
    """Pure ``(params, graph) -> (hessian [N_pad, 3, N_pad, 3], {key: [N_pad, 3, *shape]})``: the
    Hessian of the total energy and the position derivatives of the first graph's tensors
    ``outputs_fn(params, graph)[key]`` ("dipole", "polarizability"), all from one forward-mode
    sweep over ``(dE/dR, tensors)`` (a single compilation; the tensors ride along the Hessian's
    3N tangents). ``chunk_size``: tangents per batch (``jax.linearize`` + ``lax.map``), so memory
    stays bounded for large systems."""
    from jaxpot.graph import graph_mask

    def fn(params, graph):
        def gradient_and_tensors(positions):
            def total(pos):
                out = outputs_fn(params, graph._replace(nodes={**graph.nodes, "positions": pos}))
                energy = jnp.sum(jnp.where(graph_mask(graph), out["energy"], 0.0))
                return energy, {k: out[k][0] for k in keys}

            return jax.grad(total, has_aux=True)(positions)

        positions = graph.nodes["positions"]
        n = positions.shape[0]
        if chunk_size is None:
            hess, tensors = jax.jacfwd(gradient_and_tensors)(positions)
            tensors = {k: jnp.moveaxis(jnp.moveaxis(v, -1, 0), -1, 0) for k, v in tensors.items()}
            return hess, tensors
        _, jvp = jax.linearize(gradient_and_tensors, positions)
        basis = jnp.eye(3 * n, dtype=positions.dtype).reshape(3 * n, n, 3)
        columns, tensors = jax.lax.map(jvp, basis, batch_size=chunk_size)  # [3N, N, 3], {k: [3N, *shape]}
        hess = jnp.transpose(columns.reshape(n, 3, n, 3), (2, 3, 0, 1))
        return hess, {k: v.reshape((n, 3) + v.shape[1:]) for k, v in tensors.items()}

    return fn


def derivatives(potential, atoms, *, dipole: bool = True, polarizability: bool = False,
                chunk_size: int | None = None) -> dict[str, np.ndarray]:
    """Hessian and tensor derivatives of one molecule or cell under ``potential``, in float64.

    Returns ``{"hessian": [3N, 3N] eV/Å², "dipole_derivatives": [N, 3, 3] e,
    "polarizability_derivatives": [N, 3, 3, 3] Å²}`` (the last two when asked for; a potential
    without that head raises ValueError). ``chunk_size``: Hessian columns per batch of HVPs
    (memory-bounded for large systems; None = all at once). Compiled once per shape bucket.
    """
    pot = potential.astype("float64")
    keys = []
    if dipole:
        pot.dipole_fn()  # raises a ValueError that says how to get the head
        keys.append("dipole")
    if polarizability:
        pot.polarizability_fn()
        keys.append("polarizability")
    n = len(atoms)
    fn = pot._jit(f"spectra_response_{'_'.join(keys)}_{chunk_size}",
                  lambda: response_fn(pot.outputs_fn, tuple(keys), chunk_size))
    hess, tensors = fn(pot.params, pot.prepare(pot.graph(atoms)))
    out = {"hessian": np.asarray(hess, np.float64)[:n, :, :n, :].reshape(3 * n, 3 * n)}
    for k, v in tensors.items():
        out[f"{k}_derivatives"] = np.asarray(v, np.float64)[:n]
    return out


def harmonic_spectrum(potential, atoms, *, ir: bool = True, raman: bool = False,
                      chunk_size: int | None = None) -> HarmonicSpectrum:
    """``analyse(derivatives(potential, atoms, ...))`` at the geometry of ``atoms`` (relax it first,
    e.g. with ``relax``; a non-stationary point gives shifted or imaginary modes)."""
    d = derivatives(potential, atoms, dipole=ir, polarizability=raman, chunk_size=chunk_size)
    return analyse(d["hessian"], atoms.get_masses(), atoms.positions, d.get("dipole_derivatives"),
                   d.get("polarizability_derivatives"), periodic=bool(np.any(atoms.pbc)))


def relax(atoms, calc, fmax: float = 1e-4, steps: int = 2000):
    """A copy of ``atoms`` relaxed with ASE's BFGS under ``calc`` to max force ``fmax`` eV/Å;
    raises RuntimeError if it does not converge in ``steps``."""
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = calc
    if not BFGS(work, logfile=None).run(fmax=fmax, steps=steps):
        raise RuntimeError(f"the geometry did not relax to fmax={fmax} eV/Å in {steps} BFGS steps")
    work.calc = None
    return work
