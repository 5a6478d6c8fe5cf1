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
    _run_and_report(args, _run_config(args))
    return 0


def _run_and_report(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    """Simulate ``cfg``, write ``--out`` and print the summary (``run`` and ``rerun``)."""
    from octosim.experiments.run import run_config, write_run

    summary = _simulate(args, cfg, run_config)
    if args.out:
        write_run(args.out, cfg, summary)
    if args.json:
        _print_json(summary)
    else:
        _print_run(summary)
    return summary


def _run_config(args: argparse.Namespace) -> Any:
    """WORKFLOW --arch --policy --seed, or a run directory's config.yaml (which fixes them)."""
    from pathlib import Path

    from octosim.experiments.config import (
        is_run_config,
        load_run_config,
        resolve_config,
        set_policies,
    )
    from octosim.model.loader import load_yaml_file

    ref = args.workflow
    if Path(ref).suffix in (".yaml", ".yml") and Path(ref).is_file() and is_run_config(
            load_yaml_file(ref)):
        for opt, value in (("--arch", args.arch), ("--policy", args.policy)):
            if value is not None:
                raise UserError(f"{ref} is a run config, which fixes the arch and the policy; "
                                f"edit it with --set (arch.KEY=VALUE, policy=NAME)", file=opt)
        cfg = load_run_config(ref, args.seed, args.set, args.fault)
    else:
        cfg = resolve_config(ref, args.arch or "octopus-chip", args.policy or "static",
                             1 if args.seed is None else args.seed, args.set, args.fault)
    for pol, key in set_policies(args.set).items():
        if pol != cfg.policy["name"]:
            raise UserError(f"this run's policy is {cfg.policy['name']}, not {pol} "
                            "(POLICY:KEY=VALUE is for compare)", file=f"--set {key}")
    return cfg


def _simulate(args: argparse.Namespace, cfg: Any, run_config: Any) -> dict[str, Any]:
    from octosim.engine.sim import Observer

    observers: list[Observer] = []
    if args.trace:
        from octosim.engine.trace import TraceObserver

        tracer = TraceObserver()
        observers.append(tracer)
    summary: dict[str, Any] = run_config(cfg, observers)
    if args.trace:
        from octosim.model.arch import parse_arch

        tracer.write(args.trace, parse_arch(cfg.arch, cfg.arch_file).clock_ghz)
    return summary


# Summary fields that measure the host, not the simulated run: a rerun may differ in these.
_HOST_FIELDS = ("wall_seconds", "events_per_second")


def cmd_rerun(args: argparse.Namespace) -> int:
    from pathlib import Path

    from octosim.experiments.config import load_run_config
    from octosim.model.loader import read_text

    run_dir = Path(args.dir)
    config = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise UserError("not a run directory (octosim run --out DIR writes one)", file=args.dir)
    cfg = load_run_config(str(config), None, args.set, args.fault)
    args.trace = getattr(args, "trace", None)
    summary = _run_and_report(args, cfg)
    old_path = run_dir / "summary.json"
    if old_path.is_file() and not args.set and not args.fault:
        try:
            old = json.loads(read_text(old_path))
        except ValueError as exc:
            raise UserError(f"not JSON: {exc}", file=str(old_path)) from None
        differ = [k for k in sorted(set(old) | set(summary))
                  if k not in _HOST_FIELDS and old.get(k) != summary.get(k)]
        if differ:
            sys.stderr.write(f"{old_path}: this rerun differs in {', '.join(differ)} "
                             f"(octosim {__version__})\n")
        else:
            sys.stderr.write(f"{old_path}: this rerun is identical (all but "
                             f"{', '.join(_HOST_FIELDS)})\n")
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
    from octosim.experiments.config import resolve_config, set_policies

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies:
        raise UserError("--policies: give at least one policy name")
    for pol, key in set_policies(args.set).items():
        if pol not in policies:
            raise UserError(f"{pol} is not among --policies {','.join(policies)}",
                            file=f"--set {key}")
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
            # The point's own error line already names its file and place.
            raise UserError(f"{(res.error or '').removeprefix('error: ')} (in {res.spec.workflow} "
                            f"under {res.spec.policy})")
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
    from octosim.experiments.config import is_run_config, load_run_config, resolve_config
    from octosim.experiments.run import prepare
    from octosim.model.arch import parse_arch
    from octosim.model.loader import load_yaml_file
    from octosim.workloads import label, resolve

    arch_ref = args.arch or "octopus-chip"
    for path in args.files:
        data = load_yaml_file(path)
        if isinstance(data, dict) and "arch" in data and "owg" not in data and not (
                is_run_config(data)):
            arch = parse_arch(data, path)
            what = f"arch {arch.name}: {arch.n_clusters} clusters, {arch.n_peas} PEAs"
        elif isinstance(data, dict) and "owg" in data:
            # Built like run builds it (task types against the arch: models, PEA ranges), so
            # validate accepts nothing run rejects for its structure; no instance is sampled.
            sim = prepare(resolve_config(path, arch_ref, args.policy or "static", 1))
            what = (f"workflow {sim.wf.name}: {len(sim.wf.tasks)} tasks, {sim.wf.n_blocks} "
                    f"blocks; fits {label('arch', resolve('arch', arch_ref))} "
                    f"under {sim.policy.name}")
        elif is_run_config(data):
            sim = prepare(load_run_config(path))
            what = f"run config: {sim.wf.name} on {sim.arch.name} under {sim.policy.name}"
        else:
            raise UserError("neither a workflow (owg: 1), an architecture (arch: 1) nor a run "
                            "config (workflow, arch, policy, seed)", file=path)
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
        try:
            spec = get_model(args.model)
        except UserError as exc:
            raise exc.within(file=args.model) from None
        layers = list(spec.layers)
        name = spec.name
    else:
        raise UserError("give a MODEL name, --topology CSV or --onnx FILE",
                        file="octosim model-cycles")
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
    r.add_argument("workflow", help="a built-in workflow name, a workflow YAML file, or a run "
                                    "directory's config.yaml (rerun exactly)")
    r.add_argument("--arch", default=None,
                   help="a built-in arch name or an arch YAML file (default: octopus-chip)")
    r.add_argument("--policy", default=None,
                   help="a registered policy (octosim list policies; default: static)")
    r.add_argument("--seed", type=int, default=None,
                   help="seed of the common random numbers (default: 1)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="edit the configuration by dotted path, VALUE parsed as YAML "
                        "(workflow.*, arch.*, policy.*, seed); workflow.arrivals.count=N "
                        "scales the phases in proportion unless workflow.phases is set too; "
                        "repeatable")
    r.add_argument("--fault", action="append", default=[], metavar="UNIT:ID@CYCLE",
                   help="kill tbu:ID or cluster:ID at CYCLE; repeatable")
    r.add_argument("--out", metavar="DIR",
                   help="write summary.json and the resolved configuration here")
    r.add_argument("--trace", metavar="FILE",
                   help="write a Chrome/Perfetto JSON trace (ui.perfetto.dev)")
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.set_defaults(func=cmd_run)

    rr = sub.add_parser("rerun", help="run a run directory's config.yaml again and say whether "
                                      "it matches its summary.json")
    rr.add_argument("dir", metavar="DIR", help="a directory written by run --out DIR")
    rr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="as for run (then no comparison with summary.json); repeatable")
    rr.add_argument("--fault", action="append", default=[], metavar="UNIT:ID@CYCLE",
                    help="as for run; repeatable")
    rr.add_argument("--out", metavar="DIR", help="write summary.json and config.yaml here")
    rr.add_argument("--trace", metavar="FILE", help="as for run")
    rr.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    rr.set_defaults(func=cmd_rerun)

    c = sub.add_parser("compare", help="several policies on the same workflows, arch and seed")
    c.add_argument("workflows", nargs="+", help="built-in names or workflow YAML files")
    c.add_argument("--arch", default="octopus-chip", help="default: %(default)s")
    c.add_argument("--policies", default="static,reactive,indiscriminate,octopus",
                   help="comma-separated; speed-ups are over the first (default: %(default)s)")
    c.add_argument("--seed", type=int, default=1, help="default: %(default)s")
    c.add_argument("--set", action="append", default=[], metavar="[POLICY:]KEY=VALUE",
                   help="as for run, applied to every run, or with POLICY: to that policy's "
                        "runs only (octopus:policy.pcs=false); repeatable")
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

    v = sub.add_parser("validate", help="check workflow, arch and run config files as run "
                                        "would, without simulating")
    v.add_argument("files", nargs="+", help="workflow (owg: 1), arch (arch: 1) or run config "
                                            "(config.yaml) YAML files")
    v.add_argument("--arch", default=None,
                   help="check workflows against this arch (default: octopus-chip)")
    v.add_argument("--policy", default=None,
                   help="and this policy's parameters (default: static)")
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
