"""`unified run MODEL` on every corpus model, as a user types it: it runs, matches
ONNX Runtime, and stderr holds only unified's own lines -- nothing from torch,
torchao, ExecuTorch, XNNPACK or TF Lite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unified.conformance import real_models

_OWN_LINE = re.compile(r"^\[\s*\d+\.\d\ds\] ")  # unified.log's CLI format


def _fetch(name: str) -> Path:
    try:
        return real_models.fetch(name)
    except real_models.ModelUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.parametrize("name", list(real_models.CORPUS))
def test_unified_run_is_quiet_and_right(name, tmp_path):
    import onnxruntime as ort

    path = _fetch(name)
    feed = real_models.inputs(name)
    args = []
    for k, v in feed.items():
        np.save(tmp_path / f"{k}.npy", v)
        args += ["--input", f"{k}={tmp_path / f'{k}.npy'}"]
    out = tmp_path / "out"
    cli = Path(sys.executable).with_name("unified")
    env = {k: v for k, v in os.environ.items() if k != "UNIFIED_LOG_LEVEL"}
    proc = subprocess.run([str(cli), "run", str(path), *args, "--output-dir", str(out), "--no-cache"],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    foreign = [ln for ln in proc.stderr.splitlines() if ln.strip() and not _OWN_LINE.match(ln)]
    assert not foreign, "framework lines on stderr:\n" + "\n".join(foreign[:20])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for o, want in zip(sess.get_outputs(), sess.run(None, feed)):
        got = np.load(out / ("".join(c if c.isalnum() or c in "-_." else "_" for c in o.name) + ".npy"))
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.abs(got.astype(np.float64) - want).max() <= real_models.scale_tolerance(want), o.name
