"""Run SCALE-Sim v3 on the fidelity benchmark and freeze its numbers.

This script produced ``expected.json``, the fixture that
``tests/backends/npu_sim/test_scalesim_fidelity.py`` compares the ``npu-sim`` cost
model against. It is NOT run by the test suite: SCALE-Sim is installed only in
a separate virtual environment, never in the project's::

    python3 -m venv /tmp/scalesim-venv
    /tmp/scalesim-venv/bin/pip install numpy==2.3.5 scalesim==3.0.0
    /tmp/scalesim-venv/bin/python tests/backends/npu_sim/scalesim/run_scalesim.py

Inputs (all in this folder):

* ``scale.cfg`` — SCALE-Sim's upstream default ``configs/scale.cfg``
  (32x32 array, 64/64/64 KiB SRAM, ``InterfaceBandwidth: CALC``, i.e. the
  unlimited-bandwidth "estimate" mode). The script writes one copy per
  (array shape, dataflow) with only ``ArrayHeight``, ``ArrayWidth``,
  ``Dataflow`` and ``run_name`` changed.
* ``topology.csv`` — 14 layers from ResNet-50, MobileNetV2 and BERT-base in
  SCALE-Sim's convolution format. SCALE-Sim convolutions have no padding, so
  each IFMAP size is the padded extent the convolution actually reads,
  ``(OH - 1) * stride + R``. A depthwise layer carries ``DP`` in its name and
  ``Num Filter = 1``; SCALE-Sim splits it into one single-channel layer per
  channel. A BERT projection ``(M, K) x (K, N)`` is written as an
  ``M x K`` IFMAP with a ``1 x K`` filter, one channel and ``N`` filters.
* ``layout.csv`` — the layout file SCALE-Sim 3.0.0 insists on reading; custom
  layouts are off in ``scale.cfg``, so its values are not used.

Output: ``expected.json`` with, per configuration and per topology row,
SCALE-Sim's ``Total Cycles`` (compute cycles; stalls are 0 in CALC mode),
``Stall Cycles``, ``Overall Util %``, ``Mapping Efficiency %`` and
``Compute Util %``. A depthwise row sums the cycles of its per-channel layers
(every channel is the same layer, so the utilizations are those of one).
"""

from __future__ import annotations

import argparse
import configparser
import csv
import json
import os
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARRAYS = ((32, 32), (16, 64))
DATAFLOWS = ("os", "ws", "is")


def topology_rows() -> list[dict]:
    """The rows of ``topology.csv`` as dicts (ints where numeric)."""
    keys = ("name", "ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filter", "stride")
    rows = []
    with open(HERE / "topology.csv") as f:
        next(f)
        for line in f:
            cells = [c.strip() for c in line.strip().split(",")[:-1]]
            if cells:
                rows.append({k: (v if k == "name" else int(v)) for k, v in zip(keys, cells)})
    return rows


def write_config(path: Path, rows: int, cols: int, dataflow: str) -> None:
    cfg = configparser.ConfigParser()
    cfg.optionxform = str  # keep SCALE-Sim's key spelling
    cfg.read(HERE / "scale.cfg")
    cfg["general"]["run_name"] = f"run_{rows}x{cols}_{dataflow}"
    cfg["architecture_presets"]["ArrayHeight"] = str(rows)
    cfg["architecture_presets"]["ArrayWidth"] = str(cols)
    cfg["architecture_presets"]["Dataflow"] = dataflow
    with open(path, "w") as f:
        cfg.write(f)


def run_one(rows: int, cols: int, dataflow: str, workdir: Path) -> list[dict]:
    """Run SCALE-Sim for one configuration; one dict per COMPUTE_REPORT line."""
    from scalesim.scale_sim import scalesim

    cfg_path = workdir / f"scale_{rows}x{cols}_{dataflow}.cfg"
    write_config(cfg_path, rows, cols, dataflow)
    sim = scalesim(
        save_disk_space=True,
        verbose=False,
        config=str(cfg_path),
        topology=str(HERE / "topology.csv"),
        layout=str(HERE / "layout.csv"),
        input_type_gemm=False,
    )
    sim.run_scale(top_path=str(workdir / "results"))
    report = workdir / "results" / f"run_{rows}x{cols}_{dataflow}" / "COMPUTE_REPORT.csv"
    out = []
    with open(report) as f:
        reader = csv.reader(f)
        next(reader)
        for cells in reader:
            cells = [c.strip() for c in cells if c.strip()]
            out.append(
                {
                    "total_cycles_incl_prefetch": int(float(cells[1])),
                    "compute_cycles": int(float(cells[2])),
                    "stall_cycles": int(float(cells[3])),
                    "overall_util_pct": float(cells[4]),
                    "mapping_efficiency_pct": float(cells[5]),
                    "compute_util_pct": float(cells[6]),
                }
            )
    return out


def fold_depthwise(topo: list[dict], lines: list[dict]) -> list[dict]:
    """Merge SCALE-Sim's per-channel layers of each ``DP`` row back into one."""
    merged, i = [], 0
    for row in topo:
        n = row["channels"] if "DP" in row["name"] else 1
        part = lines[i : i + n]
        i += n
        first = part[0]
        merged.append(
            {
                "layer": row["name"],
                "scalesim_layers": n,
                "total_cycles_incl_prefetch": sum(p["total_cycles_incl_prefetch"] for p in part),
                "compute_cycles": sum(p["compute_cycles"] for p in part),
                "stall_cycles": sum(p["stall_cycles"] for p in part),
                "overall_util_pct": first["overall_util_pct"],
                "mapping_efficiency_pct": first["mapping_efficiency_pct"],
                "compute_util_pct": first["compute_util_pct"],
            }
        )
    if i != len(lines):
        raise SystemExit(f"COMPUTE_REPORT has {len(lines)} lines, the topology expands to {i}")
    return merged


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "expected.json"))
    ap.add_argument("--only", help="run one configuration, e.g. 32x32_os (for debugging)")
    args = ap.parse_args(argv)
    topo = topology_rows()
    results = {}
    timings = {}
    for rows, cols in ARRAYS:
        for df in DATAFLOWS:
            key = f"{rows}x{cols}_{df}"
            if args.only and key != args.only:
                continue
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                cwd = os.getcwd()
                os.chdir(tmp)  # SCALE-Sim writes relative to the working directory
                try:
                    lines = run_one(rows, cols, df, Path(tmp))
                finally:
                    os.chdir(cwd)
            results[key] = fold_depthwise(topo, lines)
            timings[key] = round(time.perf_counter() - start, 1)
            print(f"{key}: {timings[key]} s", file=sys.stderr, flush=True)
    doc = {
        "generator": "tests/backends/npu_sim/scalesim/run_scalesim.py",
        "scalesim_version": metadata.version("scalesim"),
        "numpy_version": metadata.version("numpy"),
        "config": "tests/backends/npu_sim/scalesim/scale.cfg (ArrayHeight, ArrayWidth, Dataflow varied)",
        "sram_kib": {"ifmap": 64, "filter": 64, "ofmap": 64},
        "word_bytes": 1,
        "bandwidth_mode": "CALC",
        "topology": topo,
        "results": results,
        "scalesim_seconds": timings,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
