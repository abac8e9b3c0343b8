import pytest

from pretrain.config import get_config
from pretrain.tokenizer import load_tokenizer


@pytest.fixture(scope='session')
def tokenizer():
    """The shipped sample tokenizer (data/sample/tokenizer)."""
    return load_tokenizer('data/sample/tokenizer')


@pytest.fixture
def tiny_config(tmp_path):
    """A `tiny` config writing caches and checkpoints under a temporary directory."""
    return get_config('tiny', datas=['sample'], steps=12, bs=8, num_workers=0, num_proc=1, log_every=4,
                      data_dir=str(tmp_path / 'data'), checkpoint_dir=str(tmp_path / 'checkpoints' / 'pretrain'),
                      device='cpu')
