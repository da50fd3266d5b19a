"""The one error hierarchy of ``unified``.

Every error a user can cause or meet derives from :class:`UnifiedError`, so
``except unified.UnifiedError`` catches all of them and nothing else. Each
message names the model input, node, partition or delegate at fault, what was
expected, and, where there is a finite set, the valid choices.
"""

from __future__ import annotations

__all__ = [
    "UnifiedError",
    "ModelError",
    "InputError",
    "UnsupportedError",
    "DelegateError",
    "DelegateUnavailableError",
    "PluginError",
    "CacheError",
    "BundleError",
    "TuningError",
]


class UnifiedError(Exception):
    """Base class of every error raised by ``unified``."""


class ModelError(UnifiedError, ValueError):
    """The model cannot be used: unreadable, truncated, invalid, or with an
    opset this installation does not know."""


class InputError(UnifiedError, ValueError):
    """A run was given a missing, unknown, mistyped or misshaped input, or
    asked for an output the model does not have."""


class UnsupportedError(UnifiedError):
    """No delegate can run some nodes (``strict`` mode, or the fallback
    declined them too). The message lists every unclaimed node with the
    reason each delegate gave."""


class DelegateError(UnifiedError, RuntimeError):
    """A delegate failed while compiling or running a partition it claimed."""


class DelegateUnavailableError(DelegateError):
    """A delegate was requested by name but is unknown or unavailable here."""


class PluginError(UnifiedError):
    """A plugin could not be loaded or implements an unknown hook."""


class CacheError(UnifiedError):
    """A compile-cache entry could not be written."""


class BundleError(UnifiedError):
    """An ahead-of-time bundle is missing, tampered with, or does not match
    this installation."""


class TuningError(UnifiedError):
    """``delegates="auto"`` could not tune: a malformed tuning option, or no
    accuracy reference (the ``onnxruntime`` delegate) to gate candidates on."""
