"""SCALE-Sim topology CSV files: reader (and a writer for exporting layer tables).

The reader follows ``scalesim`` 3.0.0 (``topology_utils.py``, ``load_arrays_conv`` and
``load_arrays_gemm``):

- The first line is a header and is skipped; blank lines are skipped.
- Convolution format, one layer per row: ``Layer name, IFMAP Height, IFMAP Width, Filter
  Height, Filter Width, Channels, Num Filter, Strides,`` and an optional sparsity ratio
  ``N:M`` (ignored here: dense compute). The stride applies to both directions. IFMAP sizes
  include padding (there is no padding column).
- GEMM format: ``Layer, M, N, K,`` (optional sparsity ratio), read as SCALE-Sim's ``-i gemm``
  does: ``(M x K) @ (K x N)`` = ifmap ``M x K``, filter ``1 x K``, 1 channel, ``N`` filters.
  The format is detected from the header (second column named ``M``) unless ``fmt`` is given.
- A row whose layer name contains ``DP`` (case-sensitive) is a depthwise convolution: SCALE-Sim
  splits it into one layer per channel, each with 1 channel and ``Num Filter`` filters. Here it
  is one :class:`~octosim.hardware.systolic.Layer` with ``groups=Channels, channels=1``, which
  has the same cycles as SCALE-Sim's per-channel layers put together.

Text after the last comma of a row is ignored, as SCALE-Sim does (it drops the last field of
every row: rows end with a comma, and ``..., 1,#dw`` reads as ``..., 1,``). Differences, all
more tolerant than SCALE-Sim: a row without its trailing comma is read in full (SCALE-Sim
crashes on it), lines starting with ``#`` are comments (SCALE-Sim
has none; do not use them in files meant for SCALE-Sim), and leading blank/comment lines come
before the header. Errors are :class:`~octosim.errors.UserError` with ``where="row N"``, ``N``
being the 1-based line number in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from octosim.errors import UserError
from octosim.hardware.systolic import Layer

__all__ = ["load_topology_csv", "topology_csv_text"]

_CONV_COLUMNS = (
    "IFMAP Height",
    "IFMAP Width",
    "Filter Height",
    "Filter Width",
    "Channels",
    "Num Filter",
    "Strides",
)
_GEMM_COLUMNS = ("M", "N", "K")
_CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
_CONV_HEADER += "Num Filter, Strides,"
_SPARSITY = re.compile(r"^\s*\d+\s*:\s*\d+\s*$")
_INT = re.compile(r"^[+-]?\d+$")


def _fields(line: str, ncols: int = 0) -> list[str]:
    """Split a row. SCALE-Sim ignores whatever follows the last comma (usually nothing: rows
    end with a comma); so do we, unless the row would then be short of its ``ncols`` fields
    (a row written without the trailing comma)."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) > 1 and (fields[-1] == "" or len(fields) - 1 >= ncols):
        fields.pop()
    return fields


def _int(text: str, column: str, where: str, path: str) -> int:
    if not _INT.match(text):
        raise UserError(f"{column}: {text!r} is not an integer", file=path, where=where)
    value = int(text)
    if value <= 0:
        raise UserError(f"{column} must be positive, got {value}", file=path, where=where)
    return value


def load_topology_csv(path: str, fmt: str = "auto") -> list[Layer]:
    """Read a SCALE-Sim topology CSV (``fmt``: ``auto``, ``conv`` or ``gemm``)."""
    path = str(path)
    if fmt not in ("auto", "conv", "gemm"):
        raise UserError(f"unknown topology format {fmt!r}; expected auto, conv or gemm")
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"cannot read topology: {reason}", file=path) from None

    layers: list[Layer] = []
    header_seen = False
    gemm = fmt == "gemm"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not header_seen:
            header_seen = True
            if fmt == "auto":
                header = [f.strip() for f in line.split(",")]
                gemm = len(header) > 1 and header[1].upper() == "M"
            continue
        where = f"row {lineno}"
        if gemm:
            layers.append(_gemm_row(_fields(line, 1 + len(_GEMM_COLUMNS)), where, path))
        else:
            layers.append(_conv_row(_fields(line, 1 + len(_CONV_COLUMNS)), where, path))
    if not layers:
        raise UserError("topology has no layers (the first line is a header)", file=path)
    return layers


