"""The PEA compute model on hand-computable cases."""

from __future__ import annotations

import math

import pytest

from octosim.errors import UserError
from octosim.hardware.systolic import (
    Layer,
    fold_cycles,
    layer_cycles,
    model_layer_cycles,
    operand_dims,
)


def conv(ih: int, fh: int, ch: int, nf: int, stride: int = 1, **kw: object) -> Layer:
    return Layer("c", ih, ih, fh, fh, ch, nf, stride, **kw)  # type: ignore[arg-type]


def test_single_fold_exact_fill_and_drain() -> None:
    # 4x4 ifmap, 3x3 filter, 2 channels, 3 filters: E = 2*2 = 4 pixels, W = 18, N = 3
    layer = conv(4, 3, 2, 3)
    assert (layer.ofmap_pixels, layer.window, layer.num_filters) == (4, 18, 3)
    assert layer.macs() == 4 * 18 * 3
    # os: Sr=E=4 <= 16 rows, Sc=N=3 <= 16 cols: one fold of T + rows + cols - 2
    assert operand_dims(layer, "os") == (4, 3, 18)
    assert layer_cycles(layer, 16, 16, "os") == 18 + 16 + 16 - 2
    # ws: Sr=W=18 -> 2 row folds, T=E=4, each T + 2*rows + cols - 2
    assert operand_dims(layer, "ws") == (18, 3, 4)
    assert layer_cycles(layer, 16, 16, "ws") == 2 * (4 + 32 + 16 - 2)
    # is: Sr=W=18 -> 2 row folds, Sc=E=4, T=N=3
    assert operand_dims(layer, "is") == (18, 4, 3)
    assert layer_cycles(layer, 16, 16, "is") == 2 * (3 + 32 + 16 - 2)


def test_fold_cycles() -> None:
    assert fold_cycles(100, 16, 16, "os") == 130
    assert fold_cycles(100, 8, 32, "os") == 138
    assert fold_cycles(100, 8, 32, "ws") == 100 + 16 + 32 - 2
    assert fold_cycles(100, 32, 8, "is") == 100 + 64 + 8 - 2


def test_one_pe_array_runs_one_mac_per_cycle() -> None:
    layer = conv(10, 3, 5, 7, stride=1)
    # os on 1x1: every fold is one output, T cycles, no fill/drain left
    assert layer_cycles(layer, 1, 1, "os") == layer.macs()
    # ws/is on 1x1 pay one extra preload cycle per fold (one fold per stationary element)
    assert layer_cycles(layer, 1, 1, "ws") == layer.macs() + layer.window * layer.num_filters
    assert layer_cycles(layer, 1, 1, "is") == layer.macs() + layer.window * layer.ofmap_pixels


def test_partial_folds_cost_full_folds() -> None:
    # Sr = 17 output pixels needs 2 row folds, the second one 1/16 used: same as Sr = 32
    a = Layer.matmul("a", 17, 16, 64)
    b = Layer.matmul("b", 32, 16, 64)
    c = Layer.matmul("c", 16, 16, 64)
    assert layer_cycles(a, 16, 16) == layer_cycles(b, 16, 16) == 2 * layer_cycles(c, 16, 16)
    # utilisation of the partial-fold layer is about half that of the full one
    util_a = a.macs() / (256 * layer_cycles(a, 16, 16))
    util_b = b.macs() / (256 * layer_cycles(b, 16, 16))
    assert util_a == pytest.approx(util_b * 17 / 32)


def test_rows_and_cols_are_not_interchangeable() -> None:
    tall = Layer.matmul("m", 64, 8, 100)  # Sr=64 rows of work, Sc=8 columns
    assert layer_cycles(tall, 64, 8, "os") == 100 + 64 + 8 - 2  # one fold
    assert layer_cycles(tall, 8, 64, "os") == 8 * (100 + 8 + 64 - 2)  # 8 row folds
    assert layer_cycles(tall, 8, 64, "ws") != layer_cycles(tall, 64, 8, "ws")


def test_dataflows_differ_as_expected() -> None:
    # GEMV (batch-1 decode): os keeps K in time on one row; ws preloads K x N weights for T=1
    gemv = Layer.matmul("gemv", 1, 1024, 1024)
    os_, ws, is_ = (layer_cycles(gemv, 16, 16, df) for df in ("os", "ws", "is"))
    assert os_ == 64 * (1024 + 30)
    assert ws == 64 * 64 * (1 + 46)
    assert is_ == 64 * (1024 + 46)
    assert os_ < is_ < ws
    # many output pixels, few weights: ws streams the pixels in time and wins
    wide = conv(34, 3, 1, 16)  # E = 32*32 = 1024, W = 9, N = 16
    os_, ws, is_ = (layer_cycles(wide, 16, 16, df) for df in ("os", "ws", "is"))
    assert os_ == 64 * (9 + 30)
    assert ws == 1 * (1024 + 46)
    assert is_ == 64 * (16 + 46)
    assert ws < os_ < is_


