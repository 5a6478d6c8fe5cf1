"""``octosim report DIR``: one self-contained HTML page per run, compare, reproduce or sweep
directory, checked as a user sees it: written by the CLI, then loaded in a real headless
Chromium (Debian's ``chromium`` driven by playwright-python, no browser download) with every
network request refused: no console errors, every figure drawn."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from octosim.cli import main
from octosim.experiments.batch import run_many
from octosim.experiments.html import build, sweep_section
from octosim.experiments.scaling import ScalingPlan, scaling_study

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "workflow.arrivals.count=20", "--set", "workflow.phases=[]"]
CHROMIUM = os.environ.get("OCTOSIM_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def sweep_rows() -> list[dict[str, Any]]:
    """Flat rows as a sweep store gives them: parameters, then metrics; one failed point."""
    rows = []
    for policy in ("static", "octopus"):
        for hop in (0, 2, 8):
            for seed in (1, 2):
                rows.append({"workflow": "street-camera", "arch": "octopus-4c",
                             "policy": policy, "seed": seed, "arch.noc.hop_cycles": hop,
                             "makespan_cycles": 1_000_000 + 5000 * hop * (2 if policy ==
                                                                          "static" else 1)
                             + seed, "pea_utilization": 0.5 - 0.01 * hop,
                             "latency_p99": 40_000.0 + hop, "error": None})
    rows.append({"workflow": "street-camera", "arch": "octopus-4c", "policy": "octopus",
                 "seed": 3, "arch.noc.hop_cycles": 99, "makespan_cycles": None,
                 "pea_utilization": None, "latency_p99": None,
                 "error": "error: arch.noc.hop_cycles: too large"})
    return rows


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One directory of each kind, each with its report.html written by the CLI."""
    base = tmp_path_factory.mktemp("reports")
    out = {"run": base / "run", "compare": base / "compare", "reproduce": base / "reproduce"}
    assert main(["run", "street-camera", "--policy", "octopus", *SMALL,
                 "--out", str(out["run"])]) == 0
    assert main(["compare", "street-camera", "document-ocr", "--policies", "static,octopus",
                 "--workers", "1", *SMALL, "--out", str(out["compare"])]) == 0
    # A reproduction: the committed results, and per-run lines for two latency runs.
    # (One factor of the regime map is kept: drawing all of them only costs time.)
    rep = out["reproduce"]
    rep.mkdir()
    results = json.loads((ROOT / "docs" / "results" / "results.json").read_text())
    results["regimes"] = dict(list(results["regimes"].items())[:1])
    # The wafer scaling study, at a toy size (the committed results.json predates it).
    results["scaling"] = scaling_study(ScalingPlan((1, 4), 2), ["street-camera"],
                                       lambda specs: run_many(specs, workers=1))
    (rep / "results.json").write_text(json.dumps(results))
    assert main(["run", "street-camera", "--policy", "static", *SMALL,
                 "--out", str(base / "static")]) == 0
    with (rep / "runs.jsonl").open("w") as fh:
        for policy, run_dir in (("static", base / "static"), ("octopus", out["run"])):
            summary = json.loads((run_dir / "summary.json").read_text())
            spec = {"workflow": "street-camera", "arch": "octopus-chip", "policy": policy,
                    "seed": 1, "sets": [], "tags": [["load", 0.5]]}
            fh.write(json.dumps({"spec": spec, "summary": summary, "error": None}) + "\n")
    for kind in ("run", "compare", "reproduce"):
        assert main(["report", str(out[kind])]) == 0
    # A sweep directory: its rows come from the sweep store's reader, here hand-made.
    sw = base / "sweep"
    sw.mkdir()
    (sw / "sweep.sqlite").write_bytes(b"")
    _, text = build(str(sw), sweep_rows=lambda d: sweep_rows())
    (sw / "report.html").write_text(text)
    out["sweep"] = sw
    return out


EXPECTED_FIGURES = {"run": 2, "compare": 3, "reproduce": 7, "sweep": 1}


@pytest.mark.parametrize("kind", ["run", "compare", "reproduce", "sweep"])
def test_report_is_self_contained(dirs: dict[str, Path], kind: str) -> None:
    text = (dirs[kind] / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no external scripts, styles, images or fonts.
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text)
    assert all(r.startswith(("data:", "#")) for r in refs), refs
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert len(re.findall(r"<img ", text)) >= EXPECTED_FIGURES[kind]


def test_run_report_content(dirs: dict[str, Path]) -> None:
    text = (dirs["run"] / "report.html").read_text()
    summary = json.loads((dirs["run"] / "summary.json").read_text())
    assert f"{summary['makespan_cycles']:,}" in text
    for word in ("Utilisation and idle time", "starved", "Latency", "decode", "config.yaml"):
        assert word in text
    # The CDF is drawn from the stored percentiles, not from p50/p95/p99/max alone.
    assert summary["latency_cdf_cycles"]["percent"][0] == 0
    assert summary["latency_cdf_cycles"]["cycles"][-1] == summary["latency_cycles"]["max"]
    assert "p50/p95/p99/max only" not in text


