"""Run every shell command written in README.md and docs/*.md, as written.

    python -m bench.doc_commands                # all of them, the expensive ones too
    python -m bench.doc_commands --cheap        # what tests/test_doc_commands.py runs
    python -m bench.doc_commands --list         # show the commands and which are expensive

Commands are the lines of fenced code blocks tagged ```bash, ```sh or ```shell, and the
``$ ``-prompted lines of ```console blocks (a line ending in ``\\`` goes on; a here-document
runs to its terminator). Each Markdown file is found anew on every run (README.md and every
``docs/**/*.md``), so a new page is checked without being registered anywhere. A file's
commands run in order, in one scratch copy of the repository (so a command may use what the
one before it wrote), through ``bash -e -o pipefail``; ``octosim`` is this interpreter's
``python -m octosim``, so the code under test is what runs. With all commands, they run in a
fresh virtual environment (``--system-site-packages``), so ``pip install`` lands there and not
in the environment you called this from.

A command is expensive when it matches ``EXPENSIVE`` below, each with its reason; the test
skips those (and says which), this script runs them unless ``--cheap``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (regular expression searched in the command, why it is not run by the test suite)
EXPENSIVE: list[tuple[str, str]] = [
    (r"^\s*pip install", "installs into the environment; .ci/run does it in a fresh venv"),
    (r"\bpython -m pytest\b", "the test suite itself (minutes); .ci/run runs it"),
    (r"\boctosim reproduce\b(?!.*--quick)", "the full evaluation, minutes on 2 cores"),
    (r"\boctosim reproduce\b.*--quick", "the quick evaluation, tens of seconds"),
    (r"\bmypy\b", "type-checks the whole tree (tens of seconds); .ci/run runs it"),
    (r"\bpython -m tests\.engine\.corpus\b", "121 frozen runs (tens of seconds); "
                                             "tests/engine/test_corpus.py runs them"),
    (r"\bpython (-m bench\.|bench/)", "a benchmark or a measured table: seconds to minutes"),
    (r"\boctosim (sweep|report)\b", "a sweep or a report: many runs, or a browser"),
    (r"^\s*dask (scheduler|worker)\b|^\s*kill %", "starts (or stops) a long-lived dask "
     "scheduler or worker in the background (a test would wait on its output for good)"),
    (r"\boctosim compare\b(?!.*arrivals\.count)", "several full-size runs"),
]

LANGS = {"bash", "sh", "shell", "console"}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


@dataclass(frozen=True)
class Command:
    file: str  # relative to the repository, e.g. docs/testing.md
    line: int  # where the command starts
    text: str

    @property
    def expensive(self) -> str | None:
        """Why the test suite does not run it, or None."""
        for pattern, reason in EXPENSIVE:
            if re.search(pattern, self.text):
                return reason
        return None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text.splitlines()[0]}"


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/, found anew each time."""
    files = [root / "README.md"] if (root / "README.md").exists() else []
    return files + sorted((root / "docs").rglob("*.md"))


def commands_in(text: str, file: str) -> list[Command]:
    """The shell commands of a Markdown text's bash/sh/shell/console fenced blocks."""
    out: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1  # the closing fence
        if lang in LANGS:
            out += _split(body, file, console=lang == "console")
    return out


def _split(body: list[tuple[int, str]], file: str, console: bool) -> list[Command]:
    cmds: list[Command] = []
    j = 0
    while j < len(body):
        lineno, line = body[j]
        j += 1
        if console:
            if not line.lstrip().startswith("$ "):
                continue  # output shown after a prompt
            line = line.lstrip()[2:]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [line]
        while parts[-1].rstrip().endswith("\\") and j < len(body):
            nxt = body[j][1]
            parts.append(nxt.lstrip()[2:] if console and nxt.lstrip().startswith("> ") else nxt)
            j += 1
        for tag in (m.group(2) for m in _HEREDOC.finditer("\n".join(parts))):
            while j < len(body):
                parts.append(body[j][1])
                j += 1
                if parts[-1].strip() == tag:
                    break
        cmds.append(Command(file, lineno, "\n".join(parts)))
    return cmds


def collect(root: Path = ROOT) -> list[Command]:
    cmds: list[Command] = []
    for path in doc_files(root):
        cmds += commands_in(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    return cmds


def scratch_copy(dest: Path, root: Path = ROOT) -> Path:
    """The repository's tracked files (as they are in the work tree) under ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def shim_env(bin_dir: Path, base: dict[str, str] | None = None,
             python_first: bool = True) -> dict[str, str]:
    """An environment where ``octosim`` is ``python -m octosim``; with ``python_first``,
    ``python`` is this interpreter (the test's), otherwise whatever comes first on PATH (a
    virtual environment's)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "octosim"
    shim.write_text('#!/bin/sh\nexec python -m octosim "$@"\n')
    shim.chmod(0o755)
    env = dict(base if base is not None else os.environ)
    path = env.get("PATH", "")
    if python_first:
        (bin_dir / "python").unlink(missing_ok=True)
        (bin_dir / "python").symlink_to(sys.executable)
        env["PATH"] = f"{bin_dir}{os.pathsep}{path}"
    else:
        env["PATH"] = f"{path}{os.pathsep}{bin_dir}"  # after the venv's own octosim
    env.setdefault("MPLBACKEND", "Agg")
    return env


@dataclass
class Outcome:
    command: Command
    returncode: int
    seconds: float
    output: str


def run_commands(cmds: list[Command], workdir: Path, env: dict[str, str],
                 timeout_s: float | None = None) -> list[Outcome]:
    """Run ``cmds`` in order in ``workdir``; each one's exit status, time and output tail."""
    outcomes = []
    for cmd in cmds:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", cmd.text], cwd=workdir,
                                  env=env, capture_output=True, text=True, timeout=timeout_s)
            rc, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, output = -1, f"timed out after {timeout_s} s: {exc.stdout or ''}"
        outcomes.append(Outcome(cmd, rc, time.perf_counter() - t0, output[-3000:]))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cheap", action="store_true", help="skip the expensive commands")
    ap.add_argument("--list", action="store_true", help="list the commands, run nothing")
    ap.add_argument("--file", action="append", default=[],
                    help="only these Markdown files (relative paths; repeatable)")
    args = ap.parse_args(argv)
    cmds = [c for c in collect() if not args.file or c.file in args.file]
    if args.list:
        for c in cmds:
            print(f"{'expensive' if c.expensive else 'cheap    '}  {c}"
                  + (f"  ({c.expensive})" if c.expensive else ""))
        return 0
    failed = 0
    with tempfile.TemporaryDirectory(prefix="octosim-doc-") as tmp:
        env = dict(os.environ)
        if not args.cheap:  # pip install goes into a throwaway environment
            venv = Path(tmp) / "venv"
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                           check=True)
            env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
            env["VIRTUAL_ENV"] = str(venv)
        env = shim_env(Path(tmp) / "shim", env, python_first=args.cheap)
        ran = 0
        for file in dict.fromkeys(c.file for c in cmds):
            mine = [c for c in cmds if c.file == file and not (args.cheap and c.expensive)]
            if not mine:
                continue
            work = scratch_copy(Path(tmp) / file.replace("/", "_"))
            ran += len(mine)
            for o in run_commands(mine, work, env):
                status = "ok  " if o.returncode == 0 else f"FAIL (exit {o.returncode})"
                print(f"{status} {o.seconds:7.1f} s  {o.command}", flush=True)
                if o.returncode != 0:
                    failed += 1
                    print("    " + o.output.strip().replace("\n", "\n    "))
    print(f"{ran} of {len(cmds)} commands ran, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
