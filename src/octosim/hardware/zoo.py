"""Model zoo: layer tables of public DNN architectures for the PEA compute model.

Each table is generated here from the published architecture definition (loops over stages and
blocks, with the hyper-parameters of the official configuration) and names its source. Tables
follow SCALE-Sim's conventions (see :class:`~octosim.hardware.systolic.Layer`):

- Convolutions are given as in the frameworks (:meth:`Layer.conv2d`: input size, padding), so
  output sizes are those of the real network; the stored IFMAP is the padded input the output
  actually reads.
- Batch normalisation is folded into the preceding convolution and activations are fused into
  the layer that produces them (not costed), except where a network applies them on a tensor of
  its own (GELU/SiLU in transformers, gates in LSTMs), which become ``elementwise`` layers.
- Residual additions, pooling, upsampling, softmax and normalisation layers are ``elementwise``
  layers at one PE operation per element (per window position for pooling): a first-order
  cost. Concatenations, reshapes, embedding look-ups and flatten are free.
- Depthwise convolutions use one single-channel group per channel (``groups=C``), as SCALE-Sim
  does for its ``DP`` layers; attention heads are groups of activation x activation matmuls
  (``has_weights=False``).
- Weights are int8: :meth:`ModelSpec.weight_bytes` is the number of parameters the compute
  layers read (embedding tables, biases and normalisation parameters excluded).

MAC counts of these tables against published figures are checked in
``tests/hardware/test_zoo.py`` and listed in ``docs/hardware.md``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from octosim.errors import UserError
from octosim.hardware.systolic import Layer, layer_cycles, model_layer_cycles
from octosim.hardware.topology import load_topology_csv

__all__ = ["ModelSpec", "get_model", "list_models", "model_from_onnx", "model_from_topology"]


@dataclass(frozen=True)
class ModelSpec:
    """A DNN model: its layer table and where the table comes from."""

    name: str
    source: str
    layers: tuple[Layer, ...]
    streams_weights: bool = False
    notes: str = ""
    _cycles: dict[tuple[int, int, str], int] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def macs(self) -> int:
        """Multiply-accumulates of one inference (elementwise operations excluded)."""
        return sum(layer.macs() for layer in self.layers)

    def weight_bytes(self) -> int:
        """Bytes of int8 weights (1 byte per parameter) read by the compute layers."""
        return sum(layer.weight_bytes(1) for layer in self.layers)

    def batched(self, batch: int) -> ModelSpec:
        """The model run on ``batch`` inputs at once (:meth:`Layer.batched` on every layer):
        the same weights, ``batch`` x the rows of each weight layer's operand matrix."""
        if batch == 1:
            return self
        return ModelSpec(self.name, self.source, tuple(lay.batched(batch) for lay in self.layers),
                         self.streams_weights, self.notes)

    def batched_cycles_on(self, max_batch: int, rows: int, cols: int,
                          dataflow: str = "os") -> list[int]:
        """``batched(b).cycles_on(rows, cols, dataflow)`` for ``b = 1 .. max_batch`` (item
        ``b - 1``), computed once per distinct layer shape (a transformer repeats one block)."""
        shapes = Counter(dataclasses.replace(lay, name="") for lay in self.layers)
        out = []
        for b in range(1, max_batch + 1):
            out.append(sum(n * layer_cycles(lay.batched(b), rows, cols, dataflow)
                           for lay, n in shapes.items()))
        return out

    def layer_cycles_on(self, rows: int, cols: int, dataflow: str = "os") -> list[int]:
        """Cycles of each layer on one ``rows x cols`` PEA."""
        return model_layer_cycles(self.layers, rows, cols, dataflow)

    def cycles_on(self, rows: int, cols: int, dataflow: str = "os") -> int:
        """Compute cycles of one inference on one ``rows x cols`` PEA (cached)."""
        key = (rows, cols, dataflow)
        cycles = self._cycles.get(key)
        if cycles is None:
            cycles = sum(self.layer_cycles_on(rows, cols, dataflow))
            self._cycles[key] = cycles
        return cycles


