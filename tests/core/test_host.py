"""unified.host against the OS's own tools."""

import os
import shutil
import subprocess

import pytest

from unified.host import cpu_model, physical_cores


def test_physical_cores_matches_lscpu():
    if shutil.which("lscpu") is None or not hasattr(os, "sched_getaffinity"):
        pytest.skip("lscpu (util-linux) not on this host")
    out = subprocess.run(["lscpu", "-p=CPU,CORE,SOCKET"], capture_output=True, text=True, check=True).stdout
    allowed = os.sched_getaffinity(0)
    pairs = {(s, c) for cpu, c, s in (line.split(",")[:3] for line in out.splitlines() if line and not line.startswith("#"))
             if int(cpu) in allowed}
    assert physical_cores() == len(pairs)
    assert 1 <= physical_cores() <= os.cpu_count()


def test_cpu_model_is_a_name():
    assert isinstance(cpu_model(), str) and cpu_model()
