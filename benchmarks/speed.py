#!/usr/bin/env python
"""CPU/accelerator speed of jaxpot models: median jitted energy + forces, with optional
peers (SchNetPack PaiNN, mace-torch MACE) timed in the same command.

For each (model, case, dtype) a fresh subprocess builds ``jaxpot.Potential.create(...)`` with
random weights, builds the graph through the public API and times

    f = jax.jit(pot.energy_and_forces_fn)
    f(pot.params, g)            # synchronised with jax.block_until_ready

after warm-up, with the peer harness's statistics (peers_common.bench / bench_fields: calls
made while other processes held a core are screened out).  Tracing and XLA compilation are
timed separately (``trace_s``, ``compile_s``) and are not in ``median_ms``; the host
neighbour list / graph build is timed separately too (``graph_build_median_ms``).
One JSON line per (model, case, dtype) goes to stdout (and is appended to ``--out``).

Cases:
  ethanol    ase.build.molecule("CH3CH2OH"), 9 atoms, non-periodic
  3bpa       peers_common.build_system("3bpa"): the peer's 27-atom molecule, byte-identical
  3bpa_data  first frame of $DATA/3bpa/train_300K.xyz (27 atoms, non-periodic)
  si64, si216, si512
             peers_common.build_system: diamond Si (a = 5.43 A), rattled, periodic
  si4096     the same recipe with the cubic cell repeated 8x8x8 (same seed/std convention)
  water192   first 192-atom frame of $DATA/periodic_water_deepmd/water_64_deepmd_example.xyz
             (64 H2O, cubic 12.44 A box, periodic)

With ``--peer schnetpack`` the peer's own script (``painn_schnetpack_speed.py``, run with its
own interpreter ``--peer-python``) is timed on the cases it supports (3bpa, si64, si216,
si512), alternating with jaxpot case by case, never two processes at once, with the same
hyperparameters (PaiNN: 128 features, 3 interactions, 20 radial functions, 5 A cutoff) and
the same --threads/--warmup/--repeats.  At the end two tables are printed (lines that do not
start with "{"): jaxpot vs peer (ratio = peer ms / jaxpot ms, > 1 means jaxpot is faster),
and per-atom cost across the Si sizes relative to si216.

Threads: XLA:CPU in jax 0.10.2 ignores XLA_FLAGS' intra_op_parallelism_threads /
xla_cpu_multi_thread_eigen (checked: the thread pool is sized from the CPUs the process may
run on).  So --threads N pins each child to its first N allowed CPUs (os.sched_setaffinity,
before jax is imported); with N >= the CPUs allowed, nothing changes.  The peer gets
torch.set_num_threads(N) through its own --threads.

With ``--peer mace-torch`` the peer is ``mace_torch_speed.py`` (interpreter
$PEERS/torch-venv/bin/python) with jaxpot MACE's hyperparameters (r_max 5, num_bessel 8,
num_polynomial_cutoff 5, max_ell 3, 2 interactions, 128x0e+128x1o, correlation 3, 16x0e
readout MLP, radial MLP [64, 64, 64]; avg_num_neighbors does not change the cost); the table
adds each time as a fraction of the roofline of shared/bench/mace_roofline.md (ROOFLINE_MS).

With ``--peer nequip`` the peer is ``nequip_speed.py`` (interpreter $PEERS/nequip-venv/bin/python,
eager PyTorch) with jaxpot NequIP's hyperparameters (l_max 2, 32 features, 4 layers, parity,
8 Bessel functions, p 6, radial MLP 1 x 128, r_max = --cutoff).

With ``--peer fairchem`` the peer is this repository's ``benchmarks/peers/fairchem_speed.py``
(interpreter $PEERS/fairchem-venv/bin/python: fairchem-core 1.10.0, torch CPU) for each of
jaxpot's ``scn``, ``escn`` and ``equiformer_v2`` among --models, with the same hyperparameters
(FAIRCHEM_ARGS maps jaxpot's names to the harness's; fairchem's cutoff = --cutoff, no
neighbour cap) and forces by autograd (-dE/dx) as jaxpot's, not fairchem's direct force heads.
Cases 3bpa, si64, si216.

Examples:
  # SCN/eSCN/EquiformerV2 vs fairchem-core (float32)
  python benchmarks/speed.py --models scn,escn,equiformer_v2 --peer fairchem --cases 3bpa,si64,si216 --dtypes float32
  # MACE vs mace-torch: 3bpa and Si 64/216/512, float32 and float64, ratios and roofline
  python benchmarks/speed.py --models mace --peer mace-torch --cases 3bpa,si64,si216,si512
  # the full comparison (PaiNN vs SchNetPack, both dtypes, all cases), tables at the end
  python benchmarks/speed.py --models painn,schnet --peer schnetpack --out results/speed.jsonl
  # smoke check: a few repeats on small cases
  python benchmarks/speed.py --quick --models painn --peer schnetpack
  # reprint the tables from saved results
  python benchmarks/speed.py --table-only results/speed.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PEERS_HARNESS = os.environ.get("JAXPOT_PEERS_HARNESS", str(REPO.parent / "shared" / "bench" / "peers"))
DEFAULT_DATA = os.environ.get("JAXPOT_DATA", str(REPO.parent / "shared" / "data"))
PEERS_ENV = os.environ.get("PEERS", "/tmp/peers")

CASES = ["ethanol", "3bpa", "3bpa_data", "si64", "si216", "si512", "si4096", "water192"]
QUICK_CASES = ["ethanol", "3bpa", "si64"]
SI_SIZES = ["si64", "si216", "si512", "si4096"]
SI_REFERENCE = "si216"
PEER_CASES = {"schnetpack": ["3bpa", "si64", "si216", "si512"], "mace-torch": ["3bpa", "si64", "si216", "si512"]}
PEER_MODEL = {"schnetpack": "painn", "mace-torch": "mace"}  # the jaxpot model a peer is compared with
PEER_LABEL = {"schnetpack": "PaiNN", "mace-torch": "MACE"}  # the peer records' "model" field
PEER_SCRIPT = {"schnetpack": "painn_schnetpack_speed.py", "mace-torch": "mace_torch_speed.py"}
PEER_VENV = {"schnetpack": "spk-venv", "mace-torch": "torch-venv"}
# NequIP vs the nequip package (nequip_speed.py, eager PyTorch, its default mode)
PEER_CASES["nequip"] = ["3bpa", "si64", "si216", "si512"]
PEER_MODEL["nequip"], PEER_LABEL["nequip"] = "nequip", "NequIP"
PEER_SCRIPT["nequip"], PEER_VENV["nequip"] = "nequip_speed.py", "nequip-venv"
# SCN, eSCN and EquiformerV2 vs fairchem-core 1.10: one peer for three jaxpot models; its script lives in
# this repository (benchmarks/peers/), not in the shared harness folder
PEER_CASES["fairchem"] = ["3bpa", "si64", "si216"]
PEER_SCRIPT["fairchem"], PEER_VENV["fairchem"] = "fairchem_speed.py", "fairchem-venv"
FAIRCHEM_LABEL = {"scn": "SCN", "escn": "eSCN", "equiformer_v2": "EquiformerV2"}  # jaxpot model -> peer "model"
# jaxpot hyperparameter -> fairchem_speed.py option (fairchem's constructor argument in its --help)
FAIRCHEM_ARGS = {
    "scn": {"num_interactions": "--num-layers", "lmax": "--lmax", "mmax": "--mmax",
            "sphere_channels": "--sphere-channels", "hidden_channels": "--hidden-channels",
            "num_basis_functions": "--num-basis-functions", "distance_resolution": "--distance-resolution",
            "basis_width_scalar": "--basis-width-scalar"},
    "escn": {"num_layers": "--num-layers", "lmax": "--lmax", "mmax": "--mmax", "sphere_channels": "--sphere-channels",
             "hidden_channels": "--hidden-channels", "edge_channels": "--edge-channels",
             "distance_resolution": "--distance-resolution", "basis_width_scalar": "--basis-width-scalar"},
    "equiformer_v2": {"num_layers": "--num-layers", "lmax": "--lmax", "mmax": "--mmax",
                      "sphere_channels": "--sphere-channels", "attn_hidden_channels": "--attn-hidden-channels",
                      "num_heads": "--num-heads", "attn_alpha_channels": "--attn-alpha-channels",
                      "attn_value_channels": "--attn-value-channels", "ffn_hidden_channels": "--ffn-hidden-channels",
                      "edge_channels": "--edge-channels", "num_distance_basis": "--num-distance-basis",
                      "grid_mlp": "--use-grid-mlp"},
}

# Roofline of one MACE energy+forces call on the development CPU (shared/bench/mace_roofline.md:
# analytic minimum FLOPs at the measured 2-thread peak, per-edge work fused), ms.
ROOFLINE_MS = {
    ("mace", "float32"): {"3bpa": 1.4, "si64": 5.0, "si216": 16.8, "si512": 39.8},
    ("mace", "float64"): {"3bpa": 2.6, "si64": 9.3, "si216": 31.4, "si512": 74.4},
}

# Hyperparameters used unless --hparams overrides them.  PaiNN's equal the peer's
# (painn_schnetpack_speed.py defaults: n_atom_basis 128, n_interactions 3, n_rbf 20, cutoff 5).
DEFAULT_HPARAMS = {
    "painn": {"features": 128, "num_interactions": 3, "num_rbf": 20},
    # the (and mace_torch_speed.py's) MACE: avg_num_neighbors does not change the cost
    "mace": {"r_max": 5.0, "num_bessel": 8, "num_polynomial_cutoff": 5, "max_ell": 3, "num_interactions": 2,
             "hidden_irreps": "128x0e + 128x1o", "correlation": 3, "MLP_irreps": "16x0e",
             "radial_MLP": [64, 64, 64]},
}
# the NequIP (l_max 2, 32 features, 4 layers, r_max 5 = --cutoff) with the radial MLP of
# nequip_speed.py (1 x 128); avg_num_neighbors only rescales, it does not change the cost
DEFAULT_HPARAMS["nequip"] = {"features": 32, "l_max": 2, "num_interactions": 4, "parity": True, "num_bessel": 8,
                             "polynomial_p": 6, "radial_mlp_depth": 1, "radial_mlp_width": 128}
# SCN / eSCN / EquiformerV2 at a CPU-sized width (the registry's defaults are the OC20 models: 8-12
# layers of 128 channels); lmax 6 and mmax 2 (SCN: 1) as the papers
DEFAULT_HPARAMS["scn"] = {"num_interactions": 2, "lmax": 6, "mmax": 1, "sphere_channels": 32, "hidden_channels": 64,
                          "num_basis_functions": 128, "distance_resolution": 0.02}
DEFAULT_HPARAMS["escn"] = {"num_layers": 2, "lmax": 6, "mmax": 2, "sphere_channels": 32, "hidden_channels": 64,
                           "edge_channels": 32, "distance_resolution": 0.02}
DEFAULT_HPARAMS["equiformer_v2"] = {"num_layers": 2, "lmax": 6, "mmax": 2, "sphere_channels": 32,
                                    "attn_hidden_channels": 32, "num_heads": 4, "attn_alpha_channels": 16,
                                    "attn_value_channels": 8, "ffn_hidden_channels": 64, "edge_channels": 32,
                                    "num_distance_basis": 512}
DEFAULT_CUTOFF = 5.0

QUICK = {"repeats": 5, "warmup": 2, "nl_repeats": 3, "extra_budget_s": 10.0}
FULL = {"repeats": 30, "warmup": 5, "nl_repeats": 10, "extra_budget_s": 180.0}


# ---------------------------------------------------------------------------------------
# The peer harness (peers_common): systems and timing statistics shared with the peers
# ---------------------------------------------------------------------------------------


def import_peers_common(path: str):
    """Import peers_common from the peer harness folder, or stop with a clear message."""
    if not (Path(path) / "peers_common.py").is_file():
        sys.exit(
            f"benchmarks/speed.py: the peer harness is missing: no peers_common.py in {path!r}.\n"
            "It provides the shared systems and timing statistics (bench/bench_fields). Point to "
            "it with --peers-harness DIR or JAXPOT_PEERS_HARNESS=DIR (it lives in "
            "shared/bench/peers next to this repository)."
        )
    sys.path.insert(0, str(Path(path).resolve()))
    import peers_common  # noqa: E402

    return peers_common


# ---------------------------------------------------------------------------------------
# Systems
# ---------------------------------------------------------------------------------------


def build_case(pc, case: str, rattle: float, seed: int, data_dir: str):
    """(ase.Atoms, species list, source description) for one case."""
    import numpy as np

    if case == "ethanol":
        from ase.build import molecule

        atoms = molecule("CH3CH2OH")
        return atoms, ["H", "C", "O"], 'ase.build.molecule("CH3CH2OH")'
    if case in ("3bpa", "si64", "si216", "si512"):
        atoms = pc.build_system(case, rattle=rattle, seed=seed)
        return atoms, list(pc.default_elements(case)), f"peers_common.build_system({case!r})"
    if case == "si4096":
        from ase.build import bulk

        atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((8, 8, 8))
        rng = np.random.default_rng(seed)
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        atoms.wrap()
        return atoms, ["Si"], "diamond Si 8x8x8 cubic cells, rattled as peers_common.build_system"
    if case == "3bpa_data":
        import ase.io

        path = Path(data_dir) / "3bpa" / "train_300K.xyz"
        if not path.is_file():
            raise FileNotFoundError(f"case 3bpa_data needs {path} (set --data-dir)")
        atoms = ase.io.read(path, index=0)
        return atoms, list(pc.ORGANIC_ELEMENTS), f"{path} frame 0"
    if case == "water192":
        import ase.io

        path = Path(data_dir) / "periodic_water_deepmd" / "water_64_deepmd_example.xyz"
        if not path.is_file():
            raise FileNotFoundError(f"case water192 needs {path} (set --data-dir)")
        for k, atoms in enumerate(ase.io.iread(path, index=":")):
            if len(atoms) == 192:
                return atoms, ["H", "O"], f"{path} frame {k}"
        raise ValueError(f"no 192-atom frame in {path}")
    raise ValueError(f"unknown case {case!r}; choose from {CASES}")


# ---------------------------------------------------------------------------------------
# One (model, case, dtype) in this process
# ---------------------------------------------------------------------------------------


def pin_threads(n: int) -> list[int]:
    """Restrict this process to its first n allowed CPUs (before jax is imported)."""
    allowed = sorted(os.sched_getaffinity(0))
    if 0 < n < len(allowed):
        os.sched_setaffinity(0, allowed[:n])
    return sorted(os.sched_getaffinity(0))


def run_single(args, pc) -> dict:
    cpus = pin_threads(args.threads)
    rss_start = pc.current_rss_mb()

    import jax
    import numpy as np

    import jaxpot

    model, case, dtype = args.models[0], args.cases[0], args.dtypes[0]
    rss_import = pc.current_rss_mb()
    atoms, species, source = build_case(pc, case, args.rattle, args.seed, args.data_dir)
    n_atoms = len(atoms)
    hparams = model_hparams(model, args.hparams)

    t0 = time.perf_counter()
    pot = jaxpot.Potential.create(model, species, args.cutoff, seed=args.seed, dtype=dtype, **hparams)
    build_s = time.perf_counter() - t0

    # host side: neighbour list + padding (pot.graph), then the transfer (pot.prepare)
    graph_times = pc.time_calls(lambda: pot.graph(atoms), warmup=1, repeats=args.nl_repeats)
    host_graph = pot.graph(atoms)
    prep_times = pc.time_calls(lambda: pot.prepare(host_graph), warmup=1, repeats=args.nl_repeats,
                               sync=jax.block_until_ready)
    g = pot.prepare(host_graph)
    n_edges = int(np.sum(np.asarray(host_graph.n_edge)[:-1]))
    padded = {"n_node": int(g.nodes["positions"].shape[0]), "n_edge": int(g.senders.shape[0]),
              "n_graph": int(g.n_node.shape[0])}

    f = jax.jit(pot.energy_and_forces_fn)
    params = pot.params
    t0 = time.perf_counter()
    lowered = f.lower(params, g)
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    jax.block_until_ready(f(params, g))  # first call through the jit cache
    t3 = time.perf_counter()
    trace_s, compile_s, first_call_s = t1 - t0, t2 - t1, t3 - t2
    rss_compiled = pc.current_rss_mb()

    b = pc.bench(lambda: f(params, g), warmup=args.warmup, repeats=args.repeats,
                 sync=jax.block_until_ready, clean_max_other=args.clean_max_other,
                 extra_budget_s=args.extra_budget_s)
    energies, forces = jax.block_until_ready(f(params, g))
    energy = float(np.asarray(energies)[0])
    forces = np.asarray(forces)[:n_atoms]
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise FloatingPointError(f"non-finite energy or forces for {model}/{case}/{dtype}")
    bf = pc.bench_fields(b, args.repeats)
    gs, ps = pc.summarize(graph_times), pc.summarize(prep_times)
    med = bf["median_ms"]
    return {
        "code": "jaxpot",
        "model": model,
        "case": case,
        "dtype": dtype,
        "n_atoms": n_atoms,
        "pbc": bool(any(atoms.pbc)),
        "n_edges": n_edges,
        "avg_neighbors": round(n_edges / n_atoms, 3),
        "padded": padded,
        **bf,
        "ms_per_atom": round(med / n_atoms, 5),
        "atoms_per_s": round(n_atoms / (med / 1e3), 1),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "trace_s": round(trace_s, 3),
        "compile_s": round(compile_s, 3),
        "first_call_ms": round(first_call_s * 1e3, 3),
        "graph_build_median_ms": round(gs["median_ms"], 3),
        "graph_build_impl": "Potential.graph (jaxpot.neighbors + padding, host)",
        "prepare_median_ms": round(ps["median_ms"], 3),
        "model_build_s": round(build_s, 3),
        "peak_rss_mb": round(pc.peak_rss_mb(), 1),
        "rss_at_start_mb": round(rss_start, 1),
        "rss_after_import_mb": round(rss_import, 1),
        "rss_after_compile_mb": round(rss_compiled, 1),
        "n_params": pot.num_parameters,
        "energy": energy,
        "max_abs_force": float(np.abs(forces).max()),
        "threads": len(cpus),
        "threads_how": "os.sched_setaffinity (XLA:CPU sizes its pool from the allowed CPUs)",
        "cpus_allowed": cpus,
        "system": source,
        "hyper": {"model": model, "cutoff": pot.cutoff,
                  **{k: _jsonable(v) for k, v in jaxpot.models.hyperparameters(model).items()
                     if k not in ("num_species", "cutoff")},
                  **{k: _jsonable(v) for k, v in pot.hparams.items()},
                  "readout": pot.readout, "species": list(species)},
        "versions": {"jaxpot": jaxpot.__version__, "jax": jax.__version__,
                     "jaxlib": pc.pkg_version("jaxlib"), "flax": pc.pkg_version("flax"),
                     "e3nn-jax": pc.pkg_version("e3nn-jax"), "jraph": pc.pkg_version("jraph"),
                     "numpy": np.__version__, "ase": pc.pkg_version("ase")},
        "machine": {**pc.machine_info(), "jax_backend": jax.default_backend(),
                    "jax_devices": [str(d) for d in jax.devices()]},
    }


def _jsonable(v):
    try:
        json.dumps(v)
        return v
    except TypeError:
        return repr(v)


def model_hparams(model: str, overrides: dict) -> dict:
    return {**DEFAULT_HPARAMS.get(model, {}), **overrides.get(model, {})}


# ---------------------------------------------------------------------------------------
# Driver: one subprocess per run, jaxpot and peer alternating case by case
# ---------------------------------------------------------------------------------------


def child_cmd(args, model: str, case: str, dtype: str) -> list[str]:
    return [
        sys.executable, os.path.abspath(__file__), "--single",
        "--models", model, "--cases", case, "--dtypes", dtype,
        "--threads", str(args.threads), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
        "--nl-repeats", str(args.nl_repeats), "--rattle", str(args.rattle), "--seed", str(args.seed),
        "--cutoff", str(args.cutoff), "--clean-max-other", str(args.clean_max_other),
        "--extra-budget-s", str(args.extra_budget_s), "--hparams", json.dumps(args.hparams),
        "--peers-harness", args.peers_harness, "--data-dir", args.data_dir,
    ]


def peer_python(args, peer: str) -> str:
    return args.peer_python or str(Path(PEERS_ENV) / PEER_VENV[peer] / "bin" / "python")


def peer_cmd(args, peer: str, case: str, dtype: str, model: str | None = None) -> list[str]:
    """The peer's command; ``model``: the jaxpot model compared (fairchem covers several)."""
    model = model or PEER_MODEL[peer]
    hp = model_hparams(model, args.hparams)
    script = (Path(__file__).resolve().parent / "peers" / PEER_SCRIPT[peer] if peer == "fairchem"
              else Path(args.peers_harness) / PEER_SCRIPT[peer])
    common = [
        peer_python(args, peer), str(script), "--single",
        "--cases", case, "--dtypes", dtype,
        "--threads", str(args.threads), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
        "--nl-repeats", str(args.nl_repeats), "--rattle", str(args.rattle), "--seed", str(args.seed),
        "--clean-max-other", str(args.clean_max_other), "--extra-budget-s", str(args.extra_budget_s),
    ]
    if peer == "fairchem":  # the same hyperparameters as jaxpot's model, the registry's where not set here
        from jaxpot.models import hyperparameters

        full = {**hyperparameters(model), **hp}
        out = common + ["--peers-harness", args.peers_harness, "--model", model, "--cutoff", str(args.cutoff),
                        "--max-neighbors", "100000", "--forces", "autograd"]
        for name, opt in FAIRCHEM_ARGS[model].items():
            if name in full and full[name] is not None:
                v = full[name]
                out += [opt, str(int(v) if isinstance(v, bool) else v)]
        return out
    if peer == "nequip":  # the same hyperparameters as jaxpot's NequIP
        return common + [
            "--r-max", str(args.cutoff), "--num-layers", str(hp["num_interactions"]), "--l-max", str(hp["l_max"]),
            "--num-features", str(hp["features"]), "--parity", str(int(hp["parity"])),
            "--radial-mlp-depth", str(hp["radial_mlp_depth"]), "--radial-mlp-width", str(hp["radial_mlp_width"]),
            "--num-bessels", str(hp["num_bessel"]), "--polynomial-cutoff-p", str(hp["polynomial_p"]),
        ]
    if peer == "mace-torch":  # the same hyperparameters as jaxpot's MACE
        return common + [
            "--r-max", str(hp.get("r_max") or args.cutoff), "--num-bessel", str(hp["num_bessel"]),
            "--num-polynomial-cutoff", str(hp["num_polynomial_cutoff"]), "--max-ell", str(hp["max_ell"]),
            "--num-interactions", str(hp["num_interactions"]),
            "--hidden-irreps", hp["hidden_irreps"].replace(" ", ""), "--correlation", str(hp["correlation"]),
            "--mlp-irreps", hp["MLP_irreps"].replace(" ", ""), "--radial-mlp", json.dumps(list(hp["radial_MLP"])),
        ]
    return common + [
        "--cutoff", str(args.cutoff), "--n-atom-basis", str(hp.get("features", 128)),
        "--n-interactions", str(hp.get("num_interactions", 3)), "--n-rbf", str(hp.get("num_rbf", 20)),
    ]


