"""Compare octosim's PEA compute model with SCALE-Sim 3.0.0, layer by layer.

SCALE-Sim needs ``numpy<2.4``, so it usually lives in its own virtual environment::

    python3 -m venv /tmp/ssvenv
    /tmp/ssvenv/bin/pip install scalesim==3.0.0 'numpy<2.4'
    python bench/scalesim_compare.py --scalesim-python /tmp/ssvenv/bin/python          # print
    python bench/scalesim_compare.py --scalesim-python /tmp/ssvenv/bin/python --write  # + fixture

SCALE-Sim runs on the fixture configurations (16x16 and 8x32 arrays, os/ws/is) and topologies in
``tests/hardware/fixtures/`` through its Python API with ``save_disk_space=True`` (no traces;
``scalesim.scale -s N`` does not actually switch traces off in 3.0.0). Its per-layer "Total
Cycles" (COMPUTE_REPORT.csv, 3rd column: cycles without DRAM prefetch) and "Stall Cycles" are
printed next to octosim's ``layer_cycles``; ``--write`` stores them in
``tests/hardware/fixtures/scalesim_reference.json`` (with SCALE-Sim's own parse of the fixture
topologies, ``topologies.load_arrays``), which ``tests/hardware/
test_scalesim_reference.py`` checks. ``--export-zoo DIR`` writes every zoo model as a SCALE-Sim
topology CSV (for running SCALE-Sim on them yourself).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from octosim.hardware.systolic import layer_cycles  # noqa: E402
from octosim.hardware.topology import load_topology_csv, topology_csv_text  # noqa: E402

FIXTURES = ROOT / "tests" / "hardware" / "fixtures"
REFERENCE = FIXTURES / "scalesim_reference.json"
LAYOUT = "scalesim_layout.csv"
DATAFLOWS = ("os", "ws", "is")
ARRAYS = ((16, 16), (8, 32))  # (rows, cols); a non-square array catches a rows/cols mix-up
TOPOLOGIES = (("scalesim_topology.csv", "conv"), ("scalesim_gemm.csv", "gemm"))

# Runs inside the SCALE-Sim interpreter; prints one JSON object.
DRIVER = r"""
import contextlib, csv, io, json, sys
from importlib.metadata import version
import numpy
from scalesim.scale_sim import scalesim
cfg, topo, layout, input_type, out = sys.argv[1:6]
gemm = input_type == "gemm"
with contextlib.redirect_stdout(io.StringIO()):
    s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
                 input_type_gemm=gemm)
    s.run_scale(top_path=out)
names = s.topo.get_layer_names()
report = f"{out}/{s.config.get_run_name()}/COMPUTE_REPORT.csv"
with open(report) as f:
    rows = [[c.strip() for c in r] for r in csv.reader(f)]
header, rows = rows[0], rows[1:]
layers = [{"scalesim_layer_id": int(r[0]), "name": names[int(r[0])],
           "total_cycles": int(r[2]), "stall_cycles": int(r[3])} for r in rows]
print(json.dumps({"scalesim_version": version("scalesim"), "numpy_version": numpy.__version__,
                  "report_header": header, "layers": layers}))
"""

# Parses a topology with SCALE-Sim's own reader; prints its layer arrays as JSON.
READER_DRIVER = r"""
import contextlib, io, json, sys
from scalesim.topology_utils import topologies
t = topologies()
with contextlib.redirect_stdout(io.StringIO()):
    t.load_arrays(topofile=sys.argv[1], mnk_inputs=sys.argv[2] == "gemm")
