"""Compute cycles of DNN layers on one PEA: a ``rows x cols`` systolic array.

This is SCALE-Sim's analytical compute model (Samajdar et al., "A Systematic Methodology for
Characterizing Scalability of DNN Accelerators using SCALE-Sim", ISPASS 2020; the code of
``scalesim`` 3.0.0, ``compute/systolic_compute_{os,ws,is}.py``), without its memory model: no
SRAM stalls and no DRAM bandwidth limits. See ``docs/hardware.md`` for the equations and for the
measured agreement with SCALE-Sim 3.0.0.

Operand-matrix view (as in SCALE-Sim). For a convolution, the ofmap has
``E = ofmap_h * ofmap_w`` pixels per filter, each filter has a window of
``W = filter_h * filter_w * channels`` weights and there are ``N = num_filters`` filters:

====  =====  =====  =====  ==============================
 df    Sr     Sc     T      cycles per fold
====  =====  =====  =====  ==============================
 os    E      N      W      T + rows + cols - 2
 ws    W      N      E      T + 2*rows + cols - 2
 is    W      E      N      T + 2*rows + cols - 2
====  =====  =====  =====  ==============================

``Sr`` is mapped onto the array rows, ``Sc`` onto the columns and ``T`` onto time, so a layer
needs ``ceil(Sr / rows) * ceil(Sc / cols)`` folds. A partial fold costs as much as a full one
(tiling under-utilisation), and every fold pays its own fill and drain (the ``rows + cols - 2``
skew, plus ``rows`` cycles to preload the stationary operand in ws/is). A layer's cycles are
``groups * folds * cycles_per_fold``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from octosim.errors import UserError

__all__ = [
    "DATAFLOWS",
    "KINDS",
    "Layer",
    "fold_cycles",
    "layer_cycles",
    "model_layer_cycles",
    "operand_dims",
]

KINDS: tuple[str, ...] = ("conv", "matmul", "elementwise")
"""Layer kinds: ``conv`` and ``matmul`` run as MACs on the array; ``elementwise`` (pooling,
residual add, activation, normalisation, softmax...) runs one operation per PE per cycle."""

DATAFLOWS: tuple[str, ...] = ("os", "ws", "is")
"""Output-, weight- and input-stationary, as in SCALE-Sim."""

_INT_FIELDS = (
    "ifmap_h",
    "ifmap_w",
    "filter_h",
    "filter_w",
    "channels",
    "num_filters",
    "stride",
    "groups",
)


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer, in SCALE-Sim's topology terms.

    ``ifmap_h``/``ifmap_w`` are the input feature-map size *including padding* (SCALE-Sim has
    no padding field) and, as in SCALE-Sim, ``ofmap = ceil((ifmap - filter) / stride) + 1``
    (:meth:`Layer.conv2d` converts from framework conventions). ``channels`` and
    ``num_filters`` are per group.

    Encodings:

    - ``conv``: as read from a SCALE-Sim topology row.
    - ``matmul`` ``(M x K) @ (K x N)``: SCALE-Sim's GEMM encoding, ``ifmap_h=M, ifmap_w=K,
      filter_h=1, filter_w=K, channels=1, num_filters=N, stride=1`` (use :meth:`Layer.matmul`).
      ``has_weights=False`` marks an activation-by-activation product (attention scores), whose
      right operand is not a parameter.
    - ``elementwise``: ``ifmap_h x ifmap_w x channels`` elements; a pooling window is
      ``filter_h x filter_w`` with ``stride``; ``num_filters`` is ignored (use
      :meth:`Layer.elementwise`). It costs ``ofmap_h * ofmap_w * channels * filter_h * filter_w``
      PE operations and no MACs.
    - ``groups``: the layer is ``groups`` independent copies run one after another. A depthwise
      convolution over ``C`` channels is ``channels=1, num_filters=1, groups=C``: exactly what
      SCALE-Sim does with a topology row whose name contains ``DP`` (one layer per channel).
      Attention heads are ``groups=heads``. ``shared_weights=True`` means all groups use the
      same weights (an LSTM cell applied at every time step), so they are counted once.
    """

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride: int = 1
    kind: str = "conv"
    groups: int = 1
    has_weights: bool = True
    shared_weights: bool = False

    def __post_init__(self) -> None:
        where = f"layer {self.name}" if self.name else "layer"
        if self.kind not in KINDS:
            raise UserError(
                f"unknown layer kind {self.kind!r}; expected one of {', '.join(KINDS)}",
                where=where,
            )
        for field in _INT_FIELDS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{field} must be an integer, got {value!r}", where=where)
            if value <= 0:
                raise UserError(f"{field} must be positive, got {value}", where=where)
        if self.filter_h > self.ifmap_h:
            raise UserError(
                f"filter height {self.filter_h} is larger than ifmap height {self.ifmap_h}",
                where=where,
            )
        if self.filter_w > self.ifmap_w:
            raise UserError(
                f"filter width {self.filter_w} is larger than ifmap width {self.ifmap_w}",
                where=where,
            )

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def matmul(
        cls,
        name: str,
        m: int,
        n: int,
        k: int,
        *,
        groups: int = 1,
        has_weights: bool = True,
        shared_weights: bool = False,
    ) -> Layer:
        """``groups`` products ``(m x k) @ (k x n)`` in SCALE-Sim's GEMM encoding."""
        return cls(name, m, k, 1, k, 1, n, 1, "matmul", groups, has_weights, shared_weights)

    @classmethod
    def conv2d(
        cls,
        name: str,
        in_h: int,
        in_w: int,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        groups: int = 1,
    ) -> Layer:
        """A convolution as frameworks (PyTorch, ONNX) define it.

        Output size ``floor((in + 2*padding - kernel) / stride) + 1``; the SCALE-Sim ifmap is
        the part of the padded input the output reads, ``(out - 1) * stride + kernel``, so that
        SCALE-Sim's rounding gives the same output size. ``groups`` as in ``torch.nn.Conv2d``.
        """
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        where = f"layer {name}" if name else "layer"
        for label, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(groups, int) and groups > 0 and value % groups:
                raise UserError(f"{label} {value} is not divisible by groups {groups}", where=where)
        if isinstance(stride, int) and stride > 0:
            out_h = (in_h + 2 * ph - kh) // stride + 1
            out_w = (in_w + 2 * pw - kw) // stride + 1
            if out_h <= 0 or out_w <= 0:
                raise UserError(
                    f"kernel {kh}x{kw} does not fit the padded {in_h}x{in_w} input", where=where
                )
            in_h, in_w = (out_h - 1) * stride + kh, (out_w - 1) * stride + kw
        return cls(
            name,
            in_h,
            in_w,
            kh,
            kw,
            in_channels // max(groups, 1),
            out_channels // max(groups, 1),
            stride,
            "conv",
            groups,
        )

    @classmethod
    def elementwise(
        cls,
        name: str,
        h: int,
        w: int,
        channels: int,
        *,
        window: int = 1,
        stride: int = 1,
        groups: int = 1,
    ) -> Layer:
        """An elementwise op over ``h x w x channels`` (a pooling op if ``window > 1``)."""
        return cls(name, h, w, window, window, channels, channels, stride, "elementwise", groups)

    # -- batching -----------------------------------------------------------------------------

    def batched(self, batch: int) -> Layer:
        """The layer run on ``batch`` inputs at once, as one layer of the same systolic model.

        Layers with weights share them across the batch, which becomes extra rows of the
        operand matrix (``E``, mapped onto the array rows in ``os``): a ``matmul``'s ``M``
        (token rows: ``batch`` GEMVs are one GEMM with ``batch`` rows), a ``conv``'s ofmap
        pixels (the ``batch`` images stacked along the height, ``ofmap_h * batch`` output rows
        over the same filters). Activation-by-activation matmuls (``has_weights=False``:
        attention against each input's own KV cache) and ``elementwise`` layers share nothing:
        their ``groups`` grow ``batch``-fold. Weight bytes never change.
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise UserError(f"batch must be a positive integer, got {batch!r}",
                            where=f"layer {self.name}" if self.name else "layer")
        if batch == 1:
            return self
        if self.kind == "elementwise" or not self.has_weights:
            return dataclasses.replace(self, groups=self.groups * batch)
        if self.kind == "matmul":
            return dataclasses.replace(self, ifmap_h=self.ifmap_h * batch)
        # ofmap = ceil((ifmap - filter) / stride) + 1: this ifmap height gives batch x the rows
        ifmap_h = (self.ofmap_h * batch - 1) * self.stride + self.filter_h
        return dataclasses.replace(self, ifmap_h=ifmap_h)

    # -- derived sizes ------------------------------------------------------------------------

    @property
    def ofmap_h(self) -> int:
        # SCALE-Sim: ceil((ifmap - filter + stride) / stride), which counts a last window that
        # hangs over the edge (unlike frameworks' floor((ifmap - filter) / stride) + 1)
        return -(-(self.ifmap_h - self.filter_h) // self.stride) + 1

    @property
    def ofmap_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w) // self.stride) + 1

    @property
    def ofmap_pixels(self) -> int:
        """Output pixels per filter (``E``; ``M`` for a matmul)."""
        return self.ofmap_h * self.ofmap_w

    @property
    def window(self) -> int:
        """Weights per filter (``W``; ``K`` for a matmul)."""
        return self.filter_h * self.filter_w * self.channels

    def macs(self) -> int:
        """Multiply-accumulates (0 for ``elementwise``)."""
        if self.kind == "elementwise":
            return 0
        return self.groups * self.ofmap_pixels * self.window * self.num_filters

    def ops(self) -> int:
        """PE operations: MACs, or elementwise operations for ``elementwise``."""
        if self.kind == "elementwise":
            return self.groups * self.ofmap_pixels * self.channels * self.filter_h * self.filter_w
        return self.macs()

    def weight_bytes(self, bytes_per_weight: int = 1) -> int:
        """Bytes of parameters the layer reads (biases and folded batch-norm ignored)."""
        if self.kind == "elementwise" or not self.has_weights:
            return 0
        copies = 1 if self.shared_weights else self.groups
        return copies * self.window * self.num_filters * bytes_per_weight


def _check_array(rows: int, cols: int, dataflow: str) -> None:
    for label, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"array {label} must be a positive integer, got {value!r}")
    if dataflow not in DATAFLOWS:
        raise UserError(
            f"unknown dataflow {dataflow!r}; expected one of {', '.join(DATAFLOWS)}",
            where="dataflow",
        )


def operand_dims(layer: Layer, dataflow: str = "os") -> tuple[int, int, int]:
    """SCALE-Sim's ``(Sr, Sc, T)`` of one group of ``layer`` for ``dataflow``."""
    _check_array(1, 1, dataflow)
    e, w, n = layer.ofmap_pixels, layer.window, layer.num_filters
    if dataflow == "os":
        return e, n, w
    if dataflow == "ws":
        return w, n, e
    return w, e, n