def run_child(pc, cmd: list[str], label: dict, timeout_s: float, quiet_wait_s: float) -> list[dict]:
    qw = pc.wait_for_quiet(quiet_wait_s) if quiet_wait_s > 0 else None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        rc, err_tail = proc.returncode, proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        lines, rc, err_tail = [], -9, f"timeout after {timeout_s}s"
    records = []
    if rc != 0 or not lines:
        records.append({**label, "error": f"rc={rc}", "stderr_tail": err_tail})
    else:
        records = [json.loads(ln) for ln in lines]
    if qw is not None:
        records = [{**r, "quiet_wait": qw} for r in records]
    return records


def drive(args, pc) -> int:
    peers = [p for p in args.peer if p]
    for peer in peers:
        if not Path(peer_python(args, peer)).is_file():
            sys.exit(f"benchmarks/speed.py: --peer {peer} needs the peer's interpreter, but "
                     f"{peer_python(args, peer)!r} does not exist; build it with "
                     f"{args.peers_harness}/setup.sh {PEER_MODEL.get(peer, peer)} (fairchem: see benchmarks/README.md), "
                     "or pass --peer-python.")
    sink = open(args.out, "a") if args.out else None
    records, failures = [], 0
    try:
        for case in args.cases:
            for dtype in args.dtypes:
                jobs = [(child_cmd(args, m, case, dtype), {"code": "jaxpot", "model": m, "case": case,
                                                          "dtype": dtype}) for m in args.models]
                jobs += [(peer_cmd(args, p, case, dtype), {"code": p, "model": PEER_LABEL[p], "case": case,
                                                          "dtype": dtype})
                         for p in peers if case in PEER_CASES[p] and p != "fairchem"]
                if "fairchem" in peers and case in PEER_CASES["fairchem"]:
                    jobs += [(peer_cmd(args, "fairchem", case, dtype, m), {"code": "fairchem", "model": FAIRCHEM_LABEL[m],
                                                                          "case": case, "dtype": dtype})
                             for m in args.models if m in FAIRCHEM_LABEL]
                for cmd, label in jobs:
                    for rec in run_child(pc, cmd, label, args.timeout, args.quiet_wait):
                        failures += "error" in rec
                        records.append(rec)
                        line = json.dumps(rec)
                        print(line, flush=True)
                        if sink:
                            sink.write(line + "\n")
                            sink.flush()
    finally:
        if sink:
            sink.close()
    print_tables(records)
    return failures


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------


