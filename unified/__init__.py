"""unified: one inference API over many hardware stacks.

An ONNX model goes in once; the planner asks every registered delegate which
nodes it can run, cuts the graph into partitions, each delegate compiles its
partitions, and an :class:`InferenceSession` runs them in order.
"""

from unified import errors as _errors
from unified.backend import Backend, BackendInfo
from unified.delegate import Availability, CompileOptions, Delegate, DelegateOption, Executable, OpSupport, Support
from unified.errors import (
    BundleError,
    CacheError,
    DelegateError,
    DelegateUnavailableError,
    InputError,
    ModelError,
    PluginError,
    TuningError,
    UnifiedError,
    UnsupportedError,
)
from unified.graph import Graph, NodeView, ShapeInferenceWarning, TensorInfo, load_model
from unified.hookspecs import hookimpl
from unified.plan import Partition, Plan
from unified.planner import FallbackWarning
from unified.plugins import get_delegate, list_delegates, registry
from unified.session import InferenceSession, NodeArg, SessionOptions

from unified.log import apply_env_level as _apply_env_level

__version__ = "0.1.0"
_apply_env_level()

__all__ = [
    # running models
    "InferenceSession",
    "SessionOptions",
    "NodeArg",
    "Plan",
    "Partition",
    "load_model",
    "Graph",
    # writing delegates and backends
    "Delegate",
    "Executable",
    "Availability",
    "Support",
    "OpSupport",
    "CompileOptions",
    "DelegateOption",
    "NodeView",
    "TensorInfo",
    "Backend",
    "BackendInfo",
    "hookimpl",
    # plugin registry
    "registry",
    "get_delegate",
    "list_delegates",
    # errors (the hierarchy, in unified.errors' order) and warnings
    *_errors.__all__,
    "FallbackWarning",
    "ShapeInferenceWarning",
]
