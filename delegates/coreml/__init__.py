"""The ``coreml`` delegate: ONNX partitions compiled to Core ML ML Programs
(compile anywhere, execute on macOS).

==================  ==========================================================
module              job
==================  ==========================================================
:mod:`.delegate`    :class:`CoreMLDelegate`: options, availability, backends,
                    compile and load
:mod:`.support`     the op-support table and the reason for every "no"
:mod:`.convert`     ONNX partition -> MIL program (signature, values, folding)
:mod:`.ops_tensor`  lowerings of elementwise, shape, indexing, reduction ops
:mod:`.ops_nn`      lowerings of conv, pooling, normalization, matmul, ...
:mod:`.executable`  :class:`CoreMLExecutable`: run (macOS, or mil-numpy), serialize
:mod:`.mil_numpy`   the ``mil-numpy`` backend: the saved ML Program evaluated in NumPy
:mod:`.package`     the ``.mlpackage`` directory: zip, unzip, verify
:mod:`.quiet`       coremltools imported and run without noise
==================  ==========================================================
"""

from .delegate import COMPUTE_UNITS, LOWERINGS, MIL_NUMPY, CoreMLDelegate, MilNumpyBackend, unified_backends, \
    unified_delegates
from .executable import ARTIFACT_SUFFIX, COMPILE_ONLY, CoreMLExecutable

__all__ = ["CoreMLDelegate", "CoreMLExecutable", "COMPILE_ONLY", "ARTIFACT_SUFFIX", "LOWERINGS", "COMPUTE_UNITS",
           "MIL_NUMPY", "MilNumpyBackend", "unified_delegates", "unified_backends"]
