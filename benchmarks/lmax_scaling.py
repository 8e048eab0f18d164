#!/usr/bin/env python
"""Cost of an edge message against the degree lmax: SCN's full-rotation message block, eSCN's
SO(2) convolution and (for reference) an e3nn Clebsch-Gordan tensor-product convolution.

eSCN (Passaro and Zitnick, ICML 2023, Sec. 4) reduces an SO(3) convolution, O(L^6) with
Clebsch-Gordan tensor products, to SO(2) convolutions in the edge frame, O(L^3). SCN (Zitnick et
al., NeurIPS 2022) computes its message with a fully connected network on the edge-frame
coefficients; with all orders kept (``mmax = lmax``) that network is dense over all (L+1)^2
coefficients. Each method here is one message block, as the models use it:

* ``scn``: rotate source and target into the edge frame (Wigner-D, all orders), the SCN message
  network (``jaxpot.models.scn.SCNMessage``, mmax = lmax, one tap), rotate back, sum per atom;
* ``escn``: rotate, two SO(2) convolutions (``jaxpot.nn.so2.SO2Convolution``, mmax = lmax,
  edge-modulated bottleneck), rotate back, sum per atom (``ESCNMessage`` without its grid
  activation, so that only the convolution is compared);
* ``tp`` (``--tp``): ``e3nn.tensor_product`` of the source features with the edge's spherical
  harmonics (all paths up to lmax), a per-path linear map, sum per atom (the O(L^6) SO(3)
  convolution the eSCN paper starts from; compiled only up to ``--tp-lmax``).

Timed: the jitted value and gradient w.r.t. positions of ``E = sum(messages^2)`` (energy +
forces), median of repeated calls after compilation, float32. Node features are fixed random
[N, (L+1)^2, C]. Systems: si64 (diamond Si, 64 atoms, periodic) and the first 3BPA frame of
``$DATA/3bpa/train_300K.xyz`` (27 atoms); cutoff 5 Å. The exponent ``p`` of ``time ~ (L+1)^p``
is a least-squares fit over the lmax values per method and system, printed next to the papers'
O(L^6) and O(L^3) (asymptotic: at small L, L-independent work, such as distance embeddings and
gathers, flattens the fit).

Output: one JSON line per measurement and per fit, then a table.

Example:
  .venv/bin/python benchmarks/lmax_scaling.py                # lmax 2 4 6 8
  .venv/bin/python benchmarks/lmax_scaling.py --tp --lmax 2 4 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import ase.io
import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from ase.build import bulk

import jaxpot  # noqa: F401  (XLA flags and float64 before JAX runs)
from jaxpot.graph import edge_vectors, from_atoms
from jaxpot.models.escn import edge_frame_rotations
from jaxpot.models.scn import SCNMessage
from jaxpot.nn.so2 import SO2Convolution
from jaxpot.nn.species_distance import SpeciesDistanceEmbedding
from jaxpot.nn.wigner import safe_unit, spherical_channels_to_irreps

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = os.environ.get("JAXPOT_DATA", str(REPO.parent / "shared" / "data"))
SPECIES = [1, 6, 7, 8, 14]  # H C N O Si
CUTOFF = 5.0


class Block(nn.Module):
    method: str
    lmax: int
    channels: int
    hidden: int

    @nn.compact
    def __call__(self, graph, x):
        species = graph.nodes["species"]
        s, r_ = graph.senders, graph.receivers
        if self.method == "tp":
            vec = edge_vectors(graph)
            unit, r = safe_unit(vec)
            irreps = e3nn.Irreps([(self.channels, (l, (-1) ** l)) for l in range(self.lmax + 1)])
            feats = spherical_channels_to_irreps(x)
            sh = e3nn.spherical_harmonics(e3nn.Irreps([(1, (l, (-1) ** l)) for l in range(self.lmax + 1)]), unit, normalize=False)
            tp = e3nn.tensor_product(feats[s], sh, filter_ir_out=irreps)
            emb = SpeciesDistanceEmbedding(self.hidden, len(SPECIES), CUTOFF, 0.25, name="edge")(r, species[s], species[r_])
            weights = nn.Dense(tp.irreps.num_irreps, name="path_weights")(emb)  # per-path radial weights
            tp = e3nn.IrrepsArray(tp.irreps, tp.array * _expand(tp.irreps, weights))
            msg = e3nn.flax.Linear(irreps, name="linear")(tp)
            return jax.ops.segment_sum(msg.array, r_, x.shape[0])
        mmax = self.lmax
        to_edge, r = edge_frame_rotations(graph, self.lmax, mmax)
        emb = SpeciesDistanceEmbedding(self.hidden, len(SPECIES), CUTOFF, 0.25, name="edge")(r, species[s], species[r_])
        ones = jnp.ones_like(r)
        if self.method == "scn":
            return SCNMessage(self.lmax, mmax, 1, self.channels, self.hidden, name="scn")(x, emb, to_edge, ones, s, r_)
        src = jnp.einsum("ekj,ejc->ekc", to_edge, x[s])
        tgt = jnp.einsum("ekj,ejc->ekc", to_edge, x[r_])
        msg = SO2Convolution(self.lmax, mmax, self.channels, self.hidden, name="so2_source")(src, emb)
        msg = msg + SO2Convolution(self.lmax, mmax, self.channels, self.hidden, name="so2_target")(tgt, emb)
        msg = jnp.einsum("ekj,ekc->ejc", to_edge, msg)
        return jax.ops.segment_sum(msg, r_, x.shape[0])


def _expand(irreps, weights):
    """Per-irrep weights [E, num_irreps] -> per-component [E, dim]."""
    reps = np.concatenate([np.full(mul, ir.dim) for mul, ir in irreps])
    return jnp.repeat(weights, reps, axis=-1, total_repeat_length=irreps.dim)


def systems(data_dir):
    si = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    si.rattle(0.05, seed=0)
    out = {"si64": si}
    path = Path(data_dir) / "3bpa" / "train_300K.xyz"
    if path.exists():
        out["3bpa"] = ase.io.read(path, index=0)
    return out


def time_block(method, lmax, atoms, channels, hidden, repeats, budget):
    g = from_atoms(atoms, CUTOFF, SPECIES)
    g = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32) if np.issubdtype(np.asarray(a).dtype, np.floating) else jnp.asarray(a), g)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(g.nodes["positions"].shape[0], (lmax + 1) ** 2, channels)), jnp.float32)
    block = Block(method, lmax, channels, hidden)
    params = block.init(jax.random.PRNGKey(0), g, x)

    def energy(pos):
        gg = g._replace(nodes={**g.nodes, "positions": pos})
        return jnp.sum(block.apply(params, gg, x) ** 2)

    fn = jax.jit(jax.value_and_grad(energy))
    pos = g.nodes["positions"]
    t0 = time.perf_counter()
    jax.block_until_ready(fn(pos))
    compile_s = time.perf_counter() - t0
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (time.perf_counter() - start < budget or len(times) < 3):
        t = time.perf_counter()
        jax.block_until_ready(fn(pos))
        times.append(time.perf_counter() - t)
    return statistics.median(times), compile_s, len(times), int(g.senders.shape[0])


def fit_exponent(lmaxs, times):
    p, _ = np.polyfit(np.log(np.asarray(lmaxs) + 1.0), np.log(times), 1)
    return float(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmax", type=int, nargs="+", default=[2, 4, 6, 8])
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--budget", type=float, default=10.0, help="seconds of timed calls per case at most")
    ap.add_argument("--tp", action="store_true", help="also time the e3nn tensor-product convolution")
    ap.add_argument("--tp-lmax", type=int, default=6)
    ap.add_argument("--data", default=DEFAULT_DATA)
    args = ap.parse_args()
    methods = ["scn", "escn"] + (["tp"] if args.tp else [])
    reference = {"scn": None, "escn": 3, "tp": 6}
    results = {}
    for sys_name, atoms in systems(args.data).items():
        for method in methods:
            for lmax in args.lmax:
                if method == "tp" and lmax > args.tp_lmax:
                    continue
                t, c, n, e = time_block(method, lmax, atoms, args.channels, args.hidden, args.repeats, args.budget)
                results[(sys_name, method, lmax)] = t
                print(json.dumps({"system": sys_name, "atoms": len(atoms), "edges_padded": e, "method": method, "lmax": lmax,
                                  "channels": args.channels, "hidden": args.hidden, "ms": round(t * 1e3, 3),
                                  "compile_s": round(c, 2), "calls": n}), flush=True)
    fits = {}
    for sys_name in systems(args.data):
        for method in methods:
            ls = [l for l in args.lmax if (sys_name, method, l) in results]
            if len(ls) >= 2:
                fits[(sys_name, method)] = fit_exponent(ls, [results[(sys_name, method, l)] for l in ls])
                print(json.dumps({"system": sys_name, "method": method, "fit": "time ~ (lmax+1)^p", "p": round(fits[(sys_name, method)], 2),
                                  "paper_p": reference[method]}), flush=True)
    print()
    header = f"{'system':8s} {'method':6s} " + " ".join(f"{'L=' + str(l):>10s}" for l in args.lmax) + f" {'p':>6s} {'paper':>6s}"
    print(header + "\n" + "-" * len(header))
    for sys_name in systems(args.data):
        for method in methods:
            cells = " ".join(f"{results[(sys_name, method, l)] * 1e3:8.2f}ms" if (sys_name, method, l) in results else f"{'-':>10s}" for l in args.lmax)
            p = fits.get((sys_name, method))
            paper = {"scn": "-", "escn": "3", "tp": "6"}[method]
            print(f"{sys_name:8s} {method:6s} {cells} {p if p is None else round(p, 2)!s:>6s} {paper:>6s}")
    print("\ntimes: jitted energy+forces of one message block, median, float32; contended machine unless stated.")


if __name__ == "__main__":
    main()
