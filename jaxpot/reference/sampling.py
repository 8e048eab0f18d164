"""Structures to label: Langevin MD and normal-mode sampling with the reference method.

Both return fresh ``Atoms`` (numbers, positions, cell, pbc; no velocities, no calculator),
ready for ``label``. Units are ASE's: Å, eV, fs, K.
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms, units


def _bare(atoms: Atoms) -> Atoms:
    """A copy holding only what defines the structure."""
    return Atoms(numbers=atoms.numbers.copy(), positions=atoms.positions.copy(), cell=atoms.cell.copy(),
                 pbc=atoms.pbc.copy())


def _check(atoms, temperature, n_frames):
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise ValueError("sampling needs a non-empty ase.Atoms structure")
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError("the structure has NaN or infinite positions")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")


def sample_md(
    atoms: Atoms,
    calc,
    temperature: float,
    n_frames: int,
    interval: int = 10,
    timestep: float = 0.5,
    seed: int = 0,
    friction: float = 0.01,
    equilibration: int = 1000,
    progress: bool = False,
) -> list[Atoms]:
    """Frames from Langevin MD with ``calc``.

    Velocities start from a Maxwell-Boltzmann distribution at ``temperature`` (K), without
    centre-of-mass motion (and without rotation for a molecule). After ``equilibration`` steps,
    every ``interval``-th step is kept until there are ``n_frames``. ``timestep`` in fs,
    ``friction`` in 1/fs. ``seed`` fixes the initial velocities and the thermostat's noise.
    """
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
    from tqdm.auto import tqdm

    _check(atoms, temperature, n_frames)
    if int(interval) < 1 or int(equilibration) < 0:
        raise ValueError(f"interval must be >= 1 and equilibration >= 0, got {interval} and {equilibration}")
    if not timestep > 0 or not friction > 0:
        raise ValueError(f"timestep (fs) and friction (1/fs) must be positive, got {timestep} and {friction}")
    n_frames, interval, equilibration = int(n_frames), int(interval), int(equilibration)
    rng = np.random.default_rng(seed)
    work = _bare(atoms)
    work.calc = calc
    thermalize_momenta(work, temperature, rng=rng)  # Maxwell-Boltzmann (ASE 3.29 name)
    Stationary(work)
    if not work.pbc.any() and len(work) > 1:
        ZeroRotation(work)
    work.set_constraint(FixCom())  # ASE's recommended replacement for Langevin(fixcm=True)
    dyn = Langevin(work, timestep * units.fs, temperature_K=temperature, friction=friction / units.fs,
                   fixcm=False, rng=rng)
    bar = tqdm(total=equilibration + n_frames * interval, desc=f"MD {temperature:g} K", unit="step",
               disable=not progress, mininterval=1.0)
    dyn.attach(lambda: bar.update(dyn.nsteps - bar.n), interval=1)
    try:
        dyn.run(equilibration)
        frames = []
        for _ in range(n_frames):
            dyn.run(interval)
            if not np.all(np.isfinite(work.positions)):
                raise RuntimeError(f"MD blew up after {dyn.nsteps} steps; try a smaller timestep or temperature")
            frames.append(_bare(work))
    finally:
        bar.close()
        work.calc = None
    return frames


def _n_zero_modes(atoms: Atoms) -> int:
    """3 translations for a periodic cell; 3 + 2 (linear) or 3 + 3 rotations for a molecule."""
    if atoms.pbc.any():
        return 3
    if len(atoms) == 1:
        return 3
    inertia = np.linalg.eigvalsh(_inertia_tensor(atoms))
    return 5 if inertia[0] < 1e-3 * max(inertia[-1], 1e-12) else 6


def _inertia_tensor(atoms: Atoms) -> np.ndarray:
    m = atoms.get_masses()
    r = atoms.positions - (m[:, None] * atoms.positions).sum(0) / m.sum()
    return np.eye(3) * np.sum(m * np.sum(r * r, axis=1)) - np.einsum("i,ij,ik->jk", m, r, r)


def hessian(atoms: Atoms, calc, delta: float = 0.005) -> np.ndarray:
    """Cartesian Hessian [3N, 3N] in eV/Å² by central differences of the forces (step ``delta`` Å)."""
    work = _bare(atoms)
    work.calc = calc
    n = len(work)
    h = np.zeros((3 * n, 3 * n))
    for i in range(n):
        for k in range(3):
            f = []
            for sign in (1.0, -1.0):
                work.positions[i, k] += sign * delta
                f.append(work.get_forces().reshape(-1))
                work.positions[i, k] -= sign * delta
            h[3 * i + k] = -(f[0] - f[1]) / (2 * delta)
    work.calc = None
    return 0.5 * (h + h.T)


def normal_modes(atoms: Atoms, hess: np.ndarray):
    """Harmonic analysis: (eigenvalues ω² [eV/(Å² amu)], mass-weighted modes [3N, n]) of the
    vibrations, the ``_n_zero_modes`` smallest in magnitude (translations, rotations) removed."""
    m = np.repeat(atoms.get_masses(), 3)
    hmw = hess / np.sqrt(np.outer(m, m))
    w2, v = np.linalg.eigh(0.5 * (hmw + hmw.T))
    keep = np.sort(np.argsort(np.abs(w2))[_n_zero_modes(atoms):])
    return w2[keep], v[:, keep]


def wavenumbers(w2: np.ndarray) -> np.ndarray:
    """ω² in eV/(Å² amu) -> wavenumbers in cm⁻¹ (negative for imaginary modes)."""
    c_cm_per_fs = 2.99792458e-5
    omega = np.sqrt(np.abs(w2)) * units.fs  # rad/fs
    return np.sign(w2) * omega / (2 * np.pi * c_cm_per_fs)


def displacements(atoms: Atoms, w2: np.ndarray, modes: np.ndarray, temperature: float, n: int, rng) -> np.ndarray:
    """``n`` Cartesian displacements [n, N, 3] drawn from the classical Boltzmann distribution of
    the harmonic oscillators: each normal coordinate q_i ~ N(0, kT/ω_i²), so that each mode
    holds kT/2 of potential energy on average."""
    kt = units.kB * temperature
    sigma = np.sqrt(kt / np.abs(w2))  # Å·sqrt(amu)
    q = rng.standard_normal((n, len(w2))) * sigma
    m = np.repeat(atoms.get_masses(), 3)
    return ((q @ modes.T) / np.sqrt(m)).reshape(n, len(atoms), 3)


def sample_normal_modes(
    atoms: Atoms,
    calc,
    temperature: float,
    n_frames: int,
    seed: int = 0,
    optimize: bool = True,
    fmax: float = 1e-3,
    max_steps: int = 1000,
    delta: float = 0.005,
    progress: bool = False,
) -> list[Atoms]:
    """Normal-mode sampling (as for the ANI data sets, Smith et al., Chem. Sci. 8, 3192 (2017)).

    Optimise the structure with ``calc`` (BFGS to ``fmax`` eV/Å, unless ``optimize=False``),
    compute the Hessian by finite differences of the forces, and displace the minimum along
    the normal modes with amplitudes drawn from the classical Boltzmann distribution at
    ``temperature`` (K): normal coordinate q_i ~ N(0, kT/ω_i²). The 6 (5 for a linear molecule,
    3 for a periodic cell) zero modes are skipped; imaginary modes, if the structure is not a
    minimum, are sampled with |ω| and a warning.
    """
    from ase.optimize import BFGS

    _check(atoms, temperature, n_frames)
    work = _bare(atoms)
    if optimize:
        work.calc = calc
        opt = BFGS(work, logfile=None)
        if not opt.run(fmax=fmax, steps=max_steps):
            warnings.warn(f"geometry optimisation did not reach fmax={fmax} eV/Å in {max_steps} steps", stacklevel=2)
        work.calc = None
    hess = hessian(work, calc, delta)
    w2, modes = normal_modes(work, hess)
    if len(w2) == 0:
        raise ValueError("the structure has no vibrational modes to sample (a single atom?)")
    n_imag = int(np.sum(wavenumbers(w2) < -10.0))  # imaginary beyond numerical noise
    if n_imag:
        warnings.warn(f"the structure has {n_imag} imaginary mode(s); they are sampled with |ω|. "
                      "Optimise it better (smaller fmax) for a proper minimum.", stacklevel=2)
    rng = np.random.default_rng(seed)
    d = displacements(work, w2, modes, temperature, int(n_frames), rng)
    frames = []
    for k in range(int(n_frames)):
        frame = _bare(work)
        frame.positions += d[k]
        frames.append(frame)
    return frames
