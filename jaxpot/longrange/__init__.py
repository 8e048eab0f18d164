"""Long-range blocks: Ewald message passing (``Potential.create(..., ewald={...})``)."""

from jaxpot.longrange.ewald import EWALD_OPTIONS, EwaldBackbone, EwaldBlock, ewald_options, with_ewald

__all__ = ["EWALD_OPTIONS", "EwaldBackbone", "EwaldBlock", "ewald_options", "with_ewald"]
