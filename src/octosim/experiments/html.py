"""``octosim report DIR``: one self-contained HTML page for a run, compare, reproduce or sweep
directory (inline CSS and JS, figures as inline base64 PNG; nothing is fetched, so the file
can be mailed or opened offline).

Each kind of directory is a list of sections, ``(title, html)``; a sweep's is one function of
its flat rows (:func:`sweep_section`), so any store that yields such rows gets a report.
Figures reuse :mod:`octosim.experiments.report`'s figure functions where one exists.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from octosim import __version__
from octosim.errors import UserError
from octosim.experiments import report as rp
from octosim.experiments.run import write_atomic

Section = tuple[str, str]
IDLE_CAUSES = ("starved", "blocked", "reconfiguring", "unbound", "memory_stalled", "transfer")
MAX_TABLE_ROWS = 2000


# --- HTML pieces ------------------------------------------------------------------------------

def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers as a reader wants them: integers with separators, floats to ``digits``."""
    if isinstance(x, bool) or x is None:
        return "" if x is None else str(x).lower()
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if x.is_integer() and abs(x) >= 1000:
            return f"{int(x):,}"
        return f"{x:,.{digits}f}" if abs(x) < 1e6 else f"{x:,.0f}"
    if isinstance(x, dict | list):
        return json.dumps(x)
    return str(x)


