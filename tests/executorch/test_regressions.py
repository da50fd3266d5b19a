"""Regressions found by the full conformance run (false claims of the
executorch delegate): each lowered case runs on executorch alone and
matches ONNX Runtime; each declined one says why."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from unified.graph import Graph
from unified.plugins import registry

from .conftest import rand


def _supports(model, op_type: str):
    view = next(v for v in Graph(model).node_views if v.op_type == op_type)
    return registry().get("executorch").supports(view)


@pytest.mark.parametrize("axis", [-1, -3, -4, 0, 4])
def test_flatten_negative_axis(make_model, et_check, axis):
    model = make_model([helper.make_node("Flatten", ["x"], ["y"], axis=axis)], {"x": (np.float32, (2, 3, 4, 5))})
    sess = et_check(model, {"x": rand((2, 3, 4, 5))})
    assert sess.run(None, {"x": rand((2, 3, 4, 5))})[0].ndim == 2
