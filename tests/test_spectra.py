"""jaxpot.spectra: harmonic analysis, IR/Raman intensities, dynamics spectra, reference, CLI."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.data import atomic_masses

import jaxpot
from jaxpot import graph as graph_lib
from jaxpot.nn import graph_sum
from jaxpot.spectra import (
    analyse,
    broaden,
    compare,
    derivatives,
    harmonic_analysis,
    ir_spectrum,
    power_spectrum,
    projected_wavenumbers,
    raman_activities,
    raman_spectrum,
    tensor_derivatives,
    tensors_along,
)
from jaxpot.spectra.units import BOHR, HARTREE, KM_PER_MOL_PER_E2_AMU, SPEED_OF_LIGHT

# the team's shared data folder next to the repository (never copied into it)
ORCA = Path(__file__).parents[2] / "shared" / "data" / "dipole_polar" / "schnetpack_orca_h2o2_response.npz"

# Printed by ORCA 4.0.1 for this geometry and Hessian (PBE0/def2-TZVP, NumFreq; schnetpack
# tests/data/test_orca.log): "VIBRATIONAL FREQUENCIES", "IR SPECTRUM" (T**2, km/mol) and
# "RAMAN SPECTRUM" (activity Å⁴/amu, depolarisation ratio).
ORCA_WAVENUMBERS = [844.87, 1837.91, 1880.70, 2669.69, 3027.99, 3563.91]
ORCA_IR = [38.862484, 2.785590, 132.425972, 305.710947, 575.934457, 0.859287]
ORCA_RAMAN = [23.151054, 11.803015, 12.510164, 756.838653, 422.002849, 32.909623]
ORCA_DEPOLARIZATION = [0.508142, 0.544121, 0.750000, 0.165980, 0.750000, 0.070108]


def _orca():
    if not ORCA.exists():
        pytest.skip(f"{ORCA} not present")
    d = np.load(ORCA)
    masses = atomic_masses[d["numbers"]]  # ORCA: H 1.008, O 15.999, as ASE
    return d, masses, d["positions"] * BOHR, d["hessian"] * HARTREE / BOHR**2


def _unscramble_polarizability_derivatives(p):
    """The fixture's 3x3 blocks hold ORCA's six components (xx, yy, zz, xy, xz, yz, as in the
    .hess file) written into the upper triangle in row order (xx, xy, xz, yy, yz, zz) and
    mirrored; rebuild the symmetric tensors. (Read as given, the blocks break the molecule's
    C2 symmetry and none of ORCA's activities come out; unscrambled, all six agree to 1e-7.)"""
    rows, cols = np.triu_indices(3)
    six = p[..., rows, cols]
    out = np.zeros_like(p)
    for k, (a, c) in enumerate([(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]):
        out[..., a, c] = out[..., c, a] = six[..., k]
    return out


def test_orca_fixture_frequencies_ir_raman():
    d, masses, positions, hessian = _orca()
    spectrum = analyse(
        hessian, masses, positions, d["dipole_derivatives"],  # e·bohr/bohr = e
        _unscramble_polarizability_derivatives(d["polarizability_derivatives"]) * BOHR**2,  # bohr² -> Å²
    )
    # ORCA's conversion constants differ from CODATA 2018 in the 5th digit.
    np.testing.assert_allclose(spectrum.wavenumbers, ORCA_WAVENUMBERS, rtol=5e-5)
    np.testing.assert_allclose(spectrum.ir, ORCA_IR, rtol=2e-4)
    np.testing.assert_allclose(spectrum.raman, ORCA_RAMAN, rtol=1e-5)
    np.testing.assert_allclose(spectrum.depolarization, ORCA_DEPOLARIZATION, atol=1e-5)
    # ORCA's six projected rigid-body modes print as 0.00 cm⁻¹: so do ours.
    full = projected_wavenumbers(hessian, masses, positions)
    assert np.sum(np.abs(full) < 0.01) == 6
    np.testing.assert_allclose(np.sort(full)[6:], spectrum.wavenumbers, atol=1e-6)
    same = compare(spectrum, spectrum, match="overlap")
    assert same["rms_wavenumber"] == 0.0 and abs(same["ir_correlation"] - 1.0) < 1e-12
    # The fixture's geometry is not a minimum: without projection the rotations mix in.
    assert np.abs(harmonic_analysis(hessian, masses, project=False).wavenumbers[6:] - spectrum.wavenumbers).max() > 1.0


def test_orca_dipole_derivative_layout_obeys_rotation_sum_rule():
    """``[i, b, a] = dμ_a/dx_ib``: rotating the molecule by θ rotates its dipole,
    Σ_ib dμ_a/dx_ib (θ × r_i)_b = (θ × μ)_a, and translating it leaves a neutral dipole alone."""
    d, _, positions, _ = _orca()
    apt = d["dipole_derivatives"]  # [N, 3 (b), 3 (a)], e
    r = d["positions"]  # bohr, as the dipole (e·bohr)
    np.testing.assert_allclose(apt.sum(axis=0), 0.0, atol=0.02)
    swapped_error = 0.0
    for theta in np.eye(3):
        change = np.einsum("iba,ib->a", apt, np.cross(theta, r))
        np.testing.assert_allclose(change, np.cross(theta, d["dipole_moment"]), atol=0.015)
        swapped = np.einsum("iab,ib->a", apt, np.cross(theta, r))
        swapped_error = max(swapped_error, np.abs(swapped - np.cross(theta, d["dipole_moment"])).max())
    assert swapped_error > 0.5  # the other index order breaks the rule


@pytest.mark.parametrize("linear", [False, True])
def test_projection_leaves_six_or_five_zero_modes(linear):
    rng = np.random.default_rng(0)
    n = 4
    positions = rng.normal(size=(n, 3)) * 1.2
    if linear:
        positions = np.outer(np.arange(n) * 1.1, [0.3, -0.5, 0.8])
    masses = np.array([1.008, 12.011, 15.999, 14.007])
    a = rng.normal(size=(3 * n, 3 * n))
    hessian = a @ a.T  # positive definite, not rotation invariant
    k = 5 if linear else 6
    full = projected_wavenumbers(hessian, masses, positions)
    assert np.sum(np.abs(full) < 1e-3) == k
    modes = harmonic_analysis(hessian, masses, positions)
    assert len(modes) == 3 * n - k and np.all(modes.wavenumbers > 10.0)
    np.testing.assert_allclose(modes.mass_weighted.T @ modes.mass_weighted, np.eye(3 * n - k), atol=1e-10)


def _diatomic_hessian(k, direction):
    u = np.asarray(direction, float) / np.linalg.norm(direction)
    block = k * np.outer(u, u)
    return np.block([[block, -block], [-block, block]])


def test_diatomic_frequency_and_point_charge_intensity():
    """ν̃ = sqrt(k/μ) / (2π c) for a spring k between masses m1, m2; charges ±q give dμ/dQ =
    q / sqrt(μ) along the bond, so A = 974.88 q²/μ km/mol. The dipole derivatives come from
    ``tensor_derivatives`` (jax.jacfwd) of a pure point-charge dipole function on a graph."""
    k, q = 35.0, 0.4  # eV/Å², e
    atoms = Atoms("CO", positions=[[0.1, 0.2, 0.3], [0.9, 0.8, 1.1]])
    masses = atoms.get_masses()
    mu = masses[0] * masses[1] / masses.sum()
    direction = atoms.positions[1] - atoms.positions[0]

    species = (6, 8)
    charges = jnp.array([q, -q])

    def dipole_fn(params, graph):
        pos = graph.nodes["positions"]
        return graph_sum(params[graph.nodes["species"]][:, None] * pos, graph.n_node)

    graph = graph_lib.from_atoms(atoms, 3.0, species)
    dmu = np.asarray(tensor_derivatives(dipole_fn, charges, graph, 2))
    np.testing.assert_allclose(dmu, np.stack([q * np.eye(3), -q * np.eye(3)]), atol=1e-12)

    spectrum = analyse(_diatomic_hessian(k, direction), masses, atoms.positions, dmu)
    omega = np.sqrt(k / mu) * units.s  # rad/s, through ASE's unit system
    assert len(spectrum.modes) == 1
    # (ASE's default constants are CODATA 2014; ours 2018.)
    np.testing.assert_allclose(spectrum.wavenumbers[0], omega / (2 * np.pi * units._c * 100), rtol=1e-7)
    np.testing.assert_allclose(spectrum.ir[0], KM_PER_MOL_PER_E2_AMU * q**2 / mu, rtol=1e-9)
    np.testing.assert_allclose(KM_PER_MOL_PER_E2_AMU, 974.88, rtol=1e-5)
    # Gaussian's reduced mass 1/|M^-1/2 L|² (for H2: m_H, not m_H/2).
    np.testing.assert_allclose(spectrum.modes.reduced_masses, [1 / (mu * np.sum(1 / masses**2))], rtol=1e-9)
    # The centre of mass stays put: Cartesian displacements ∝ (u/m1, -u/m2), unit length.
    expected = np.stack([direction / masses[0], -direction / masses[1]])
    expected /= np.linalg.norm(expected)
    cartesian = spectrum.modes.cartesian[0]
    np.testing.assert_allclose(cartesian * np.sign(cartesian[0, 0] * expected[0, 0]), expected, atol=1e-12)


def test_raman_invariants_of_simple_tensors():
    """An isotropic dα/dQ is fully polarised (ρ = 0, S = 45 a²); a traceless one gives ρ = 3/4."""
    masses = np.array([1.0, 1.0])
    modes = harmonic_analysis(_diatomic_hessian(10.0, [0, 0, 1]), masses, [[0, 0, 0], [0, 0, 1]])
    # dα/dz of atom 2 = D, of atom 1 = -D: along the mode (z2 - z1)/sqrt(2), dα/dQ = sqrt(2) D.
    for tensor, activity, ratio in ((np.eye(3), 45 * 2.0, 0.0), (np.diag([1.0, -1.0, 0.0]), 7 * 2.0 * 3.0, 0.75)):
        deriv = np.zeros((2, 3, 3, 3))
        deriv[0, 2], deriv[1, 2] = -tensor, tensor
        s, rho = raman_activities(deriv, modes)
        np.testing.assert_allclose(s, [activity], rtol=1e-9)
        np.testing.assert_allclose(rho, [ratio], atol=1e-12)


def test_broadening_preserves_areas():
    grid = np.arange(0.0, 4000.0, 0.5)
    for shape in ("lorentzian", "gaussian"):
        _, spec = broaden([1000.0, 2000.0, -50.0], [3.0, 5.0, 7.0], grid, fwhm=8.0, shape=shape)
        assert abs(np.trapezoid(spec, grid) - 8.0) < (0.01 if shape == "gaussian" else 0.05)
        assert abs(grid[np.argmax(spec)] - 2000.0) < 0.5
    with pytest.raises(ValueError, match="line shape"):
        broaden([1.0], [1.0], shape="voigt")


def _harmonic_signal(nu0, steps, dt, amplitude):
    t = np.arange(steps) * dt * 1e-15
    return amplitude * np.cos(2 * np.pi * SPEED_OF_LIGHT * 100 * nu0 * t + 0.3)


def test_dipole_autocorrelation_spectrum_of_a_sinusoid():
    """μ(t) = μ0 + a cos(ωt): one peak at ν̃0 whose area is N_A/(12 ε0 c² kT) · a² ω² / 2, i.e. the
    harmonic km/mol of a mode with the same dμ/dQ at classical equipartition."""
    nu0, temperature, dt = 1234.0, 300.0, 0.5
    # <Q̇²> = kT: Q = Q0 cos(ωt) with Q0 = sqrt(2 kT)/ω; μ = (dμ/dQ) Q.
    dmu_dq = 0.3  # e/amu^1/2
    omega = 2 * np.pi * SPEED_OF_LIGHT * 100 * nu0
    q0 = np.sqrt(2 * units._k * temperature / units._amu) / omega * 1e10  # Å amu^1/2
    mu = np.zeros((6000, 3))
    mu[:, 1] = 0.7 + dmu_dq * _harmonic_signal(nu0, 6000, dt, q0)
    grid, ir = ir_spectrum(mu, dt, temperature, max_lag=2000)
    assert abs(grid[np.argmax(ir)] - nu0) <= 1.0
    np.testing.assert_allclose(np.trapezoid(ir, grid), KM_PER_MOL_PER_E2_AMU * dmu_dq**2, rtol=0.01)
    # The quantum corrections differ from the harmonic one (= classical line shape) as they should.
    _, standard = ir_spectrum(mu, dt, temperature, max_lag=2000, correction="standard")
    assert np.trapezoid(standard, grid) > 1.5 * np.trapezoid(ir, grid)


def test_raman_and_power_spectra_of_harmonic_signals():
    nu0, temperature, dt = 800.0, 300.0, 1.0
    omega = 2 * np.pi * SPEED_OF_LIGHT * 100 * nu0
    q0 = np.sqrt(2 * units._k * temperature / units._amu) / omega * 1e10
    q = _harmonic_signal(nu0, 4000, dt, q0)
    dalpha = np.array([[0.5, 0.2, 0.0], [0.2, -0.1, 0.0], [0.0, 0.0, 0.3]])  # Å²/amu^1/2
    alpha = 2.0 * np.eye(3) + q[:, None, None] * dalpha
    grid, activity, depol = raman_spectrum(alpha, dt, temperature, max_lag=1500)
    masses = np.array([1.0, 1.0])
    modes = harmonic_analysis(_diatomic_hessian(1.0, [0, 0, 1]), masses, [[0, 0, 0], [0, 0, 1]])
    deriv = np.zeros((2, 3, 3, 3))
    deriv[0, 2], deriv[1, 2] = -dalpha / np.sqrt(2), dalpha / np.sqrt(2)
    expected, rho = raman_activities(deriv, modes)
    np.testing.assert_allclose(np.trapezoid(activity, grid), expected[0], rtol=0.01)
    np.testing.assert_allclose(depol[np.argmax(activity)], rho[0], rtol=1e-3)
    # Velocities of two atoms at equipartition (m <v_a²> = kT per component): ∫ D = 6.
    m = np.array([2.0, 5.0])
    v_amp = np.sqrt(2 * units._k * temperature / (m * units._amu)) * 1e-5  # Å/fs
    v = v_amp[None, :, None] * _harmonic_signal(nu0, 4000, dt, 1.0)[:, None, None] * np.ones((1, 2, 3))
    grid, dos = power_spectrum(v, m, dt, temperature, max_lag=1500)
    np.testing.assert_allclose(np.trapezoid(dos, grid), 6.0, rtol=0.01)
    assert abs(grid[np.argmax(dos)] - nu0) <= 1.0


def test_bad_input_raises():
    with pytest.raises(ValueError, match="Hessian"):
        harmonic_analysis(np.zeros((5, 5)), [1.0])
    with pytest.raises(ValueError, match="one mass per atom"):
        harmonic_analysis(np.eye(6), [1.0])
    with pytest.raises(ValueError, match="positions"):
        harmonic_analysis(np.eye(6), [1.0, 1.0])
    modes = harmonic_analysis(np.eye(6), [1.0, 1.0], project=False)
    with pytest.raises(ValueError, match="dipole derivatives"):
        analyse(np.eye(6), [1.0, 1.0], np.eye(2, 3), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="T >= 2"):
        ir_spectrum(np.zeros((1, 3)), 1.0, 300.0)
    assert len(modes) == 6


def test_tblite_reference_matches_ase_infrared(tmp_path):
    """Our finite-difference analysis of GFN2-xTB water against ASE's own Infrared class (no
    rotation projection there, so the bending mode differs slightly): same modes, km/mol."""
    pytest.importorskip("tblite")
    from ase.vibrations import Infrared

    from jaxpot.reference import calculator
    from jaxpot.spectra import finite_difference_derivatives, relax

    water = relax(molecule("H2O"), calculator("gfn2-xtb"), fmax=1e-4)
    d = finite_difference_derivatives(water, calculator("gfn2-xtb"), delta=0.01)
    ours = analyse(d["hessian"], water.get_masses(), water.positions, d["dipole_derivatives"])
    work = water.copy()
    work.calc = calculator("gfn2-xtb")
    ir = Infrared(work, delta=0.01, name=str(tmp_path / "ir"))
    ir.run()
    ase_nu = np.real(ir.get_energies()[-3:]) / units.invcm
    np.testing.assert_allclose(ours.wavenumbers, ase_nu, atol=2.0)
    np.testing.assert_allclose(ours.ir, 42.255 * ir.intensities[-3:], rtol=2e-3)
    assert np.all(ours.ir > 1.0)


def test_potential_derivatives_and_spectrum_command(tmp_path, capsys):
    """One forward-mode sweep gives the Hessian and the dipole/polarizability derivatives of a
    model: they match central differences of its forces and tensors, the dipole derivatives
    sum to the (zero) total charge, and `jaxpot spectrum` writes a plot and a table."""
    from jaxpot.cli import main

    hp = jaxpot.models.small_hyperparameters("schnet")
    pot = jaxpot.Potential.create("schnet", ["H", "O"], 4.0, seed=1, dtype="float64",
                                  properties=("dipole", "polarizability"), **hp)
    water = molecule("H2O")
    water.positions += np.random.default_rng(3).normal(scale=0.05, size=(3, 3))
    d = derivatives(pot, water, dipole=True, polarizability=True)
    eps = 1e-5
    for i, b in ((0, 1), (2, 2)):
        plus, minus = water.copy(), water.copy()
        plus.positions[i, b] += eps
        minus.positions[i, b] -= eps
        rp, rm = pot.calculate(plus), pot.calculate(minus)
        np.testing.assert_allclose(-(rp["forces"] - rm["forces"]).reshape(-1) / (2 * eps), d["hessian"][3 * i + b],
                                   atol=1e-5)
        np.testing.assert_allclose((rp["dipole"] - rm["dipole"]) / (2 * eps), d["dipole_derivatives"][i, b], atol=1e-7)
        np.testing.assert_allclose((rp["polarizability"] - rm["polarizability"]) / (2 * eps),
                                   d["polarizability_derivatives"][i, b], atol=1e-7)
    np.testing.assert_allclose(d["dipole_derivatives"].sum(axis=0), 0.0, atol=1e-10)
    along = tensors_along(pot, [plus, minus])
    np.testing.assert_allclose(along["dipoles"], [rp["dipole"], rm["dipole"]], atol=1e-12)
    np.testing.assert_allclose(along["polarizabilities"][1], rm["polarizability"], atol=1e-12)
    np.testing.assert_allclose(d["hessian"], d["hessian"].T, atol=1e-10)
    chunked = derivatives(pot, water, dipole=True, chunk_size=4)  # memory-bounded route: same numbers
    np.testing.assert_allclose(chunked["hessian"], d["hessian"], atol=1e-10)
    np.testing.assert_allclose(chunked["dipole_derivatives"], d["dipole_derivatives"], atol=1e-12)

    pot.save(tmp_path / "model")
    out = tmp_path / "spectrum.png"
    assert main(["spectrum", str(tmp_path / "model"), "H2O", "--ir", "--raman", "--no-relax", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size > 1000
    table = out.with_suffix(".txt").read_text()
    assert "IR km/mol" in table and "Raman" in table and len(table.strip().splitlines()) == 2 + 3
    assert '"modes": 3' in printed

    dipole_only = jaxpot.Potential.create("schnet", ["H", "O"], 4.0, properties=("dipole",), **hp)
    dipole_only.save(tmp_path / "dipole_only")
    assert main(["spectrum", str(tmp_path / "dipole_only"), "H2O", "--raman", "--out", str(out)]) == 2
    assert "no polarizability head" in capsys.readouterr().err