def _key(r: dict) -> tuple:
    code = r.get("code")
    model = r.get("model") if code == "jaxpot" else PEER_LABEL.get(code, r.get("model"))
    return (code, model, r.get("case"), r.get("dtype"))


def latest(records: list[dict]) -> dict:
    """Last successful record per (code, model, case, dtype)."""
    out = {}
    for r in records:
        if "error" not in r and "median_ms" in r:
            out[_key(r)] = r
    return out


def _ms(r: dict | None) -> str:
    if r is None:
        return "-"
    return f"{r['median_ms']:.2f}" + ("*" if r.get("contended") else "")


def _order(case: str) -> int:
    return CASES.index(case) if case in CASES else len(CASES)


def print_tables(records: list[dict]) -> None:
    best = latest(records)
    errors = [r for r in records if "error" in r]
    if not best and not errors:
        print("\n(no results)")
        return
    rows = sorted(best.values(), key=lambda r: (r["code"] != "jaxpot", r.get("model", ""), r.get("dtype", ""),
                                               _order(r.get("case", ""))))
    print("\n## All runs (median ms per energy+forces call; * = contended, fewer clean calls than asked)")
    print("| code | model | case | dtype | atoms | edges | padded N/E | median ms | ms/atom | compile s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pad = r.get("padded")
        pad_s = f"{pad['n_node']}/{pad['n_edge']}" if pad else "-"
        ms_atom = r["median_ms"] / r["n_atoms"]
        print(f"| {r['code']} | {r.get('model', '')} | {r['case']} | {r['dtype']} | {r['n_atoms']} | "
              f"{r.get('n_edges', '-')} | {pad_s} | {_ms(r)} | {ms_atom:.4f} | {r.get('compile_s', 0):.2f} | "
              f"{r.get('peak_rss_mb', '-')} |")

    comparisons = [(peer, model, PEER_LABEL[peer]) for peer, model in PEER_MODEL.items()]
    comparisons += [("fairchem", model, label) for model, label in FAIRCHEM_LABEL.items()]
    for peer, model, label in comparisons:
        pairs = [(k, v) for k, v in best.items() if k[0] == "jaxpot" and k[1] == model
                 and (peer, label, k[2], k[3]) in best]
        if not pairs:
            continue
        print(f"\n## jaxpot {model} vs {peer} (ratio = {peer} ms / jaxpot ms; > 1: jaxpot faster; "
              "roofline = floor ms / measured ms, shared/bench/mace_roofline.md)")
        print(f"| case | dtype | atoms | jaxpot ms | {peer} ms | ratio | jaxpot compile s | "
              "roofline ms | jaxpot % of roofline | peer % of roofline |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for k, j in sorted(pairs, key=lambda kv: (kv[0][3], _order(kv[0][2]))):
            p = best[(peer, label, k[2], k[3])]
            roof = ROOFLINE_MS.get((model, k[3]), {}).get(k[2])
            roof_s = (f"{roof} | {100 * roof / j['median_ms']:.1f} | {100 * roof / p['median_ms']:.2f}"
                      if roof else "- | - | -")
            print(f"| {k[2]} | {k[3]} | {j['n_atoms']} | {_ms(j)} | {_ms(p)} | "
                  f"{p['median_ms'] / j['median_ms']:.2f} | {j.get('compile_s', 0):.1f} | {roof_s} |")

    groups = {}
    for k, r in best.items():
        if k[2] in SI_SIZES:
            groups.setdefault((k[0], k[1], k[3]), {})[k[2]] = r
    if groups:
        print(f"\n## Per-atom cost across Si sizes: ms/atom (ratio to {SI_REFERENCE})")
        print("| code | model | dtype | " + " | ".join(SI_SIZES) + " |")
        print("|---|---|---|" + "---|" * len(SI_SIZES))
        for (code, model, dtype), by_case in sorted(groups.items(), key=lambda kv: (kv[0][0] != "jaxpot", kv[0])):
            ref = by_case.get(SI_REFERENCE)
            ref_pa = ref["median_ms"] / ref["n_atoms"] if ref else None
            cells = []
            for c in SI_SIZES:
                r = by_case.get(c)
                if r is None:
                    cells.append("-")
                    continue
                pa = r["median_ms"] / r["n_atoms"]
                cells.append(f"{pa:.4f} ({pa / ref_pa:.2f})" if ref_pa else f"{pa:.4f}")
            print(f"| {code} | {model} | {dtype} | " + " | ".join(cells) + " |")
    if errors:
        print("\n## Failed runs")
        for r in errors:
            tail = (r.get("stderr_tail") or "").strip().splitlines()
            print(f"- {r.get('code')} {r.get('model')} {r.get('case')} {r.get('dtype')}: {r['error']}: "
                  f"{tail[-1] if tail else ''}")


def table_only(path: str) -> int:
    if not Path(path).is_file():
        sys.exit(f"benchmarks/speed.py: --table-only: no such file {path!r}")
    records = []
    with open(path) as fh:
        for ln in fh:
            ln = ln.strip()
            if ln.startswith("{"):
                records.append(json.loads(ln))
    print_tables(records)
    return 0


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="benchmarks/speed.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=_csv, default=None,
                   help="comma list of registered models (jaxpot.models.available()); default: all")
    p.add_argument("--cases", type=_csv, default=None,
                   help=f"comma list from {','.join(CASES)}; default: all (--quick: {','.join(QUICK_CASES)})")
    p.add_argument("--dtypes", type=_csv, default=["float32", "float64"], help="comma list of float32,float64")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke check: cases {','.join(QUICK_CASES)} and {QUICK['repeats']} repeats "
                        f"(explicit --cases/--repeats/... still win)")
    p.add_argument("--threads", type=int, default=2,
                   help="CPUs each run may use (jaxpot: CPU affinity; peer: torch.set_num_threads); "
                        "default 2, as the peer baseline")
    p.add_argument("--warmup", type=int, default=None, help=f"untimed calls after compilation (default {FULL['warmup']})")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"clean timed calls wanted per run (default {FULL['repeats']})")
    p.add_argument("--nl-repeats", type=int, default=None,
                   help=f"timed graph builds per run (default {FULL['nl_repeats']})")
    p.add_argument("--extra-budget-s", type=float, default=None,
                   help="after --repeats calls, keep calling up to this many s more while waiting for "
                        f"--repeats clean ones (default {FULL['extra_budget_s']})")
    p.add_argument("--clean-max-other", type=float, default=0.25,
                   help="a timed call is clean when other processes kept fewer cores busy meanwhile")
    p.add_argument("--quiet-wait", type=float, default=0.0,
                   help="before each run wait up to this many s until other processes use < 0.3 core")
    p.add_argument("--cutoff", type=float, default=DEFAULT_CUTOFF, help="neighbour cutoff in A (default 5)")
    p.add_argument("--hparams", type=json.loads, default={},
                   help='JSON {model: {hyperparameter: value}} overriding the defaults '
                        f'(default hyperparameters: {json.dumps(DEFAULT_HPARAMS)}, others the registry\'s)')
    p.add_argument("--rattle", type=float, default=0.03, help="std (A) of the Si displacements")
    p.add_argument("--seed", type=int, default=0, help="rattle and parameter-initialisation seed")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--peer", type=_csv, default=[],
                   help="comma list of peers to time alongside: schnetpack (PaiNN), mace-torch (MACE), "
                        "nequip (NequIP), fairchem (SCN, eSCN, EquiformerV2)")
    p.add_argument("--peer-python", default=None,
                   help="the peer's interpreter (default $PEERS/spk-venv/bin/python for schnetpack, "
                        "$PEERS/torch-venv/bin/python for mace-torch; PEERS=/tmp/peers)")
    p.add_argument("--peers-harness", default=DEFAULT_PEERS_HARNESS,
                   help="folder of peers_common.py and the peer scripts (default %(default)s, "
                        "or $JAXPOT_PEERS_HARNESS)")
    p.add_argument("--data-dir", default=DEFAULT_DATA,
                   help="folder holding 3bpa/ and periodic_water_deepmd/ (default %(default)s, or $JAXPOT_DATA)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per run")
    p.add_argument("--table-only", metavar="FILE", default=None,
                   help="print the tables from a JSON-lines file and exit (runs nothing)")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    preset = QUICK if args.quick else FULL
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.cases is None:
        args.cases = list(QUICK_CASES if args.quick else CASES)
    bad = [c for c in args.cases if c not in CASES]
    if bad:
        p.error(f"unknown case(s) {bad}; choose from {CASES}")
    bad = [d for d in args.dtypes if d not in ("float32", "float64")]
    if bad:
        p.error(f"unknown dtype(s) {bad}; choose from float32, float64")
    bad = [x for x in args.peer if x not in PEER_CASES]
    if bad:
        p.error(f"unknown peer(s) {bad}; choose from {sorted(PEER_CASES)}")
    if not isinstance(args.hparams, dict):
        p.error("--hparams must be a JSON object {model: {name: value}}")
    return args


def main(argv=None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.table_only:
        return table_only(args.table_only)
    pc = import_peers_common(args.peers_harness)
    if args.single:
        pc.emit(run_single(args, pc))
        return 0
    if args.models is None:
        import jaxpot.models  # a registry lookup only; the runs happen in children

        args.models = jaxpot.models.available()
    else:
        from jaxpot.models import available

        bad = [m for m in args.models if m not in available()]
        if bad:
            sys.exit(f"benchmarks/speed.py: unknown model(s) {bad}; registered: {available()}")
    return 1 if drive(args, pc) else 0


if __name__ == "__main__":
    sys.exit(main())
