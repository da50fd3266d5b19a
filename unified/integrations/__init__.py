"""Integrations with other frameworks (each imports its framework lazily).

* :mod:`unified.integrations.ray`: Ray node resources for capability routing
  and a callable class for ``ray.data.Dataset.map_batches``.
"""
