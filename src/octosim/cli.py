"""The ``octosim`` command line (DESIGN section 6).

Library code raises :class:`~octosim.errors.UserError` for bad input; this module alone turns
it into one line on stderr and exit status 2. Anything else is a bug: exit 1 with a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from octosim import __version__
from octosim.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message}")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def cmd_run(args: argparse.Namespace) -> int:
    from octosim.engine.sim import Observer
    from octosim.experiments.config import resolve_config
    from octosim.experiments.run import run_config, write_run

    cfg = resolve_config(args.workflow, args.arch, args.policy, args.seed, args.set, args.fault)
    observers: list[Observer] = []
    if args.trace:
        from octosim.engine.trace import TraceObserver

        tracer = TraceObserver()
        observers.append(tracer)
    summary = run_config(cfg, observers)
    if args.trace:
        from octosim.model.arch import parse_arch

        tracer.write(args.trace, parse_arch(cfg.arch, cfg.arch_file).clock_ghz)
    if args.out:
        write_run(args.out, cfg, summary)
    if args.json:
        _print_json(summary)
    else:
        _print_run(summary)
    return 0


def _print_run(s: dict[str, Any]) -> None:
    lat = s["latency_cycles"]
    idle = s["idle"]
    lines = [
        f"{s['workflow']} on {s['arch']} under {s['policy']} (seed {s['seed']})",
        f"  instances        {s['instances']}",
        f"  makespan         {s['makespan_cycles']:,} cycles "
        f"({s['makespan_seconds'] * 1e3:.3f} ms)",
        f"  lower bound      {s['lower_bound_cycles']:,} cycles (ratio {s['bound_ratio']})",
        f"  latency          mean {lat['mean']:,.0f}  p50 {lat['p50']:,.0f}  "
        f"p95 {lat['p95']:,.0f}  p99 {lat['p99']:,.0f}  max {lat['max']:,.0f} cycles",
        f"  PEA utilization  {s['pea_utilization']:.1%} computing, "
        f"{s['pea_occupancy']:.1%} held by runs  (not computing: "
        f"starved {idle['starved']:.1%}, blocked {idle['blocked']:.1%}, "
        f"reconfiguring {idle['reconfiguring']:.1%}, unbound {idle['unbound']:.1%}, "
        f"memory-stalled {idle['memory_stalled']:.1%}, transfer {idle['transfer']:.1%})",
        f"  reconfigurations {s['reconfigurations']}",
        "  tasks:",
    ]
    for name, t in s["tasks"].items():
        lines.append(f"    {name:<16} runs {t['count']:>8}"
                     f"  admission {t.get('mean_admission_wait_cycles', 0):>12,.0f}"
                     f"  wait {t['mean_wait_cycles']:>14,.0f}"
                     f"  service {t['mean_service_cycles']:>14,.0f}")
    lines.append(f"  {s['events']:,} events in {s['wall_seconds']:.2f} s")
    print("\n".join(lines))


def cmd_compare(args: argparse.Namespace) -> int:
    from octosim.experiments.batch import RunSpec, run_many
    from octosim.experiments.config import resolve_config

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies:
        raise UserError("--policies: give at least one policy name")
    for wf in args.workflows:  # check every name and --set before any run starts
        for pol in policies:
            resolve_config(wf, args.arch, pol, args.seed, args.set).build()
    specs = [RunSpec(wf, args.arch, pol, args.seed, tuple(args.set))
             for wf in args.workflows for pol in policies]
    results = run_many(specs, args.workers)
    rows = []
    first: dict[str, int] = {}
    for res in results:
        if res.error or res.summary is None:
            raise UserError(f"{res.spec.workflow} under {res.spec.policy}: {res.error}")
        s = res.summary
        base = first.setdefault(res.spec.workflow, s["makespan_cycles"])
        rows.append({"workflow": s["workflow"], "policy": s["policy"],
                     "makespan_cycles": s["makespan_cycles"],
                     "speedup_vs_first": round(base / s["makespan_cycles"], 4),
                     "lower_bound_cycles": s["lower_bound_cycles"],
                     "pea_utilization": s["pea_utilization"],
                     "latency_cycles": s["latency_cycles"], "idle": s["idle"],
                     "reconfigurations": s["reconfigurations"]})
    if args.out:
        from octosim.experiments.run import write_compare

        write_compare(args.out, {
            "kind": "compare", "arch": args.arch, "seed": args.seed, "policies": policies,
            "workflows": list(args.workflows), "sets": list(args.set), "results": rows,
            "runs": [res.summary for res in results]})
    if args.json:
        _print_json({"results": rows})
        return 0
    print(f"{'workflow':<22} {'policy':<16} {'makespan':>16} {'speed-up':>9} {'/bound':>7} "
          f"{'util':>6} {'p99 latency':>14}")
    for r in rows:
        print(f"{r['workflow']:<22} {r['policy']:<16} {r['makespan_cycles']:>16,} "
              f"{r['speedup_vs_first']:>8.2f}x "
              f"{r['makespan_cycles'] / max(1, r['lower_bound_cycles']):>7.3f} "
              f"{r['pea_utilization']:>6.1%} {r['latency_cycles']['p99']:>14,.0f}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from octosim.experiments.reproduce import reproduce

    def progress(msg: str) -> None:
        if not args.json:
            sys.stderr.write(msg + "\n")

    report = reproduce(quick=args.quick, out=args.out, workers=args.workers,
                       workflows=args.workflow or None, progress=progress)
    if args.json:
        _print_json(report)
        return 0
    sp = report["speedup"]
    print(f"Octopus on {report['arch']} over {len(report['workflows'])} workflows, seeds "
          f"{report['seeds']}:")
    for b, st in sp.items():
        print(f"  speed-up over {b:<15} mean {st['mean']:.2f}x  geomean {st['geomean']:.2f}x  "
              f"min {st['min']:.2f}x  max {st['max']:.2f}x")
    br = report["bound_ratio"]
    print(f"  makespan / lower bound     mean {br['mean']:.3f}  max {br['max']:.3f}")
    print(f"  (paper: {report['paper']['mean']:.2f}x mean, {report['paper']['max']:.2f}x max)")
    if report["failures"]:
        print(f"  {len(report['failures'])} runs failed; see results.json")
    if args.out:
        print(f"  written to {args.out}/results.md, results.json and figures")
    return 1 if report["failures"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    from octosim.experiments.html import write_report

    kind, path = write_report(args.dir)
    print(f"{path} ({kind} report)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from octosim.model.arch import parse_arch
    from octosim.model.loader import load_yaml_file
    from octosim.model.workflow import parse_workflow

    for path in args.files:
        data = load_yaml_file(path)
        if isinstance(data, dict) and "arch" in data and "owg" not in data:
            arch = parse_arch(data, path)
            what = f"arch {arch.name}: {arch.n_clusters} clusters, {arch.n_peas} PEAs"
        elif isinstance(data, dict) and "owg" in data:
            wf = parse_workflow(data, path)
            what = f"workflow {wf.name}: {len(wf.tasks)} tasks, {wf.n_blocks} blocks"
        else:
            raise UserError("neither a workflow (owg: 1) nor an architecture (arch: 1)",
                            file=path)
        print(f"{path}: ok ({what})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from octosim.workloads import builtin_names

    out: dict[str, Any] = {}
    what = args.what
    if what in (None, "workflows"):
        out["workflows"] = builtin_names("workflow")
    if what in (None, "archs"):
        out["archs"] = builtin_names("arch")
    if what in (None, "policies"):
        from octosim.policies.registry import policies

        out["policies"] = {name: cls.summary for name, cls in policies().items()}
    if what in (None, "models"):
        from octosim.hardware.zoo import get_model, list_models

        out["models"] = {name: get_model(name).source for name in list_models()}
    if args.json:
        _print_json(out)
        return 0
    for key, items in out.items():
        print(f"{key}:")
        if isinstance(items, dict):
            for name, text in items.items():
                print(f"  {name:<22} {text}")
        else:
            for name in items:
                print(f"  {name}")
    return 0


def cmd_model_cycles(args: argparse.Namespace) -> int:
    from octosim.hardware.systolic import model_layer_cycles
    from octosim.hardware.topology import load_topology_csv
    from octosim.hardware.zoo import get_model

    try:
        rows_s, cols_s = args.pea.lower().split("x")
        rows, cols = int(rows_s), int(cols_s)
        if rows < 1 or cols < 1 or rows > 4096 or cols > 4096:
            raise ValueError
    except ValueError:
        raise UserError(f"--pea {args.pea!r}: expected ROWSxCOLS, e.g. 16x16") from None
    if args.topology and args.onnx:
        raise UserError("model-cycles: give --topology or --onnx, not both")
    if args.topology:
        layers = load_topology_csv(args.topology)
        name = args.topology
    elif args.onnx:
        from octosim.hardware.onnx_import import load_onnx_layers

        layers = load_onnx_layers(args.onnx)
        name = args.onnx
    elif args.model:
        spec = get_model(args.model)
        layers = list(spec.layers)
        name = spec.name
    else:
        raise UserError("model-cycles: give a MODEL name, --topology CSV or --onnx FILE")
    cycles = model_layer_cycles(layers, rows, cols, args.dataflow)
    result = {
        "model": name, "pea": f"{rows}x{cols}", "dataflow": args.dataflow,
        "layers": [{"name": layer.name, "cycles": c, "macs": layer.macs()}
                   for layer, c in zip(layers, cycles, strict=True)],
        "total_cycles": sum(cycles),
        "total_macs": sum(layer.macs() for layer in layers),
    }
    if args.json:
        _print_json(result)
    else:
        for layer in result["layers"]:
            print(f"{layer['name']:<32} {layer['cycles']:>14,}")
        print(f"{'total':<32} {result['total_cycles']:>14,} cycles on one {rows}x{cols} PEA "
              f"({args.dataflow})")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from octosim.experiments.sweep import load_spec, run_sweep

    spec = load_spec(args.spec)
    show_bar = not args.json and sys.stderr.isatty()
    with _SweepProgress(show_bar) as progress:
        stats = run_sweep(spec, args.out, executor=args.executor, workers=args.workers,
                          address=args.address, on_start=progress.start,
                          on_point=progress.advance)
    if args.json:
        _print_json(stats.to_dict())
        return 0
    print(f"{stats.points} points in {args.out}: {stats.ran} run ({stats.failed} failed), "
          f"{stats.skipped} already stored")
    if stats.failed:
        print(f"  see the errors with: octosim results {args.out}")
    return 0


class _SweepProgress:
    """A rich progress bar with ETA on stderr (the CLI's only; the library reports by
    callbacks)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _SweepProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[failed]} failed"),
                                TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=Console(stderr=True))
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def start(self, total: int, skipped: int) -> None:
        if self.bar is not None:
            self.task = self.bar.add_task("sweep", total=total - skipped, failed=0)

    def advance(self, outcome: Any) -> None:
        if self.bar is not None and self.task is not None:
            failed = self.bar.tasks[0].fields["failed"] + (outcome.error is not None)
            self.bar.update(self.task, advance=1, failed=failed)