def test_reproduce_report_draws_the_scaling_study(dirs: dict[str, Path]) -> None:
    text = (dirs["reproduce"] / "report.html").read_text()
    assert "Wafer scaling" in text and 'alt="parallel efficiency against clusters"' in text
    assert "parallel efficiency per workflow" in text


def test_compare_out_keeps_every_summary(dirs: dict[str, Path]) -> None:
    doc = json.loads((dirs["compare"] / "results.json").read_text())
    assert [(r["workflow"], r["policy"]) for r in doc["results"]] == [
        (w, p) for w in ("street-camera", "document-ocr") for p in ("static", "octopus")]
    assert [s["policy"] for s in doc["runs"]] == [r["policy"] for r in doc["results"]]
    assert all(s["makespan_cycles"] == r["makespan_cycles"]
               for s, r in zip(doc["runs"], doc["results"], strict=True))


def test_sweep_section_from_rows() -> None:
    """The sweep section takes flat rows: parameters are told from metrics, the makespan is
    drawn against the parameter that varies (a line per policy), failed points are counted."""
    title, body = sweep_section(sweep_rows())
    assert title == "Sweep"
    assert "13 points: 12 finished, 1 failed." in body
    assert "makespan_cycles against arch.noc.hop_cycles" in body
    assert "makespan_cycles against seed" in body
    assert body.count("<img ") == 2  # hop_cycles and seed; policy is the lines
    assert "too large" in body
    assert sweep_section([])[1].count("No finished points") == 1


@pytest.mark.parametrize("make,what", [
    (lambda d: None, "not a directory"),
    (lambda d: d.mkdir(), "no summary.json"),
    (lambda d: (d.mkdir(), (d / "summary.json").write_text("{not json")), "not valid JSON"),
    (lambda d: (d.mkdir(), (d / "summary.json").write_text("{}")), "missing field"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text("[1]")), "not a JSON object"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text('{"a": 1}')), "neither a compare"),
])
def test_unreadable_dir_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        make: Any, what: str) -> None:
    d = tmp_path / "d"
    make(d)
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {d}: ") and what in err


def _browser() -> Any:
    """Playwright's sync API and the chromium binary, or skip (never in CI)."""
    have = Path(CHROMIUM).exists()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        have = False
    if not have:
        if IN_CI:
            pytest.fail(f"CI must run the browser test: need playwright and {CHROMIUM}")
        pytest.skip(f"no playwright or no {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


def test_reports_render_in_chromium(dirs: dict[str, Path]) -> None:
    sync_playwright = _browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for kind, d in dirs.items():
                page = browser.new_page()
                errors: list[str] = []
                fetched: list[str] = []
                page.on("console", lambda m, e=errors: e.append(m.text)
                        if m.type == "error" else None)
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))

                def route(r: Any, f: list[str] = fetched) -> None:
                    if r.request.url.startswith(("file:", "data:")):
                        r.continue_()
                    else:
                        f.append(r.request.url)
                        r.abort()

                page.route("**/*", route)
                page.goto((d / "report.html").as_uri(), wait_until="load")
                # Each figure decodes, has a size on the page, and is drawn: redrawn on a
                # canvas, its pixels are opaque (a truncated PNG leaves them transparent).
                figs = page.evaluate("""async () => Promise.all(
                    Array.from(document.images).map(async i => {
                        let ok = true;
                        try { await i.decode(); } catch (e) { ok = false; }
                        const c = document.createElement('canvas');
                        c.width = 64; c.height = 64;
                        const g = c.getContext('2d');
                        g.drawImage(i, 0, 0, 64, 64);
                        const px = g.getImageData(0, 0, 64, 64).data;
                        let opaque = 0;
                        for (let k = 3; k < px.length; k += 4) { if (px[k] > 0) opaque++; }
                        return {ok: ok && i.complete, w: i.naturalWidth, h: i.naturalHeight,
                                box: i.getBoundingClientRect().width, drawn: opaque / 4096};
                    }))""")
                assert len(figs) >= EXPECTED_FIGURES[kind], kind
                assert all(f["ok"] and f["w"] > 0 and f["h"] > 0 and f["box"] > 0
                           and f["drawn"] > 0.99 for f in figs), (kind, figs)
                # The tables sort on a click (the page's script runs without errors).
                first = page.locator("table.sortable th").first
                first.click()
                first.click()
                assert "desc" in (first.get_attribute("class") or "")
                assert errors == [], (kind, errors)
                assert fetched == [], (kind, fetched)
                page.close()
        finally:
            browser.close()
