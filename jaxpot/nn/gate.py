"""Irreps bookkeeping for the gated non-linearity (Weiler et al., NeurIPS 2018) of ``e3nn.gate``."""

from __future__ import annotations

import e3nn_jax as e3nn


def gate_irreps(irreps_out: e3nn.Irreps) -> e3nn.Irreps:
    """Input irreps of ``e3nn.gate`` whose output is ``irreps_out``.

    The scalars of ``irreps_out`` (activated directly), then one 0e gate per non-scalar
    irrep (``e3nn.gate`` expects the gates right of the scalars), then the non-scalars.
    """
    irreps_out = e3nn.Irreps(irreps_out)
    scalars = e3nn.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
    gated = e3nn.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
    gates = e3nn.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else e3nn.Irreps("")
    return scalars + gates + gated
