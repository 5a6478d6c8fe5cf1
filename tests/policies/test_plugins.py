"""Policies from plug-ins: a new policy is one file (plus its distribution's metadata), found
through the entry-point group ``octosim.policies`` by the same code that finds the built-ins;
broken or clashing plug-ins are one-line errors that name them; classes are checked when they
are registered."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from octosim.cli import main
from octosim.errors import UserError
from octosim.policies import registry
from octosim.policies.base import Policy, PolicyParams
from octosim.policies.registry import get_policy, policies, register

BUILTINS = {"static", "reactive", "indiscriminate", "octopus"}

# A complete third-party policy, in one file: TBUs bound round-robin to task types, one FIFO
# queue per type and cluster, each run on its task's minimum PEAs.
FIFO = '''
"""FIFO: every TBU bound round-robin to a task type; runs start on free PEAs in order."""
from collections import deque

from octosim.policies.base import Policy


class FifoPolicy(Policy):
    name = "fifo-plugin"
    summary = "test plug-in: round-robin TBU binding, FIFO queues, minimum PEAs"

    def setup(self, sim):
        super().setup(sim)
        n = len(sim.task_types)
        self.queues, self.tbus = {}, {}
        for c in sim.chip.alive_clusters:
            alive = [t for t in sim.chip.cluster_tbus[c] if t.alive]
            for i, tbu in enumerate(alive):
                self.tbus.setdefault((c, i % n), []).append(tbu)
                sim.bind(tbu, i % n)
            for idx in range(n):
                self.queues[c, idx] = deque()

    def on_ready(self, run):
        key = (run.inst.cluster, run.tt.idx)
        for tbu in self.tbus.get(key, ()):
            if tbu.bound == run.tt.idx and len(tbu.free) >= run.tt.kmin:
                self.sim.start(run, tbu, run.tt.kmin)
                return
        self.queues[key].append(run)

    def on_freed(self, tbu):
        if tbu.bound < 0 or tbu.reconfiguring:
            return
        q = self.queues[tbu.cluster, tbu.bound]
        while q and len(tbu.free) >= q[0].tt.kmin:
            run = q.popleft()
            self.sim.start(run, tbu, run.tt.kmin)
'''



def registered(source: str) -> str:
    """``source`` with its policy class decorated by ``@register``."""
    return source.replace(
        "from octosim.policies.base import Policy",
        "from octosim.policies.base import Policy\nfrom octosim.policies.registry import register",
    ).replace("class FifoPolicy", "@register\nclass FifoPolicy")


SMALL = ["--set", "workflow.phases=[]", "--set", "workflow.arrivals.count=30"]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on ``sys.path`` to install distributions into. The registry forgets its
    plug-ins before and after, and the plug-ins' modules are unloaded, so other tests (and
    other tests in this worker, under ``pytest -n``) see the built-ins only."""
    monkeypatch.syspath_prepend(str(tmp_path))  # also invalidates the import caches
    modules = set(sys.modules)
    registry.refresh()
    yield tmp_path
    for name in set(sys.modules) - modules:
        if "octosim_test_" in name:
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and hasattr(sys.modules[parent], child):
                delattr(sys.modules[parent], child)
    registry.refresh()


def install(site: Path, dist: str, entry_points: dict[str, str],
            modules: dict[str, str]) -> None:
    """What ``pip install`` leaves behind: modules, and a ``*.dist-info`` declaring their
    entry points under ``[octosim.policies]``."""
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[octosim.policies]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_builtins_are_discovered_without_plugins(site: Path) -> None:
    assert set(policies()) == BUILTINS


