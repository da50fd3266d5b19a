"""``unified conformance run --ray``: a local Ray cluster of two worker nodes
that offer different delegates (``ray.cluster_utils.Cluster``), checked
against the local runner on the same cases."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

from unified.conformance.cases import gather_cases  # noqa: E402
from unified.conformance.runner import run_conformance  # noqa: E402
from unified.integrations.ray import node_resources, resource_name  # noqa: E402

from .conftest import BROKEN, HERE, TOY_SOURCE  # noqa: E402

pytestmark = pytest.mark.slow

CRASH = str(HERE / "ray_crash_delegate.py")
ORT_NODE = {resource_name("onnxruntime"): 1, resource_name("onnxruntime", "cpu"): 1, resource_name("exit_add"): 1,
            resource_name("hang_add"): 1}
REF_NODE = {resource_name("reference"): 1, resource_name("reference", "npu-sim"): 1}


@pytest.fixture(scope="module")
def cluster():
    """A head node without CPUs (runs no case) and two one-CPU worker nodes:
    ``ort`` offers onnxruntime (and the test delegate exit_add), ``ref`` reference."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = {"ort": c.add_node(num_cpus=1, resources=ORT_NODE), "ref": c.add_node(num_cpus=1, resources=REF_NODE)}
    c.wait_for_nodes()
    yield c.address, {k: n.node_id for k, n in nodes.items()}
    ray.shutdown()
    c.shutdown()


def _key(r) -> tuple:
    d = r.to_dict()
    for k in ("seconds", "node"):
        d.pop(k, None)
    return d


def test_routes_by_resource_and_matches_the_local_runner(cluster, tmp_path):
    address, node_ids = cluster
    _, cases = gather_cases(None, None, fast=True)  # the whole --fast subset, every source
    assert len(cases) > 200 and {c.source for c in cases} >= {"onnx-node", "ops", "models", "quantized-ops"}
    report = run_conformance(cases, ["onnxruntime", "reference", "tflite"], ray=address, timeout=120)
    local = run_conformance(cases, ["onnxruntime", "reference"], isolate=False, timeout=120)

    by = report.by_delegate()
    assert {r.node for r in by["onnxruntime"]} == {node_ids["ort"]}
    assert {r.node for r in by["reference"]} == {node_ids["ref"]}
    assert {r.status for r in by["tflite"]} == {"skipped"}
    assert all("no node of the Ray cluster offers resource 'unified:tflite'" in r.reason for r in by["tflite"])
    assert not report.delegates["tflite"]["available"]
    assert report.delegates["onnxruntime"]["nodes"] == [node_ids["ort"]]
    # case by case: status, phase, reason, partitions and every output statistic
    ray_results = [_key(r) for r in report.results if r.delegate != "tflite"]
    assert ray_results == [_key(r) for r in local.results]
    assert {r.status for r in local.results} >= {"pass"}
    for d in ("onnxruntime", "reference"):
        assert report.summary()[d].to_dict() == local.summary()[d].to_dict()
    # the node is in report.json (and local results leave it out)
    data = json.loads(json.dumps(report.to_dict(), default=str))
    assert data["results"][0]["node"] == node_ids["ort"]
    assert set(data["options"]["ray"]["nodes"]) >= set(node_ids.values())
    assert "node" not in local.to_dict()["results"][0]
    _check_reports(report, tmp_path, node_ids["ort"], len(cases))


def _check_reports(report, tmp_path, ort_node: str, n_cases: int) -> None:
    """summary.md lists the nodes; junit.xml and report.html carry each case's node."""
    from unified.conformance.render import write_reports

    paths = write_reports(report, tmp_path)
    md = paths["summary.md"].read_text()
    assert "## Ray nodes" in md
    assert f"| `{ort_node[:12]}` |" in md and f"onnxruntime {n_cases} |" in md
    assert f'<property name="node" value="{ort_node}"' in paths["junit.xml"].read_text()
    assert ort_node in paths["report.html"].read_text()


def test_a_case_that_kills_its_worker_is_one_error(cluster):
    address, node_ids = cluster
    _, cases = gather_cases(["toy-add"], None, [TOY_SOURCE])
    report = run_conformance(cases, ["exit_add", "onnxruntime", "hang_add"], plugins=[TOY_SOURCE, CRASH, BROKEN],
                             ray=address, timeout=8)
    hung = [r for r in report.results if r.delegate == "hang_add"]
    assert len(hung) == 3 and {r.status for r in hung} == {"error"}
    assert all(r.reason == "timed out after 8 s (per-case time limit); worker killed" for r in hung)
    assert all(8 <= r.seconds < 30 for r in hung)
    got = {(r.delegate, r.case): r for r in report.results}
    crashed = got[("exit_add", "toy-add/scalar")]
    assert crashed.status == "error" and crashed.phase == "worker"
    assert "the worker process died while running the case" in crashed.reason
    assert crashed.node == node_ids["ort"]
    others = [r for k, r in got.items() if k != ("exit_add", "toy-add/scalar") and k[0] != "hang_add"]
    assert len(others) == 5 and {r.status for r in others} == {"pass"}


def test_ray_resources_lists_executing_delegates_only():
    from unified.plugins import registry

    res = node_resources()
    reg = registry()
    for name in reg.delegates:
        av = reg.availability(name)
        assert (resource_name(name) in res) == (av.ok and av.executes)
    assert res[resource_name("reference")] == 1.0
    assert resource_name("onnxruntime", "cpu") in res
