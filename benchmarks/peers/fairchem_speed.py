#!/usr/bin/env python
"""CPU speed of fairchem-core 1.x's SCN, eSCN and EquiformerV2 (random weights): energy + forces.

The peer of ``benchmarks/speed.py --peer fairchem`` for jaxpot's ``scn``, ``escn`` and
``equiformer_v2``. Run it with the peer's interpreter (``/tmp/peers/fairchem-venv``:
fairchem-core 1.10.0, the last release with these models, installed with ``--no-deps`` beside
torch 2.13.0 CPU, torch-geometric, e3nn and a torch-scatter built from source; see
benchmarks/README.md):

  /tmp/peers/fairchem-venv/bin/python benchmarks/peers/fairchem_speed.py --model escn \\
      --cases 3bpa,si64,si216 --dtypes float32 --lmax 6 --mmax 2 --num-layers 2 --sphere-channels 32

Systems, the one-subprocess-per-(case, dtype) driver and the timing statistics (median over
calls made while other processes held < ``--clean-max-other`` cores) are shared/bench/peers'
``peers_common`` (found through ``--peers-harness``, default ../shared/bench/peers beside the
repository, or JAXPOT_PEERS_HARNESS).

Models, built directly from their classes with ``otf_graph=False`` (the graph is given):

* ``scn``: ``fairchem.core.models.scn.SphericalChannelNetwork`` (Zitnick et al. 2022);
* ``escn``: ``fairchem.core.models.escn.eSCN`` (Passaro & Zitnick 2023);
* ``equiformer_v2``: ``fairchem.core.models.equiformer_v2.EquiformerV2Backbone`` with
  ``EqV2ScalarHead`` (energy) and, for ``--forces direct``, ``EqV2VectorHead`` (Liao et al. 2024).

Forces: ``--forces autograd`` (default, what jaxpot computes: F = -dE/dx by
``torch.autograd.grad`` through fairchem's own edge vectors, the model built with
``regress_forces=False``) or ``--forces direct`` (the models' native force heads, as fairchem
trains them on OC20: not conservative, cheaper). The timed call is the model's forward (and
the backward for autograd) on a prepared ``torch_geometric`` batch; the neighbour list (ASE's
``neighbor_list``, all pairs within ``--cutoff``; ``--max-neighbors`` nearest per atom kept, as
fairchem's ``radius_graph_pbc`` does) and the batch construction are timed separately and not
included. Edges follow fairchem's convention: ``edge_index = [j, i]`` with
``r_ij = x_j - x_i + S cell`` (``get_pbc_distances``).

float64: ``torch.set_default_dtype(torch.float64)`` and a float64 model; fairchem 1.x builds
several tensors in float32 explicitly (e.g. ``get_pbc_distances`` casts offsets to float32), so
a float64 run may fail or mix precisions; failures are reported as an error record.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PEERS_HARNESS = os.environ.get("JAXPOT_PEERS_HARNESS", str(REPO.parent / "shared" / "bench" / "peers"))


def _import_pc(path: str):
    if not (Path(path) / "peers_common.py").is_file():
        sys.exit(f"fairchem_speed.py: no peers_common.py in {path!r}; pass --peers-harness DIR")
    sys.path.insert(0, path)
    import peers_common  # noqa: E402

    return peers_common


def _peers_harness(argv) -> str:
    for k, a in enumerate(argv):
        if a == "--peers-harness" and k + 1 < len(argv):
            return argv[k + 1]
        if a.startswith("--peers-harness="):
            return a.split("=", 1)[1]
    return DEFAULT_PEERS_HARNESS


def parse_args(pc, argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pc.add_common_args(p)
    p.add_argument("--peers-harness", default=DEFAULT_PEERS_HARNESS, help="folder of peers_common.py")
    p.add_argument("--model", choices=["scn", "escn", "equiformer_v2"], required=True)
    p.add_argument("--forces", choices=["autograd", "direct"], default="autograd")
    p.add_argument("--cutoff", type=float, default=5.0, help="Å (fairchem's cutoff / max_radius)")
    p.add_argument("--max-neighbors", type=int, default=500, help="nearest neighbours kept per atom")
    p.add_argument("--num-layers", type=int, default=2, help="SCN num_interactions, eSCN/EqV2 num_layers")
    p.add_argument("--lmax", type=int, default=6)
    p.add_argument("--mmax", type=int, default=2)
    p.add_argument("--sphere-channels", type=int, default=32)
    p.add_argument("--hidden-channels", type=int, default=64, help="SCN/eSCN hidden_channels")
    p.add_argument("--edge-channels", type=int, default=32, help="eSCN/EqV2 edge_channels")
    p.add_argument("--num-sphere-samples", type=int, default=128, help="output-block sphere samples (SCN/eSCN)")
    p.add_argument("--num-basis-functions", type=int, default=128, help="SCN's distance/atomic-number basis size")
    p.add_argument("--distance-resolution", type=float, default=0.02, help="Å between Gaussian centres (SCN/eSCN)")
    p.add_argument("--num-resolutions", type=int, default=1, help="SCN: 1 or 2 message resolutions")
    p.add_argument("--basis-width-scalar", type=float, default=1.0, help="Gaussian width / spacing (SCN/eSCN)")
    p.add_argument("--num-heads", type=int, default=4, help="EqV2 attention heads")
    p.add_argument("--attn-hidden-channels", type=int, default=32, help="EqV2")
    p.add_argument("--ffn-hidden-channels", type=int, default=64, help="EqV2")
    p.add_argument("--use-grid-mlp", type=int, choices=[0, 1], default=1,
                   help="EqV2: point-wise grid MLP in the FFN (the paper's OC20 model; fairchem's default is 0)")
    p.add_argument("--attn-alpha-channels", type=int, default=16, help="EqV2")
    p.add_argument("--attn-value-channels", type=int, default=8, help="EqV2")
    p.add_argument("--num-distance-basis", type=int, default=512, help="EqV2 Gaussian distance basis size")
    p.add_argument("--grid-resolution", type=int, default=None, help="EqV2/eSCN S2 grid resolution (default: theirs)")
    return p.parse_args(argv)


def build_model(args, elements_z: list[int], pbc: bool):
    """The fairchem model and a function ``data -> (energy [1], forces [N, 3] or None)``."""
    import torch

    direct = args.forces == "direct"
    common = {"use_pbc": pbc, "use_pbc_single": False, "regress_forces": direct, "otf_graph": False,
              "max_num_elements": max(90, max(elements_z) + 1)}
    if args.model == "scn":
        from fairchem.core.models.scn.scn import SphericalChannelNetwork

        model = SphericalChannelNetwork(
            **common, max_num_neighbors=args.max_neighbors, cutoff=args.cutoff, num_interactions=args.num_layers,
            lmax=args.lmax, mmax=args.mmax, num_resolutions=args.num_resolutions,
            sphere_channels=args.sphere_channels, sphere_channels_reduce=args.sphere_channels,
            hidden_channels=args.hidden_channels, num_sphere_samples=args.num_sphere_samples,
            num_basis_functions=args.num_basis_functions, distance_resolution=args.distance_resolution,
            basis_width_scalar=args.basis_width_scalar, direct_forces=True,
        )
        # SCN's per-resolution neighbour ranks: with one resolution every edge goes to block 0.
        heads = None
    elif args.model == "escn":
        from fairchem.core.models.escn.escn import eSCN

        model = eSCN(
            **common, max_neighbors=args.max_neighbors, cutoff=args.cutoff, num_layers=args.num_layers,
            lmax_list=[args.lmax], mmax_list=[args.mmax], sphere_channels=args.sphere_channels,
            hidden_channels=args.hidden_channels, edge_channels=args.edge_channels,
            num_sphere_samples=args.num_sphere_samples, distance_resolution=args.distance_resolution,
            basis_width_scalar=args.basis_width_scalar, resolution=args.grid_resolution,
        )
        heads = None
    else:
        from fairchem.core.models.equiformer_v2.equiformer_v2 import EquiformerV2Backbone
        from fairchem.core.models.equiformer_v2.heads import EqV2ScalarHead, EqV2VectorHead

        model = EquiformerV2Backbone(
            **common, max_neighbors=args.max_neighbors, max_radius=args.cutoff, num_layers=args.num_layers,
            sphere_channels=args.sphere_channels, attn_hidden_channels=args.attn_hidden_channels,
            num_heads=args.num_heads, attn_alpha_channels=args.attn_alpha_channels,
            attn_value_channels=args.attn_value_channels, ffn_hidden_channels=args.ffn_hidden_channels,
            use_grid_mlp=bool(args.use_grid_mlp),
            lmax_list=[args.lmax], mmax_list=[args.mmax], grid_resolution=args.grid_resolution,
            num_sphere_samples=args.num_sphere_samples, edge_channels=args.edge_channels,
            num_distance_basis=args.num_distance_basis, alpha_drop=0.0, drop_path_rate=0.0, proj_drop=0.0,
        )
        heads = torch.nn.ModuleDict({"energy": EqV2ScalarHead(model)})
        if direct:
            heads["forces"] = EqV2VectorHead(model)

    modules = torch.nn.ModuleList([model] + ([heads] if heads is not None else []))
    modules.eval()
    for prm in modules.parameters():
        prm.requires_grad_(False)

    def forward(data):
        if heads is None:
            out = model(data)
        else:
            emb = model(data)
            out = {k: h(data, emb)[k] for k, h in heads.items()}
        return out

    def energy_forces(data):
        if direct:
            out = forward(data)
            return out["energy"], out["forces"]
        data.pos.requires_grad_(True)
        energy = forward(data)["energy"]
        (grad,) = torch.autograd.grad(energy.sum(), data.pos)
        data.pos.requires_grad_(False)
        return energy.detach(), -grad

    return modules, energy_forces


def make_batch(atoms, cutoff: float, max_neighbors: int, dtype):
    """A one-structure ``torch_geometric`` Batch in fairchem's layout with the edges given."""
    import numpy as np
    import torch
    from ase.neighborlist import neighbor_list
    from torch_geometric.data import Batch, Data

    i, j, d, shifts = neighbor_list("ijdS", atoms, cutoff, self_interaction=False)
    if max_neighbors and len(i):
        keep = np.zeros(len(i), bool)
        order = np.lexsort((d, i))  # by centre, then distance
        i_sorted = i[order]
        start = np.searchsorted(i_sorted, np.arange(len(atoms)))
        rank = np.arange(len(i)) - start[i_sorted]
        keep[order[rank < max_neighbors]] = True
        i, j, shifts = i[keep], j[keep], shifts[keep]
    n = len(atoms)
    cell = atoms.cell.array if atoms.pbc.any() else np.eye(3) * 100.0
    data = Data(
        pos=torch.tensor(atoms.positions, dtype=dtype),
        atomic_numbers=torch.tensor(atoms.numbers, dtype=torch.long),
        cell=torch.tensor(cell, dtype=dtype).view(1, 3, 3),
        natoms=torch.tensor([n]),
        edge_index=torch.tensor(np.stack([j, i]), dtype=torch.long),
        cell_offsets=torch.tensor(shifts, dtype=dtype),
        neighbors=torch.tensor([len(i)]),
        fixed=torch.zeros(n, dtype=torch.long),
        tags=torch.ones(n, dtype=torch.long),
    )
    return Batch.from_data_list([data])


