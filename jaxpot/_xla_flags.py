"""XLA:CPU settings jaxpot needs, applied before JAX starts its CPU backend.

XLA:CPU (jaxlib 0.10.2) hands element-wise and reduction fusions to YNNPACK by default. Its
reductions over a short middle axis, such as the sum over x, y, z of ``[E, 3, F]`` vector
messages that every equivariant model has, run at ~80 ns per element: one PaiNN training step
on 10 ethanol molecules took 160 ms instead of 37 ms (benchmarks/accuracy.py protocol), and
energy + forces did not get faster anywhere with them. Its matrix products are no better than
XLA's own (Eigen) ones either, and slower for the skinny, per-edge products of the equivariant
models (float32 energy + forces, median ms, YNNPACK dots on -> off, 2-core Ice Lake): MACE
si216 467 -> 339, si64 122 -> 104; NequIP si64 60 -> 29; SchNet si216 18.6 -> 16.9; PaiNN
3bpa / si512 unchanged (3.6 / 59); a PaiNN training step on 10 ethanol molecules 26.1 -> 23.5.
So jaxpot turns YNNPACK fusions off (``--xla_cpu_experimental_ynn_fusion_type=``, an empty
list).

The flag is read when the CPU backend starts (the first computation), so it takes effect if
jaxpot is imported before anything has run in JAX. A value set by the user in ``XLA_FLAGS``
wins; ``JAXPOT_KEEP_XLA_FLAGS=1`` leaves ``XLA_FLAGS`` untouched.
"""

from __future__ import annotations

import os

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
YNN_VALUE = ""  # no YNNPACK fusions (see above)


def apply() -> None:
    if os.environ.get("JAXPOT_KEEP_XLA_FLAGS"):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if YNN_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}={YNN_VALUE}".strip()
