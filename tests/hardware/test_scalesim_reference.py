"""octosim's compute model and topology reader against SCALE-Sim 3.0.0.

The reference numbers in ``fixtures/scalesim_reference.json`` were produced by SCALE-Sim itself
(``python bench/scalesim_compare.py --scalesim-python PY --write``). SCALE-Sim's "Total Cycles"
is the 0-based index of a layer's last cycle, so octosim's cycle count is exactly one more per
SCALE-Sim layer (a ``DP`` row is one SCALE-Sim layer per channel).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from octosim.errors import UserError
from octosim.hardware.systolic import Layer, layer_cycles
from octosim.hardware.topology import load_topology_csv

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "scalesim_reference.json").read_text())
RUNS = REFERENCE["runs"]
RUN_IDS = [f"{r['dataflow']}-{r['array'][0]}x{r['array'][1]}-{r['input_type']}" for r in RUNS]


def _matched(run: dict) -> list[tuple[Layer, list[dict]]]:
    layers = load_topology_csv(str(FIXTURES / run["topology"]))
    out, i = [], 0
    for layer in layers:
        out.append((layer, run["layers"][i : i + layer.groups]))
        i += layer.groups
    assert i == len(run["layers"])
    return out


def test_reference_covers_required_shapes() -> None:
    assert REFERENCE["scalesim_version"] == "3.0.0"
    assert {r["dataflow"] for r in RUNS} == {"os", "ws", "is"}
    assert {tuple(r["array"]) for r in RUNS} == {(16, 16), (8, 32)}
    conv = load_topology_csv(str(FIXTURES / "scalesim_topology.csv"))
    assert len(conv) >= 8
    shapes = {
        "3x3 stride 1": any(lay.filter_h == 3 and lay.stride == 1 for lay in conv),
        "3x3 stride 2": any(lay.filter_h == 3 and lay.stride == 2 for lay in conv),
        "1x1": any(lay.filter_h == 1 and lay.filter_w == 1 and lay.ifmap_h > 1 for lay in conv),
        "7x7 stride 2": any(lay.filter_h == 7 and lay.stride == 2 for lay in conv),
        "fully connected": any(lay.ifmap_h == lay.ifmap_w == 1 for lay in conv),
        "one channel": any(lay.channels == 1 and lay.filter_h == 3 for lay in conv),
        "DP depthwise": any(lay.groups > 1 for lay in conv),
        "large K": any(lay.window >= 2048 for lay in conv),
    }
    assert all(shapes.values()), shapes
    assert all(r["stall_cycles"] == 0 for run in RUNS for r in run["layers"])


@pytest.mark.parametrize("run", RUNS, ids=RUN_IDS)
def test_layer_cycles_match_scalesim(run: dict) -> None:
    rows, cols = run["array"]
    worst = 0.0
    for layer, ref in _matched(run):
        theirs = sum(r["total_cycles"] for r in ref)
        ours = layer_cycles(layer, rows, cols, run["dataflow"])
        err = abs(ours - theirs) / theirs
        worst = max(worst, err)
        assert err <= 0.10, (layer.name, ours, theirs)
        # exact: SCALE-Sim reports the index of the last cycle of each of its layers
        assert ours == theirs + len(ref), (layer.name, ours, theirs)
    # measured: at most 0.92 % (the off-by-one on 109-cycle layers); see docs/hardware.md
    assert worst < 0.01


def test_max_error_per_dataflow() -> None:
    worst: dict[str, float] = {}
    for run in RUNS:
        rows, cols = run["array"]
        for layer, ref in _matched(run):
            theirs = sum(r["total_cycles"] for r in ref)
            ours = layer_cycles(layer, rows, cols, run["dataflow"])
            df = run["dataflow"]
            worst[df] = max(worst.get(df, 0.0), abs(ours - theirs) / theirs)
    assert worst == pytest.approx({"os": 0.00645, "ws": 0.00917, "is": 0.00465}, abs=5e-5)


# -- topology reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry", REFERENCE["reader"], ids=lambda e: e["topology"])
def test_reader_matches_scalesim_parse(entry: dict) -> None:
    """Every layer SCALE-Sim's own reader produced, in order, with the same dimensions."""
    ours = load_topology_csv(str(FIXTURES / entry["topology"]), fmt=entry["input_type"])
    expanded = [(lay, g) for lay in ours for g in range(lay.groups)]
    theirs = entry["topo_arrays"]
    assert len(expanded) == len(theirs)
    for (layer, g), arr in zip(expanded, theirs, strict=True):
        name, ih, iw, fh, fw, ch, nf, sh, sw = arr[:9]
        assert name == (f"{layer.name}Channel_{g}" if layer.groups > 1 else layer.name)
        dims = (layer.ifmap_h, layer.ifmap_w, layer.filter_h, layer.filter_w)
        assert dims == (ih, iw, fh, fw)
        assert (layer.channels, layer.num_filters, layer.stride) == (ch, nf, sh)
        assert sh == sw


