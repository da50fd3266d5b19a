"""Keep coremltools (and what it imports) quiet unless ``unified`` is at DEBUG.

coremltools speaks on stderr in three ways while the delegate imports it and
converts a program:

* ``logging`` records at import: its own (``Failed to load _MLModelProxy``,
  ``Torch version ... has not been tested``, ``scikit-learn version ...``) and
  those of torch and torchao, which ``coremltools._deps`` imports
  (``Failed to load .../torchao/_C_mxfp8...so``, torch's ``W1128 ...
  _pytree.py`` line). With no handler configured, Python's last-resort
  handler prints every WARNING.
* ``tqdm`` progress bars, one per MIL pass pipeline
  (``coremltools.converters.mil.mil.passes.pass_pipeline``).
* Python ``warnings``.

Each is switched off at its source: the loggers' levels (raised for the
duration of the import or conversion, then restored), the progress bar's
``disable`` argument (:func:`_progress`, installed at the one place
coremltools creates it), and ``warnings.catch_warnings``. stderr itself is
never redirected. With the ``unified`` logger enabled for DEBUG (``unified
-v``, ``UNIFIED_LOG_LEVEL=DEBUG``) everything is left as coremltools has it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

__all__ = ["quiet", "frameworks_verbose", "import_coremltools", "install_progress_switch", "FRAMEWORK_LOGGERS"]

#: Loggers silenced while coremltools is imported or converts: coremltools'
#: own, and the ones its ``_deps`` import of torch/torchao writes to.
#: ``torch.utils._pytree`` is named itself because importing torch resets the
#: level of the ``torch`` logger.
FRAMEWORK_LOGGERS = ("coremltools", "torchao", "torch", "torch.utils._pytree", "executorch")


def frameworks_verbose() -> bool:
    """Whether the frameworks may speak: the ``unified`` logger is enabled for DEBUG."""
    return logging.getLogger("unified").isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def quiet():
    """Silence coremltools' logging and warnings for the ``with`` block (no-op at DEBUG)."""
    if frameworks_verbose():
        yield
        return
    saved = {}
    for name in FRAMEWORK_LOGGERS:
        lg = logging.getLogger(name)
        saved[name] = lg.level
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def install_progress_switch() -> None:
    """Make coremltools' MIL pass-pipeline progress bar follow :func:`frameworks_verbose`.

    coremltools creates its one progress bar in ``PassPipelineManager.apply_pipeline``
    with the module-level name ``tqdm`` and no ``disable`` argument; the name
    is rebound to :func:`_progress`, which passes ``disable=True`` unless the
    ``unified`` logger is at DEBUG. Idempotent.
    """
    from coremltools.converters.mil.mil.passes import pass_pipeline

    if getattr(pass_pipeline.tqdm, "_unified_switch", False):
        return
    original = pass_pipeline.tqdm

    def _progress(*args, **kwargs):
        kwargs.setdefault("disable", not frameworks_verbose())
        return original(*args, **kwargs)

    _progress._unified_switch = True  # type: ignore[attr-defined]
    pass_pipeline.tqdm = _progress


def import_coremltools():
    """coremltools, imported quietly, with its progress bar behind :func:`frameworks_verbose`."""
    with quiet():
        import coremltools

        install_progress_switch()
    return coremltools
