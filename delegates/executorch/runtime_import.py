"""Import ExecuTorch's runtime bindings without ``executorch.exir``.

``executorch.extension.pybindings.portable_lib`` (what
``executorch.runtime.Runtime`` loads programs with) starts with ``import
executorch.exir._warnings`` for one warning class. Importing that submodule
runs ``executorch.exir/__init__.py``, which pulls in the whole export stack
(``torch.export``, the exir passes, torchao): measured here, importing
``portable_lib`` takes 12.5 s that way and 2.7 s without it (torch itself,
which the bindings need, is most of the rest). Loading a cached ``.pte`` never
needs exir, so every session that loads an ExecuTorch partition from the
compile cache, and each of ``tune``'s final-round child processes, paid ~10 s
for nothing.

:func:`import_portable_lib` imports the bindings with a bare, temporary
``executorch.exir`` package entry in ``sys.modules`` (its ``__path__`` the
real package's folder, so ``executorch.exir._warnings`` itself is the real
module), then removes that entry: a later ``import executorch.exir`` (the
converter's, when compiling) runs the real package ``__init__`` as usual.
When exir is already imported, or anything in this fails, it is a plain
import.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import types

__all__ = ["import_portable_lib"]

log = logging.getLogger("unified.delegates.executorch")
_PORTABLE_LIB = "executorch.extension.pybindings.portable_lib"


def import_portable_lib() -> types.ModuleType:
    """``executorch.extension.pybindings.portable_lib``, imported without ``executorch.exir`` if not loaded yet.

    Raises:
        ImportError: the ExecuTorch runtime is not installed (as a plain import would).
    """
    if _PORTABLE_LIB in sys.modules or "executorch.exir" in sys.modules:
        return importlib.import_module(_PORTABLE_LIB)
    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        return importlib.import_module(_PORTABLE_LIB)  # raises the usual ImportError
    stub = types.ModuleType("executorch.exir")
    stub.__path__ = [os.path.join(list(spec.submodule_search_locations)[0], "exir")]
    sys.modules["executorch.exir"] = stub
    try:
        return importlib.import_module(_PORTABLE_LIB)
    except Exception as exc:  # noqa: BLE001 -- retried below as a plain import
        log.debug("importing %s without executorch.exir failed (%s); importing it plainly", _PORTABLE_LIB, exc)
        sys.modules.pop(_PORTABLE_LIB, None)
    finally:
        if sys.modules.get("executorch.exir") is stub:
            del sys.modules["executorch.exir"]
            # the real package re-imports its submodules; this one must not be a child of the stub
            sys.modules.pop("executorch.exir._warnings", None)
    return importlib.import_module(_PORTABLE_LIB)
