"""Keep torch, torchao and ExecuTorch quiet unless the ``unified`` logger is at DEBUG.

What they print, unasked, on the way to a ``.pte`` program, and the switch
used for each (their own, set before the import that prints):

* torchao, on import (pulled in by ``executorch.exir``): ``Failed to load
  .../torchao/_C_mxfp8...so`` -- the ``torchao`` logger, set to ERROR.
* torch's own logging (``W1128 ... torch/utils/_pytree.py``, fake-tensor and
  symbolic-shape tracebacks when ``torch.export`` fails): the ``torch``
  logger, set to ERROR after ``import torch`` (torch configures it when
  imported); c10's C++ log through ``TORCH_CPP_LOG_LEVEL=ERROR``, set
  before ``import torch`` when the variable is not set already.
* the ``executorch`` logger (exir passes), set to ERROR.
* Python warnings raised inside the frameworks while compiling or loading
  (``DeprecationWarning: read_text is deprecated``, ``FutureWarning:
  isinstance(treespec, LeafSpec)``, ``ExperimentalWarning``): ignored
  inside :func:`quiet` only.
* ExecuTorch's threadpool, when first created, logs its cpuinfo probing
  (``[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version``)
  from C++ straight to file descriptor 2; the wheel has no switch for that
  log (``ET_LOG``'s level is fixed at build time). So, as a last resort, the
  threadpool is created once, at the first :func:`quiet`, with fd 2
  redirected to a temporary file for that one call; what it wrote is
  re-logged on the ``unified.delegates.executorch`` logger at DEBUG.

Loggers already given a level by the application are left alone. When the
``unified`` logger is at DEBUG nothing is silenced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from typing import Iterator

from .runtime_import import import_portable_lib

__all__ = ["quiet", "verbose"]

log = logging.getLogger("unified.delegates.executorch")

_LOCK = threading.Lock()
_done = False
_FRAMEWORK_LOGGERS = ("torch", "torchao", "executorch")


def verbose() -> bool:
    """True when the user asked for framework output (``unified`` logger at DEBUG)."""
    return logging.getLogger("unified").isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Import and use torch/executorch inside this block without their chatter.

    The first call configures the frameworks' loggers and creates
    ExecuTorch's threadpool (see the module docstring); every call ignores
    Python warnings raised inside the block.
    """
    if verbose():
        yield
        return
    _configure_once()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _configure_once() -> None:
    global _done
    with _LOCK:
        if _done:
            return
        _done = True
        if "torch" not in sys.modules:
            os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
        for name in ("torchao", "executorch"):
            _quiet_logger(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch  # noqa: F401  -- configures the "torch" logger: set it after

            _quiet_logger("torch")
            _create_threadpool()


def _quiet_logger(name: str) -> None:
    logger = logging.getLogger(name)
    if logger.level in (logging.NOTSET, logging.INFO, logging.WARNING):  # unset, or torch's own default
        logger.setLevel(logging.ERROR)


def _create_threadpool() -> None:
    """Create ExecuTorch's threadpool now, its C++ cpuinfo log kept off fd 2."""
    try:
        portable_lib = import_portable_lib()
    except Exception as exc:  # noqa: BLE001 -- a broken runtime surfaces where it is used
        log.debug("executorch runtime not importable: %s", exc)
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            threads = portable_lib._threadpool_get_thread_count()
        except Exception as exc:  # noqa: BLE001
            threads, text = None, str(exc)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode("utf-8", "replace").strip()
    log.debug("ExecuTorch threadpool: %s threads; %s", threads, text)
