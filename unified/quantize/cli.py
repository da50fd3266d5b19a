"""``unified quantize MODEL -o OUT.onnx``: the command-line front of :mod:`unified.quantize`."""

from __future__ import annotations

import argparse
import warnings

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``quantize`` subcommand's arguments."""
    p.add_argument("model", help="path to a float .onnx model")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="where to write the quantized model")
    p.add_argument("--weights", choices=("int4", "mxfp4"),
                   help="weight-only blocked quantization of MatMul/Gemm weights instead of static int8 QDQ")
    p.add_argument("--block-size", type=int, default=32, help="--weights block size along the reduction axis (32)")
    p.add_argument("--calibration", metavar="DIR",
                   help="calibration samples: DIR/<k>.npz (one array per input name) or DIR/<input>/<k>.npy")
    p.add_argument("--samples", type=int, default=32,
                   help="random calibration samples when no --calibration is given (32; not representative)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first random calibration sample")
    p.add_argument("--no-preprocess", action="store_true",
                   help="skip onnxruntime.quantization's quant_pre_process (shape inference + graph optimization)")
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="debug lines, and ONNX Runtime's quantizer logging")


def run(args: argparse.Namespace) -> int:
    """Quantize, print what was written; a ``UnifiedError`` becomes exit code 1 in ``unified.cli.main``."""
    from collections import Counter

    from unified.log import logger as log
    from unified.quantize import ort_failure, quantize_static, quantize_weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx/ORT deprecation chatter; errors still raise
        if args.weights:
            model = quantize_weights(args.model, args.output, args.weights, args.block_size, check_ort=False)
        else:
            model = quantize_static(args.model, args.output, calibration=args.calibration, samples=args.samples,
                                    seed=args.seed, preprocess=not args.no_preprocess)
    ops = Counter(n.op_type for n in model.graph.node)
    dq, q = ops.get("DequantizeLinear", 0), ops.get("QuantizeLinear", 0)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    print(f"wrote {args.output}: opset {opset}, {q} QuantizeLinear, {dq} DequantizeLinear, {len(model.graph.node)} nodes")
    why = ort_failure(model)
    if why:
        print(f"note: the model is valid ONNX, but ONNX Runtime cannot run it: {why}")
        log.debug("ort_failure: %s", why)
    return 0
