"""jaxpot: machine-learned interatomic potentials in JAX.

Importing jaxpot enables float64 in JAX (``jax_enable_x64``) so that Hessians, spectra and
finite-difference checks can run in double precision; models still default to float32.
It also sets one XLA:CPU flag before JAX's backend starts (``jaxpot._xla_flags``).
"""

from jaxpot import _xla_flags

_xla_flags.apply()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from jaxpot import graph, models, nn  # noqa: E402
from jaxpot.calculator import Calculator  # noqa: E402
from jaxpot.io import load, save  # noqa: E402
from jaxpot.potential import Potential  # noqa: E402

__all__ = ["Calculator", "Potential", "graph", "load", "models", "nn", "save", "__version__"]
