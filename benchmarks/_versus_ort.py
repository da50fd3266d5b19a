"""What the benchmarks share: the models and the direct ONNX Runtime session
a delegate is measured against, the alternating timing loop, and the
Markdown-or-text row printer."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

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


def alternate(
    run_a: Callable[[], object], run_b: Callable[[], object], runs: int, warmup: int = 5
) -> tuple[list[float], list[float]]:
    """Time ``run_a`` and ``run_b`` alternately, one run each, so both see the same machine load.

    Args:
        run_a / run_b: zero-argument callables, one inference each.
        runs: measured runs of each.
        warmup: unmeasured runs of each first (a, then b).

    Returns:
        ``(seconds of each run_a, seconds of each run_b)``, ``runs`` wall times each.
    """
    for _ in range(warmup):
        run_a()
        run_b()
    t_a, t_b = [], []
    for _ in range(runs):
        start = time.perf_counter()
        run_a()
        t_a.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_b()
        t_b.append(time.perf_counter() - start)
    return t_a, t_b


def print_rows(
    rows: Iterable[Any],
    markdown: bool,
    header: Sequence[str],
    cells: Callable[[Any], Sequence[object]],
    line: Callable[[Any], str],
) -> None:
    """Print ``rows`` as a Markdown table (``header``, then ``cells(row)``) or one ``line(row)`` each."""
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(c) for c in cells(r)) + " |" if markdown else line(r))