def test_a_new_builtin_policy_is_one_module_in_the_package(
        site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built-ins are the package's modules, found by scanning it, not a list kept by hand."""
    import octosim.policies as package

    (site / "octosim_test_builtin.py").write_text(registered(FIFO))
    with monkeypatch.context() as m:
        m.setattr(package, "__path__", [*package.__path__, str(site)])
        registry.refresh()
        assert set(policies()) == BUILTINS | {"fifo-plugin"}
        assert get_policy("fifo-plugin").__module__ == "octosim.policies.octosim_test_builtin"
    registry.refresh()  # the module is gone from the package: so is its policy
    assert set(policies()) == BUILTINS


def test_a_new_policy_is_one_file_and_runs_through_the_cli(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(site, "octosim-test-fifo", {"fifo-plugin": "octosim_test_fifo:FifoPolicy"},
            {"octosim_test_fifo": FIFO})
    assert set(policies()) == BUILTINS | {"fifo-plugin"}
    code, out, _ = cli(capsys, "list", "policies", "--json")
    assert code == 0
    assert json.loads(out)["policies"]["fifo-plugin"].startswith("test plug-in:")

    code, out, err = cli(capsys, "run", "street-camera", "--policy", "fifo-plugin", *SMALL,
                         "--json")
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["policy"] == "fifo-plugin"
    assert summary["instances"] == 30
    assert summary["tasks"]["decode"]["count"] == 30
    assert summary["makespan_cycles"] >= summary["lower_bound_cycles"] > 0


def test_a_plugin_module_with_registered_classes(site: Path) -> None:
    """An entry point may name a module whose ``@register`` classes register themselves."""
    source = registered(FIFO)
    install(site, "octosim-test-mod", {"fifo-plugin": "octosim_test_mod"},
            {"octosim_test_mod": source})
    assert get_policy("fifo-plugin").__module__ == "octosim_test_mod"
    registry.refresh()  # found again though its module is already imported
    assert "fifo-plugin" in policies()


def test_a_broken_plugin_is_one_line_naming_it(site: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    install(site, "octosim-test-broken", {"broken": "octosim_test_broken:Broken"},
            {"octosim_test_broken": "raise RuntimeError('the plug-in is broken')\n"})
    code, out, err = cli(capsys, "list", "policies")
    assert (code, out) == (2, "")
    assert one_error_line(err) == (
        "error: policy plug-in 'broken' (octosim_test_broken:Broken, from "
        "octosim-test-broken 0.1): cannot be loaded: RuntimeError: the plug-in is broken")
    # A built-in does not need the plug-ins, so the broken one does not break it.
    code, out, err = cli(capsys, "run", "street-camera", "--policy", "static", *SMALL, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["instances"] == 30
    code, _, err = cli(capsys, "run", "street-camera", "--policy", "broken", *SMALL)
    assert code == 2
    assert "policy plug-in 'broken'" in one_error_line(err)


def test_a_plugin_failing_half_way_registers_nothing(site: Path) -> None:
    source = registered(FIFO)
    install(site, "octosim-test-half", {"fifo-plugin": "octosim_test_half"},
            {"octosim_test_half": source + "\nraise ImportError('missing dependency')\n"})
    for _ in range(2):  # the same error each time: nothing stays registered
        with pytest.raises(UserError, match=r"^error: policy plug-in 'fifo-plugin' "
                           r"\(octosim_test_half, from octosim-test-half 0.1\): cannot be "
                           r"loaded: ImportError: missing dependency$"):
            get_policy("fifo-plugin")
    assert get_policy("static").name == "static"


def test_a_plugin_named_like_a_builtin_is_an_error(site: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    install(site, "octosim-test-clash", {"static": "octosim_test_clash:FifoPolicy"},
            {"octosim_test_clash": FIFO})
    code, _, err = cli(capsys, "list", "policies")
    assert code == 2
    assert one_error_line(err) == (
        "error: policy plug-in 'static' (octosim_test_clash:FifoPolicy, from "
        "octosim-test-clash 0.1): its name clashes with the built-in policy 'static' "
        "(octosim.policies.static.StaticPolicy): rename the plug-in's policy")


def test_a_plugin_class_named_like_a_builtin_is_an_error(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(site, "octosim-test-clash2", {"mine": "octosim_test_clash2:FifoPolicy"},
            {"octosim_test_clash2": FIFO.replace('name = "fifo-plugin"', 'name = "octopus"')})
    code, _, err = cli(capsys, "list", "policies")
    assert code == 2
    assert one_error_line(err) == (
        "error: policy plug-in 'mine' (octosim_test_clash2:FifoPolicy, from "
        "octosim-test-clash2 0.1): policy name 'octopus' of "
        "octosim_test_clash2.FifoPolicy is already taken by the built-in policy "
        "octosim.policies.octopus.OctopusPolicy")
    assert get_policy("octopus").__module__ == "octosim.policies.octopus"  # untouched


def test_an_entry_point_must_be_named_after_its_policy(site: Path) -> None:
    install(site, "octosim-test-alias", {"alias": "octosim_test_alias:FifoPolicy"},
            {"octosim_test_alias": FIFO})
    with pytest.raises(UserError, match=r"^error: policy plug-in 'alias' .*: "
                       r"octosim_test_alias.FifoPolicy is named 'fifo-plugin': the entry "
                       r"point's name must be the policy's name$"):
        policies()
    with pytest.raises(UserError, match="plug-in 'alias'"):  # not half-registered
        get_policy("fifo-plugin")


def test_an_invalid_plugin_class_is_named(site: Path) -> None:
    source = FIFO.replace("    def on_ready(self, run):", "    def on_start(self, run):")
    install(site, "octosim-test-noready", {"fifo-plugin": "octosim_test_noready:FifoPolicy"},
            {"octosim_test_noready": source})
    with pytest.raises(UserError) as info:
        get_policy("fifo-plugin")
    assert str(info.value) == (
        "error: policy plug-in 'fifo-plugin' (octosim_test_noready:FifoPolicy, from "
        "octosim-test-noready 0.1): octosim_test_noready.FifoPolicy does not implement "
        "on_ready(run): it could never start work")


# --- checks at registration ------------------------------------------------------------------


class _Runs(Policy):
    def on_ready(self, run):  # type: ignore[no-untyped-def]  # noqa: ANN001
        raise AssertionError


def test_register_checks_the_class(site: Path) -> None:
    class NoName(_Runs):
        pass

    class BadName(_Runs):
        name = "a,b"

    class NoReady(Policy):
        name = "no-ready"

    class PlainParams(_Runs):
        name = "plain-params"
        Params = dict  # type: ignore[assignment]

    class Fine(_Runs):
        name = "fine-test"

        class Params(PolicyParams):
            x: int = 1

    for cls, what in [(NoName, "has no name"), (BadName, "name 'a,b' must be letters"),
                      (NoReady, "does not implement on_ready"),
                      (PlainParams, "Params must be a pydantic model"),
                      (int, "is not a subclass of octosim.policies.base.Policy"),
                      (Policy, "is not a subclass")]:
        with pytest.raises(TypeError, match=what):
            register(cls)  # type: ignore[arg-type]
    assert register(Fine) is Fine
    assert register(Fine) is Fine  # the same class again is no clash
    assert get_policy("fine-test") is Fine

    class Twin(_Runs):
        name = "fine-test"

    with pytest.raises(ValueError, match="'fine-test' .* is already taken by the policy"):
        register(Twin)
    assert get_policy("fine-test") is Fine
