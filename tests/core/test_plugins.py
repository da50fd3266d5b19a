"""Plugin loading: one broken plugin never takes the others (or the process) down."""

from __future__ import annotations

import subprocess
import sys
import warnings
from importlib import metadata

import numpy as np
import pytest

import unified
from unified import InferenceSession, SessionOptions
from unified.errors import DelegateError, DelegateUnavailableError
from unified.plugins import PluginRegistry

from ..onnx_models import relu_neg
from .toy_delegate import ToyDelegate, ToyPlugin


def fake_entry_points(extra):
    real = list(metadata.entry_points(group="unified"))

    def entry_points(group=None):
        return real + extra if group == "unified" else metadata.entry_points(group=group)

    return entry_points


def test_broken_entry_point_is_reported_and_others_load(monkeypatch):
    broken = metadata.EntryPoint(name="broken_one", value="no_such_module_for_unified_tests", group="unified")
    monkeypatch.setattr("unified.plugins.metadata.entry_points", fake_entry_points([broken]))
    reg = PluginRegistry.load()
    assert "onnxruntime" in reg.delegates
    [b] = [b for b in reg.broken if b.name == "broken_one"]
    assert "No module named 'no_such_module_for_unified_tests'" in b.reason
    with pytest.raises(DelegateUnavailableError, match="delegate 'broken_one' is unavailable: import of"):
        reg.get("broken_one")


def test_autoload_switch_keeps_only_unified_own_plugins(monkeypatch):
    third = metadata.EntryPoint(name="third_party", value="no_such_module_for_unified_tests", group="unified")
    monkeypatch.setattr("unified.plugins.metadata.entry_points", fake_entry_points([third]))
    monkeypatch.setenv("UNIFIED_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = PluginRegistry.load()
    assert "onnxruntime" in reg.delegates
    assert not [b for b in reg.broken if b.name == "third_party"]


class RaisingHook:
    @unified.hookimpl
    def unified_delegates(self):
        raise RuntimeError("boom in plugin")


class UnknownHook:
    @unified.hookimpl
    def unified_delegatez(self):
        return []


class WrongReturn:
    @unified.hookimpl
    def unified_delegates(self):
        return ["not a delegate"]


@pytest.mark.parametrize(
    "plugin, reason",
    [
        (RaisingHook(), "unified_delegates() raised RuntimeError: boom in plugin"),
        (UnknownHook(), "unknown hook"),
        (WrongReturn(), "returned 'not a delegate', expected a named Delegate"),
    ],
)
def test_bad_plugins_are_isolated(plugin, reason):
    reg = PluginRegistry.load(extra_plugins=[plugin, ToyPlugin()])
    assert "toy" in reg.delegates and "onnxruntime" in reg.delegates
    assert any(reason in b.reason for b in reg.broken), reg.broken


def test_import_unified_survives_a_broken_plugin_in_a_fresh_process(tmp_path):
    code = (
        "import unified\n"
        "from importlib import metadata\n"
        "import unified.plugins as p\n"
        "real = metadata.entry_points\n"
        "bad = metadata.EntryPoint(name='bad', value='missing_mod_xyz', group='unified')\n"
        "p.metadata.entry_points = lambda group=None: list(real(group=group)) + [bad]\n"
        "reg = unified.registry()\n"
        "print(sorted(reg.delegates)[:1], [b.name for b in reg.broken if b.name == 'bad'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "['bad']" in out.stdout


class FlakyDelegate(ToyDelegate):
    def __init__(self, fail_in: str):
        super().__init__("flaky")
        self.fail_in = fail_in

    def availability(self):
        if self.fail_in == "availability":
            raise OSError("driver missing")
        return super().availability()

    def supports(self, node):
        if self.fail_in == "supports":
            raise KeyError("bug in supports")
        return super().supports(node)

    def compile(self, partition, options):
        if self.fail_in == "compile":
            raise ValueError("cannot compile this")
        exe = super().compile(partition, options)
        if self.fail_in == "run":
            exe.run = lambda inputs: (_ for _ in ()).throw(MemoryError("device out of memory"))
        return exe


def flaky_session(fail_in, **kw):
    return InferenceSession(
        relu_neg((4,)), ["flaky"], SessionOptions(plugins=[ToyPlugin(FlakyDelegate(fail_in))], use_cache=False, **kw)
    )


def test_raising_availability_makes_the_delegate_unavailable():
    with pytest.raises(DelegateUnavailableError, match="'flaky' is unavailable: availability\\(\\) raised OSError: driver missing"):
        flaky_session("availability")


def test_raising_supports_is_a_decline_with_reason():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = flaky_session("supports")
    assert sess.plan.node_counts() == {"onnxruntime": 2}
    assert "supports() raised KeyError" in sess.plan.rejections[0].reason
    x = np.array([-1, 2, -3, 4], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], -np.maximum(x, 0))


def test_raising_compile_is_a_delegate_error_naming_the_partition_when_strict():
    with pytest.raises(DelegateError, match=r"delegate 'flaky' failed to compile partition p0 \(2 nodes; ops: Neg, Relu\): ValueError: cannot compile this"):
        flaky_session("compile", strict=True)


def test_raising_run_is_a_delegate_error_naming_the_partition():
    sess = flaky_session("run")
    with pytest.raises(DelegateError, match=r"delegate 'flaky' failed running partition p0 .*MemoryError: device out of memory"):
        sess.run(None, {"x": np.zeros(4, np.float32)})


def test_a_cacheable_delegate_without_load_is_refused_at_registration():
    from .toy_delegate import ToyDelegate

    class SerializesOnly(ToyDelegate):
        cacheable = True  # its executables serialize(), but it never says how to load them

    with pytest.raises(unified.PluginError, match=r"delegate 'half' is cacheable but does not implement "
                                                  r"Delegate.load\(\), so every compile-cache hit would recompile"):
        InferenceSession(relu_neg((4,)), ["half"], SessionOptions(plugins=[ToyPlugin(SerializesOnly("half"))]))
