"""The regression corpus: runs whose ``run --json`` output an engine change must not move.

Every built-in workflow under every built-in policy on one and four clusters, plus runtime
faults, bounded and unbounded buffers, Octopus's ablations, ``--set`` variants of every policy,
and small hand-written workflows for the Control Blocks the built-in suite uses little
(``parallel``, ``loop`` by count and by ``while``, ``branch`` by ``when``, nested and empty
``foreach`` copies, ``out_bytes`` and ``scale`` drawn per run).

The expected summaries live in ``fixtures/corpus.json``; ``test_corpus.py`` compares each run
with them byte for byte (as JSON), apart from the fields in :data:`IGNORED` (how long the host
took, not what was simulated). A change that moves a number on purpose (a fixed bug) rewrites
the fixture in a commit of its own that says why::

    python -m tests.engine.corpus --write
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).parent / "fixtures" / "corpus.json"
FIXTURE_DIR = Path(__file__).parent / "fixtures"
IGNORED = ("wall_seconds", "events_per_second")

WORKFLOWS = ["autonomous-driving", "content-moderation", "document-ocr", "face-access-control",
             "medical-imaging", "rag-agent", "recommendation", "street-camera",
             "visual-inspection", "voice-assistant"]
POLICIES = ["static", "reactive", "indiscriminate", "octopus"]


@dataclass(frozen=True)
class Case:
    workflow: str
    arch: str
    policy: str
    seed: int = 1
    sets: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        parts = [Path(self.workflow).stem, self.arch, self.policy, f"s{self.seed}"]
        parts += [s.replace("policy.", "").replace("workflow.", "wf.") for s in self.sets]
        parts += [f"fault={f}" for f in self.faults]
        return "/".join(parts)


def _fixture(name: str) -> str:
    return str(FIXTURE_DIR / name)


def cases() -> list[Case]:
    out = [Case(w, a, p) for w in WORKFLOWS for a in ("octopus-chip", "octopus-4c")
           for p in POLICIES]
    for p in POLICIES:
        out.append(Case("street-camera", "octopus-chip", p, faults=("tbu:3@20000000",)))
        out.append(Case("document-ocr", "octopus-4c", p, faults=("cluster:1@100000000",)))
        out.append(Case("face-access-control", "octopus-4c", p,
                        faults=("tbu:5@30000000", "tbu:17@60000000")))
    out += [
        # Buffers: unbounded where the default is bounded, and the reverse.
        Case("street-camera", "octopus-chip", "static", sets=("policy.buffer_slots=0",)),
        Case("autonomous-driving", "octopus-chip", "reactive", sets=("policy.buffer_slots=1",)),
        Case("street-camera", "octopus-chip", "octopus", sets=("policy.buffer_slots=4",)),
        Case("content-moderation", "octopus-chip", "octopus", sets=("policy.buffer_slots=2",)),
        Case("document-ocr", "octopus-chip", "indiscriminate", sets=("policy.buffer_slots=2",)),
        # Octopus ablations and knobs.
        Case("street-camera", "octopus-chip", "octopus", sets=("policy.dds=false",)),
        Case("visual-inspection", "octopus-chip", "octopus", sets=("policy.ats=false",)),
        Case("rag-agent", "octopus-chip", "octopus", sets=("policy.pcs=false",)),
        Case("autonomous-driving", "octopus-4c", "octopus",
             sets=("policy.dds=false", "policy.pcs=false")),
        Case("medical-imaging", "octopus-chip", "octopus",
             sets=("policy.horizon_grant=false", "policy.lookahead=3")),
        # Baseline knobs.
        Case("street-camera", "octopus-chip", "static", sets=("policy.peas=min",)),
        Case("face-access-control", "octopus-chip", "reactive",
             sets=("policy.threshold=0.3", "policy.window_cycles=0",
                   "policy.check_cycles=200000", "policy.max_moves=4")),
        Case("document-ocr", "octopus-4c", "indiscriminate", sets=("policy.spread=true",)),
        Case("voice-assistant", "octopus-chip", "indiscriminate",
             sets=("policy.affinity=true", "policy.peas=0")),
        # Arch and workflow variants, other seeds.
        Case("street-camera", "octopus-4c", "octopus", sets=("arch.noc.hop_cycles=0",)),
        Case("recommendation", "octopus-chip", "octopus", sets=("arch.reconfig.fixed_cycles=0",)),
        Case("street-camera", "octopus-chip", "octopus", seed=2),
        Case("content-moderation", "octopus-chip", "static", seed=3),
        Case("street-camera", "octopus-chip", "octopus",
             sets=("workflow.phases=[]", "workflow.arrivals.count=150",
                   "workflow.arrivals.process=batch")),
        Case("street-camera", "ideal", "static",
             sets=("workflow.phases=[]", "workflow.arrivals.process=periodic")),
        # The speed benchmark's configuration (bench/speed.py).
        Case(str(Path(__file__).parents[2] / "bench" / "reference_workflow.yaml"), "ideal",
             "static", sets=("workflow.arrivals.count=2000", "policy.buffer_slots=0",
                             "policy.host_cycles=0", "policy.peas=1", "arch.tbu.peas=1",
                             "arch.cluster.tbus=12",
                             "policy.partition={detect: 2, recognize: 9, review: 1}")),
    ]
    for p in POLICIES:
        out.append(Case(_fixture("corpus_control.yaml"), "octopus-chip", p))
        out.append(Case(_fixture("corpus_control.yaml"), "octopus-4c", p,
                        faults=("cluster:2@3000000",)))
    return out


def run_case(case: Case) -> dict[str, Any]:
    from octosim.experiments.config import resolve_config
    from octosim.experiments.run import run_config

    cfg = resolve_config(case.workflow, case.arch, case.policy, case.seed, list(case.sets),
                         list(case.faults))
    summary = run_config(cfg)
    return {k: v for k, v in summary.items() if k not in IGNORED}


def canonical(summary: dict[str, Any]) -> str:
    return json.dumps(summary, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", action="store_true", help="rewrite fixtures/corpus.json")
    args = ap.parse_args(argv)
    results = {}
    for case in cases():
        results[case.name] = run_case(case)
        print(case.name, results[case.name]["makespan_cycles"], file=sys.stderr)
    if args.write:
        FIXTURE.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    else:
        expected = json.loads(FIXTURE.read_text())
        bad = [n for n, s in results.items() if canonical(s) != canonical(expected.get(n, {}))]
        print(f"{len(results) - len(bad)} of {len(results)} identical", file=sys.stderr)
        for n in bad:
            print("differs:", n, file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
