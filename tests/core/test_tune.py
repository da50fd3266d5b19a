"""``delegates="auto"`` (``unified.tune``): candidates, the accuracy gate, the cache, the budget, ``unified tune``."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
from onnx import helper

import unified.plugins
import unified.tune
from unified import InferenceSession, Plan, SessionOptions, TuningError
from unified.cli import main
from unified.accuracy import accuracy_gate
from unified.tune import tune

from ..onnx_models import graph_model, rand, relu_neg
from .toy_delegate import ToyDelegate, ToyExecutable, ToyPlugin


@pytest.fixture(autouse=True)
def _exact_run_counts(monkeypatch):
    """Toy candidates run in microseconds: without this, the fast-model rule
    (MIN_TIMED_SECONDS, FINAL_ROUND_SECONDS) and 20 ms blocks (BLOCK_SECONDS) would give them
    thousands of runs, and MIN_ROUNDS rounds more than the tests ask for;
    tests count runs."""
    monkeypatch.setattr(unified.tune, "MIN_TIMED_SECONDS", 0.0)
    monkeypatch.setattr(unified.tune, "FINAL_ROUND_SECONDS", 0.0)
    monkeypatch.setattr(unified.tune, "BLOCK_SECONDS", 0.0)
    monkeypatch.setattr(unified.tune, "MIN_ROUNDS", 1)


class WrongExecutable(ToyExecutable):
    """Fast and wrong: every output off by 0.5."""

    def run(self, inputs):
        self.runs += 1
        return {k: v + np.float32(0.5) for k, v in super().run(inputs).items()}


class FastWrong(ToyDelegate):
    """Claims what the toy claims, computes it wrong."""

    def compile(self, partition, options):
        self.compiled.append(partition)
        return WrongExecutable(partition)


class SleepyExecutable(ToyExecutable):
    """Right and slow: 3 ms per run."""

    def run(self, inputs):
        time.sleep(0.003)
        return super().run(inputs)


class Sleepy(ToyDelegate):
    """The toy, 3 ms slower per partition run."""

    def compile(self, partition, options):
        self.compiled.append(partition)
        return SleepyExecutable(partition)


class SleepySession:
    """Stands in for an InferenceSession: each run sleeps ``seconds``."""

    def __init__(self, seconds):
        self.seconds = seconds

    def run(self, output_names, feed):
        time.sleep(self.seconds)


def _options(tmp_path, *delegates: ToyDelegate, names=None, **kw) -> SessionOptions:
    kw = {"tuning_repeats": 3, "tuning_warmup": 1, **kw}
    return SessionOptions(plugins=[ToyPlugin(*delegates)], cache_dir=tmp_path / "cache", tuning_delegates=names, **kw)


def _row(plan: Plan, name: str):
    return next(c for c in plan.tuning.candidates if c.name == name)


def test_a_fast_wrong_delegate_is_measured_reported_and_not_chosen(tmp_path):
    wrong, toy = FastWrong("fastwrong"), ToyDelegate("toy")
    opts = _options(tmp_path, wrong, toy, names=["fastwrong", "toy", "onnxruntime"])
    session = InferenceSession(relu_neg((64,)), "auto", opts)
    table = session.plan.tuning
    row = _row(session.plan, "default")  # the priority plan: all on fastwrong
    assert row.summary == "fastwrong 2 (1 partition)" and _row(session.plan, "fastwrong").note == "same plan as 'default'"
    assert row.runs == 4 and row.median_ms is not None  # measured like the others: one block of BLOCK=4 runs
    assert not row.passed and not row.chosen and row.error == pytest.approx(0.5)
    assert "fails the accuracy gate" in row.note
    assert table.chosen in ("toy", "onnxruntime") and all(c.passed for c in table.candidates if c.chosen)
    x = rand((64,), seed=3)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], -np.maximum(x, 0), rtol=0, atol=0)
    assert "FAIL" in table.table() and "fastwrong" in table.table()


def test_candidates_are_timed_in_alternating_blocks_of_consecutive_runs():
    order = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def run(self, output_names, feed):
            order.append(self.name)

    a, b = unified.tune._Candidate("a", None, {}), unified.tune._Candidate("b", None, {})
    a.session, b.session = Fake("a"), Fake("b")
    assert not unified.tune._measure([a, b], {}, repeats=6, deadline=time.perf_counter() + 60)
    # blocks of BLOCK=4 counted runs after one that is not, the order rotating each round, until 6 runs each
    assert "".join(order) == "aaaaabbbbbbbbbbaaaaa"
    assert len(a.times) == len(b.times) == 8


def test_when_the_budget_is_spent_timing_goes_on_for_min_rounds_within_the_grace(monkeypatch):
    monkeypatch.setattr(unified.tune, "MIN_ROUNDS", 3)
    a, b = unified.tune._Candidate("a", None, {}), unified.tune._Candidate("b", None, {})
    a.session, b.session = SleepySession(0.001), SleepySession(0.001)
    past = time.perf_counter() - 1
    assert unified.tune._measure([a, b], {}, repeats=100, deadline=past, grace=60)
    assert len(a.times) == len(b.times) == 3 * unified.tune.BLOCK  # MIN_ROUNDS rounds, then the budget ends it
    a.times, b.times = [], []
    assert unified.tune._measure([a, b], {}, repeats=100, deadline=past, grace=0.5)
    assert len(a.times) == len(b.times) == unified.tune.BLOCK  # past the grace already: the first round only


def test_fast_candidates_run_until_the_fastest_has_run_min_seconds():
    fast, slow = unified.tune._Candidate("fast", None, {}), unified.tune._Candidate("slow", None, {})
    fast.session, slow.session = SleepySession(0.001), SleepySession(0.004)
    assert not unified.tune._measure([fast, slow], {}, repeats=4, deadline=time.perf_counter() + 60, min_seconds=0.05)
    # the fastest run took >= 1 ms, so at most 50 runs each (+ a block); sleep overshoots a little, so at least ~25
    assert len(fast.times) == len(slow.times) and 25 <= len(fast.times) <= 50 + unified.tune.BLOCK
    assert sum(fast.times) >= 0.04
    fast.times, slow.times = [], []
    assert unified.tune._measure([fast, slow], {}, repeats=4, deadline=time.perf_counter() + 0.02, min_seconds=0.05)
    assert 1 <= len(fast.times) < 25  # the deadline still wins


def test_a_warm_second_session_reuses_the_decision_and_measures_nothing(tmp_path, monkeypatch):
    toy = ToyDelegate("toy")
    opts = _options(tmp_path, toy, names=["toy", "onnxruntime"])
    first = InferenceSession(relu_neg((8,)), "auto", opts)
    assert not first.plan.tuning.from_cache and first.plan.tuning.key

    def no_measuring(*args, **kwargs):
        raise AssertionError("a cached decision must not measure anything")

    monkeypatch.setattr(unified.tune, "_measure", no_measuring)
    monkeypatch.setattr(unified.tune, "_warm", no_measuring)
    compiled_before = len(toy.compiled)
    second = InferenceSession(relu_neg((8,)), "auto", opts)
    tuning = second.plan.tuning
    assert tuning.from_cache and tuning.key == first.plan.tuning.key
    assert tuning.chosen == first.plan.tuning.chosen and "nothing measured" in str(second.plan)
    assert second.plan.assignment() == first.plan.assignment()
    # at most the chosen plan was compiled again (the toy is not cacheable), and nothing ran
    assert len(toy.compiled) - compiled_before <= (1 if tuning.chosen in ("default", "toy") else 0)
    assert all(c.executable.runs == 0 for c in second.partitions if isinstance(c.executable, ToyExecutable))
    x = rand((8,))
    np.testing.assert_allclose(second.run(None, {"x": x})[0], -np.maximum(x, 0))


def test_force_measures_again_and_another_shape_is_another_key(tmp_path):
    opts = _options(tmp_path, ToyDelegate("toy"), names=["toy", "onnxruntime"])
    key = InferenceSession(relu_neg((8,)), "auto", opts).plan.tuning.key
    again = tune(relu_neg((8,)), opts, force=True)
    assert not again.plan.tuning.from_cache and again.plan.tuning.key == key
    assert InferenceSession(relu_neg((9,)), "auto", opts).plan.tuning.key != key


def test_the_budget_ends_tuning_and_the_plan_says_so(tmp_path):
    opts = _options(tmp_path, ToyDelegate("toy"), FastWrong("fastwrong"), names=["toy", "fastwrong", "onnxruntime"],
                    tuning_seconds=0.0)
    session = InferenceSession(relu_neg((8,)), "auto", opts)
    tuning = session.plan.tuning
    assert tuning.budget_exhausted and tuning.chosen == "default"  # the default plan is always measured
    assert _row(session.plan, "default").runs >= 1
    assert _row(session.plan, "fastwrong").note == "not measured: the tuning budget ran out"
    assert "the tuning budget of 0 s ran out" in str(session.plan)


def test_mixed_candidates_move_one_partition_of_the_default_plan(tmp_path):
    # Relu -> MatMul -> Neg: the toy takes Relu and Neg, only ONNX Runtime takes MatMul
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r"),
        helper.make_node("MatMul", ["a", "w"], ["m"], name="mm"),
        helper.make_node("Neg", ["m"], ["y"], name="n"),
    ]
    w = rand((4, 3), seed=1)
    model = graph_model(nodes, {"x": (np.float32, [2, 4])}, {"w": w})
    x = rand((2, 4), seed=2)
    opts = _options(tmp_path, ToyDelegate("toy"), names=["toy", "onnxruntime"], tuning_inputs={"x": x})
    session = InferenceSession(model, "auto", opts)
    names = [c.name for c in session.plan.tuning.candidates]
    assert names[:3] == ["default", "onnxruntime", "toy"]  # the fallback alone is built second
    assert {"default, p0->onnxruntime", "default, p2->onnxruntime"} <= set(names)
    assert not any("->toy" in n for n in names)  # the toy declines MatMul: no such move
    assert _row(session.plan, "default").summary == "toy 2, onnxruntime 1 (3 partitions)"
    assert _row(session.plan, "toy").note == "same plan as 'default'"  # the fallback takes MatMul
    chosen = [c for c in session.plan.tuning.candidates if c.chosen]
    assert len(chosen) == 1 and chosen[0].passed and chosen[0].runs >= 1
    np.testing.assert_allclose(session.run(None, {"x": x})[0], -(np.maximum(x, 0) @ w), rtol=1e-5, atol=1e-6)


def test_combined_takes_the_best_move_of_each_partition(tmp_path):
    # Relu -> Mul -> Neg. Default plan: slow(Relu) | mid(Mul) | slow(Neg); only fasta takes Relu
    # besides slow, only fastb takes Neg: the moves p0->fasta and p2->fastb each save 3 ms
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r"),
        helper.make_node("Mul", ["a", "c"], ["m"], name="m"),
        helper.make_node("Neg", ["m"], ["y"], name="n"),
    ]
    c = rand((4,), seed=1)
    model = graph_model(nodes, {"x": (np.float32, [4])}, {"c": c})
    toys = [Sleepy("slow", refuse=("Mul",)), ToyDelegate("mid", refuse=("Relu", "Neg")),
            ToyDelegate("fasta", refuse=("Neg", "Mul")), ToyDelegate("fastb", refuse=("Relu", "Mul"))]
    opts = _options(tmp_path, *toys, names=[t.name for t in toys], fallback=None, tuning_repeats=5)
    session = InferenceSession(model, "auto", opts)
    plan = session.plan
    assert _row(plan, "default").summary == "slow 2, mid 1 (3 partitions)"
    assert _row(plan, "slow").note.startswith("cannot plan: ")  # nobody else takes Mul without a fallback
    assert _row(plan, "default, p0->fasta").passed and _row(plan, "default, p2->fastb").passed
    combined = _row(plan, "combined")
    assert combined.note.split("; ")[0] in ("default, p0->fasta, p2->fastb", "default, p2->fastb, p0->fasta")
    assert combined.chosen and combined.passed and plan.tuning.chosen == "combined"
    assert plan.assignment() == {"r": "fasta", "m": "mid", "n": "fastb"}
    x = rand((4,), seed=5)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], -(np.maximum(x, 0) * c), rtol=1e-6)


def test_a_plan_with_more_partitions_wins_only_when_clearly_faster():
    def cand(name: str, partitions: int, ms: float, passed: bool = True):
        c = unified.tune._Candidate(name, None, {})
        c.plan = SimpleNamespace(partitions=[None] * partitions)
        c.times, c.passed = [ms / 1e3] * 3, passed
        return c

    single, mixed = cand("onnxruntime", 1, 0.224), cand("combined", 2, 0.219)
    assert unified.tune._best([mixed, single]) is single  # 2 % faster: within the 5 % margin
    mixed.times = [0.19e-3] * 3
    assert unified.tune._best([mixed, single]) is mixed  # 15 % faster
    other = cand("tflite", 1, 0.195)
    assert unified.tune._best([mixed, single, other]) is other  # within 5 %, one partition and faster than onnxruntime
    assert unified.tune._best([cand("wrong", 1, 0.1, passed=False), mixed]) is mixed
    assert unified.tune._best([cand("wrong", 1, 0.1, passed=False)]) is None


def test_the_final_round_re_times_the_contenders_among_themselves():
    def cand(name: str, seconds: float, first_round_ms: float):
        c = unified.tune._Candidate(name, None, {})
        part = SimpleNamespace(nodes=["n"], delegate=name, backend="cpu")
        c.plan, c.session, c.passed = SimpleNamespace(partitions=[part]), SleepySession(seconds), True
        c.times = [first_round_ms / 1e3] * 4
        return c

    # a noisy first round timed a and b alike; b really takes twice as long; c is out of the running
    a, b, c = cand("a", 0.002, 5.0), cand("b", 0.004, 4.9), cand("c", 0.001, 6.3)
    contenders = unified.tune._contenders([a, b, c])
    assert contenders == [a, b]  # within 25 % of the fastest (4.9 ms); c is 29 % slower
    # no cache: the children could not load the contenders, so the round runs in this process
    opts = SimpleNamespace(tuning_repeats=4, tuning_warmup=1, use_cache=False, plugins=())
    deadline = time.perf_counter() + 60
    assert not unified.tune._final_round(contenders, None, [], None, None, {}, opts, None, None, None, deadline)
    assert unified.tune._best(contenders) is a and a.median() < b.median()
    assert min(a.times) >= 0.002 and min(b.times) >= 0.004  # measured again, not the first round's times
    assert c.times == [0.0063] * 4 and c.note == ""
    assert a.note == "final round in tune's process (the compile cache is off, so each child would compile again)"


def test_accuracy_gates():
    ref = {"y": np.array([10.0, -20.0, 0.0], np.float32)}
    gate, text = accuracy_gate(None)
    assert text == "max|out - ref| / max(1, max|ref|) <= 0.001"
    assert gate({"y": ref["y"] + 0.019}, ref) == (pytest.approx(0.019 / 20, rel=1e-5), True)
    assert gate({"y": ref["y"] + 0.021}, ref)[1] is False
    assert gate({"y": ref["y"][:2]}, ref) == (float("inf"), False)
    gate, text = accuracy_gate({"cosine": 0.999})
    assert text == "1 - cosine(out, ref) <= 0.001"
    assert gate({"y": ref["y"] * 3}, ref)[1] is True and gate({"y": -ref["y"]}, ref)[1] is False
    gate, _ = accuracy_gate(lambda out, r: (True, 0.25))
    assert gate(ref, ref) == (0.25, True)
    with pytest.raises(TuningError, match=r"tuning_tolerance \{'atol': 0.1\}: expected None, \{'max_abs': K\}"):
        accuracy_gate({"atol": 0.1})
    with pytest.raises(TuningError, match="must be a finite number"):
        accuracy_gate({"cosine": "high"})


def test_unknown_tuning_input_is_an_input_error(tmp_path):
    opts = _options(tmp_path, ToyDelegate("toy"), names=["toy"], tuning_inputs={"nope": np.zeros(2)})
    with pytest.raises(unified.InputError, match=r"tuning_inputs names unknown input\(s\) \['nope'\]"):
        InferenceSession(relu_neg((2,)), "auto", opts)
    opts = _options(tmp_path, ToyDelegate("toy"), names=["toy"], tuning_inputs={"x": np.zeros(2, np.float64)})
    with pytest.raises(unified.InputError, match="input 'x' has dtype float64, expected float32"):
        InferenceSession(relu_neg((2,)), "auto", opts)


def test_a_bare_delegate_name_is_refused_with_the_list_form_suggested(tmp_path):
    with pytest.raises(unified.DelegateUnavailableError, match=r"None, \"auto\" .* got 'toy'; for that delegate alone write \['toy'\]"):
        InferenceSession(relu_neg((2,)), "toy", _options(tmp_path, ToyDelegate("toy")))


def test_the_plan_with_its_table_round_trips_through_json(tmp_path):
    plan = InferenceSession(relu_neg((4,)), "auto", _options(tmp_path, ToyDelegate("toy"), names=["toy"])).plan
    again = Plan.from_json(plan.to_json())
    assert again.tuning == plan.tuning and again == plan
    assert "tuning" not in InferenceSession(relu_neg((4,)), ["onnxruntime"]).plan.to_dict()


def test_cli_tune_prints_the_table_and_writes_json(tmp_path, monkeypatch, capsys):
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(relu_neg((16,)), path)
    monkeypatch.setattr(unified.plugins, "_registry", unified.plugins.registry().extended([ToyPlugin()]))
    out = tmp_path / "tune.json"
    argv = ["tune", str(path), "--delegates", "toy,onnxruntime", "--repeats", "2", "--warmup", "1",
            "--cache-dir", str(tmp_path / "c"), "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "candidate" in text and "median ms" in text and "error vs ORT" in text and "reference" in text
    assert "tuned (delegates='auto'): chose" in text and f"wrote {out}" in text
    data = json.loads(out.read_text())
    assert {c["name"] for c in data["tuning"]["candidates"]} >= {"default", "toy", "onnxruntime", "reference"}
    assert main(argv) == 0 and "nothing measured" in capsys.readouterr().out
    assert main(argv + ["--force"]) == 0 and "nothing measured" not in capsys.readouterr().out


def test_a_reference_that_fails_on_random_inputs_says_which_were_drawn(tmp_path):
    # Reshape to [2, 2] needs 4 elements; the symbolic dim "n" is drawn as 1
    shape = helper.make_node("Constant", [], ["s"], value=helper.make_tensor("v", 7, [2], [2, 2]))
    model = graph_model([shape, helper.make_node("Reshape", ["x", "s"], ["y"])], {"x": (np.float32, ("n",))})
    opts = SessionOptions(cache_dir=tmp_path / "cache", tuning_delegates=["onnxruntime"])
    with pytest.raises(TuningError, match=r"(?s)accuracy reference .* failed to run.*input\(s\) \['x'\] were drawn at "
                                          r"random, symbolic dims as 1: give real ones in tuning_inputs"):
        tune(model, opts)
    opts.tuning_inputs = {"x": rand((4,))}
    assert np.array_equal(InferenceSession(model, "auto", opts).run(None, opts.tuning_inputs)[0],
                          opts.tuning_inputs["x"].reshape(2, 2))


def test_a_compile_stopped_at_the_deadline_is_reported_and_timing_still_runs(tmp_path, monkeypatch):
    class StopsAll:
        """A compiler child that never finishes in time: every compile with a deadline is stopped."""

        def __init__(self, *args):
            self.asked = []

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def compile(self, delegates, placement, assignment, deadline):
            self.asked.append(delegates)
            return None if deadline is None else unified.tune.LATE  # None: `default`, always built

    monkeypatch.setattr(unified.tune, "Compiler", StopsAll)
    session = InferenceSession(relu_neg((8,)), "auto", _options(tmp_path, ToyDelegate("toy"), names=["toy", "onnxruntime"]))
    tuning = session.plan.tuning
    assert tuning.budget_exhausted and tuning.chosen == "default" and _row(session.plan, "default").runs >= 1
    stopped = [c for c in tuning.candidates if c.note == "not measured: the tuning budget ran out during its compile (stopped)"]
    assert len(stopped) == 1 and stopped[0].median_ms is None
    x = rand((8,))
    np.testing.assert_allclose(session.run(None, {"x": x})[0], -np.maximum(x, 0))


def test_the_final_round_ends_before_the_deadline_with_a_margin(tmp_path, monkeypatch):
    """Its children are closed and the choice made after it: the final round
    gets the deadline less FINAL_ROUND_MARGIN of the budget (ResNet-50 took
    60.03 s of its 60 when it got the deadline itself)."""
    seen, real = [], unified.tune._final_round

    def spy(*args):
        seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(unified.tune, "_final_round", spy)
    budget = 1000.0  # a margin of 10 s: far more than tune's own start takes (it starts after ours)
    opts = _options(tmp_path, ToyDelegate("toy"), names=["toy", "onnxruntime"], tuning_seconds=budget)
    start = time.perf_counter()
    tune(relu_neg((8,)), opts)
    assert len(seen) == 1
    end_of_round = start + budget * (1 - unified.tune.FINAL_ROUND_MARGIN)
    assert end_of_round <= seen[0] <= end_of_round + 3
