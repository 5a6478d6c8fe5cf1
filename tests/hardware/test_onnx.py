"""ONNX import: a graph built here with onnx.helper (no downloads) gives the same layers, and so
the same cycles, as the equivalent hand-built layer table, in ``model-cycles`` and in a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from octosim.cli import main  # noqa: E402
from octosim.errors import UserError  # noqa: E402
from octosim.hardware.onnx_import import load_onnx_layers  # noqa: E402
from octosim.hardware.systolic import Layer, model_layer_cycles  # noqa: E402
from octosim.hardware.zoo import get_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _init(name: str, dims: list[int]) -> onnx.TensorProto:
    # Shapes are all the importer reads; the weights' values are zeros.
    import numpy as np

    return onnx.numpy_helper.from_array(np.zeros(dims, dtype=np.float32), name)


def _save(path: Path, nodes: list, batch: int | str, inits: list) -> Path:
    graph = helper.make_graph(
        nodes, path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def conv_relu_gemm(path: Path, batch: int | str = 1) -> Path:
    """x[N,3,32,32] -> Conv 3x3/1 pad 1 (16 filters) -> Relu -> Flatten -> Gemm (10)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Flatten", ["r1"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wfc", "bfc"], ["y"], name="fc", transB=1),
    ]
    return _save(path, nodes, batch, [_init("w1", [16, 3, 3, 3]), _init("b1", [16]),
                                      _init("wfc", [10, 16 * 32 * 32]), _init("bfc", [10])])


# The same network by hand, in the zoo's conventions: the relu is fused into the conv.
HAND = [
    Layer.conv2d("conv1", 32, 32, 3, 16, 3, 1, 1),
    Layer.matmul("fc", 1, 10, 16 * 32 * 32),
]


def conv_pool_conv_gemm(path: Path) -> Path:
    """Conv 3x3 pad 1 -> BatchNorm -> Relu -> MaxPool 2x2/2 -> Conv 3x3/2 -> Relu -> residual-free
    GlobalAveragePool -> Flatten -> Gemm."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "bb", "mu", "var"], ["n1"],
                         name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", kernel_shape=[3, 3],
                         strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wfc"], ["y"], name="fc", transB=1),
    ]
    return _save(path, nodes, 1, [_init("w1", [16, 3, 3, 3]), _init("w2", [32, 16, 3, 3]),
                                  *(_init(n, [16]) for n in ("s", "bb", "mu", "var")),
                                  _init("wfc", [10, 32])])


POOLED = [
    Layer.conv2d("conv1", 32, 32, 3, 16, 3, 1, 1),
    Layer.elementwise("pool1", 32, 32, 16, window=2, stride=2),
    Layer.conv2d("conv2", 16, 16, 16, 32, 3, 2, 0),
    Layer("gap", 7, 7, 7, 7, 32, 32, 1, "elementwise"),
    Layer.matmul("fc", 1, 10, 32),
]


def test_conv_relu_gemm_gives_the_hand_built_layers(tmp_path: Path) -> None:
    layers = load_onnx_layers(str(conv_relu_gemm(tmp_path / "tiny.onnx")))
    assert layers == HAND
    for rows, cols, df in ((16, 16, "os"), (8, 32, "ws"), (32, 8, "is")):
        assert model_layer_cycles(layers, rows, cols, df) == model_layer_cycles(
            HAND, rows, cols, df)
    spec = get_model(str(tmp_path / "tiny.onnx"))
    assert spec.weight_bytes() == 16 * 27 + 10 * 16 * 32 * 32


def test_batch_norm_and_activations_fuse_pooling_is_elementwise(tmp_path: Path) -> None:
    assert load_onnx_layers(str(conv_pool_conv_gemm(tmp_path / "p.onnx"))) == POOLED


def test_a_dynamic_batch_is_one_and_a_fixed_batch_is_batched(tmp_path: Path) -> None:
    dyn = load_onnx_layers(str(conv_relu_gemm(tmp_path / "d.onnx", batch="N")))
    assert dyn == HAND
    four = load_onnx_layers(str(conv_relu_gemm(tmp_path / "b4.onnx", batch=4)))
    assert four[0] == HAND[0].batched(4)
    assert four[-1] == Layer.matmul("fc", 4, 10, 16 * 32 * 32)


def test_matmul_attention_and_elementwise(tmp_path: Path) -> None:
    """A tiny attention block on a batch of 2 sequences: projections are weight matmuls (rows =
    all tokens of the batch), scores are activation x activation products per sequence and
    head, softmax and the residual add are elementwise."""
    b, s, d, h = 2, 8, 32, 4
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
        helper.make_node("Reshape", ["q", "shape"], ["qh"], name="rq"),
        helper.make_node("Transpose", ["qh"], ["qt"], name="tq", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["k", "shape"], ["kh"], name="rk"),
        helper.make_node("Transpose", ["kh"], ["kt"], name="tk", perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["qt", "kt"], ["sc"], name="scores"),
        helper.make_node("Softmax", ["sc"], ["p"], name="softmax", axis=-1),
        helper.make_node("Add", ["x", "q"], ["y"], name="residual"),
    ]
    shape = onnx.numpy_helper.from_array(
        __import__("numpy").array([b, s, h, d // h], dtype="int64"), "shape")
    graph = helper.make_graph(
        nodes, "attn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [b, s, d])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_init("wq", [d, d]), _init("wk", [d, d]), shape])
    path = tmp_path / "attn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert load_onnx_layers(str(path)) == [
        Layer.matmul("q", b * s, d, d),
        Layer.matmul("k", b * s, d, d),
        Layer.matmul("scores", s, s, d // h, groups=b * h, has_weights=False),
        Layer.elementwise("softmax", b * h * s * s, 1, 1),
        Layer.elementwise("residual", b * s * d, 1, 1),
    ]


def _bad_op(path: Path) -> Path:
    # A Conv whose weight has no known shape: it cannot be mapped.
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="mystery")
    graph = helper.make_graph(
        [node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                        helper.make_tensor_value_info("w", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("make, what", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_text("owg: 1\n"), p)[1], "not an ONNX model"),
    (_bad_op, "node 'mystery' (Conv): the shape of its weight 'w' is unknown"),
])
def test_bad_files_are_one_line_user_errors(tmp_path: Path, make, what: str) -> None:
    path = make(tmp_path / "m.onnx")
    with pytest.raises(UserError) as exc:
        load_onnx_layers(str(path))
    line = exc.value.line()
    assert "\n" not in line and what in line and str(path) in line


WORKFLOW = """\
owg: 1
name: onnx-flow
arrivals: {process: periodic, interarrival_cycles: 20000, count: 20}
tasks:
  pre: {kind: general, cycles: 3000}
  net: {kind: ai, MODEL, peas: [1, 4]}