def run_single(pc, args) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    case = args.cases.split(",")[0]
    dtype_name = args.dtypes.split(",")[0]
    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    torch.set_default_dtype(dtype)
    torch.manual_seed(args.seed)
    rss_import = pc.current_rss_mb()
    atoms = pc.build_system(case, rattle=args.rattle, seed=args.seed)
    pbc = bool(atoms.pbc.any())

    def to_batch():
        return make_batch(atoms, args.cutoff, args.max_neighbors, dtype)

    graph_times = pc.time_calls(to_batch, warmup=2, repeats=args.nl_repeats)
    data = to_batch()
    n_edges = int(data.edge_index.shape[1])

    t0 = time.perf_counter()
    modules, energy_forces = build_model(args, sorted(set(atoms.numbers.tolist())), pbc)
    modules.to(dtype)
    build_s = time.perf_counter() - t0
    n_params = int(sum(q.numel() for q in modules.parameters()))
    rss_model = pc.current_rss_mb()

    t1 = time.perf_counter()
    energy, forces = energy_forces(data)
    first_call_s = time.perf_counter() - t1
    b = pc.bench(lambda: energy_forces(data), warmup=args.warmup, repeats=args.repeats,
                 clean_max_other=args.clean_max_other, extra_budget_s=args.extra_budget_s)
    energy, forces = energy_forces(data)
    assert tuple(forces.shape) == (len(atoms), 3), forces.shape
    assert bool(torch.isfinite(forces).all()) and bool(torch.isfinite(energy).all())
    bf = pc.bench_fields(b, args.repeats)
    g = pc.summarize(graph_times)
    label = {"scn": "SCN", "escn": "eSCN", "equiformer_v2": "EquiformerV2"}[args.model]
    return {
        "code": "fairchem",
        "model": label,
        "fairchem_model": args.model,
        "forces": args.forces,
        "case": case,
        "dtype": dtype_name,
        "output_dtype": str(forces.dtype).replace("torch.", ""),
        "n_atoms": len(atoms),
        "pbc": pbc,
        "n_edges": n_edges,
        "avg_neighbors": round(n_edges / len(atoms), 3),
        "atoms_per_s": round(len(atoms) / (bf["median_ms"] / 1e3), 1),
        **bf,
        "warmup": args.warmup,
        "first_call_ms": round(first_call_s * 1e3, 1),
        "graph_build_median_ms": round(g["median_ms"], 3),
        "nl_impl": "ase.neighborlist.neighbor_list + max_neighbors nearest, torch_geometric Batch",
        "model_build_s": round(build_s, 3),
        "peak_rss_mb": round(pc.peak_rss_mb(), 1),
        "rss_after_import_mb": round(rss_import, 1),
        "rss_after_model_mb": round(rss_model, 1),
        "n_params": n_params,
        "energy": float(energy.sum()),
        "max_abs_force": float(forces.abs().max()),
        "threads": torch.get_num_threads(),
        "hyper": {k: getattr(args, k) for k in (
            "cutoff", "max_neighbors", "num_layers", "lmax", "mmax", "sphere_channels", "hidden_channels",
            "edge_channels", "num_sphere_samples", "num_basis_functions", "distance_resolution", "basis_width_scalar",
            "num_resolutions", "num_heads", "attn_hidden_channels", "attn_alpha_channels", "attn_value_channels",
            "ffn_hidden_channels", "use_grid_mlp", "num_distance_basis", "grid_resolution")},
        "versions": {"fairchem-core": pc.pkg_version("fairchem-core"), "torch": torch.__version__,
                     "torch_geometric": pc.pkg_version("torch-geometric"),
                     "torch_scatter": pc.pkg_version("torch-scatter"), "e3nn": pc.pkg_version("e3nn"),
                     "numpy": np.__version__},
        "machine": pc.machine_info(),
    }


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    pc = _import_pc(_peers_harness(argv))
    args = parse_args(pc, argv)
    if args.single:
        pc.emit(run_single(pc, args))
        return 0
    fails = pc.drive(os.path.abspath(__file__), pc.strip_driver_args(argv), args.cases.split(","),
                     args.dtypes.split(","), args.out, quiet_wait_s=args.quiet_wait)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
