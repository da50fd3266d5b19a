"""Hardware targets (``unified_backends()`` plugins): the host CPU and the
simulated NPU (``npu_sim``)."""
