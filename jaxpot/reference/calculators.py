"""Reference calculators: GFN-xTB through tblite, Hartree-Fock and DFT through PySCF.

Both come back as ordinary ASE calculators in ASE units (eV, eV/Å, e·Å, e). tblite and
PySCF are optional (``pip install "jaxpot[reference]"``) and imported only when asked for.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes

INSTALL_HINT = 'install the reference extra: pip install "jaxpot[reference]"'

# lower-case name -> tblite's spelling
TBLITE_METHODS = {"gfn2-xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB", "ipea1-xtb": "IPEA1-xTB"}

# tblite's default SCF accuracy (1.0) converges forces only to ~1e-4 eV/Å, and the result then
# depends on the previous geometry's wavefunction. 0.01 converges them to ~2e-6 eV/Å at no
# measurable cost for small molecules, so labels are reproducible to the digits we store.
TBLITE_ACCURACY = 0.01


def available_methods() -> list[str]:
    """Method names ``calculator`` understands (PySCF takes any ``functional/basis``)."""
    return sorted(TBLITE_METHODS) + ["hf/<basis>", "<functional>/<basis> (PySCF, e.g. b3lyp/def2-svp)"]


def calculator(method: str = "gfn2-xtb", **options) -> Calculator:
    """An ASE calculator for a reference method.

    ``method``: ``"gfn2-xtb"``, ``"gfn1-xtb"`` or ``"ipea1-xtb"`` (tblite), or
    ``"functional/basis"`` for PySCF (``"hf/def2-svp"``, ``"b3lyp/def2-svp"``, ``"pbe0/def2-tzvp"``;
    a ``"pyscf:"`` prefix is allowed). ``options`` go to the calculator: tblite's ``TBLite``
    parameters (``charge``, ``multiplicity``, ``accuracy``, ``electronic_temperature``, ...) or
    ``PySCFCalculator``'s (``charge``, ``multiplicity``, ``conv_tol``, ``density_fit``, ...).
    """
    if not isinstance(method, str) or not method.strip():
        raise ValueError(f"method must be a non-empty string, got {method!r}; known: {available_methods()}")
    name = method.strip().lower()
    if name.startswith("pyscf:"):
        name = name[len("pyscf:"):]
        if "/" not in name:
            raise ValueError(f"PySCF method {method!r} must be 'functional/basis', e.g. 'pyscf:b3lyp/def2-svp'")
    if name in TBLITE_METHODS:
        try:
            from tblite.ase import TBLite
        except ImportError as err:
            raise ImportError(f"method {method!r} needs tblite, which is not installed; {INSTALL_HINT}") from err
        options = {"verbosity": 0, "accuracy": TBLITE_ACCURACY} | options
        return TBLite(method=TBLITE_METHODS[name], **options)
    if "/" in name:
        xc, _, basis = name.partition("/")
        if not xc or not basis:
            raise ValueError(f"PySCF method {method!r} must be 'functional/basis', e.g. 'b3lyp/def2-svp'")
        return PySCFCalculator(xc=xc, basis=basis, **options)
    raise ValueError(
        f"unknown reference method {method!r}; known: {available_methods()}. "
        "Use a tblite method name, or 'functional/basis' for PySCF."
    )


class PySCFCalculator(Calculator):
    """Restricted (closed shell) or unrestricted (open shell) HF/Kohn-Sham DFT through PySCF.

    Every call starts from PySCF's default guess, so results do not depend on the order in which
    structures are computed. Energies in eV, forces in eV/Å, dipole in e·Å (nuclear + electronic,
    about the origin), Mulliken charges in e.
    """

    implemented_properties = ["energy", "free_energy", "forces", "dipole", "charges"]
    default_parameters = {
        "xc": "b3lyp",
        "basis": "def2-svp",
        "charge": 0,
        "multiplicity": None,  # None: 1 for an even number of electrons, 2 for an odd one
        "conv_tol": 1e-10,
        "max_cycle": 100,
        "grids_level": 3,
        "density_fit": False,
    }

    def __init__(self, **kwargs):
        try:
            import pyscf  # noqa: F401
        except ImportError as err:
            raise ImportError(f"PySCF methods need pyscf, which is not installed; {INSTALL_HINT}") from err
        super().__init__(**kwargs)

    def _mean_field(self, atoms):
        from pyscf import dft, gto, scf

        p = self.parameters
        n_electrons = int(np.sum(atoms.numbers)) - int(p.charge)
        multiplicity = p.multiplicity or (1 if n_electrons % 2 == 0 else 2)
        if (n_electrons + multiplicity - 1) % 2:
            raise ValueError(f"multiplicity {multiplicity} is impossible with {n_electrons} electrons")
        if atoms.pbc.any():
            raise ValueError("PySCFCalculator handles molecules only; the structure is periodic (pbc is set)")
        mol = gto.M(
            atom=[(s, tuple(r)) for s, r in zip(atoms.get_chemical_symbols(), atoms.positions)],
            unit="Angstrom", basis=p.basis, charge=int(p.charge), spin=multiplicity - 1, verbose=0,
        )
        open_shell = multiplicity != 1
        if p.xc in ("hf", "scf"):
            mf = scf.UHF(mol) if open_shell else scf.RHF(mol)
        else:
            mf = dft.UKS(mol) if open_shell else dft.RKS(mol)
            mf.xc = p.xc
            mf.grids.level = p.grids_level
        if p.density_fit:
            mf = mf.density_fit()
        mf.conv_tol = p.conv_tol
        mf.max_cycle = p.max_cycle
        return mf

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from ase.units import Bohr, Hartree

        super().calculate(atoms, properties, system_changes)
        mf = self._mean_field(self.atoms)
        energy = mf.kernel()
        if not mf.converged:
            raise CalculationFailed(f"PySCF SCF did not converge in {mf.max_cycle} cycles")
        grad = mf.nuc_grad_method()
        if hasattr(grad, "grid_response"):
            grad.grid_response = True  # forces exactly -dE/dR, including the moving DFT grid
        gradient = grad.kernel()
        dipole = mf.dip_moment(unit="AU", verbose=0)
        charges = mf.mulliken_pop(verbose=0)[1]
        self.results = {
            "energy": float(energy) * Hartree,
            "free_energy": float(energy) * Hartree,
            "forces": -np.asarray(gradient) * Hartree / Bohr,
            "dipole": np.asarray(dipole) * Bohr,
            "charges": np.asarray(charges, dtype=np.float64),
        }