def cmd_results(args: argparse.Namespace) -> int:
    from octosim.experiments.sweep import load_rows, rows_to_csv

    rows = load_rows(args.dir)
    if args.json:
        _print_json({"rows": rows})
    elif args.csv:
        sys.stdout.write(rows_to_csv(rows))
    else:
        _print_results(rows)
    return 0


def _print_results(rows: list[dict[str, Any]]) -> None:
    from octosim.experiments.sweep import ROW_METRICS

    metric_cols = {*ROW_METRICS, "wall_seconds", "error", "key", "version", "finished_at"}
    params = [k for k in (rows[0] if rows else {}) if k not in metric_cols
              and not k.startswith(("latency_", "idle_"))]
    head = [*params, "makespan_cycles", "/bound", "util", "p99_latency", "status"]
    table = [head]
    for r in rows:
        ok = r["error"] is None
        table.append([*(str(r.get(k)) for k in params),
                      f"{r['makespan_cycles']:,}" if ok else "-",
                      f"{r['bound_ratio']:.3f}" if ok and r["bound_ratio"] else "-",
                      f"{r['pea_utilization']:.1%}" if ok else "-",
                      f"{r['latency_p99_cycles']:,.0f}" if ok else "-",
                      "ok" if ok else " ".join(str(r["error"]).split())[:60]])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(rows)} points, {sum(r['error'] is not None for r in rows)} failed")