class _Net:
    """Accumulates layers; sizes are square unless given as (h, w)."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []

    def conv(
        self,
        name: str,
        size: int,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        pad: int | None = None,
    ) -> int:
        """A ``k x k`` convolution on a ``size x size`` input (padding ``k // 2`` unless
        given, as in PyTorch); returns the output size."""
        p = k // 2 if pad is None else pad
        layer = Layer.conv2d(name, size, size, cin, cout, k, stride, p)
        self.layers.append(layer)
        return layer.ofmap_h

    def dwconv(self, name: str, size: int, c: int, k: int, stride: int = 1) -> int:
        """Depthwise ``k x k`` convolution over ``c`` channels (``groups=c``)."""
        layer = Layer.conv2d(name, size, size, c, c, k, stride, k // 2, groups=c)
        self.layers.append(layer)
        return layer.ofmap_h

    def mm(
        self,
        name: str,
        m: int,
        n: int,
        k: int,
        groups: int = 1,
        has_weights: bool = True,
        shared_weights: bool = False,
    ) -> None:
        self.layers.append(
            Layer.matmul(
                name, m, n, k, groups=groups, has_weights=has_weights, shared_weights=shared_weights
            )
        )

    def ew(self, name: str, h: int, w: int, c: int, groups: int = 1) -> None:
        self.layers.append(Layer.elementwise(name, h, w, c, groups=groups))

    def pool(self, name: str, size: int, c: int, k: int, stride: int, pad: int = 0) -> int:
        out = (size + 2 * pad - k) // stride + 1  # as PyTorch (ceil_mode=False)
        span = (out - 1) * stride + k
        layer = Layer.elementwise(name, span, span, c, window=k, stride=stride)
        self.layers.append(layer)
        return layer.ofmap_h


# -- CNNs ----------------------------------------------------------------------------------


def _resnet50() -> list[Layer]:
    net = _Net()
    s = net.conv("conv1", 224, 3, 64, 7, 2)  # 112
    s = net.pool("maxpool", s, 64, 3, 2, pad=1)  # 56
    cin = 64
    for stage, (blocks, width, stride) in enumerate(
        [(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)], start=1
    ):
        for b in range(blocks):
            st = stride if b == 0 else 1
            p = f"layer{stage}.{b}"
            net.conv(f"{p}.conv1", s, cin, width, 1)
            out = net.conv(f"{p}.conv2", s, width, width, 3, st)  # v1.5: stride on the 3x3
            net.conv(f"{p}.conv3", out, width, 4 * width, 1)
            if b == 0:
                net.conv(f"{p}.downsample", s, cin, 4 * width, 1, st)
            net.ew(f"{p}.add", out, out, 4 * width)
            cin, s = 4 * width, out
    net.pool("avgpool", s, cin, s, 1)
    net.mm("fc", 1, 1000, cin)
    return net.layers


def _mobilenet_v2() -> list[Layer]:
    net = _Net()
    s = net.conv("features.0", 224, 3, 32, 3, 2)  # 112
    cin = 32
    idx = 1
    for t, c, n, stride in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(n):
            st = stride if i == 0 else 1
            hidden = cin * t
            p = f"features.{idx}"
            if t != 1:
                net.conv(f"{p}.expand", s, cin, hidden, 1)
            out = net.dwconv(f"{p}.dw", s, hidden, 3, st)
            net.conv(f"{p}.project", out, hidden, c, 1)
            if st == 1 and cin == c:
                net.ew(f"{p}.add", out, out, c)
            cin, s = c, out
            idx += 1
    net.conv(f"features.{idx}", s, cin, 1280, 1)
    net.pool("avgpool", s, 1280, s, 1)
    net.mm("classifier", 1, 1000, 1280)
    return net.layers


def _yolov5s() -> list[Layer]:
    """YOLOv5s v6.0+ (depth 0.33, width 0.50) at 640x640, 80 classes, 3 anchors."""
    net = _Net()

    def c3(p: str, size: int, c1: int, c2: int, n: int, shortcut: bool) -> None:
        h = c2 // 2
        net.conv(f"{p}.cv1", size, c1, h, 1)
        for i in range(n):
            net.conv(f"{p}.m.{i}.cv1", size, h, h, 1)
            net.conv(f"{p}.m.{i}.cv2", size, h, h, 3)
            if shortcut:
                net.ew(f"{p}.m.{i}.add", size, size, h)
        net.conv(f"{p}.cv2", size, c1, h, 1)
        net.conv(f"{p}.cv3", size, 2 * h, c2, 1)

    # backbone
    s = net.conv("0.conv", 640, 3, 32, 6, 2, pad=2)  # 320
    s = net.conv("1.conv", s, 32, 64, 3, 2)  # 160
    c3("2", s, 64, 64, 1, True)
    s = net.conv("3.conv", s, 64, 128, 3, 2)  # 80 (P3)
    c3("4", s, 128, 128, 2, True)
    p3 = s
    s = net.conv("5.conv", s, 128, 256, 3, 2)  # 40 (P4)
    c3("6", s, 256, 256, 3, True)
    p4 = s
    s = net.conv("7.conv", s, 256, 512, 3, 2)  # 20 (P5)
    c3("8", s, 512, 512, 1, True)
    p5 = s
    # SPPF(512, 512, k=5)
    net.conv("9.cv1", s, 512, 256, 1)
    for i in range(3):
        net.pool(f"9.m.{i}", s, 256, 5, 1, pad=2)
    net.conv("9.cv2", s, 1024, 512, 1)
    # head
    net.conv("10.conv", p5, 512, 256, 1)
    net.ew("11.upsample", p4, p4, 256)
    c3("13", p4, 512, 256, 1, False)
    net.conv("14.conv", p4, 256, 128, 1)
    net.ew("15.upsample", p3, p3, 128)
    c3("17", p3, 256, 128, 1, False)
    net.conv("18.conv", p3, 128, 128, 3, 2)
    c3("20", p4, 256, 256, 1, False)
    net.conv("21.conv", p4, 256, 256, 3, 2)
    c3("23", p5, 512, 512, 1, False)
    for i, (size, c) in enumerate([(p3, 128), (p4, 256), (p5, 512)]):
        net.conv(f"24.m.{i}", size, c, 3 * (80 + 5), 1)
    return net.layers


def _arcface_r100() -> list[Layer]:
    """insightface IResNet-100 at 112x112 (layers [3, 13, 30, 3], 512-d embedding)."""
    net = _Net()
    s = net.conv("conv1", 112, 3, 64, 3, 1)
    cin = 64
    for stage, (planes, blocks) in enumerate([(64, 3), (128, 13), (256, 30), (512, 3)], start=1):
        for b in range(blocks):
            st = 2 if b == 0 else 1
            p = f"layer{stage}.{b}"
            net.conv(f"{p}.conv1", s, cin, planes, 3, 1)
            out = net.conv(f"{p}.conv2", s, planes, planes, 3, st)
            if b == 0:
                net.conv(f"{p}.downsample", s, cin, planes, 1, st)
            net.ew(f"{p}.add", out, out, planes)
            cin, s = planes, out
    net.mm("fc", 1, 512, cin * s * s)  # 512 * 7 * 7 -> 512
    return net.layers


def _crnn() -> list[Layer]:
    """CRNN (Shi et al.) on a 1 x 32 x 100 text line, 37 classes."""
    net = _Net()
    # VGG-style CNN: (h, w) shapes tracked by hand, pools as in crnn.pytorch
    chans = [64, 128, 256, 256, 512, 512]
    h, w, cin = 32, 100, 1
    for i, cout in enumerate(chans):
        net.layers.append(Layer.conv2d(f"conv{i}", h, w, cin, cout, 3, 1, 1))
        cin = cout
        if i in (0, 1):  # MaxPool2d(2, 2)
            h, w = h // 2, w // 2
            net.layers.append(Layer.elementwise(f"pool{i}", 2 * h, 2 * w, cin, window=2, stride=2))
        elif i in (3, 5):  # MaxPool2d((2, 2), (2, 1), (0, 1)): h halves, w grows by 1
            h, w = h // 2, w + 1
            # same cost (out elements x 4 window positions) as a 2x2/2 pool onto (h, w)
            net.layers.append(Layer.elementwise(f"pool{i}", 2 * h, 2 * w, cin, window=2, stride=2))
    net.layers.append(Layer.conv2d("conv6", h, w, cin, 512, 2))  # 2x2, no padding -> 1 x 26
    steps = w - 1  # 26 time steps
    # two bidirectional LSTMs (hidden 256) each followed by a linear layer
    for i, (n_in, n_out) in enumerate([(512, 256), (256, 37)]):
        hidden = 256
        p = f"rnn.{i}"
        net.mm(f"{p}.W_ih", steps, 4 * hidden, n_in, groups=2)  # both directions, all steps
        # recurrence: one GEMV per time step, one after another, same weights at every step
        for direction in ("forward", "reverse"):
            net.mm(f"{p}.W_hh.{direction}", 1, 4 * hidden, hidden, steps, shared_weights=True)
        net.ew(f"{p}.gates", steps, 1, 2 * 4 * hidden)
        net.mm(f"{p}.embedding", steps, n_out, 2 * hidden)
    return net.layers


def _unet() -> list[Layer]:
    """U-Net (Ronneberger et al.) with padded 3x3 convs on a 1 x 256 x 256 image, 2 classes."""
    net = _Net()
    widths = [64, 128, 256, 512, 1024]
    s, cin = 256, 1
    for i, c in enumerate(widths):
        if i > 0:
            s = net.pool(f"down{i}.pool", s, cin, 2, 2)
        p = "inc" if i == 0 else f"down{i}"
        net.conv(f"{p}.conv1", s, cin, c, 3)
        net.conv(f"{p}.conv2", s, c, c, 3)
        cin = c
    for i, c in enumerate(reversed(widths[:-1]), start=1):
        # ConvTranspose2d(cin, c, 2, stride 2) == 1x1 conv to 4c outputs per input pixel
        net.layers.append(Layer(f"up{i}.up", s, s, 1, 1, cin, 4 * c, 1))
        s *= 2
        net.conv(f"up{i}.conv1", s, 2 * c, c, 3)  # after concatenation with the skip
        net.conv(f"up{i}.conv2", s, c, c, 3)
        cin = c
    net.conv("outc", s, cin, 2, 1)
    return net.layers


# -- transformers --------------------------------------------------------------------------


def _bert_base() -> list[Layer]:
    """BERT-base (L=12, H=768, A=12, FFN 3072), one sequence of 128 tokens."""
    net = _Net()
    seq, d, heads, ff = 128, 768, 12, 3072
    dh = d // heads
    net.ew("embeddings.add_norm", seq, 1, d)
    for i in range(12):
        p = f"layer{i}"
        for proj in ("query", "key", "value"):
            net.mm(f"{p}.attention.{proj}", seq, d, d)
        net.mm(f"{p}.attention.scores", seq, seq, dh, groups=heads, has_weights=False)
        net.ew(f"{p}.attention.softmax", seq, seq, heads)
        net.mm(f"{p}.attention.context", seq, dh, seq, groups=heads, has_weights=False)
        net.mm(f"{p}.attention.output", seq, d, d)
        net.ew(f"{p}.attention.add_norm", seq, 1, d)
        net.mm(f"{p}.intermediate", seq, ff, d)
        net.ew(f"{p}.intermediate.gelu", seq, 1, ff)
        net.mm(f"{p}.output", seq, d, ff)
        net.ew(f"{p}.output.add_norm", seq, 1, d)
    net.mm("pooler", 1, d, d)
    return net.layers


LLM_CONTEXT = 1024
"""KV-cache length (tokens already in context) assumed by ``llm1b_decode``."""


def _llm1b_decode() -> list[Layer]:
    """One decode step (batch 1) of TinyLlama-1.1B with ``LLM_CONTEXT`` cached tokens."""
    net = _Net()
    d, ff, heads, kv_heads, layers, vocab = 2048, 5632, 32, 4, 22, 32000
    dh = d // heads
    q_per_kv = heads // kv_heads
    for i in range(layers):
        p = f"layers.{i}"
        net.ew(f"{p}.input_layernorm", 1, 1, d)
        net.mm(f"{p}.self_attn.q_proj", 1, d, d)
        net.mm(f"{p}.self_attn.k_proj", 1, kv_heads * dh, d)
        net.mm(f"{p}.self_attn.v_proj", 1, kv_heads * dh, d)
        net.ew(f"{p}.self_attn.rope", 1, 1, (heads + kv_heads) * dh)
        # grouped-query attention: the 8 query heads sharing a KV head form one (8 x 64) block
        net.mm(
            f"{p}.self_attn.scores", q_per_kv, LLM_CONTEXT, dh, groups=kv_heads, has_weights=False
        )
        net.ew(f"{p}.self_attn.softmax", 1, LLM_CONTEXT, heads)
        net.mm(
            f"{p}.self_attn.context", q_per_kv, dh, LLM_CONTEXT, groups=kv_heads, has_weights=False
        )
        net.mm(f"{p}.self_attn.o_proj", 1, d, d)
        net.ew(f"{p}.residual1", 1, 1, d)
        net.ew(f"{p}.post_attention_layernorm", 1, 1, d)
        net.mm(f"{p}.mlp.gate_proj", 1, ff, d)
        net.mm(f"{p}.mlp.up_proj", 1, ff, d)
        net.ew(f"{p}.mlp.silu_mul", 1, 1, ff)
        net.mm(f"{p}.mlp.down_proj", 1, d, ff)
        net.ew(f"{p}.residual2", 1, 1, d)
    net.ew("norm", 1, 1, d)
    net.mm("lm_head", 1, vocab, d)
    return net.layers


def _whisper_tiny_encoder() -> list[Layer]:
    """Whisper tiny audio encoder: 80 x 3000 log-mel (30 s), 2 conv + 4 blocks, d=384."""
    net = _Net()
    frames, mels, d, heads, blocks = 3000, 80, 384, 6, 4
    dh = d // heads
    # Conv1d(k=3, pad=1) as 1 x (3000 + 2) images with 1 x 3 filters
    conv1 = Layer.conv2d("conv1", 1, frames, mels, d, (1, 3), 1, (0, 1))
    net.layers.append(conv1)
    net.ew("conv1.gelu", 1, conv1.ofmap_w, d)
    conv2 = Layer.conv2d("conv2", 1, conv1.ofmap_w, d, d, (1, 3), 2, (0, 1))
    net.layers.append(conv2)
    seq = conv2.ofmap_w  # 1500
    net.ew("conv2.gelu", 1, seq, d)
    net.ew("positional_embedding.add", 1, seq, d)
    for i in range(blocks):
        p = f"blocks.{i}"
        net.ew(f"{p}.attn_ln", seq, 1, d)
        for proj in ("query", "key", "value"):
            net.mm(f"{p}.attn.{proj}", seq, d, d)
        net.mm(f"{p}.attn.scores", seq, seq, dh, groups=heads, has_weights=False)
        net.ew(f"{p}.attn.softmax", seq, seq, heads)
        net.mm(f"{p}.attn.context", seq, dh, seq, groups=heads, has_weights=False)
        net.mm(f"{p}.attn.out", seq, d, d)
        net.ew(f"{p}.attn.add", seq, 1, d)
        net.ew(f"{p}.mlp_ln", seq, 1, d)
        net.mm(f"{p}.mlp.0", seq, 4 * d, d)
        net.ew(f"{p}.mlp.gelu", seq, 1, 4 * d)
        net.mm(f"{p}.mlp.2", seq, d, 4 * d)
        net.ew(f"{p}.mlp.add", seq, 1, d)
    net.ew("ln_post", seq, 1, d)
    return net.layers


# -- registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    build: Callable[[], list[Layer]]
    source: str
    notes: str
    streams_weights: bool = False


_REGISTRY: dict[str, _Entry] = {
    "resnet50": _Entry(
        _resnet50,
        "He et al., Deep Residual Learning for Image Recognition, CVPR 2016 (Table 1, 50-layer); "
        "torchvision.models.resnet50 (ResNet v1.5: stride in the 3x3 conv)",
        "224x224 RGB, 1000 classes",
    ),
    "mobilenet_v2": _Entry(
        _mobilenet_v2,
        "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018 "
        "(Table 2); torchvision.models.mobilenet_v2 (width 1.0)",
        "224x224 RGB, 1000 classes; depthwise convs as one single-channel group per channel",
    ),
    "yolov5s": _Entry(
        _yolov5s,
        "Jocher et al., Ultralytics YOLOv5 v6.0+, models/yolov5s.yaml (depth_multiple 0.33, "
        "width_multiple 0.50) with models/common.py (Conv, C3, SPPF) and Detect",
        "640x640 RGB, 80 COCO classes, 3 anchors per level; box decoding and NMS not included",
    ),
    "bert_base": _Entry(
        _bert_base,
        "Devlin et al., BERT: Pre-training of Deep Bidirectional Transformers, NAACL 2019; "
        "google-research/bert BERT-Base config (L=12, H=768, A=12, intermediate 3072)",
        "one sequence of 128 tokens, encoder + pooler; embedding look-up not costed",
    ),
    "arcface_r100": _Entry(
        _arcface_r100,
        "Deng et al., ArcFace: Additive Angular Margin Loss for Deep Face Recognition, CVPR "
        "2019; deepinsight/insightface recognition/arcface_torch/backbones/iresnet.py "
        "(iresnet100, layers [3, 13, 30, 3])",
        "112x112 aligned face crop, 512-d embedding",
    ),
    "crnn": _Entry(
        _crnn,
        "Shi et al., An End-to-End Trainable Neural Network for Image-based Sequence "
        "Recognition, TPAMI 2017 (Table 1); meijieru/crnn.pytorch models/crnn.py (nh=256)",
        "1x32x100 grey text line, 26 time steps, 37 classes; BiLSTMs as matmuls (input "
        "projections batched over time, recurrent GEMVs one step at a time)",
    ),
    "unet": _Entry(
        _unet,
        "Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image Segmentation, "
        "MICCAI 2015 (Fig. 1); padded 3x3 convs and 2x2 transposed convs as in "
        "milesial/Pytorch-UNet (bilinear=False)",
        "1x256x256 grey medical image, 2 classes; transposed convs as 1x1 convs to 4x channels",
    ),
    "llm1b_decode": _Entry(
        _llm1b_decode,
        "Zhang et al., TinyLlama: An Open-Source Small Language Model, 2024; Hugging Face "
        "TinyLlama/TinyLlama-1.1B config.json (22 layers, hidden 2048, intermediate 5632, "
        "32 heads, 4 KV heads, vocab 32000)",
        f"one decode step, batch 1 (GEMVs), {LLM_CONTEXT} tokens of KV cache; weights stream "
        "from memory every step",
        streams_weights=True,
    ),
    "whisper_tiny_encoder": _Entry(
        _whisper_tiny_encoder,
        "Radford et al., Robust Speech Recognition via Large-Scale Weak Supervision, 2022 "
        "(Table 1, tiny); openai/whisper model.py AudioEncoder with ModelDimensions of tiny "
        "(n_mels 80, n_audio_state 384, n_audio_head 6, n_audio_layer 4)",
        "80x3000 log-mel (30 s of audio) -> 1500 frames",
    ),
}


def list_models() -> list[str]:
    """Names of the built-in models."""
    return sorted(_REGISTRY)


@functools.cache
def _builtin(name: str) -> ModelSpec:
    entry = _REGISTRY[name]
    return ModelSpec(
        name=name,
        source=entry.source,
        layers=tuple(entry.build()),
        streams_weights=entry.streams_weights,
        notes=entry.notes,
    )


ONNX_PREFIX = "onnx:"
"""``get_model("onnx:PATH")`` reads an ONNX file whatever its name ends with (a workflow's
``model: {onnx: PATH}`` compiles to this)."""


def get_model(name: str) -> ModelSpec:
    """A built-in model by name, a SCALE-Sim topology CSV if ``name`` ends in ``.csv``, or an
    ONNX model if it ends in ``.onnx`` or starts with ``onnx:``."""
    if name in _REGISTRY:
        return _builtin(name)
    if name.lower().endswith(".csv"):
        return model_from_topology(name)
    if name.startswith(ONNX_PREFIX):
        return model_from_onnx(name[len(ONNX_PREFIX):])
    if name.lower().endswith(".onnx"):
        return model_from_onnx(name)
    raise UserError(f"unknown model {name!r}; known models: {', '.join(list_models())}")


def model_from_topology(path: str) -> ModelSpec:
    """A model whose layers are read from a SCALE-Sim topology CSV (see ``topology.py``)."""
    layers = load_topology_csv(path)
    return ModelSpec(
        name=Path(path).stem,
        source=f"SCALE-Sim topology CSV {path}",
        layers=tuple(layers),
    )


def model_from_onnx(path: str) -> ModelSpec:
    """A model whose layers are read from an ONNX graph (see ``onnx_import.py``); read once per
    file version (a workflow's runs and policies share it)."""
    p = Path(path)
    try:
        st = p.stat()
        stamp = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (str(p), 0, -1)  # missing: load_onnx_layers reports it
    return _onnx_model(path, stamp)


@functools.lru_cache(maxsize=32)
def _onnx_model(path: str, stamp: tuple[str, int, int]) -> ModelSpec:
    from octosim.hardware.onnx_import import load_onnx_layers

    try:
        layers = load_onnx_layers(path)
    except UserError as exc:
        # Located in the ONNX file, as the text: a workflow's task that names it adds its own
        # place in front (error: WORKFLOW: tasks.T.model: FILE.onnx: node ...: what).
        where = ": ".join(x for x in (exc.file, exc.where) if x)
        raise UserError(f"{where}: {exc.what}" if where else exc.what) from None
    return ModelSpec(name=Path(path).stem, source=f"ONNX model {path}", layers=tuple(layers))
