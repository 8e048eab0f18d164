"""The model zoo. ``build(name, **hparams)`` returns a backbone (a ``flax.linen.Module``).

Every backbone maps a padded ``jraph.GraphsTuple`` to node features ``e3nn.IrrepsArray``
[N, irreps] and has the fields ``cutoff`` (Å) and ``num_species``.
"""

from jaxpot.models import painn, schnet  # noqa: F401  (registers the models)
from jaxpot.models import mace  # noqa: F401
from jaxpot.models import nequip, segnn  # noqa: F401
from jaxpot.models import gnnlf  # noqa: F401
from jaxpot.models import leftnet  # noqa: F401
from jaxpot.models import equiformer, equiformer_v2  # noqa: F401
from jaxpot.models import escn, scn  # noqa: F401
from jaxpot.models.registry import available, build, hyperparameters, register, small_hyperparameters

__all__ = ["available", "build", "hyperparameters", "register", "small_hyperparameters"]
