"""transformers' loading chatter silenced where the caller checks and reports problems itself."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from transformers.utils import logging as hf_logging


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No load report or progress bars from transformers inside the block (an
    ElectraForPreTraining directory loaded as an encoder always reports 'unexpected' head
    weights; the callers check the weights that matter and raise one-line errors)."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
