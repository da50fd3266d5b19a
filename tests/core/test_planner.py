"""Planner behaviour on hand-built graphs, with a third-party-style toy delegate.

Every test checks where nodes went *and* that the session's numbers equal
ONNX Runtime's on the same model.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import unified
from unified import InferenceSession, SessionOptions
from unified.errors import DelegateUnavailableError, UnsupportedError

from .toy_delegate import ToyDelegate, ToyPlugin

F = TensorProto.FLOAT


def make_model(nodes, inputs=("x",), outputs=("y",), shape=(2, 3)) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(i, F, list(shape)) for i in inputs],
        [helper.make_tensor_value_info(o, F, list(shape)) for o in outputs],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def node(op, ins, out, name=None):
    return helper.make_node(op, list(ins), [out], name=name or out)


def session(model, *toys, delegates=None, **opts) -> InferenceSession:
    toys = toys or (ToyDelegate(),)
    options = SessionOptions(plugins=[ToyPlugin(*toys)], use_cache=False, **opts)
    return InferenceSession(model, delegates or [t.name for t in toys], options)


def feeds_for(model, seed=0):
    rng = np.random.default_rng(seed)
    return {
        i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
        for i in model.graph.input
    }


def assert_matches_ort(sess, model, ort_reference, seed=0):
    feeds = feeds_for(model, seed)
    got = sess.run(None, feeds)
    want = ort_reference(model, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def assert_valid_partition_dag(plan):
    """Partitions in order: every input comes from the model or an earlier partition."""
    available = set(plan.inputs)
    for p in plan.partitions:
        missing = [x for x in p.inputs if x not in available]
        assert not missing, f"partition {p.name} reads {missing} before they are produced"
        available.update(p.outputs)
    assert set(plan.outputs) <= available


def test_chain_on_one_delegate_is_one_partition(ort_reference):
    model = make_model([node("Add", ["x", "x"], "a"), node("Relu", ["a"], "b"), node("Mul", ["b", "x"], "y")])
    sess = session(model)
    assert [(p.delegate, len(p.nodes)) for p in sess.plan.partitions] == [("toy", 3)]
    assert_matches_ort(sess, model, ort_reference)


def test_unclaimed_node_goes_to_fallback_with_one_warning_and_reason(ort_reference):
    model = make_model([node("Add", ["x", "x"], "a"), node("Sigmoid", ["a"], "b"), node("Mul", ["b", "a"], "y")])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = session(model)
    fallback_warnings = [w for w in caught if issubclass(w.category, unified.FallbackWarning)]
    assert len(fallback_warnings) == 1
    assert "Sigmoid" in str(fallback_warnings[0].message)
    assert [(p.delegate, p.nodes, p.fallback) for p in sess.plan.partitions] == [
        ("toy", ("a",), False),
        ("onnxruntime", ("b",), True),
        ("toy", ("y",), False),
    ]
    reasons = [r for r in sess.plan.rejections if r.node == "b"]
    assert reasons and reasons[0].delegate == "toy" and "no kernel for op Sigmoid" in reasons[0].reason
    assert "declined" in str(sess.plan) and "Sigmoid" in str(sess.plan)
    assert_valid_partition_dag(sess.plan)
    assert_matches_ort(sess, model, ort_reference)


def test_diamond_merges_into_one_partition(ort_reference):
    model = make_model(
        [
            node("Add", ["x", "x"], "a"),
            node("Relu", ["a"], "l"),
            node("Neg", ["a"], "r"),
            node("Mul", ["l", "r"], "y"),
        ]
    )
    sess = session(model)
    assert len(sess.plan.partitions) == 1 and len(sess.plan.partitions[0].nodes) == 4
    assert_matches_ort(sess, model, ort_reference)


def test_partition_never_leaves_and_reenters(ort_reference):
    # a -> s (fallback) -> y and a -> y: merging a and y would make a cycle through s.
    model = make_model([node("Add", ["x", "x"], "a"), node("Sigmoid", ["a"], "s"), node("Mul", ["a", "s"], "y")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = session(model)
    assert [p.nodes for p in sess.plan.partitions] == [("a",), ("s",), ("y",)]
    assert_valid_partition_dag(sess.plan)
    assert_matches_ort(sess, model, ort_reference)


def test_independent_branches_of_one_delegate_stay_separate_partitions_when_not_connected(ort_reference):
    model = make_model(
        [node("Relu", ["x"], "a"), node("Neg", ["z"], "b"), node("Sigmoid", ["a"], "c"), node("Add", ["c", "b"], "y")],
        inputs=("x", "z"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = session(model)
    assert_valid_partition_dag(sess.plan)
    # y joins b's partition (connected, no path through c leaves it); a stays alone
    assignment = {p.nodes: p.delegate for p in sess.plan.partitions}
    assert assignment[("a",)] == "toy" and assignment[("c",)] == "onnxruntime"
    assert ("b", "y") in assignment
    assert_matches_ort(sess, model, ort_reference)


def test_placement_by_node_name_and_op_type_wins_over_priority(ort_reference):
    model = make_model([node("Add", ["x", "x"], "a"), node("Relu", ["a"], "b"), node("Mul", ["b", "x"], "y")])
    sess = session(model, delegates=["toy", "onnxruntime"], placement={"a": "onnxruntime", "Mul": "onnxruntime"})
    assert sess.plan.assignment() == {"a": "onnxruntime", "b": "toy", "y": "onnxruntime"}
    assert_matches_ort(sess, model, ort_reference)


def test_placement_on_a_delegate_that_declines_the_node_is_an_error():
    model = make_model([node("Sigmoid", ["x"], "y")])
    with pytest.raises(UnsupportedError, match=r"placement puts node 'y' \(Sigmoid\) on 'toy'.*no kernel for op Sigmoid"):
        session(model, placement={"Sigmoid": "toy"})


def test_placement_naming_a_delegate_outside_the_session_is_an_error():
    model = make_model([node("Relu", ["x"], "y")])
    with pytest.raises(DelegateUnavailableError, match="delegate 'tflite-nope' is not in this session's delegates"):
        session(model, placement={"Relu": "tflite-nope"})


def test_strict_lists_every_unclaimed_node_with_reasons():
    model = make_model(
        [node("Sigmoid", ["x"], "s1"), node("Relu", ["s1"], "r"), node("Tanh", ["r"], "t"), node("Sigmoid", ["t"], "y")]
    )
    with pytest.raises(UnsupportedError) as info:
        session(model, strict=True)
    text = str(info.value)
    assert "3 node(s) not claimed by any delegate in ['toy'] (strict mode: no fallback)" in text
    assert "unclaimed ops: Sigmoid, Tanh" in text
    for name in ("s1", "t", "y"):
        assert f"node '{name}'" in text
    assert "toy: toy has no kernel for op Tanh" in text


def test_priority_order_and_rejections_between_two_delegates(ort_reference):
    first = ToyDelegate("toy_a", refuse=("Mul",))
    second = ToyDelegate("toy_b")
    model = make_model([node("Add", ["x", "x"], "a"), node("Mul", ["a", "a"], "b"), node("Relu", ["b"], "y")])
    sess = session(model, first, second)
    assert sess.plan.assignment() == {"a": "toy_a", "b": "toy_b", "y": "toy_a"}
    rej = [r for r in sess.plan.rejections if r.node == "b"]
    assert [(r.delegate, r.reason) for r in rej] == [("toy_a", "toy_a refuses Mul in this test")]
    assert_matches_ort(sess, model, ort_reference)


def test_min_partition_nodes_hands_small_partitions_to_the_next_delegate(ort_reference):
    model = make_model(
        [node("Add", ["x", "x"], "a"), node("Sigmoid", ["a"], "s"), node("Relu", ["s"], "r"), node("Neg", ["r"], "y")]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = session(model, min_partition_nodes=2)
    assert sess.plan.assignment() == {"a": "onnxruntime", "s": "onnxruntime", "r": "toy", "y": "toy"}
    small = [r for r in sess.plan.rejections if r.node == "a"]
    assert small and "min_partition_nodes" in small[0].reason
    assert_matches_ort(sess, model, ort_reference)


def test_plan_json_round_trip():
    model = make_model([node("Add", ["x", "x"], "a"), node("Sigmoid", ["a"], "y")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        plan = session(model).plan
    assert unified.Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize("seed", range(25))
def test_random_dags_give_valid_convex_partitions_and_right_numbers(seed, ort_reference):
    rng = np.random.default_rng(seed)
    values, nodes = ["x", "z"], []
    for i in range(int(rng.integers(6, 16))):
        op = str(rng.choice(["Add", "Mul", "Relu", "Sigmoid", "Neg", "Tanh"]))
        k = 2 if op in ("Add", "Mul") else 1
        ins = [str(v) for v in rng.choice(values, size=k)]
        out = f"v{i}"
        nodes.append(node(op, ins, out))
        values.append(out)
    consumed = {x for n in nodes for x in n.input}
    outputs = [n.output[0] for n in nodes if n.output[0] not in consumed]
    model = make_model(nodes, inputs=("x", "z"), outputs=outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = session(model)
    plan = sess.plan
    assert_valid_partition_dag(plan)
    assert sorted(n for p in plan.partitions for n in p.nodes) == sorted(n.name for n in nodes)
    # convexity: no path from a partition through another one back into it
    part_of = plan.assignment()
    index_of = {n: p.index for p in plan.partitions for n in p.nodes}
    for p in plan.partitions:
        for x in p.inputs:
            producer = next((n for n in nodes if n.output[0] == x), None)
            if producer is not None:
                assert index_of[producer.name] < p.index
    assert all(part_of[n.name] == ("onnxruntime" if n.op_type in ("Sigmoid", "Tanh") else "toy") for n in nodes)
    assert_matches_ort(sess, model, ort_reference, seed)


def test_plan_as_graphviz_dot():
    model = make_model([node("Add", ["x", "x"], "a"), node("Sigmoid", ["a"], "b"), node("Mul", ["b", "a"], "y")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        dot = session(model).plan.to_dot()
    assert dot.startswith("digraph plan {") and dot.endswith("}")
    assert 'p1 [shape=box' in dot and "onnxruntime/cpu (fallback)" in dot
    # boundary tensors become edges: x -> p0, a -> p1 and a -> p2, b -> p2, p2 -> output
    for edge in ('in_0 -> p0 [label="x"]', 'p0 -> p1 [label="a"]', 'p0 -> p2 [label="a"]', 'p1 -> p2 [label="b"]', "p2 -> out_0"):
        assert edge in dot


class _TwoBackendToy(ToyDelegate):
    """Runs Neg on backend "exact" only; takes the ``backend=``/``options=`` form of supports()."""

    def backends(self):
        return ["fast", "exact"]

    def supports(self, node, backend=None, options=None):
        self.asked.append((backend, dict(options or {})))
        if node.op_type == "Neg" and backend != "exact":
            return unified.Support.no(f"Neg not on backend {backend!r} (only on 'exact')")
        return super().supports(node)


@pytest.mark.parametrize("backend,neg_on_toy", [("fast", False), ("exact", True)])
def test_supports_sees_the_chosen_backend_and_can_decline_for_one_backend(backend, neg_on_toy, ort_reference):
    toy = _TwoBackendToy("toy2")
    toy.asked = []
    model = make_model([node("Relu", ["x"], "a"), node("Neg", ["a"], "y")])
    sess = session(model, toy, delegates=[("toy2", {"backend": backend})])
    placed = {n: p.delegate for p in sess.plan.partitions for n in p.nodes}
    assert placed["a"] == "toy2"
    assert (placed["y"] == "toy2") is neg_on_toy
    if not neg_on_toy:
        assert "only on 'exact'" in str(sess.plan.rejections)
    assert {b for b, _ in toy.asked} == {backend}
    assert_matches_ort(sess, model, ort_reference)
