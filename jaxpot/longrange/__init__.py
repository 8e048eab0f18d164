"""Long-range blocks: Ewald message passing (``Potential.create(..., ewald={...})``)."""

from jaxpot.longrange.ewald import (
    EWALD_OPTIONS,
    PLACEMENTS,
    EwaldBackbone,
    EwaldBlock,
    block_options,
    ewald_options,
    layer_ewald,
    with_ewald,
)

__all__ = [
    "EWALD_OPTIONS", "PLACEMENTS", "EwaldBackbone", "EwaldBlock", "block_options", "ewald_options", "layer_ewald",
    "with_ewald",
]