def fold_cycles(t: int, rows: int, cols: int, dataflow: str = "os") -> int:
    """Cycles of one fold streaming ``t`` operands in time, fill and drain included."""
    _check_array(rows, cols, dataflow)
    if dataflow == "os":
        return t + rows + cols - 2
    return t + 2 * rows + cols - 2


def layer_cycles(layer: Layer, rows: int, cols: int, dataflow: str = "os") -> int:
    """Compute cycles of one layer on one ``rows x cols`` systolic array.

    MAC layers (``conv``/``matmul``): ``groups * ceil(Sr/rows) * ceil(Sc/cols) *
    fold_cycles(T)``, i.e. SCALE-Sim's compute model with tiling under-utilisation of partial
    folds and fill/drain per fold; SRAM stalls and DRAM bandwidth are not modelled.
    (SCALE-Sim's COMPUTE_REPORT "Total Cycles" column is the 0-based index of the last cycle,
    which is one less than this count for every SCALE-Sim layer.)

    ``elementwise``: ``ceil(ops / (rows*cols)) + rows + cols - 2`` whatever the dataflow: every
    PE does one operation per cycle, plus one pipeline fill/drain.
    """
    _check_array(rows, cols, dataflow)
    if layer.kind == "elementwise":
        return math.ceil(layer.ops() / (rows * cols)) + rows + cols - 2
    sr, sc, t = operand_dims(layer, dataflow)
    folds = math.ceil(sr / rows) * math.ceil(sc / cols)
    return layer.groups * folds * fold_cycles(t, rows, cols, dataflow)


def model_layer_cycles(
    layers: Sequence[Layer], rows: int, cols: int, dataflow: str = "os"
) -> list[int]:
    """:func:`layer_cycles` of every layer, in order."""
    _check_array(rows, cols, dataflow)
    return [layer_cycles(layer, rows, cols, dataflow) for layer in layers]
