"""The model zoo: architecture tables against published MAC and parameter counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from octosim.errors import UserError
from octosim.hardware.systolic import Layer, layer_cycles
from octosim.hardware.topology import load_topology_csv, topology_csv_text
from octosim.hardware.zoo import LLM_CONTEXT, ModelSpec, get_model, list_models, model_from_topology

FIXTURES = Path(__file__).parent / "fixtures"
REQUIRED = [
    "resnet50",
    "mobilenet_v2",
    "yolov5s",
    "bert_base",
    "arcface_r100",
    "crnn",
    "unet",
    "llm1b_decode",
    "whisper_tiny_encoder",
]

# Published MACs (GFLOPs / 2 where FLOPs are quoted) of one inference at the zoo's input size.
PUBLISHED_MACS = {
    # torchvision ResNet50_Weights.IMAGENET1K_V1: 4.09 GFLOPS (multiply-adds)
    "resnet50": 4.09e9,
    # Sandler et al. 2018, Table 4: 300M multiply-adds
    "mobilenet_v2": 300e6,
    # Ultralytics YOLOv5 README: YOLOv5s, 640 px, 16.5 GFLOPs
    "yolov5s": 16.5e9 / 2,
    # BERT-base, 128 tokens: ~11 GMACs (22 GFLOPs), e.g. 12*(4sd^2 + 2sd*ff + 2s^2d)
    "bert_base": 11.0e9,
    # OpenVINO Open Model Zoo, face-recognition-resnet100-arcface-onnx: 24.2115 GFLOPs
    "arcface_r100": 24.2115e9 / 2,
}

# Published parameter counts (millions) and what our weight table leaves out of them.
PUBLISHED_PARAMS_M = {
    "resnet50": 25.557,  # torchvision (includes biases and batch-norm)
    "mobilenet_v2": 3.505,  # torchvision
    "yolov5s": 7.2,  # Ultralytics README
    "arcface_r100": 65.132,  # Open Model Zoo card (includes batch-norm / PReLU)
    "crnn": 8.3,  # Shi et al., TPAMI 2017, Table 3 (model size)
    "unet": 31.0,  # 64..1024-channel U-Net, as usually quoted (e.g. milesial/Pytorch-UNet)
}


@pytest.fixture(scope="module")
def zoo() -> dict[str, ModelSpec]:
    return {name: get_model(name) for name in list_models()}


def test_required_models_present(zoo: dict[str, ModelSpec]) -> None:
    assert set(REQUIRED) <= set(list_models())
    assert list_models() == sorted(list_models())
    for name, spec in zoo.items():
        assert spec.name == name
        assert spec.source and "," in spec.source  # paper + implementation/config
        assert spec.layers and all(isinstance(lay, Layer) for lay in spec.layers)
        assert len({lay.name for lay in spec.layers}) == len(spec.layers), name
        assert spec.macs() > 0 and spec.weight_bytes() > 0
        assert spec.streams_weights == (name == "llm1b_decode")


@pytest.mark.parametrize("name", sorted(PUBLISHED_MACS))
def test_macs_match_published(zoo: dict[str, ModelSpec], name: str) -> None:
    ours, ref = zoo[name].macs(), PUBLISHED_MACS[name]
    assert abs(ours - ref) / ref < 0.05, (name, ours, ref)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_M))
def test_parameters_match_published(zoo: dict[str, ModelSpec], name: str) -> None:
    ours, ref = zoo[name].weight_bytes() / 1e6, PUBLISHED_PARAMS_M[name]
    assert abs(ours - ref) / ref < 0.03, (name, ours, ref)


def test_bert_base_closed_form(zoo: dict[str, ModelSpec]) -> None:
    s, d, ff, n = 128, 768, 3072, 12
    per_layer = 4 * s * d * d + 2 * s * s * d + 2 * s * d * ff
    assert zoo["bert_base"].macs() == n * per_layer + d * d  # + pooler
    # 110M parameters (Devlin et al.) = ours + word/position/type embeddings (+ biases, LN)
    embeddings = (30522 + 512 + 2) * d
    assert abs(zoo["bert_base"].weight_bytes() + embeddings - 110e6) / 110e6 < 0.02
    attention = [lay for lay in zoo["bert_base"].layers if not lay.has_weights]
    assert len(attention) == 2 * n and all(lay.groups == 12 for lay in attention)


def test_llm1b_decode_is_tinyllama(zoo: dict[str, ModelSpec]) -> None:
    spec = zoo["llm1b_decode"]
    d, layers, vocab = 2048, 22, 32000
    # TinyLlama-1.1B has 1,100,048,384 parameters: ours + input embedding + RMSNorm weights
    assert spec.weight_bytes() + vocab * d + (2 * layers + 1) * d == 1_100_048_384
    attention = 2 * layers * 32 * 64 * LLM_CONTEXT
    assert spec.macs() == spec.weight_bytes() + attention  # batch 1: one MAC per weight
    mms = [lay for lay in spec.layers if lay.kind == "matmul"]
    assert all(lay.ofmap_pixels <= 8 for lay in mms)  # GEMVs (8 = query heads per KV head)
    assert LLM_CONTEXT == 1024


def test_whisper_tiny_encoder_closed_form(zoo: dict[str, ModelSpec]) -> None:
    spec = zoo["whisper_tiny_encoder"]
    t, d = 1500, 384
    convs = 3000 * 3 * 80 * d + t * 3 * d * d
    block = 4 * t * d * d + 2 * t * t * d + 2 * t * d * 4 * d
    assert spec.macs() == convs + 4 * block
    conv2 = next(lay for lay in spec.layers if lay.name == "conv2")
    assert (conv2.ofmap_h, conv2.ofmap_w) == (1, 1500)


def test_output_shapes(zoo: dict[str, ModelSpec]) -> None:
    def layer(model: str, name: str) -> Layer:
        return next(lay for lay in zoo[model].layers if lay.name == name)

    assert layer("resnet50", "conv1").ofmap_h == 112
    assert layer("resnet50", "layer4.2.conv3").ofmap_h == 7
    assert sum(lay.kind == "conv" for lay in zoo["resnet50"].layers) == 53
    assert [layer("yolov5s", f"24.m.{i}").ofmap_h for i in range(3)] == [80, 40, 20]
    assert layer("yolov5s", "24.m.0").num_filters == 255
    assert layer("mobilenet_v2", "features.18").ofmap_h == 7
    dws = [lay for lay in zoo["mobilenet_v2"].layers if lay.groups > 1]
    assert len(dws) == 17 and all(lay.channels == lay.num_filters == 1 for lay in dws)
    assert layer("arcface_r100", "layer4.2.conv2").ofmap_h == 7
    assert layer("arcface_r100", "fc").window == 512 * 7 * 7
    assert (layer("crnn", "conv6").ofmap_h, layer("crnn", "conv6").ofmap_w) == (1, 26)
    assert layer("unet", "outc").ofmap_h == 256 and layer("unet", "outc").num_filters == 2
    assert layer("unet", "down4.conv2").ofmap_h == 16


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_cycles_are_physical(zoo: dict[str, ModelSpec], df: str) -> None:
    for name, spec in zoo.items():
        small, big = spec.cycles_on(8, 8, df), spec.cycles_on(32, 32, df)
        assert spec.macs() <= 64 * small and spec.macs() <= 1024 * big, name
        assert big < small, name  # real models have enough folds to gain from a bigger array


def test_cycles_on_is_cached_sum(zoo: dict[str, ModelSpec]) -> None:
    spec = zoo["resnet50"]
    expected = sum(layer_cycles(lay, 16, 16, "ws") for lay in spec.layers)
    assert spec.cycles_on(16, 16, "ws") == expected
    assert spec._cycles[(16, 16, "ws")] == expected
    assert spec.cycles_on(16, 16, "ws") == expected
    assert spec.layer_cycles_on(16, 16, "ws")[0] == layer_cycles(spec.layers[0], 16, 16, "ws")
    assert get_model("resnet50") is get_model("resnet50")


def test_unknown_model() -> None:
    with pytest.raises(UserError) as info:
        get_model("resnet51")
    assert "resnet51" in info.value.what
    assert all(name in info.value.what for name in REQUIRED)


def test_model_from_topology() -> None:
    path = str(FIXTURES / "scalesim_topology.csv")
    spec = model_from_topology(path)
    assert spec.name == "scalesim_topology" and path in spec.source
    assert spec.layers == tuple(load_topology_csv(path))
    assert not spec.streams_weights
    assert get_model(path).layers == spec.layers
    with pytest.raises(UserError) as info:
        get_model(str(FIXTURES / "missing.csv"))
    assert info.value.file == str(FIXTURES / "missing.csv")


@pytest.mark.parametrize("name", REQUIRED)
def test_export_to_scalesim_topology_round_trips(
    zoo: dict[str, ModelSpec], name: str, tmp_path: Path
) -> None:
    spec = zoo[name]
    path = tmp_path / f"{name}.csv"
    path.write_text(topology_csv_text(spec.layers))
    back = load_topology_csv(str(path))
    mac_layers = [lay for lay in spec.layers if lay.kind != "elementwise"]
    assert sum(lay.macs() for lay in back) == spec.macs()
    for df in ("os", "ws"):
        ours = sum(layer_cycles(lay, 16, 16, df) for lay in mac_layers)
        assert sum(layer_cycles(lay, 16, 16, df) for lay in back) == ours