flow: [pre, net]
"""


def _run_json(wf: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["run", str(wf), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_workflow_task_runs_the_onnx_model_like_the_same_csv_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``model: {onnx: tiny.onnx}`` (relative to the workflow's directory, run from another
    directory) simulates exactly as the SCALE-Sim CSV of the hand-built layers."""
    from octosim.hardware.topology import topology_csv_text

    sub = tmp_path / "models"
    sub.mkdir()
    conv_relu_gemm(sub / "tiny.onnx")
    (sub / "same.csv").write_text(topology_csv_text(HAND))
    onnx_wf = sub / "onnx.yaml"
    onnx_wf.write_text(WORKFLOW.replace("MODEL", "model: {onnx: tiny.onnx}"))
    csv_wf = sub / "csv.yaml"
    csv_wf.write_text(WORKFLOW.replace("MODEL", f"model: {sub / 'same.csv'}"))
    a, b = _run_json(onnx_wf, capsys), _run_json(csv_wf, capsys)
    for key in ("makespan_cycles", "lower_bound_cycles", "tasks", "latency_cycles", "events"):
        assert a[key] == b[key], key
    assert a["tasks"]["net"]["mean_service_cycles"] > 0
    # the resolved configuration names the file absolutely: run --out DIR reruns from anywhere
    assert main(["run", str(onnx_wf), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert str(sub / "tiny.onnx") in (tmp_path / "out" / "config.yaml").read_text()
    # model-cycles reads the ONNX file too, with the hand-built table's cycles
    assert main(["model-cycles", "--onnx", str(sub / "tiny.onnx"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [x["cycles"] for x in out["layers"]] == model_layer_cycles(HAND, 16, 16)


def test_a_missing_onnx_file_names_the_task(tmp_path: Path) -> None:
    wf = tmp_path / "w.yaml"
    wf.write_text(WORKFLOW.replace("MODEL", "model: {onnx: nowhere.onnx}"))
    proc = subprocess.run([sys.executable, "-m", "octosim", "run", str(wf)],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {wf}: tasks.net.model.onnx: no such ONNX file")
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("model, what", [
    ("{onnx: 3}", "tasks.net.model: expected a model name"),
    ("{onnx: tiny.onnx, extra: 1}", "tasks.net.model: expected a model name"),
    ("{onnx: text.onnx}", "tasks.net.model: {dir}/text.onnx: not an ONNX model"),
])
def test_bad_onnx_models_in_a_workflow_name_the_task_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, what: str) -> None:
    conv_relu_gemm(tmp_path / "tiny.onnx")
    (tmp_path / "text.onnx").write_text("not a protobuf")
    wf = tmp_path / "w.yaml"
    wf.write_text(WORKFLOW.replace("MODEL", f"model: {model}"))
    assert main(["run", str(wf)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {wf}: " + what.format(dir=tmp_path)), err
    assert err.count("\n") == 1
