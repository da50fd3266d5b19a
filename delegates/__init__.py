"""Built-in delegates, one module or package each; every one registers through
the ``unified`` entry-point group exactly as a third-party plugin would."""
