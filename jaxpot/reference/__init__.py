"""Labelling structures with a reference method (DESIGN.md, ``reference/``).

``calculator(method)`` gives an ASE calculator (GFN-xTB through tblite, HF/DFT through PySCF);
``sample_md`` and ``sample_normal_modes`` make structures with it; ``label`` stores energy,
forces, dipole and charges under jaxpot's canonical keys; ``write_frames`` writes compact
extended XYZ. The reference codes are optional: ``pip install "jaxpot[reference]"``.
"""

from jaxpot.reference.bundled import BUNDLED, bundled_path, ethanol_path
from jaxpot.reference.calculators import PySCFCalculator, available_methods, calculator
from jaxpot.reference.labelling import LABELS, label, write_frames
from jaxpot.reference.sampling import hessian, normal_modes, sample_md, sample_normal_modes, wavenumbers

__all__ = [
    "BUNDLED", "LABELS", "PySCFCalculator", "available_methods", "bundled_path", "calculator", "ethanol_path",
    "hessian", "label", "normal_modes", "sample_md", "sample_normal_modes", "wavenumbers", "write_frames",
]