def table(header: list[str], rows: Iterable[list[Any]], caption: str = "") -> str:
    """A sortable table (click a header); numbers are right-aligned."""
    rows = list(rows)
    more = len(rows) - MAX_TABLE_ROWS
    body = []
    for r in rows[:MAX_TABLE_ROWS]:
        cells = []
        for v in r:
            num = isinstance(v, int | float) and not isinstance(v, bool)
            cells.append(f'<td class="num" data-v="{v}">{esc(fmt(v))}</td>' if num
                         else f"<td>{esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    note = (f'<p class="note">{more:,} more rows not shown (see the JSON files).</p>'
            if more > 0 else "")
    return (f'<table class="sortable">{cap}<thead><tr>'
            + "".join(f"<th>{esc(h)}</th>" for h in header)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>" + note)


def figure(fig: Any, alt: str, caption: str = "") -> str:
    """A matplotlib figure as an inline PNG (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    w, h = (int(round(v * 90)) for v in fig.get_size_inches())
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}" '
            f'width="{w}" height="{h}">{cap}</figure>')


def para(text: str) -> str:
    return f"<p>{esc(text)}</p>"


def details(summary: str, text: str) -> str:
    return f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;
background:#fafbfc}
header{background:#24292f;color:#fff;padding:14px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1d9}
nav{padding:8px 28px;background:#eef1f4;border-bottom:1px solid #d0d7de}
nav a{margin-right:14px;color:#0969da;text-decoration:none}
main{padding:8px 28px 40px;max-width:1200px}
section{margin-top:22px}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;font-size:17px}
table{border-collapse:collapse;margin:8px 0;font-size:13px;background:#fff}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px}th{background:#f0f3f6;cursor:pointer;
user-select:none;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
th.asc:after{content:" \\25B2"}th.desc:after{content:" \\25BC"}
figure{margin:10px 0}img{max-width:100%;height:auto;border:1px solid #d0d7de;background:#fff}
figcaption{color:#57606a;font-size:12px}.note{color:#57606a;font-size:12px}
pre{background:#fff;border:1px solid #d0d7de;padding:8px;overflow:auto;font-size:12px}
.kv td:first-child{font-weight:600}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function (t) {
  t.querySelectorAll('th').forEach(function (th, i) {
    th.addEventListener('click', function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains('asc');
      t.querySelectorAll('th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      rows.sort(function (a, b) {
        var x = a.cells[i], y = b.cells[i];
        var u = x.dataset.v, v = y.dataset.v, r;
        if (u !== undefined && v !== undefined) { r = parseFloat(u) - parseFloat(v); }
        else { r = x.textContent.localeCompare(y.textContent); }
        return asc ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#s{i}">{esc(t)}</a>' for i, (t, _) in enumerate(sections))
    body = "".join(f'<section id="s{i}"><h2>{esc(t)}</h2>{h}</section>'
                   for i, (t, h) in enumerate(sections))
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)} &middot; octosim {__version__}"
            f" &middot; written {stamp}</p></header><nav>{nav}</nav><main>{body}</main>"
            f"<script>{JS}</script></body></html>\n")


# --- figures not in report.py -----------------------------------------------------------------

def _flat_util(summary: dict[str, Any]) -> dict[str, float]:
    return {"pea_utilization": summary["pea_utilization"], **summary.get("idle", {})}


def cdf_points(summary: dict[str, Any]) -> tuple[list[float], list[float], bool]:
    """(cycles, fraction of instances, exact) of a run's latency CDF: the stored percentile
    list (``latency_cdf_cycles``) or, for summaries written before it, p50/p95/p99/max only."""
    cdf = summary.get("latency_cdf_cycles")
    if cdf:
        return list(cdf["cycles"]), [p / 100 for p in cdf["percent"]], True
    lat = summary["latency_cycles"]
    return ([lat["p50"], lat["p95"], lat["p99"], lat["max"]], [0.5, 0.95, 0.99, 1.0], False)


def latency_cdf_plot(groups: dict[str, dict[str, dict[str, Any]]], title: str = "") -> Any:
    """One panel per group (e.g. workflow), one curve per run (e.g. policy)."""
    plt = rp._pyplot()
    n = len(groups)
    cols = min(n, 3)
    rws = math.ceil(n / cols)
    fig, axes = plt.subplots(rws, cols, figsize=(4.6 * cols, 3.3 * rws), squeeze=False)
    for ax, (name, curves) in zip(axes.flat, groups.items(), strict=False):
        coarse = False
        for label, summary in curves.items():
            xs, ys, exact = cdf_points(summary)
            coarse = coarse or not exact
            ax.plot(xs, ys, "-" if exact else "o--", drawstyle="default", lw=1.4,
                    markersize=3, label=label)
        ax.set_title(name + (" (p50/p95/p99/max only)" if coarse else ""), fontsize=9)
        ax.set_xlabel("end-to-end latency (cycles)", fontsize=8)
        ax.set_ylabel("fraction of instances", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def grouped_bars(values: dict[str, dict[str, float]], ylabel: str, ref: float | None = 1.0
                 ) -> Any:
    """Bars per group (x) and series (colour): ``values[group][series]``."""
    plt = rp._pyplot()
    groups = list(values)
    series = list(dict.fromkeys(s for g in values.values() for s in g))
    fig, ax = plt.subplots(figsize=(max(5.0, min(14.0, 1.5 + 1.1 * len(groups))), 3.8))
    width = 0.8 / max(1, len(series))
    for i, s in enumerate(series):
        ax.bar([j + (i - (len(series) - 1) / 2) * width for j in range(len(groups))],
               [values[g].get(s, 0.0) for g in groups], width, label=s)
    if ref is not None:
        ax.axhline(ref, color="black", lw=0.8)
    ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def line_plot(x_name: str, lines: dict[str, list[tuple[Any, float]]], ylabel: str) -> Any:
    """A metric against one parameter, a line per series (categorical x if not numeric)."""
    plt = rp._pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    xs_all = sorted({x for pts in lines.values() for x, _ in pts}, key=_sort_key)
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs_all)
    pos = {x: (x if numeric else i) for i, x in enumerate(xs_all)}
    for label, pts in lines.items():
        pts = sorted(pts, key=lambda p: _sort_key(p[0]))
        ax.plot([pos[x] for x, _ in pts], [y for _, y in pts], "o-", lw=1.4, markersize=4,
                label=label)
    if not numeric:
        ax.set_xticks(list(range(len(xs_all))), [str(x) for x in xs_all])
    ax.set_xlabel(x_name)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(lines) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _sort_key(x: Any) -> tuple[int, Any]:
    if isinstance(x, int | float) and not isinstance(x, bool):
        return (0, x)
    return (1, str(x))


# --- one run -----------------------------------------------------------------------------------

def run_sections(s: dict[str, Any], config_text: str = "") -> list[Section]:
    lat = s["latency_cycles"]
    head = table(["", ""], [
        ["workflow", s["workflow"]], ["arch", s["arch"]], ["policy", s["policy"]],
        ["seed", s["seed"]], ["instances", s["instances"]],
        ["makespan (cycles)", s["makespan_cycles"]],
        ["lower bound (cycles)", s["lower_bound_cycles"]],
        ["makespan / lower bound", s.get("bound_ratio", "")],
        ["throughput (instances/s)", s.get("throughput_per_second", "")],
        ["task runs", s.get("task_runs", "")], ["reconfigurations", s["reconfigurations"]],
        ["events", s["events"]], ["wall seconds", s["wall_seconds"]]]).replace(
        'class="sortable"', 'class="kv"')
    util = _flat_util(s)
    util_html = (table(["busy (computing)", "occupancy", *IDLE_CAUSES],
                       [[s["pea_utilization"], s.get("pea_occupancy", ""),
                         *(s["idle"].get(k, 0.0) for k in IDLE_CAUSES)]],
                       "fractions of all PEA time")
                 + figure(rp.idle_plot({s["policy"]: util}), "PEA time by cause",
                          "Where the PEA time goes: computing, then each idle cause."))
    lat_html = table(["mean", "p50", "p95", "p99", "max"],
                     [[lat["mean"], lat["p50"], lat["p95"], lat["p99"], lat["max"]]],
                     "end-to-end latency (cycles)")
    if "latency_breakdown_cycles" in s:
        b = s["latency_breakdown_cycles"]
        lat_html += table(list(b), [list(b.values())],
                          "mean latency along each instance's critical path, by term (cycles)")
    lat_html += figure(latency_cdf_plot({s["workflow"]: {s["policy"]: s}}), "latency CDF",
                       _cdf_caption([s]))
    tasks = table(["task", "runs", "mean admission wait", "mean queue wait", "mean service",
                   "mean compute", "mean stall"],
                  [[name, t["count"], t.get("mean_admission_wait_cycles", 0.0),
                    t["mean_wait_cycles"], t["mean_service_cycles"],
                    t.get("mean_compute_cycles", ""), t.get("mean_stall_cycles", "")]
                   for name, t in s["tasks"].items()], "per task type (cycles)")
    out = [("Run", head), ("Utilisation and idle time", util_html), ("Latency", lat_html),
           ("Tasks", tasks)]
    if config_text:
        out.append(("Configuration", details("config.yaml (rerun with octosim run "
                                             "DIR/config.yaml)", config_text)))
    return out


def _cdf_caption(summaries: Iterable[dict[str, Any]]) -> str:
    if all(s.get("latency_cdf_cycles") for s in summaries):
        return ("Latency CDF from the percentiles stored in each summary "
                "(latency_cdf_cycles: 0, 1, 5, 10 ... 99.9, 100).")
    return ("Latency CDF: dashed curves with dots are drawn from p50/p95/p99/max only "
            "(summaries written before latency_cdf_cycles was stored).")


# --- compare ------------------------------------------------------------------------------------

def compare_sections(doc: dict[str, Any]) -> list[Section]:
    rows = doc["results"]
    runs = doc.get("runs") or []
    wfs = list(dict.fromkeys(r["workflow"] for r in rows))
    multi = len(wfs) > 1
    tab = table(["workflow", "policy", "makespan (cycles)", "speed-up vs first",
                 "makespan / bound", "utilisation", "p99 latency", "reconfigurations"],
                [[r["workflow"], r["policy"], r["makespan_cycles"], r["speedup_vs_first"],
                  round(r["makespan_cycles"] / max(1, r["lower_bound_cycles"]), 4),
                  r["pea_utilization"], r["latency_cycles"]["p99"], r["reconfigurations"]]
                 for r in rows])
    speed = {w: {r["policy"]: r["speedup_vs_first"] for r in rows if r["workflow"] == w}
             for w in wfs}
    first = rows[0]["policy"] if rows else ""
    out = [("Speed-ups", tab + figure(grouped_bars(speed, f"speed-up over {first}"),
                                       "speed-ups", f"Makespan of {first} over each policy's, "
                                       "same workflow, arch and seed."))]
    util = {(f"{r['workflow']}\n{r['policy']}" if multi else r["policy"]):
            {"pea_utilization": r["pea_utilization"], **r["idle"]} for r in rows}
    out.append(("Utilisation and idle time",
                table(["workflow", "policy", "busy", *IDLE_CAUSES],
                      [[r["workflow"], r["policy"], r["pea_utilization"],
                        *(r["idle"].get(k, 0.0) for k in IDLE_CAUSES)] for r in rows],
                      "fractions of all PEA time")
                + figure(rp.idle_plot(util), "PEA time by cause")))
    source = runs or rows
    groups = {w: {s["policy"]: s for s in source if s["workflow"] == w} for w in wfs}
    out.append(("Latency", table(["workflow", "policy", "mean", "p50", "p95", "p99", "max"],
                                 [[r["workflow"], r["policy"], *r["latency_cycles"].values()]
                                  for r in rows], "end-to-end latency (cycles)")
                + figure(latency_cdf_plot(groups), "latency CDFs", _cdf_caption(source))))
    if runs:
        out.append(("Tasks", "".join(
            table(["task", "runs", "mean queue wait", "mean service"],
                  [[n, t["count"], t["mean_wait_cycles"], t["mean_service_cycles"]]
                   for n, t in s["tasks"].items()], f"{s['workflow']} under {s['policy']}")
            for s in runs)))
    return out


# --- reproduce ----------------------------------------------------------------------------------

def reproduce_sections(report: dict[str, Any], runs: list[dict[str, Any]]) -> list[Section]:
    sp = report["speedup"]
    head = table(["baseline", "mean", "geomean", "min", "max"],
                 [[b, s["mean"], s["geomean"], s["min"], s["max"]] for b, s in sp.items()],
                 "speed-up of Octopus (makespan of the baseline over Octopus's)")
    br = report["bound_ratio"]
    head += para(f"Octopus's makespan over the lower bound: mean {fmt(br['mean'])}, max "
                 f"{fmt(br['max'])}. The paper reports {fmt(report['paper']['mean'], 2)}x on "
                 f"average and up to {fmt(report['paper']['max'], 2)}x. Arch "
                 f"{report['arch']}, seeds {', '.join(map(str, report['seeds']))}"
                 + (", quick" if report.get("quick") else "") + ".")
    pols = [p for p in rp.POLICY_ORDER
            if all(p in w["makespan_cycles"] for w in report["workflows"])]
    per_wf = table(["workflow", "instances", "task runs", "lower bound", *pols,
                    "x static", "x reactive", "octopus / bound"],
                   [[w["workflow"], w["instances"], w["task_runs"], w["lower_bound_cycles"],
                     *(w["makespan_cycles"][p] for p in pols), w["speedup"]["static"],
                     w["speedup"]["reactive"], w["bound_ratio"]] for w in report["workflows"]],
                   "makespan in cycles, mean over seeds")
    out = [("Speed-ups", head + figure(rp.speedup_plot(report), "speed-up per workflow")
            + per_wf)]
    ab = report["ablation_speedup_vs_static"]
    out.append(("Ablation", table(["configuration", "mean", "geomean", "min", "max"],
                                  [[k, v["mean"], v["geomean"], v["min"], v["max"]]
                                   for k, v in ab.items()], "speed-up over static")
                + figure(rp.ablation_plot(report), "ablation")))
    util = report["utilization"]
    upols = [p for p in rp.POLICY_ORDER if p in util]
    keys = [k for k in IDLE_CAUSES if any(k in util[p] for p in upols)]
    out.append(("Utilisation and idle time",
                table(["policy", "busy", *keys],
                      [[p, util[p]["pea_utilization"], *(util[p].get(k, 0.0) for k in keys)]
                       for p in upols], "fractions of all PEA time, mean over workflows")
                + figure(rp.idle_plot({p: util[p] for p in upols}), "PEA time by cause",
                         "Blocked is back-pressure (Contagious PEA Idleness).")))
    lat = report.get("latency") or []
    if lat:
        body = table(["workflow", "load", "policy", "mean", "p50", "p95", "p99",
                      "reconf./run"],
                     [[r["workflow"], r["load"], r["policy"], r["mean"], r["p50"], r["p95"],
                       r["p99"], r.get("reconfigurations_per_run", 0.0)] for r in lat],
                     "latency in cycles under Poisson arrivals")
        fig = rp.latency_plot(report)
        if fig is not None:
            body += figure(fig, "p99 latency relative to static")
        for load in sorted({r["load"] for r in lat}):
            groups: dict[str, dict[str, dict[str, Any]]] = {}
            for r in runs:
                spec, s = r.get("spec") or {}, r.get("summary")
                tags = dict(map(tuple, spec.get("tags") or []))
                if s and tags.get("load") == load:
                    groups.setdefault(spec["workflow"], {})[spec["policy"]] = s
            if groups:
                body += figure(latency_cdf_plot(groups, f"latency CDFs at {load:.0%} load"),
                               f"latency CDFs at {load:.0%} load",
                               _cdf_caption(s for g in groups.values() for s in g.values()))
        if not runs:
            body += para("No runs.jsonl here: latency CDFs need the per-run summaries.")
        out.append(("Latency", body))
    regimes = report.get("regimes") or {}
    if regimes:
        body = para("Scaling: Octopus's speed-up over the best baseline as one factor at a "
                    "time moves from a base point.")
        for factor, entries in regimes.items():
            body += figure(rp.regime_plot(factor, entries), f"regime {factor}")
            body += table(["value", "x best baseline", "best baseline"],
                          [[e["value"], e.get("speedup_vs_best_baseline"),
                            e.get("best_baseline", "")] for e in entries], factor)
        out.append(("Scaling (regime map)", body))
    study = report.get("scaling")
    if study:
        from octosim.experiments.scaling import summary_rows, workflow_rows

        body = para(f"Wafer scaling: {study['policy']} with balancer={study['balancer']} on "
                    f"{study['arch']} cut to {', '.join(map(str, study['grids']))} clusters, "
                    f"{study['per_cluster']} instances per cluster, memory scaled with the grid "
                    "and held fixed. Parallel efficiency = throughput(N) / (N x throughput(1)), "
                    f"geomean over the workflows. Target: {study['target']}.")
        body += figure(rp.scaling_plot(study), "parallel efficiency against clusters")
        body += table(*summary_rows(study), "geomeans over the workflows")
        body += table(*workflow_rows(study), "parallel efficiency per workflow")
        if study.get("failures"):
            body += table(["workflow", "clusters", "memory", "error"],
                          [[f["workflow"], f["clusters"], f["memory"], f["error"]]
                           for f in study["failures"]], "failed runs")
        out.append(("Wafer scaling", body))
    tuning = report.get("tuning") or {}
    if tuning:
        out.append(("Tuning", table(
            ["policy", "knob", "values swept", "default", "winner"],
            [[p, k, ", ".join(map(str, v)), t.get("defaults", {}).get(k), t["best"].get(k)]
             for p, t in tuning.items() for k, v in t["grid"].items()],
            "every policy tuned by the same procedure")))
    if report.get("failures"):
        out.append(("Failed runs", table(["spec", "error"], [[json.dumps(f["spec"]), f["error"]]
                                                             for f in report["failures"]])))
    return out


# --- sweep --------------------------------------------------------------------------------------

METRIC_PREFIXES = ("makespan", "latency", "idle", "pea_", "throughput", "lower_bound",
                   "bound_ratio", "reconfig", "events", "wall", "instances", "task_runs",
                   "tasks", "noc", "memory", "control", "backpressure", "reexec")
META_KEYS = ("error", "status", "hash", "key", "version", "octosim_version", "finished_at",
             "started_at", "seconds")


def sweep_section(rows: list[dict[str, Any]], params: list[str] | None = None) -> Section:
    """A sweep's results from its flat rows (parameters and metrics, one row per point):
    a table of every point, and for each parameter that varies, the makespan (mean over the
    other parameters) against it, one line per policy when the policy varies too."""
    if not rows:
        return ("Sweep", para("No finished points."))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if params is None:
        params = [k for k in keys if not k.startswith(METRIC_PREFIXES) and k not in META_KEYS]
    metrics = [k for k in keys if k not in params]
    failed = [r for r in rows if r.get("error")]
    ok = [r for r in rows if not r.get("error")]
    body = para(f"{len(rows):,} points: {len(ok):,} finished, {len(failed):,} failed.")
    varying = [p for p in params if len({_hashable(r.get(p)) for r in rows}) > 1]
    metric = next((m for m in ("makespan_cycles", "latency_p99", "pea_utilization")
                   if any(isinstance(r.get(m), int | float) for r in ok)), None)
    if metric is None:
        metric = next((m for m in metrics if any(isinstance(r.get(m), int | float)
                                                 and not isinstance(r.get(m), bool)
                                                 for r in ok)), None)
    if metric is not None:
        for x in varying:
            if x == "policy" and len(varying) > 1:
                continue
            series_key = "policy" if "policy" in varying and x != "policy" else None
            lines: dict[str, dict[Any, list[float]]] = {}
            for r in ok:
                v = r.get(metric)
                if not isinstance(v, int | float) or isinstance(v, bool):
                    continue
                label = str(r.get(series_key)) if series_key else metric
                lines.setdefault(label, {}).setdefault(_hashable(r.get(x)), []).append(v)
            pts = {lb: [(xv, sum(ys) / len(ys)) for xv, ys in d.items()]
                   for lb, d in lines.items()}
            if pts:
                body += figure(line_plot(x, pts, metric), f"{metric} against {x}",
                               f"{metric} against {x} (mean over the other parameters).")
    cols = params + [m for m in metrics if m != "error"] + (["error"] if failed else [])
    body += table(cols, [[_cell(r.get(c)) for c in cols] for r in rows], "every point")
    return ("Sweep", body)


def _hashable(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v


def _cell(v: Any) -> Any:
    return "" if v is None else v


# --- directories --------------------------------------------------------------------------------

def _read_json(path: Path, dir_label: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"{path.name}: cannot read: {exc.strerror or exc}",
                        file=dir_label) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path.name}: not valid JSON ({exc})", file=dir_label) from None


def build(dir_path: str, sweep_rows: Callable[[str], list[dict[str, Any]]] | None = None
          ) -> tuple[str, str]:
    """(kind, page) for a directory; UserError naming the directory if it is not one."""
    d = Path(dir_path)
    if not d.is_dir():
        raise UserError("not a directory" if not d.exists() or d.is_file()
                        else "cannot read it", file=dir_path)
    try:
        if (d / "sweep.sqlite").is_file():
            loader = sweep_rows
            if loader is None:
                try:
                    from octosim.experiments.sweep import load_rows  # type: ignore[import-not-found]
                except ImportError:
                    raise UserError("sweep.sqlite: this octosim cannot read sweeps",
                                    file=dir_path) from None
                loader = load_rows
            rows = loader(dir_path)
            return "sweep", page(f"Sweep: {d.name}", f"{len(rows):,} points",
                                 [sweep_section(rows)])
        if (d / "summary.json").is_file():
            s = _read_json(d / "summary.json", dir_path)
            cfg = (d / "config.yaml").read_text() if (d / "config.yaml").is_file() else ""
            return "run", page(f"{s['workflow']} under {s['policy']}",
                               f"run on {s['arch']}, seed {s['seed']}", run_sections(s, cfg))
        if (d / "results.json").is_file():
            doc = _read_json(d / "results.json", dir_path)
            if not isinstance(doc, dict):
                raise UserError("results.json: not a JSON object", file=dir_path)
            if "results" in doc:
                return "compare", page(
                    "Compare: " + ", ".join(doc.get("workflows") or []),
                    f"on {doc.get('arch', '?')}, seed {doc.get('seed', '?')}, policies "
                    + ", ".join(doc.get("policies") or []), compare_sections(doc))
            if "workflows" in doc and "speedup" in doc:
                runs = _read_jsonl(d / "runs.jsonl", dir_path)
                return "reproduce", page("Reproduction: Octopus against the baselines",
                                         f"arch {doc['arch']}",
                                         reproduce_sections(doc, runs))
            raise UserError("results.json: neither a compare nor a reproduce result",
                            file=dir_path)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise UserError(f"unexpected contents: {what}", file=dir_path) from None
    raise UserError("no summary.json (run --out), results.json (compare or reproduce --out) "
                    "or sweep.sqlite (sweep --out) here", file=dir_path)


def _read_jsonl(path: Path, dir_label: str) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines):
                break  # a last line cut short by a crash
            raise UserError(f"runs.jsonl: line {i}: not valid JSON", file=dir_label) from None
    return out


def write_report(dir_path: str) -> tuple[str, Path]:
    """Write ``DIR/report.html``; returns (kind of directory, path written)."""
    kind, text = build(dir_path)
    path = Path(dir_path) / "report.html"
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UserError(f"cannot write report.html: {exc.strerror or exc}",
                        file=dir_path) from None
    return kind, path