def _sparsity(fields: list[str], ncols: int, where: str, path: str) -> None:
    if len(fields) == ncols + 1 and not _SPARSITY.match(fields[-1]):
        raise UserError(
            f"sparsity ratio must look like N:M, got {fields[-1]!r}", file=path, where=where
        )


def _conv_row(fields: list[str], where: str, path: str) -> Layer:
    ncols = 1 + len(_CONV_COLUMNS)
    if len(fields) not in (ncols, ncols + 1):
        raise UserError(
            f"expected {ncols} fields (Layer name, {', '.join(_CONV_COLUMNS)}) and an optional "
            f"sparsity ratio, got {len(fields)}",
            file=path,
            where=where,
        )
    _sparsity(fields, ncols, where, path)
    name = fields[0]
    ih, iw, fh, fw, ch, nf, st = (
        _int(text, col, where, path)
        for text, col in zip(fields[1:ncols], _CONV_COLUMNS, strict=True)
    )
    groups = 1
    if "DP" in name:  # SCALE-Sim: depthwise, one single-channel layer per channel
        groups, ch = ch, 1
    return _layer(name, ih, iw, fh, fw, ch, nf, st, "conv", groups, where, path)


def _gemm_row(fields: list[str], where: str, path: str) -> Layer:
    ncols = 1 + len(_GEMM_COLUMNS)
    if len(fields) not in (ncols, ncols + 1):
        raise UserError(
            f"expected {ncols} fields (Layer, M, N, K) and an optional sparsity ratio, "
            f"got {len(fields)}",
            file=path,
            where=where,
        )
    _sparsity(fields, ncols, where, path)
    m, n, k = (
        _int(text, col, where, path)
        for text, col in zip(fields[1:ncols], _GEMM_COLUMNS, strict=True)
    )
    return _layer(fields[0], m, k, 1, k, 1, n, 1, "matmul", 1, where, path)


def _layer(
    name: str,
    ih: int,
    iw: int,
    fh: int,
    fw: int,
    ch: int,
    nf: int,
    st: int,
    kind: str,
    groups: int,
    where: str,
    path: str,
) -> Layer:
    try:
        return Layer(name, ih, iw, fh, fw, ch, nf, st, kind, groups)
    except UserError as exc:
        raise UserError(exc.what, file=path, where=where) from None


def topology_csv_text(layers: Iterable[Layer]) -> str:
    """A SCALE-Sim convolution-format topology that SCALE-Sim 3.0.0 itself can run.

    Elementwise layers are left out (SCALE-Sim has none). A layer with ``groups > 1`` and one
    channel per group becomes a ``DP`` row (its name gets a ``DP_`` prefix if needed); other
    grouped layers are written as ``groups`` rows. ``DP`` in the name of an ungrouped layer is
    lower-cased so that SCALE-Sim does not take it for a depthwise layer. Reading the text back
    with :func:`load_topology_csv` gives the same MAC layers (matmuls come back as ``conv``).
    """
    rows = [_CONV_HEADER]

    def row(name: str, layer: Layer, channels: int) -> str:
        dims = (
            layer.ifmap_h,
            layer.ifmap_w,
            layer.filter_h,
            layer.filter_w,
            channels,
            layer.num_filters,
            layer.stride,
        )
        return ", ".join([name.replace(",", "_"), *map(str, dims)]) + ","

    for layer in layers:
        if layer.kind == "elementwise":
            continue
        if layer.groups == 1:
            rows.append(row(layer.name.replace("DP", "dp"), layer, layer.channels))
        elif layer.channels == 1:
            name = layer.name if "DP" in layer.name else "DP_" + layer.name
            rows.append(row(name, layer, layer.groups))
        else:
            base = layer.name.replace("DP", "dp")
            rows.extend(row(f"{base}_g{g}", layer, layer.channels) for g in range(layer.groups))
    return "\n".join(rows) + "\n"
