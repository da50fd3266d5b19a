"""Speed of the npu-sim cost model and of the reference delegate's numerics.

* Cost model: ``simulate_model(light_resnet50.onnx)`` — load, shape
  inference and the cost of all ops — median wall time (target < 1 s), and
  the cost functions alone (``op_cost`` over the prepared op descriptions).
* Numerics: ``light_resnet50`` (weights re-drawn, seed 0) on
  ``delegates=["reference"]`` (fp32) against ``onnxruntime.InferenceSession``
  on the same host, alternating call by call; median latency ratio
  (target <= 10x). BLAS and ONNX Runtime get the same thread count
  (``--threads``, default 1: on a shared 2-core host, OpenBLAS with 2
  threads spins against other jobs and falls to a few GFLOP/s).

Run: ``python benchmarks/reference_speed.py [--runs N] [--threads N]``. The
thread count must be set before NumPy is imported, so this script sets
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` itself.
Figures are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="alternating runs (numerics) / repeats (cost model)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS and ONNX Runtime intra-op threads")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = _args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import onnx
    import onnxruntime as ort

    import unified
    from unified.backends.npu_sim import load_hardware, op_cost, simulate_model
    from unified.backends.npu_sim.workload import descs_from_model
    from unified.conformance import zoo

    from _versus_ort import alternate  # imports numpy: after the thread variables

    path = str(zoo.light_model_path("resnet50"))
    # --- cost model -------------------------------------------------------------
    simulate_model(path)  # warm imports
    t_sim = []
    for _ in range(args.runs):
        start = time.perf_counter()
        report = simulate_model(path, "scalesim-32", "int8")
        t_sim.append(time.perf_counter() - start)
    descs = descs_from_model(path)
    hw = load_hardware("scalesim-32")
    dt = hw.dtype("int8")
    t_cost = []
    for _ in range(args.runs):
        start = time.perf_counter()
        [op_cost(d, hw, dt) for d in descs]
        t_cost.append(time.perf_counter() - start)
    # --- numerics -----------------------------------------------------------------
    model = zoo.redraw_weights(onnx.load(path), seed=0)
    feeds = zoo.random_inputs(model, seed=0)
    ort_model = onnx.ModelProto()
    ort_model.CopyFrom(model)
    ort_model.ir_version = min(ort_model.ir_version, 10)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    direct = ort.InferenceSession(ort_model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    opts = unified.SessionOptions(use_cache=False, strict=True)
    sess = unified.InferenceSession(model, [("reference", {"dtype": "fp32"})], opts)
    t_ref, t_ort = alternate(lambda: sess.run(None, feeds), lambda: direct.run(None, feeds), args.runs, warmup=2)
    ratios = np.array(t_ref) / np.array(t_ort)
    figures = {
        "threads": args.threads,
        "runs": args.runs,
        "simulate_model_s": float(np.median(t_sim)),
        "cost_functions_s": float(np.median(t_cost)),
        "ops": len(report.ops),
        "reference_ms": float(np.median(t_ref) * 1e3),
        "ort_ms": float(np.median(t_ort) * 1e3),
        "median_ratio": float(np.median(ratios)),
        "simulated_cycles": report.cycles,
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(f"cost model, light_resnet50 ({figures['ops']} ops): simulate_model {figures['simulate_model_s'] * 1e3:.1f} ms "
              f"(cost functions alone {figures['cost_functions_s'] * 1e3:.2f} ms); target < 1000 ms")
        print(f"numerics, light_resnet50 fp32, {args.threads} thread(s): reference {figures['reference_ms']:.1f} ms, "
              f"ORT {figures['ort_ms']:.1f} ms, median ratio {figures['median_ratio']:.2f}x; target <= 10x")
    ok = figures["simulate_model_s"] < 1.0 and figures["median_ratio"] <= 10.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