def test_reader_auto_detects_gemm_format() -> None:
    layers = load_topology_csv(str(FIXTURES / "scalesim_gemm.csv"))
    assert [lay.kind for lay in layers] == ["matmul"] * 3
    gemv = layers[1]  # M=1, N=64, K=1024
    assert (gemv.ofmap_pixels, gemv.num_filters, gemv.window) == (1, 64, 1024)
    assert gemv.macs() == 64 * 1024


def test_reader_quirks(tmp_path: Path) -> None:
    layers = load_topology_csv(str(FIXTURES / "scalesim_quirks.csv"))
    names = [lay.name for lay in layers]
    assert names == ["Conv1", "Conv2_dw", "Conv3_indented", "Conv5_sparse", "DP_conv6"]
    dp = layers[-1]
    assert (dp.groups, dp.channels, dp.num_filters) == (4, 1, 2)
    # a row without the trailing comma (SCALE-Sim would crash), comments, CRLF line ends
    p = tmp_path / "t.csv"
    p.write_bytes(b"# made by hand\r\nLayer,a,b,c,d,e,f,g\r\nfc,1,1,1,1,64,10,1\r\n# end\r\n")
    (fc,) = load_topology_csv(str(p))
    assert (fc.channels, fc.num_filters, fc.macs()) == (64, 10, 640)


def _error(tmp_path: Path, text: str | bytes) -> UserError:
    p = tmp_path / "topo.csv"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    with pytest.raises(UserError) as info:
        load_topology_csv(str(p))
    assert info.value.file == str(p)
    return info.value


HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
HEADER += "Num Filter, Strides,\n"
GOOD = "c1, 8, 8, 3, 3, 4, 4, 1,\n"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("c2, 8, eight, 3, 3, 4, 4, 1,", "IFMAP Width: 'eight' is not an integer"),
        ("c2, 8, 8, 3, 3, 0, 4, 1,", "Channels must be positive"),
        ("c2, 8, 8, 3, 3, 4, -4, 1,", "Num Filter must be positive"),
        ("c2, 8, 8, 3, 3, 4, 4, 0,", "Strides must be positive"),
        ("c2, 8, 8, 3.5, 3, 4, 4, 1,", "Filter Height: '3.5' is not an integer"),
        ("c2, 2, 8, 3, 3, 4, 4, 1,", "filter height 3 is larger than ifmap height 2"),
        ("c2, 8, 8, 3, 3, 4, 4,", "expected 8 fields"),
        ("c2, 8, 8, 3, 3, 4, 4, 1, 2:4, 7,", "expected 8 fields"),
        ("c2, 8, 8, 3, 3, 4, 4, 1, half,", "sparsity ratio must look like N:M"),
    ],
)
def test_reader_bad_rows(tmp_path: Path, row: str, message: str) -> None:
    err = _error(tmp_path, HEADER + GOOD + row + "\n" + GOOD)
    assert err.where == "row 3"
    assert message in err.what
    assert str(err).startswith(f"error: {tmp_path / 'topo.csv'}: row 3: ")


def test_reader_bad_files(tmp_path: Path) -> None:
    assert "no layers" in _error(tmp_path, HEADER).what
    assert "no layers" in _error(tmp_path, "").what
    assert "cannot read" in _error(tmp_path, b"\xff\xfe\x00garbage\x81").what
    missing = tmp_path / "nope.csv"
    with pytest.raises(UserError) as info:
        load_topology_csv(str(missing))
    assert info.value.file == str(missing) and "cannot read" in info.value.what
    with pytest.raises(UserError) as info:
        load_topology_csv(str(tmp_path))  # a directory
    assert info.value.file == str(tmp_path)
    gemm = tmp_path / "g.csv"
    gemm.write_text("Layer, M, N, K,\nok, 4, 4, 4,\nbad, 4, 4,\n")
    with pytest.raises(UserError) as info:
        load_topology_csv(str(gemm))
    assert info.value.where == "row 3" and "expected 4 fields" in info.value.what


# -- optional: rerun SCALE-Sim -----------------------------------------------------------------


def _scalesim_python() -> str:
    """``SCALESIM_PYTHON`` (an interpreter with scalesim, e.g. a venv), else this one."""
    python = os.environ.get("SCALESIM_PYTHON")
    if python:
        return python
    if importlib.util.find_spec("scalesim") is None:
        pytest.skip("scalesim not installed (pip install scalesim==3.0.0, or set SCALESIM_PYTHON)")
    return sys.executable


@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS, ids=RUN_IDS)
def test_rerun_scalesim_matches_fixture(run: dict) -> None:
    python = _scalesim_python()
    bench = Path(__file__).resolve().parents[2] / "bench" / "scalesim_compare.py"
    spec = importlib.util.spec_from_file_location("scalesim_compare", bench)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows, cols = run["array"]
    cfg = FIXTURES / f"scalesim_{rows}x{cols}_{run['dataflow']}.cfg"
    try:
        result = module.run_scalesim(python, cfg, FIXTURES / run["topology"], run["input_type"])
    except (SystemExit, subprocess.SubprocessError) as exc:
        pytest.fail(f"SCALE-Sim did not run: {exc}")
    assert result["scalesim_version"] == REFERENCE["scalesim_version"]
    assert result["layers"] == run["layers"]
