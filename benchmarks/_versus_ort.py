"""What the delegate-vs-ONNX Runtime benchmarks share: the models and the
direct ONNX Runtime session they are measured against."""

from __future__ import annotations

import onnx


def models() -> dict[str, onnx.ModelProto]:
    """light_resnet50 with re-drawn weights (seed 0) and the MobileNet-style net."""
    from unified.conformance import nets, zoo

    resnet = zoo.redraw_weights(onnx.load(zoo.light_model_path("resnet50")), seed=0)
    return {"light_resnet50": resnet, "mobilenet_like": nets.mobilenet_like()}


def ort_session(model: onnx.ModelProto, threads: int):
    """A plain ``onnxruntime.InferenceSession`` (CPU EP, all optimizations, ``threads`` intra-op threads)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, 10)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    # ORT's idle intra-op threads spin for a while after each run; in an
    # alternating benchmark they would steal the other runtime's cores.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.inter_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
