"""What `pretrain/` and `finetune/` both use (the seed's rule for this folder). Importing it first
silences one warning that a dependency raises at import, not anything this project calls:
fastai's layers use `torch.jit.script`, which torch 2.14 deprecates."""
import warnings

warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
