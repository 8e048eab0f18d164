#!/usr/bin/env python
"""GNN-LF's efficiency claim, checked in jaxpot: GNN-LF against PaiNN on the same systems and
machine, in one command.

Wang and Zhang (arXiv:2208.00716) report that GNN-LF takes "about 30% of the inference time and
10% of the GPU memory" of the most efficient baselines. Here both models are jaxpot
implementations, timed on the same CPU in the same process:

* time: median of the jitted ``energy_and_forces_fn(params, graph)`` (energy + forces, the
  inference call of an MD step), synchronised with ``block_until_ready``; the models are
  timed in alternating rounds so that load from other processes hits both alike;
* memory: XLA's compiled memory analysis of the same function
  (``jax.jit(f).lower(...).compile().memory_analysis()``): ``temp`` (intermediates, the part
  that differs between architectures) and ``total`` = arguments + outputs + temp.

"Matched accuracy budget" is taken two ways (both printed):

* ``paper``: each model at its paper's default size (PaiNN F = 128, 3 blocks, 20 radial
  functions; GNN-LF F = 256, 6 layers, 32 radial functions), as the paper compares them;
* ``params``: GNN-LF with its width chosen so that its parameter count is the closest to
  PaiNN's default (6 layers kept).

Systems: ethanol (9 atoms), the first 3BPA frame of ``$DATA/3bpa/train_300K.xyz`` (27 atoms),
and a batch of the first 16 3BPA frames (432 atoms, a training/inference batch).
float32 (jaxpot's default), cutoff 5 Å.

Example (about 70 s of CPU time; 5 minutes of wall time on the loaded 2-core development VM):
  nice -n 10 .venv/bin/python benchmarks/efficiency.py

Measured on the 2-core development VM (2026-11-21, under heavy load from other processes, so
times are noisy; the alternating rounds keep the ratios fair): GNN-LF/PaiNN time 1.2-5.6 and
temp memory 1.3-12 (larger for the 432-atom batch), i.e. the paper's claim does not carry over
to jaxpot on CPU. GNN-LF's per-edge work is an MLP on [E, 2F] projections (about 6 F^2
multiply-adds per edge, F = 256), far more arithmetic than PaiNN's filter (about 21 x 3F), and
its per-edge activations are kept for the backward pass, while jaxpot's PaiNN sums its
messages chunk by chunk (``jaxpot.nn.edge_sum``) and never stores per-edge tensors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import ase.io
import jax
import numpy as np
from ase.build import molecule

import jaxpot

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = os.environ.get("JAXPOT_DATA", str(REPO.parent / "shared" / "data"))
SPECIES = ["H", "C", "N", "O"]
CUTOFF = 5.0


def count_params(pot: jaxpot.Potential) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(pot.params))


def matched_width(target: int, num_interactions: int = 6) -> int:
    """GNN-LF width (a multiple of 8) whose parameter count is closest to ``target``.

    The count is a quadratic in the width (dense layers F x F, embeddings and biases linear),
    so three instances fix it exactly.
    """
    widths = [64, 128, 256]
    counts = [
        count_params(jaxpot.Potential.create("gnnlf", SPECIES, CUTOFF, features=w, num_interactions=num_interactions))
        for w in widths
    ]
    a, b, c = np.polyfit(widths, counts, 2)
    return min(range(8, 1025, 8), key=lambda w: abs(a * w * w + b * w + c - target))


def systems(data: str) -> dict:
    frames = ase.io.read(Path(data) / "3bpa" / "train_300K.xyz", index=":16")
    return {"ethanol": [molecule("CH3CH2OH")], "3bpa": frames[:1], "3bpa_x16": frames}


def memory(compiled) -> dict:
    """Bytes from XLA's compiled memory analysis: intermediates and the whole footprint."""
    analysis = compiled.memory_analysis()
    temp = int(analysis.temp_size_in_bytes)
    total = temp + int(analysis.argument_size_in_bytes) + int(analysis.output_size_in_bytes)
    return {"temp_bytes": temp, "total_bytes": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=6, help="alternating timing rounds")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per model and round")
    parser.add_argument("--out", help="append the JSON lines here")
    args = parser.parse_args()

    painn = jaxpot.Potential.create("painn", SPECIES, CUTOFF)
    n_painn = count_params(painn)
    width = matched_width(n_painn)
    models = {
        "painn": painn,
        "gnnlf_paper": jaxpot.Potential.create("gnnlf", SPECIES, CUTOFF),
        "gnnlf_params": jaxpot.Potential.create("gnnlf", SPECIES, CUTOFF, features=width),
    }
    hparams = {"painn": "F=128 T=3 R=20", "gnnlf_paper": "F=256 T=6 R=32", "gnnlf_params": f"F={width} T=6 R=32"}
    records = []
    for case, structures in systems(args.data).items():
        graph = jax.device_put(painn.prepare(painn.graph(structures)))
        fns, stats = {}, {}
        for name, pot in models.items():
            fn = pot.energy_and_forces_fn
            start = time.perf_counter()
            compiled = jax.jit(fn).lower(pot.params, graph).compile()
            compile_s = time.perf_counter() - start
            stats[name] = {"compile_s": compile_s, "params": count_params(pot), **memory(compiled)}
            jax.block_until_ready(compiled(pot.params, graph))  # warm-up
            fns[name] = compiled
        samples = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, pot in models.items():
                for _ in range(args.calls):
                    start = time.perf_counter()
                    jax.block_until_ready(fns[name](pot.params, graph))
                    samples[name].append(time.perf_counter() - start)
        base = stats["painn"]
        base_ms = statistics.median(samples["painn"]) * 1e3
        for name in models:
            ms = statistics.median(samples[name]) * 1e3
            record = {
                "case": case, "atoms": sum(len(a) for a in structures), "model": name,
                "hparams": hparams[name], **stats[name], "median_ms": ms,
                "time_ratio_vs_painn": ms / base_ms,
                "temp_ratio_vs_painn": stats[name]["temp_bytes"] / base["temp_bytes"],
                "total_ratio_vs_painn": stats[name]["total_bytes"] / base["total_bytes"],
            }
            records.append(record)
            print(json.dumps(record), flush=True)
    if args.out:
        with open(args.out, "a") as fh:
            for record in records:
                fh.write(json.dumps(record) + "\n")
    print(f"\n{'case':10s} {'model':13s} {'hparams':15s} {'params':>8s} {'ms':>8s} {'t/PaiNN':>8s} "
          f"{'temp MB':>8s} {'temp/PaiNN':>10s} {'total/PaiNN':>11s}")
    for r in records:
        print(f"{r['case']:10s} {r['model']:13s} {r['hparams']:15s} {r['params']:8d} {r['median_ms']:8.2f} "
              f"{r['time_ratio_vs_painn']:8.2f} {r['temp_bytes'] / 1e6:8.2f} {r['temp_ratio_vs_painn']:10.2f} "
              f"{r['total_ratio_vs_painn']:11.2f}")


if __name__ == "__main__":
    main()