def test_bigger_arrays_are_faster_on_big_layers_slower_on_tiny_ones() -> None:
    big = conv(58, 3, 64, 64)  # ResNet-50 layer1 3x3 conv
    for df in ("os", "ws", "is"):
        cycles = [layer_cycles(big, n, n, df) for n in (4, 8, 16, 32, 64)]
        assert cycles == sorted(cycles, reverse=True), df
        assert cycles[0] > 3 * cycles[2]
    # one 1x1 output: a single fold whose fill/drain grows with the array
    tiny = Layer.matmul("t", 1, 1, 8)
    assert [layer_cycles(tiny, n, n) for n in (1, 2, 4)] == [8, 10, 14]


def test_monotone_in_work() -> None:
    for df in ("os", "ws", "is"):
        prev = 0
        for n in range(1, 80):
            c = layer_cycles(conv(9, 3, 8, n), 16, 16, df)
            assert c >= prev
            prev = c


def test_groups_repeat_the_layer() -> None:
    one = conv(12, 3, 1, 1)
    dw = conv(12, 3, 1, 1, groups=32)
    for df in ("os", "ws", "is"):
        assert layer_cycles(dw, 16, 16, df) == 32 * layer_cycles(one, 16, 16, df)
    assert dw.macs() == 32 * one.macs() == 32 * 10 * 10 * 9
    assert dw.weight_bytes() == 32 * 9


def test_stride_and_output_size_follow_scalesim() -> None:
    for ih in range(3, 30):
        for fh in (1, 2, 3, 5, 7):
            for s in (1, 2, 3, 4):
                if fh > ih:
                    continue
                lay = conv(ih, fh, 1, 1, stride=s)
                assert lay.ofmap_h == math.ceil((ih - fh + s) / s)
    # SCALE-Sim counts a last window hanging over the edge: 230 -> 113, where PyTorch gives 112
    assert conv(230, 7, 3, 64, stride=2).ofmap_h == 113
    # Layer.conv2d takes framework sizes and trims the ifmap to what the output reads
    c1 = Layer.conv2d("conv1", 224, 224, 3, 64, 7, stride=2, padding=3)
    assert (c1.ifmap_h, c1.ofmap_h, c1.ofmap_w) == (229, 112, 112)
    c2 = Layer.conv2d("c", 56, 56, 64, 64, 3, stride=2, padding=1)
    assert (c2.ifmap_h, c2.ofmap_h) == (57, 28)
    same = Layer.conv2d("c", 14, 14, 64, 64, 3, stride=1, padding=1)
    assert (same.ifmap_h, same.ofmap_h) == (16, 14)
    rect = Layer.conv2d("c", 1, 3000, 384, 384, (1, 3), stride=2, padding=(0, 1))
    assert (rect.ofmap_h, rect.ofmap_w) == (1, 1500)


def test_conv2d_groups() -> None:
    dw = Layer.conv2d("dw", 112, 112, 96, 96, 3, stride=2, padding=1, groups=96)
    assert (dw.channels, dw.num_filters, dw.groups) == (1, 1, 96)
    assert dw.macs() == 56 * 56 * 9 * 96
    grouped = Layer.conv2d("g", 8, 8, 64, 128, 3, padding=1, groups=4)
    assert (grouped.channels, grouped.num_filters, grouped.groups) == (16, 32, 4)
    assert grouped.macs() == 8 * 8 * 9 * 64 * 128 // 4
    with pytest.raises(UserError, match="not divisible by groups"):
        Layer.conv2d("g", 8, 8, 64, 100, 3, groups=3)
    with pytest.raises(UserError, match="does not fit"):
        Layer.conv2d("big", 2, 2, 1, 1, 7)


def test_matmul_encoding_is_scalesims_gemm() -> None:
    mm = Layer.matmul("qk", 128, 128, 64, groups=12, has_weights=False)
    assert (mm.ifmap_h, mm.ifmap_w, mm.filter_h, mm.filter_w) == (128, 64, 1, 64)
    assert (mm.channels, mm.num_filters, mm.stride, mm.kind) == (1, 128, 1, "matmul")
    assert mm.macs() == 12 * 128 * 128 * 64
    assert mm.weight_bytes() == 0
    conv_equiv = Layer("x", 128, 64, 1, 64, 1, 128, 1, groups=12)
    assert layer_cycles(mm, 16, 16, "ws") == layer_cycles(conv_equiv, 16, 16, "ws")


def test_weight_bytes() -> None:
    lay = conv(10, 3, 16, 32)
    assert lay.weight_bytes() == 3 * 3 * 16 * 32
    assert lay.weight_bytes(2) == 2 * 3 * 3 * 16 * 32
    lstm = Layer.matmul("w_hh", 1, 1024, 256, groups=26, shared_weights=True)
    assert lstm.weight_bytes() == 256 * 1024
    assert lstm.macs() == 26 * 256 * 1024


