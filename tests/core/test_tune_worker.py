"""``tune``'s final round in child processes (``unified.tune_worker``), with real delegates."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest

import unified.tune
from unified import InferenceSession, SessionOptions
from unified.tune_worker import LATE, Compiler, node_assignment, time_apart

from ..onnx_models import graph_model, rand

ORT_PLAIN = [("onnxruntime", {"optimization_level": "disable"})]


@pytest.fixture()
def model_path(tmp_path):
    w = rand((64, 64), seed=1)
    nodes = [onnx.helper.make_node("MatMul", ["x", "w"], ["h"]), onnx.helper.make_node("Relu", ["h"], ["y"])]
    path = tmp_path / "mlp.onnx"
    onnx.save(graph_model(nodes, {"x": (np.float32, (8, 64))}, {"w": w}), path)
    return str(path)


def _built(path, delegates, options):
    """Compile in this process (this fills the cache the children load from); the spec of it."""
    session = InferenceSession(path, delegates, options)
    return (delegates, {}, node_assignment(session.plan))


def test_each_contender_is_timed_in_a_child_process_and_nothing_is_printed(model_path, tmp_path, capfd):
    opts = SessionOptions(cache_dir=tmp_path / "cache", tuning_warmup=1)
    specs = [_built(model_path, ["onnxruntime"], opts), _built(model_path, ["reference"], opts)]
    capfd.readouterr()
    start = time.perf_counter()
    got = time_apart(model_path, specs, {"x": rand((8, 64))}, opts, block_runs=4, repeats=10, min_seconds=0.05,
                     deadline=start + 60)
    assert got.reason == "" and not got.exhausted
    assert [len(t) >= 10 for t in got.times] == [True, True]
    assert all(sum(t) >= 0.05 and min(t) > 0 for t in got.times)  # every child ran min_seconds
    assert capfd.readouterr() == ("", "")  # the children's output goes to os.devnull


def test_a_child_that_cannot_build_or_plans_differently_is_a_reason_not_an_error(model_path, tmp_path):
    opts = SessionOptions(cache_dir=tmp_path / "cache", tuning_warmup=1)
    feed, deadline = {"x": rand((8, 64))}, time.perf_counter() + 60
    spec = _built(model_path, ["onnxruntime"], opts)
    kw = {"block_runs": 4, "repeats": 4, "min_seconds": 0.0, "deadline": deadline}
    got = time_apart(model_path, [spec, (["no_such_delegate"], {}, spec[2])], feed, opts, **kw)
    assert got.times is None and "could not build its contender (DelegateUnavailableError" in got.reason
    wrong = (["onnxruntime"], {}, (("MatMul_0", "reference", "numpy"),))
    got = time_apart(model_path, [spec, wrong], feed, opts, **kw)
    assert got.times is None and got.reason == "a child process planned its contender differently from this process"
    got = time_apart(model_path, [spec, spec], {"x": rand((8, 64), dtype=np.float64)}, opts, **kw)
    assert got.times is None and "InputError: input 'x' has dtype float64, expected float32" in got.reason


def test_no_cache_plugin_objects_or_a_spent_budget_keep_the_round_in_this_process(model_path, tmp_path):
    feed = {"x": rand((8, 64))}
    opts = SessionOptions(cache_dir=tmp_path / "cache", tuning_warmup=1)
    spec = _built(model_path, ["onnxruntime"], opts)
    kw = {"block_runs": 4, "repeats": 4, "min_seconds": 0.0, "deadline": time.perf_counter() + 60}
    got = time_apart(model_path, [spec, spec], feed, SessionOptions(use_cache=False), **kw)
    assert got.times is None and got.reason == "the compile cache is off, so each child would compile again"
    got = time_apart(model_path, [spec, spec], feed, SessionOptions(cache_dir=tmp_path, plugins=[object()]), **kw)
    assert got.times is None and got.reason == "plugins given as objects exist only in this process"
    got = time_apart(model_path, [spec, spec], feed, opts, **{**kw, "deadline": time.perf_counter() - 1})
    assert got.times is None and got.exhausted


def test_tune_final_round_replaces_earlier_times_with_the_childrens(model_path, tmp_path):
    opts = SessionOptions(cache_dir=tmp_path / "cache", tuning_warmup=1, tuning_repeats=6)
    graph = unified.graph.Graph(model_path)
    cands = [unified.tune._Candidate(n, d, {}) for n, d in [("onnxruntime", ["onnxruntime"]), ("plain", ORT_PLAIN)]]
    feed = {"x": rand((8, 64))}
    for c in cands:
        unified.tune._build(c, graph, opts, unified.plugins.registry())
        c.passed, c.times = True, [1.0] * 3  # an earlier round's (absurd) times
    deadline = time.perf_counter() + 60
    assert not unified.tune._final_round(cands, None, [], model_path, graph, feed, opts, None, None, None, deadline)
    for c in cands:
        assert c.note == "final round in a process of its own"
        assert len(c.times) >= 6 and max(c.times) < 1.0  # the children's times replaced the earlier ones


def test_a_child_that_dies_mid_round_is_a_reason(model_path, tmp_path, monkeypatch):
    import unified.tune_worker

    rounds = unified.tune_worker._rounds

    def kill_one_first(children, *args):
        children[1].proc.kill()
        children[1].proc.wait()
        return rounds(children, *args)

    monkeypatch.setattr(unified.tune_worker, "_rounds", kill_one_first)
    opts = SessionOptions(cache_dir=tmp_path / "cache", tuning_warmup=1)
    spec = _built(model_path, ["onnxruntime"], opts)
    got = time_apart(model_path, [spec, spec], {"x": rand((8, 64))}, opts, block_runs=4, repeats=4, min_seconds=0.0,
                     deadline=time.perf_counter() + 60)
    assert got.times is None and got.reason.startswith("a child process failed (")


def test_the_compiler_child_fills_the_cache_and_a_late_compile_is_stopped(model_path, tmp_path):
    opts = SessionOptions(cache_dir=tmp_path / "cache", tuning_warmup=1)
    feed = {"x": rand((8, 64))}
    plan = InferenceSession(model_path, ["tflite"], SessionOptions(use_cache=False)).plan
    with Compiler(model_path, opts, feed) as compiler:
        assert compiler.compile(["tflite"], {}, node_assignment(plan), None) is None
        # the child survives a candidate it cannot build, and says why
        why = compiler.compile(["no_such_delegate"], {}, node_assignment(plan), None)
        assert why.startswith("a child process could not build its contender (DelegateUnavailableError")
        assert compiler.compile(["tflite"], {}, (("MatMul_0", "reference", "numpy"),), None) == (
            "a child process planned its contender differently from this process")
        child = compiler._child
        assert compiler.compile(["tflite"], {}, node_assignment(plan), time.perf_counter()) == LATE
        assert child.proc.poll() is not None and compiler._child is None  # stopped, not left running
    # this process now loads what the child compiled
    session = InferenceSession(model_path, ["tflite"], opts)
    assert [p.cache_hit for p in session.profile] == [True] * len(session.plan.partitions)
    assert Compiler(model_path, SessionOptions(use_cache=False), feed).compile(["tflite"], {}, (), None) == (
        "the compile cache is off, so each child would compile again")


def test_tune_compiles_every_candidate_in_the_child(model_path, tmp_path, monkeypatch):
    answers = []
    real = Compiler.compile

    def spy(self, *args):
        answers.append(real(self, *args))
        return answers[-1]

    monkeypatch.setattr(Compiler, "compile", spy)
    opts = SessionOptions(cache_dir=tmp_path / "cache", tuning_delegates=["tflite", "onnxruntime"], tuning_warmup=1)
    tuned = unified.tune.tune(model_path, opts)
    assert len(answers) >= 2 and answers == [None] * len(answers)  # default and onnxruntime alone at least
    assert not tuned.plan.tuning.budget_exhausted and tuned.plan.tuning.chosen in ("default", "onnxruntime", "tflite")


def test_no_block_of_the_final_round_would_end_past_the_deadline():
    from unified.tune_worker import _rounds

    class SleepyChild:
        def block(self, runs, seconds):
            time.sleep(0.1)
            return [0.1 / runs] * runs

    deadline = time.perf_counter() + 0.25
    got = _rounds([SleepyChild(), SleepyChild()], 4, repeats=100, min_seconds=0.0, deadline=deadline)
    # the first round always runs (0.2 s); a third block would end at ~0.3 s, past the deadline
    assert got.exhausted and [len(t) for t in got.times] == [4, 4]
    assert time.perf_counter() <= deadline
