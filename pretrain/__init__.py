"""ELECTRA pre-training on fastai: one module per step of the pipeline (see README)."""
import warnings

# raised at import by a dependency, not by anything this project calls
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
