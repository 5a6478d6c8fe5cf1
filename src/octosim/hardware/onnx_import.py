"""Layer tables from ONNX graphs, for the PEA compute model.

An ONNX file gives the same :class:`~octosim.hardware.systolic.Layer` objects as the zoo and
the SCALE-Sim CSV reader, so a model exported from a framework runs through the same systolic
model. Only shapes are read: initializers' dimensions, and every other tensor's shape from
``onnx.shape_inference`` (weights stored as external data are never loaded). The conventions
are the zoo's (see :mod:`octosim.hardware.zoo`):

- ``Conv`` is a ``conv`` layer (groups and depthwise as in the zoo; output size from shape
  inference, so padding, ``auto_pad`` and dilation need no rules here); ``ConvTranspose`` is a
  ``conv`` over the input pixels with ``kernel x kernel x out_channels`` filters (the zoo's
  "1x1 conv to 4x channels" for a 2x2 stride-2 one). A batch ``N > 1`` is
  :meth:`Layer.batched`.
- ``Gemm`` and ``MatMul`` are ``matmul`` layers; a right operand that is not a constant is an
  activation-by-activation product (``has_weights=False``), leading dimensions are ``groups``
  (they are extra rows when the right operand is a shared 2-D weight).
- An activation (``Relu``, ``Clip``, ``LeakyRelu``, ``PRelu``) or a ``BatchNormalization``
  whose input is the output of a costed layer, read by nothing else, is fused into that layer
  (not costed), as the zoo folds batch norm and fuses activations.
- Pooling is an ``elementwise`` layer with its window; tensor plumbing (reshape, transpose,
  concat, gather, slice, shape arithmetic...) is free; any other op is an ``elementwise`` layer
  of one PE operation per output element.

A symbolic dimension of a graph input (a dynamic batch) is taken as 1. Every problem is a
:class:`~octosim.errors.UserError` naming the file and the node.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from octosim.errors import UserError
from octosim.hardware.systolic import Layer

__all__ = ["load_onnx_layers"]

# Shape-only ops and data movement: no compute on the PEA.
FREE_OPS = frozenset({
    "Cast", "CastLike", "Concat", "Constant", "ConstantOfShape", "DepthToSpace", "Dropout",
    "Expand", "Flatten", "Gather", "GatherElements", "GatherND", "Identity", "NonZero", "Pad",
    "Range", "Reshape", "Shape", "Size", "Slice", "SpaceToDepth", "Split", "Squeeze", "Tile",
    "Transpose", "Unsqueeze",
})
# Applied to a MAC layer's output by the layer itself (as the zoo folds them).
FUSABLE_OPS = frozenset({
    "BatchNormalization", "Clip", "LeakyRelu", "PRelu", "Relu",
})
MAC_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
POOL_OPS = frozenset({"AveragePool", "LpPool", "MaxPool"})
GLOBAL_POOL_OPS = frozenset({"GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool"})


def _attrs(node: Any) -> dict[str, Any]:
    import onnx.helper

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Graph:
    """Shapes, constants and consumers of one (shape-inferred) graph."""

    def __init__(self, model: Any, path: str) -> None:
        self.path = path
        graph = model.graph
        self.shapes: dict[str, tuple[int, ...] | None] = {}
        self.constants: set[str] = set()
        for init in graph.initializer:
            self.shapes[init.name] = tuple(int(d) for d in init.dims)
            self.constants.add(init.name)
        for vi in [*graph.input, *graph.value_info, *graph.output]:
            if vi.name not in self.shapes:
                self.shapes[vi.name] = _value_shape(vi)
        self.consumers: dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                if name:
                    self.consumers[name] = self.consumers.get(name, 0) + 1
            if node.op_type == "Constant":
                self.constants.update(o for o in node.output if o)
        for out in graph.output:  # a graph output is read from outside
            self.consumers[out.name] = self.consumers.get(out.name, 0) + 1

    def shape(self, node: Any, tensor: str, role: str) -> tuple[int, ...]:
        shape = self.shapes.get(tensor)
        if shape is None:
            raise UserError(f"the shape of its {role} {tensor!r} is unknown after ONNX shape "
                            "inference (give the model fixed input shapes)", file=self.path,
                            where=_where(node))
        return shape


def _value_shape(vi: Any) -> tuple[int, ...] | None:
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in t.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _where(node: Any) -> str:
    return f"node {node.name!r} ({node.op_type})" if node.name else f"node {node.op_type}"


def _fix_symbolic_inputs(model: Any) -> None:
    """A dynamic dimension of a graph input (``batch``, ``N``) becomes 1."""
    for vi in model.graph.input:
        t = vi.type
        if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            continue
        for d in t.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1


def _read(path: str) -> Any:
    import onnx
    import onnx.shape_inference

    p = Path(path)
    if not p.is_file():
        raise UserError("no such file" if not p.exists() else "not a file", file=path)
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning...; all mean this
        raise UserError(f"not an ONNX model ({type(exc).__name__}: {exc})", file=path) from None
    if not model.graph.node:
        raise UserError("not an ONNX model (its graph has no nodes)", file=path)
    _fix_symbolic_inputs(model)
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise UserError(f"ONNX shape inference failed: {exc}", file=path) from None


def load_onnx_layers(path: str) -> list[Layer]:
    """The layers of an ONNX model, in graph order (see the module docstring)."""
    path = str(path)
    model = _read(path)
    g = _Graph(model, path)
    layers: list[Layer] = []
    fused_into: set[str] = set()  # outputs of costed layers (and of what was fused into them)
    for i, node in enumerate(model.graph.node):
        op = node.op_type
        name = node.name or f"{op}_{i}"
        if op in FREE_OPS:
            continue
        if (op in FUSABLE_OPS and node.input and node.input[0] in fused_into
                and g.consumers.get(node.input[0], 0) == 1):
            fused_into.update(o for o in node.output[:1] if o)
            continue
        try:
            layer = _layer(g, node, name)
        except UserError:
            raise
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise UserError(f"cannot map it onto the PEA compute model: {exc}", file=path,
                            where=_where(node)) from None
        if layer is None:
            continue
        layers.append(layer)
        if node.output and node.output[0]:
            fused_into.add(node.output[0])
    if not layers:
        raise UserError("the graph has no layer that computes (only shape operations)",
                        file=path)
    return layers


def _layer(g: _Graph, node: Any, name: str) -> Layer | None:
    op = node.op_type
    a = _attrs(node)
    if op == "Conv":
        return _conv(g, node, name, a)
    if op == "ConvTranspose":
        return _conv_transpose(g, node, name, a)
    if op == "Gemm":
        return _gemm(g, node, name, a)
    if op == "MatMul":
        return _matmul(g, node, name)
    out = g.shape(node, node.output[0], "output")
    if op in POOL_OPS or op in GLOBAL_POOL_OPS:
        x = g.shape(node, node.input[0], "input")
        if len(x) != 4 or len(out) != 4:
            raise UserError(f"only 2-D pooling is mapped (input shape {list(x)})", file=g.path,
                            where=_where(node))
        n, c, h, w = x
        if op in GLOBAL_POOL_OPS:
            return Layer(name, h, w, h, w, c, c, 1, "elementwise", n)
        kh, kw = (int(k) for k in a["kernel_shape"])
        strides = [int(s) for s in a.get("strides", [1, 1])]
        stride = strides[0] if strides[0] == strides[1] else 1
        oh, ow = out[2], out[3]
        return Layer(name, (oh - 1) * stride + kh, (ow - 1) * stride + kw, kh, kw, c, c,
                     stride, "elementwise", n)
    elements = math.prod(out)
    if elements == 0:
        return None
    return Layer.elementwise(name, elements, 1, 1)


def _conv(g: _Graph, node: Any, name: str, a: dict[str, Any]) -> Layer:
    x = g.shape(node, node.input[0], "input")
    wt = g.shape(node, node.input[1], "weight")
    out = g.shape(node, node.output[0], "output")
    if len(x) != 4 or len(wt) != 4 or len(out) != 4:
        raise UserError(f"only 2-D convolutions are mapped (input shape {list(x)})",
                        file=g.path, where=_where(node))
    groups = int(a.get("group", 1))
    n = x[0]
    m, cpg, kh, kw = wt
    oh, ow = out[2], out[3]
    strides = [int(s) for s in a.get("strides", [1, 1])]
    # The stored ifmap is the padded input the output reads (as Layer.conv2d stores it); with
    # unequal strides only the output size matters to the model, so stride 1 keeps it exact.
    stride = strides[0] if strides[0] == strides[1] else 1
    layer = Layer(name, (oh - 1) * stride + kh, (ow - 1) * stride + kw, kh, kw, cpg,
                  m // groups, stride, "conv", groups)
    return layer.batched(n) if n > 1 else layer


def _conv_transpose(g: _Graph, node: Any, name: str, a: dict[str, Any]) -> Layer:
    x = g.shape(node, node.input[0], "input")
    wt = g.shape(node, node.input[1], "weight")
    if len(x) != 4 or len(wt) != 4:
        raise UserError(f"only 2-D transposed convolutions are mapped (input shape {list(x)})",
                        file=g.path, where=_where(node))
    groups = int(a.get("group", 1))
    n, cin, h, w = x
    _, mpg, kh, kw = wt  # ONNX: (C_in, C_out / group, kH, kW)
    layer = Layer(name, h, w, 1, 1, cin // groups, mpg * kh * kw, 1, "conv", groups)
    return layer.batched(n) if n > 1 else layer


def _gemm(g: _Graph, node: Any, name: str, a: dict[str, Any]) -> Layer:
    xa = g.shape(node, node.input[0], "input A")
    xb = g.shape(node, node.input[1], "input B")
    if len(xa) != 2 or len(xb) != 2:
        raise UserError(f"Gemm needs 2-D inputs, got {list(xa)} and {list(xb)}", file=g.path,
                        where=_where(node))
    m, k = (xa[1], xa[0]) if a.get("transA", 0) else xa
    n = xb[0] if a.get("transB", 0) else xb[1]
    return Layer.matmul(name, m, n, k, has_weights=node.input[1] in g.constants)


def _matmul(g: _Graph, node: Any, name: str) -> Layer:
    xa = g.shape(node, node.input[0], "input A")
    xb = g.shape(node, node.input[1], "input B")
    if not xa or not xb:
        raise UserError("MatMul of a scalar", file=g.path, where=_where(node))
    weights = node.input[1] in g.constants
    a2 = (1, *xa) if len(xa) == 1 else xa
    b2 = (*xb, 1) if len(xb) == 1 else xb
    m, k = a2[-2], a2[-1]
    n = b2[-1]
    if weights and len(b2) == 2:
        # One shared weight matrix: the leading dimensions of A are more rows of one GEMM.
        return Layer.matmul(name, math.prod(a2[:-1]), n, k)
    batch = math.prod(_broadcast(a2[:-2], b2[:-2]))
    return Layer.matmul(name, m, n, k, groups=batch, has_weights=weights)


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    width = max(len(a), len(b))
    a = (1,) * (width - len(a)) + a
    b = (1,) * (width - len(b)) + b
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))
