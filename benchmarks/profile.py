"""Where the time of one jitted energy + forces call goes, per source module, on XLA:CPU (or GPU).

    .venv/bin/python benchmarks/profile.py mace si64 --dtype float32
    .venv/bin/python benchmarks/profile.py nequip 3bpa --hparams '{"features": 32}' --depth 6

Runs ``jax.profiler.trace(..., create_perfetto_trace=True)`` around a few calls of
``jax.jit(pot.energy_and_forces_fn)``. XLA:CPU's thunk executor records one event per executed
thunk, named like the compiled HLO instruction; joining those names with the ``op_name``
metadata of ``jit(...).lower(...).compile().as_text()`` gives the module path of each op
(``backbone/interaction_1/while/body/...``). Ops are grouped by the first ``--depth`` parts of
that path, forward and backward apart (``BWD``: ops under ``transpose(...)``, the reverse pass of
the forces). Prints the median call time, thunks per call, and the groups by time.

Systems: 3bpa, si64, si216, si512, built by the peer harness's ``peers_common.build_system`` (``--peers-harness``,
default ``../shared/bench/peers``). Times under the profiler run a little slower than untraced.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def group_key(op_name: str, depth: int) -> str:
    """``"FWD a/b/c"`` or ``"BWD a/b/c"`` from an HLO ``op_name`` (``jit(...)`` and model wrappers dropped)."""
    direction = "BWD" if "transpose(" in op_name else "FWD"
    parts = [p for p in op_name.split("/") if not re.match(r"^(jit|jvp|transpose|vmap)\(", p)]
    return f"{direction} {'/'.join(parts[:depth])}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("case", help="3bpa, si64, si216 or si512 (peers_common.build_system)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--cutoff", type=float, default=5.0)
    ap.add_argument("--hparams", default="{}", help="JSON hyperparameters (default: the registry's)")
    ap.add_argument("--calls", type=int, default=5, help="calls under the profiler")
    ap.add_argument("--depth", type=int, default=4, help="module-path parts per group")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--peers-harness", default=str(HERE.parent.parent / "shared" / "bench" / "peers"))
    args = ap.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    import jaxpot

    sys.path.insert(0, args.peers_harness)
    from peers_common import build_system

    atoms = build_system(args.case)
    pot = jaxpot.Potential.create(
        args.model, sorted(set(atoms.get_chemical_symbols())), args.cutoff, dtype=args.dtype, **json.loads(args.hparams)
    )
    graph = pot.prepare(pot.graph(atoms))
    fn = jax.jit(pot.energy_and_forces_fn)
    hlo = fn.lower(pot.params, graph).compile().as_text()
    op_names = dict(re.findall(r"%([\w.\-]+) = [^\n]*?op_name=\"([^\"]*)\"", hlo))
    jax.block_until_ready(fn(pot.params, graph))
    times = []
    for _ in range(10):
        t = time.perf_counter()
        jax.block_until_ready(fn(pot.params, graph))
        times.append(time.perf_counter() - t)

    with tempfile.TemporaryDirectory() as log_dir:
        with jax.profiler.trace(log_dir, create_perfetto_trace=True):
            for _ in range(args.calls):
                jax.block_until_ready(fn(pot.params, graph))
        with gzip.open(glob.glob(f"{log_dir}/**/*perfetto_trace.json.gz", recursive=True)[0]) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace

    per_group, count = collections.Counter(), collections.Counter()
    skip = ("ThunkExecutor", "$", "PjitFunction", "while", "CommonPjRt", "ParseArguments")
    for e in events:
        if e.get("ph") != "X" or e["name"].startswith(skip):
            continue
        name = e["name"]
        key = group_key(op_names[name], args.depth) if name in op_names else "(no op_name) " + re.sub(r"[.]\d+$", "", name)
        per_group[key] += e.get("dur", 0) / 1e3 / args.calls
        count[key] += 1
    total = sum(per_group.values())
    print(f"# {args.model} {args.case} {args.dtype}: median {1e3 * float(np.median(times)):.1f} ms untraced; "
          f"{sum(count.values()) / args.calls:.0f} thunks and {total:.1f} ms of op time per traced call")
    print("| ms per call | ops per call | group |")
    print("|---|---|---|")
    for key, ms in per_group.most_common(args.top):
        print(f"| {ms:.2f} | {count[key] / args.calls:.0f} | {key} |")


if __name__ == "__main__":
    main()