def test_elementwise() -> None:
    add = Layer.elementwise("add", 56, 56, 256)
    assert add.macs() == 0 and add.weight_bytes() == 0
    assert add.ops() == 56 * 56 * 256
    for df in ("os", "ws", "is"):
        assert layer_cycles(add, 16, 16, df) == math.ceil(56 * 56 * 256 / 256) + 30
    pool = Layer.elementwise("maxpool", 113, 113, 64, window=3, stride=2)
    assert (pool.ofmap_h, pool.ofmap_w) == (56, 56)
    assert pool.ops() == 56 * 56 * 64 * 9
    assert layer_cycles(pool, 8, 8) == math.ceil(pool.ops() / 64) + 14


def test_model_layer_cycles() -> None:
    layers = [conv(10, 3, 4, 4), Layer.matmul("m", 3, 5, 7), Layer.elementwise("e", 2, 2, 2)]
    got = model_layer_cycles(layers, 8, 4, "ws")
    assert got == [layer_cycles(lay, 8, 4, "ws") for lay in layers]
    assert model_layer_cycles([], 8, 8) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ifmap_h": 0},
        {"ifmap_w": -1},
        {"filter_h": 0},
        {"channels": 0},
        {"num_filters": -3},
        {"stride": 0},
        {"groups": 0},
        {"channels": 2.5},
        {"channels": True},
        {"filter_h": 9},
        {"filter_w": 9},
        {"kind": "lstm"},
    ],
)
def test_bad_layers_are_user_errors(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = dict(
        name="bad", ifmap_h=8, ifmap_w=8, filter_h=3, filter_w=3, channels=2, num_filters=2
    )
    fields.update(kwargs)
    with pytest.raises(UserError) as info:
        Layer(**fields)  # type: ignore[arg-type]
    assert info.value.where == "layer bad"


@pytest.mark.parametrize(("rows", "cols", "df"), [(0, 16, "os"), (16, -1, "os"), (16, 16, "rs")])
def test_bad_array_or_dataflow(rows: int, cols: int, df: str) -> None:
    with pytest.raises(UserError):
        layer_cycles(conv(8, 3, 2, 2), rows, cols, df)
    with pytest.raises(UserError):
        model_layer_cycles([conv(8, 3, 2, 2)], rows, cols, df)


# -- batching: B inputs at once are one layer of the same model --------------------------------


def test_batched_gemvs_are_one_gemm_on_more_rows() -> None:
    """B GEMVs sharing a weight matrix fill B rows of an os array: free up to ``rows``."""
    gemv = Layer.matmul("fc", 1, 64, 1024)
    one = layer_cycles(gemv, 16, 16)
    assert operand_dims(gemv.batched(16)) == (16, 64, 1024)
    assert layer_cycles(gemv.batched(16), 16, 16) == one
    assert layer_cycles(gemv.batched(17), 16, 16) == 2 * one  # a second row fold
    assert gemv.batched(16).weight_bytes() == gemv.weight_bytes()
    assert gemv.batched(16).macs() == 16 * gemv.macs()
    assert gemv.batched(1) is gemv


def test_batched_layers_without_shared_weights_repeat() -> None:
    """Attention against each input's own KV cache and elementwise ops repeat B times."""
    scores = Layer.matmul("s", 8, 1024, 64, groups=4, has_weights=False)
    ew = Layer.elementwise("e", 1, 1, 2048)
    for layer in (scores, ew):
        assert layer.batched(3).groups == 3 * layer.groups
        assert layer.batched(3).ops() == 3 * layer.ops()
    assert layer_cycles(scores.batched(3), 16, 16) == 3 * layer_cycles(scores, 16, 16)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 8])
def test_batched_conv_adds_ofmap_pixels(stride: int, groups: int) -> None:
    layer = Layer.conv2d("c", 15, 11, 8, 16, 3, stride, 1, groups=groups)
    for b in (2, 5):
        big = layer.batched(b)
        assert (big.ofmap_h, big.ofmap_w) == (b * layer.ofmap_h, layer.ofmap_w)
        assert big.macs() == b * layer.macs()
        assert big.weight_bytes() == layer.weight_bytes()
        for df in ("os", "ws", "is"):
            assert layer_cycles(big, 16, 16, df) >= layer_cycles(layer, 16, 16, df)


def test_batched_model_cycles_match_per_batch() -> None:
    from octosim.hardware.zoo import get_model

    spec = get_model("crnn")
    table = spec.batched_cycles_on(5, 16, 16, "ws")
    assert table == [spec.batched(b).cycles_on(16, 16, "ws") for b in range(1, 6)]
    assert table == sorted(table)
    with pytest.raises(UserError, match="batch must be a positive integer"):
        spec.layers[0].batched(0)
