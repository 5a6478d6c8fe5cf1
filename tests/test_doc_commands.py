"""Every command written in README.md and docs/*.md runs as written (issue 12, Must show).

The commands are collected by ``bench/doc_commands.py`` from the fenced bash/sh/console blocks
of README.md and every docs/**/*.md, found anew on each run, so a new page is checked without
registering it. The cheap ones run here, each file's in order in a scratch copy of the
repository; the expensive ones (``EXPENSIVE`` there, each with its reason) are run by
``python -m bench.doc_commands``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.doc_commands import (
    ROOT,
    collect,
    commands_in,
    doc_files,
    run_commands,
    scratch_copy,
    shim_env,
)

FILES = [str(p.relative_to(ROOT)) for p in doc_files()]


@pytest.mark.parametrize("file", FILES)
def test_cheap_commands_run_as_written(file: str, tmp_path: Path) -> None:
    cmds = [c for c in collect() if c.file == file]
    cheap = [c for c in cmds if not c.expensive]
    if not cheap:
        pytest.skip(f"{file}: {len(cmds)} commands, all expensive")
    work = scratch_copy(tmp_path / "repo")
    env = shim_env(tmp_path / "bin")
    for o in run_commands(cheap, work, env, timeout_s=120):
        assert o.returncode == 0, f"{o.command}\nexit {o.returncode}\n{o.output}"


FENCE = "`" * 3
SAMPLE = f"""\
Some prose with `octosim run inline` (not a block).

{FENCE}bash
# a comment
octosim run a \\
    --json
python - <<'END'
print("x")
END
{FENCE}

{FENCE}console
$ octosim list
workflows:
  street-camera
{FENCE}

{FENCE}yaml
owg: 1
{FENCE}

{FENCE}
octosim usage [not run]
{FENCE}
"""


def test_collector_reads_blocks_as_a_shell_would() -> None:
    cmds = commands_in(SAMPLE, "x.md")
    assert [c.text for c in cmds] == ["octosim run a \\\n    --json",
                                      "python - <<'END'\nprint(\"x\")\nEND", "octosim list"]
    assert [c.line for c in cmds] == [5, 7, 13]


def test_a_new_page_is_collected(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "README.md").write_text(f"{FENCE}sh\noctosim list\n{FENCE}\n")
    (tmp_path / "docs" / "sub" / "new.md").write_text(
        f"{FENCE}bash\noctosim sweep s.yaml --out d\n{FENCE}\n")
    cmds = collect(tmp_path)
    assert [(c.file, c.text) for c in cmds] == [
        ("README.md", "octosim list"), ("docs/sub/new.md", "octosim sweep s.yaml --out d")]
    assert cmds[1].expensive  # every skipped command says why


def test_readme_quickstart_is_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    cmds = commands_in(quick, "README.md")
    assert len(cmds) == 2, [c.text for c in cmds]
    assert "octosim reproduce" in cmds[0].text and "pytest" in cmds[1].text
    assert "venv" in quick  # make a virtual environment first
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert cmds[1].text in ci, "the README's test command is not what CI runs"
