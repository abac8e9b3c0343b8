"""ELECTRA pre-training on fastai: one module per step of the pipeline (see README)."""
import _utils  # noqa: F401  (first: it silences a dependency's import-time warning)
