"""Pictures and renderings of a plan: the ``--explain`` text, a self-contained
HTML page of the partition graph (:mod:`unified.visualize.html`) and Model
Explorer node data (:mod:`unified.visualize.model_explorer`).

Imports only the standard library, NumPy and ``unified`` at module level
(``DESIGN.md``, "Folders").
"""
