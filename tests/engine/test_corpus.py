"""The regression corpus (see ``corpus.py``): each run's summary equals the frozen one."""

from __future__ import annotations

import json

import pytest

from tests.engine.corpus import FIXTURE, Case, canonical, cases, run_case

EXPECTED = json.loads(FIXTURE.read_text())
CASES = cases()


def test_the_corpus_is_large_and_each_case_has_a_frozen_summary() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) >= 80
    assert sorted(names) == sorted(EXPECTED)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_summary_is_unchanged(case: Case) -> None:
    got = run_case(case)
    want = EXPECTED[case.name]
    if canonical(got) != canonical(want):
        moved = {k: (want.get(k), got.get(k)) for k in sorted(set(got) | set(want))
                 if got.get(k) != want.get(k)}
        pytest.fail(f"summary moved (expected, got): {moved}")