def _add_sweep_parsers(sub: Any) -> None:
    sw = sub.add_parser("sweep", help="run a SPEC's grid of points, resumable (docs/sweeps.md)")
    sw.add_argument("spec", help="sweep SPEC YAML: base: {workflow, arch, policy, seed} and "
                                 "grid: {KEY: [values]}")
    sw.add_argument("--out", required=True, metavar="DIR",
                    help="store DIR/sweep.sqlite; a rerun skips the points stored there")
    sw.add_argument("--executor", choices=["local", "dask"], default="local",
                    help="local process pool or dask.distributed (default: %(default)s)")
    sw.add_argument("--workers", type=int, default=None,
                    help="worker processes (local), or LocalCluster workers (dask without "
                         "--address); default: one per CPU")
    sw.add_argument("--address", metavar="A",
                    help="join the dask scheduler at A (e.g. tcp://host:8786)")
    sw.add_argument("--json", action="store_true",
                    help="print counts as one JSON object (and no progress bar)")
    sw.set_defaults(func=cmd_sweep)

    rs = sub.add_parser("results", help="one row per finished point of a sweep DIR")
    rs.add_argument("dir", metavar="DIR", help="a directory written by octosim sweep --out")
    fmt = rs.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help='print {"rows": [...]}')
    fmt.add_argument("--csv", action="store_true", help="print CSV, one line per point")
    rs.set_defaults(func=cmd_results)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="octosim", description="Orchestrated AI Workflows on spatial chips")
    p.add_argument("--version", action="version", version=f"octosim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="simulate one workflow on one arch under one policy")
    r.add_argument("workflow", help="a built-in workflow name or a workflow YAML file")
    r.add_argument("--arch", default="octopus-chip",
                   help="a built-in arch name or an arch YAML file (default: %(default)s)")
    r.add_argument("--policy", default="static",
                   help="a registered policy (octosim list policies; default: %(default)s)")
    r.add_argument("--seed", type=int, default=1,
                   help="seed of the common random numbers (default: %(default)s)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="edit the configuration by dotted path, VALUE parsed as YAML "
                        "(workflow.*, arch.*, policy.*); repeatable")
    r.add_argument("--fault", action="append", default=[], metavar="UNIT:ID@CYCLE",
                   help="kill tbu:ID or cluster:ID at CYCLE; repeatable")
    r.add_argument("--out", metavar="DIR",
                   help="write summary.json and the resolved configuration here")
    r.add_argument("--trace", metavar="FILE",
                   help="write a Chrome/Perfetto JSON trace (ui.perfetto.dev)")
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("compare", help="several policies on the same workflows, arch and seed")
    c.add_argument("workflows", nargs="+", help="built-in names or workflow YAML files")
    c.add_argument("--arch", default="octopus-chip", help="default: %(default)s")
    c.add_argument("--policies", default="static,reactive,indiscriminate,octopus",
                   help="comma-separated; speed-ups are over the first (default: %(default)s)")
    c.add_argument("--seed", type=int, default=1, help="default: %(default)s")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="as for run, applied to every run; repeatable")
    c.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per CPU)")
    c.add_argument("--out", metavar="DIR",
                   help="write results.json (the comparison and every run's summary) here")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_compare)

    rp = sub.add_parser("reproduce", help="the paper's evaluation on the built-in suite")
    rp.add_argument("--quick", action="store_true",
                    help="fewer instances, one seed, a small tuning budget")
    rp.add_argument("--out", metavar="DIR",
                    help="write results.json, results.md and figures here")
    rp.add_argument("--workers", type=int, default=None,
                    help="worker processes (default: one per CPU)")
    rp.add_argument("--workflow", action="append", default=[],
                    help="restrict to these workflows (repeatable)")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_reproduce)

    rep = sub.add_parser("report", help="write DIR/report.html, one self-contained page")
    rep.add_argument("dir", metavar="DIR",
                     help="a directory written by run --out, compare --out or reproduce --out")
    rep.set_defaults(func=cmd_report)

    v = sub.add_parser("validate", help="check workflow and arch files")
    v.add_argument("files", nargs="+", help="workflow (owg: 1) or arch (arch: 1) YAML files")
    v.set_defaults(func=cmd_validate)

    ls = sub.add_parser("list", help="built-in workflows, archs, policies, models")
    ls.add_argument("what", nargs="?", choices=["workflows", "archs", "policies", "models"])
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    m = sub.add_parser("model-cycles", help="PEA cycles of a model's layers")
    m.add_argument("model", nargs="?", help="a model of the zoo (octosim list models)")
    m.add_argument("--topology", metavar="CSV", help="a SCALE-Sim topology CSV instead")
    m.add_argument("--onnx", metavar="FILE", help="an ONNX model's layer shapes instead")
    m.add_argument("--pea", default="16x16", metavar="ROWSxCOLS",
                   help="PE array size (default: %(default)s)")
    m.add_argument("--dataflow", choices=["os", "ws", "is"], default="os",
                   help="systolic dataflow (default: %(default)s)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_model_cycles)

    _add_sweep_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except UserError as exc:
        sys.stderr.write(exc.line() + "\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
