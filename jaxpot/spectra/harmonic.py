"""Harmonic analysis of a Cartesian Hessian: mass weighting, projection of translations and
rotations, frequencies in cm⁻¹ and normal modes.

Conventions (those of Wilson, Decius & Cross, and of ORCA/Gaussian output):

* the Hessian ``H`` [3N, 3N] is in eV/Å², masses in amu, Cartesian index ``3 i + a``
  (atom ``i``, axis ``a``);
* the mass-weighted Hessian ``H_mw = M^-1/2 H M^-1/2`` has eigenvalues ``ω²`` in eV/(Å² amu)
  and orthonormal eigenvectors ``L`` [3N, M]; the normal coordinates are ``Q = Lᵀ M^1/2 Δx``
  (Å·amu^1/2);
* wavenumbers ``ν̃ = ω / (2π c)`` in cm⁻¹, negative for imaginary modes (``ω² < 0``);
* translations and rotations about the centre of mass are projected out (Eckart conditions,
  e.g. Miller, Handy & Adams, J. Chem. Phys. 72, 99 (1980), Eq. 4.1); the vibrations are the
  eigenvectors of ``H_mw`` in the orthogonal complement of that rigid-body space, so exactly
  3N-6 (3N-5 for a linear molecule, 3N-3 for a periodic cell) remain.

This is host-side linear algebra on a small matrix (numpy, float64); the Hessian itself comes
from a JAX transform of the potential (``jaxpot.spectra.analysis``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxpot.spectra.units import WAVENUMBER_PER_SQRT_EV_A2_AMU


@dataclasses.dataclass(frozen=True)
class NormalModes:
    """The vibrations of a harmonic analysis, sorted by ``eigenvalues``.

    Attributes:
      wavenumbers: [M] cm⁻¹ (negative for imaginary modes).
      eigenvalues: [M] ω² in eV/(Å² amu).
      mass_weighted: [3N, M] orthonormal eigenvectors ``L`` of the mass-weighted Hessian.
      masses: [N] amu.
    """

    wavenumbers: np.ndarray
    eigenvalues: np.ndarray
    mass_weighted: np.ndarray
    masses: np.ndarray

    @property
    def cartesian(self) -> np.ndarray:
        """[M, N, 3] Cartesian displacements ``M^-1/2 L``, each normalised to unit length
        (what ORCA and Gaussian print as "normal modes")."""
        d = self.mass_weighted / np.sqrt(np.repeat(self.masses, 3))[:, None]
        d = d / np.linalg.norm(d, axis=0, keepdims=True)
        return d.T.reshape(-1, len(self.masses), 3)

    @property
    def reduced_masses(self) -> np.ndarray:
        """[M] amu, ``1 / Σ_i L_ik² / m_i`` (Gaussian's convention: m_H for H2, not m_H / 2)."""
        inv_m = 1.0 / np.repeat(self.masses, 3)
        return 1.0 / np.sum(self.mass_weighted**2 * inv_m[:, None], axis=0)

    def __len__(self) -> int:
        return len(self.wavenumbers)


def as_matrix(hessian, n_atoms: int | None = None) -> np.ndarray:
    """A Hessian given as [N, 3, N, 3] or [3N, 3N] -> symmetric [3N, 3N] float64.

    Raises ValueError for other shapes, a size that does not match ``n_atoms``, or NaN/inf.
    """
    h = np.asarray(hessian, dtype=np.float64)
    if h.ndim == 4 and h.shape[1] == 3 and h.shape[3] == 3 and h.shape[0] == h.shape[2]:
        h = h.reshape(3 * h.shape[0], 3 * h.shape[0])
    if h.ndim != 2 or h.shape[0] != h.shape[1] or h.shape[0] % 3:
        raise ValueError(f"a Hessian must be [3N, 3N] or [N, 3, N, 3], got shape {np.shape(hessian)}")
    if n_atoms is not None and h.shape[0] != 3 * n_atoms:
        raise ValueError(f"the Hessian is {h.shape[0]}x{h.shape[0]} but there are {n_atoms} atoms (need 3N = {3 * n_atoms})")
    if not np.all(np.isfinite(h)):
        raise ValueError("the Hessian holds NaN or inf; check the geometry and the model's precision (use float64)")
    return 0.5 * (h + h.T)


def _check_masses(masses, n_atoms: int) -> np.ndarray:
    m = np.asarray(masses, dtype=np.float64).reshape(-1)
    if m.shape != (n_atoms,):
        raise ValueError(f"need one mass per atom ({n_atoms}), got {m.shape[0]}")
    if not np.all(m > 0):
        raise ValueError(f"masses must be positive (amu), got {m}")
    return m


def mass_weight(hessian, masses) -> np.ndarray:
    """``M^-1/2 H M^-1/2`` [3N, 3N] in eV/(Å² amu)."""
    h = as_matrix(hessian)
    m = np.repeat(_check_masses(masses, h.shape[0] // 3), 3)
    return h / np.sqrt(np.outer(m, m))


def rigid_body_basis(positions, masses, rotations: bool = True, tol: float = 1e-6) -> np.ndarray:
    """[3N, k] orthonormal mass-weighted translations (3) and rotations (3, or 2 if linear, 0 for
    one atom) about the centre of mass; ``rotations=False`` for periodic cells (k = 3).

    The rotation of atom ``i`` about axis ``a`` is ``sqrt(m_i) (e_a × r_i)``; directions with a
    singular value below ``tol`` times the largest are dropped, which is how a linear molecule
    (and a single atom) loses its rotations about the axis.
    """
    r = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    m = _check_masses(masses, r.shape[0])
    sqrt_m = np.sqrt(m)
    vectors = []
    for a in range(3):
        t = np.zeros_like(r)
        t[:, a] = sqrt_m
        vectors.append(t.reshape(-1))
    if rotations:
        centred = r - (m[:, None] * r).sum(0) / m.sum()
        for a in range(3):
            axis = np.zeros(3)
            axis[a] = 1.0
            vectors.append((sqrt_m[:, None] * np.cross(axis, centred)).reshape(-1))
    d = np.stack(vectors, axis=1)
    u, s, _ = np.linalg.svd(d, full_matrices=False)
    return u[:, s > tol * s.max()]


def projector(basis: np.ndarray) -> np.ndarray:
    """``1 - D Dᵀ`` [3N, 3N] for an orthonormal ``basis`` D [3N, k]."""
    return np.eye(basis.shape[0]) - basis @ basis.T


def eigenvalues_to_wavenumbers(eigenvalues) -> np.ndarray:
    """ω² in eV/(Å² amu) -> ν̃ in cm⁻¹, negative for imaginary modes."""
    w2 = np.asarray(eigenvalues, dtype=np.float64)
    return np.sign(w2) * np.sqrt(np.abs(w2)) * WAVENUMBER_PER_SQRT_EV_A2_AMU


def harmonic_analysis(hessian, masses, positions=None, *, project: bool = True, periodic: bool = False) -> NormalModes:
    """Normal modes and wavenumbers of a Cartesian Hessian.

    Args:
      hessian: [3N, 3N] or [N, 3, N, 3] eV/Å².
      masses: [N] amu.
      positions: [N, 3] Å; needed to project rotations (``project=True`` and not ``periodic``).
      project: remove translations and rotations (Eckart); without it all 3N modes come back.
      periodic: a periodic cell: project only the three translations.

    Returns:
      ``NormalModes`` with the 3N-6 (3N-5 linear, 3N-3 periodic) vibrations, or 3N modes without
      projection, in ascending ω².
    """
    h = as_matrix(hessian)
    n = h.shape[0] // 3
    m = _check_masses(masses, n)
    hmw = mass_weight(h, m)
    if project:
        if positions is None and not periodic:
            raise ValueError("projecting rotations needs the positions [N, 3] Å (or periodic=True, or project=False)")
        pos = np.zeros((n, 3)) if positions is None else np.asarray(positions, np.float64).reshape(n, 3)
        rigid = rigid_body_basis(pos, m, rotations=not periodic)
        # Orthonormal basis of the vibrational space: the complement of the rigid-body vectors.
        u, _, _ = np.linalg.svd(rigid, full_matrices=True)
        vib = u[:, rigid.shape[1]:]
        w2, c = np.linalg.eigh(vib.T @ hmw @ vib)
        modes = vib @ c
    else:
        w2, modes = np.linalg.eigh(hmw)
    # A deterministic sign: the largest component of each mode positive.
    idx = np.argmax(np.abs(modes), axis=0)
    modes = modes * np.sign(modes[idx, np.arange(modes.shape[1])])[None, :]
    return NormalModes(eigenvalues_to_wavenumbers(w2), w2, modes, m)


def projected_wavenumbers(hessian, masses, positions, periodic: bool = False) -> np.ndarray:
    """[3N] wavenumbers (cm⁻¹) of ``P H_mw P``: the vibrations plus k exact zeros for the
    projected translations and rotations (as ORCA prints them)."""
    hmw = mass_weight(hessian, masses)
    p = projector(rigid_body_basis(positions, masses, rotations=not periodic))
    return eigenvalues_to_wavenumbers(np.linalg.eigvalsh(p @ hmw @ p))