print(json.dumps(t.topo_arrays))
"""
READER_FIXTURES = (("scalesim_quirks.csv", "conv"), *TOPOLOGIES)


def scalesim_parse(python: str, topo: Path, input_type: str) -> list:
    args = [python, "-c", READER_DRIVER, str(topo), input_type]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"SCALE-Sim could not read {topo.name}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_scalesim(python: str, cfg: Path, topo: Path, input_type: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = [python, "-c", DRIVER, str(cfg), str(topo), str(FIXTURES / LAYOUT), input_type, out]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"SCALE-Sim failed on {cfg.name} {topo.name}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(run: dict) -> list[dict]:
    """Match SCALE-Sim layers to octosim layers (a DP row is one layer per channel there)."""
    layers = load_topology_csv(str(FIXTURES / run["topology"]))
    ref = run["layers"]
    rows, i = [], 0
    for layer in layers:
        group = ref[i : i + layer.groups]
        i += layer.groups
        theirs = sum(r["total_cycles"] for r in group)
        ours = layer_cycles(layer, *run["array"], run["dataflow"])
        rows.append(
            {
                "name": layer.name,
                "scalesim_layers": len(group),
                "scalesim": theirs,
                "stalls": sum(r["stall_cycles"] for r in group),
                "octosim": ours,
                "rel_error": (ours - theirs) / theirs,
            }
        )
    if i != len(ref):
        raise SystemExit(f"{run['topology']}: {len(ref)} SCALE-Sim layers, expected {i}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scalesim-python", default=sys.executable, help="interpreter with scalesim")
    ap.add_argument("--write", action="store_true", help=f"rewrite {REFERENCE.relative_to(ROOT)}")
    ap.add_argument("--export-zoo", metavar="DIR", help="write zoo models as topology CSVs")
    args = ap.parse_args()

    if args.export_zoo:
        from octosim.hardware.zoo import get_model, list_models

        out = Path(args.export_zoo)
        out.mkdir(parents=True, exist_ok=True)
        for name in list_models():
            (out / f"{name}.csv").write_text(topology_csv_text(get_model(name).layers))
            print(f"wrote {out / name}.csv")
        return 0

    runs, meta = [], {}
    for (rows, cols), df in itertools.product(ARRAYS, DATAFLOWS):
        cfg = FIXTURES / f"scalesim_{rows}x{cols}_{df}.cfg"
        for topo, input_type in TOPOLOGIES:
            result = run_scalesim(args.scalesim_python, cfg, FIXTURES / topo, input_type)
            meta = {k: result[k] for k in ("scalesim_version", "numpy_version", "report_header")}
            runs.append(
                {
                    "dataflow": df,
                    "array": [rows, cols],
                    "config": cfg.name,
                    "topology": topo,
                    "input_type": input_type,
                    "layers": result["layers"],
                }
            )

    worst: dict[str, float] = {}
    for run in runs:
        rows, cols = run["array"]
        print(f"\n{run['dataflow']}  {run['topology']}  ({rows}x{cols})")
        print(f"{'layer':22s} {'SCALE-Sim':>10s} {'stalls':>6s} {'octosim':>10s} {'error':>8s}")
        for row in compare(run):
            err = row["rel_error"]
            worst[run["dataflow"]] = max(worst.get(run["dataflow"], 0.0), abs(err))
            print(
                f"{row['name']:22s} {row['scalesim']:10d} {row['stalls']:6d} "
                f"{row['octosim']:10d} {100 * err:+7.3f}%"
            )
    print(
        "\nmax |error| per dataflow: " + ", ".join(f"{d} {100 * e:.3f}%" for d, e in worst.items())
    )

    reader = [
        {
            "topology": topo,
            "input_type": input_type,
            "topo_arrays": scalesim_parse(args.scalesim_python, FIXTURES / topo, input_type),
        }
        for topo, input_type in READER_FIXTURES
    ]

    if args.write:
        doc = {
            **meta,
            "command": "python bench/scalesim_compare.py --scalesim-python PY --write",
            "driver": "scalesim.scale_sim.scalesim(save_disk_space=True, verbose=False, "
            "config=CFG, topology=CSV, layout='scalesim_layout.csv', input_type_gemm=(gemm)"
            ").run_scale(top_path=TMP); total_cycles = 'Total Cycles' column of "
            "COMPUTE_REPORT.csv",
            "runs": runs,
            "reader": reader,
        }
        REFERENCE.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
