"""The fine-tuning model of ELECTRA's paper: a pre-trained encoder, dropout and one linear layer
on the [CLS] hidden state; layer-wise learning-rate decay; Adam without bias correction."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from fastai.optimizer import OptimWrapper
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from _utils.quiet_transformers import quiet_transformers
from pretrain.optim import ElectraAdam


def check_model_dir(model_dir: str | Path) -> Path:
    p = Path(model_dir)
    if not p.is_dir():
        raise ValueError(f"model directory {p} does not exist; export one with `python -m pretrain export`")
    if not (p / 'config.json').is_file():
        raise ValueError(f"{p} has no config.json; point --model at a Hugging Face model directory")
    return p


def load_tokenizer(model_dir: str | Path):
    """The tokenizer saved with the model (local files only)."""
    p = check_model_dir(model_dir)
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # transformers raises OSError/ValueError/KeyError for broken dirs
        raise ValueError(f"cannot load a tokenizer from {p}: {str(e).splitlines()[0]}") from None


def load_config(model_dir: str | Path):
    """The model directory's config (AutoConfig, local files only)."""
    p = check_model_dir(model_dir)
    try:
        with quiet_transformers():
            return AutoConfig.from_pretrained(str(p), local_files_only=True)
    except Exception as e:
        raise ValueError(f"cannot read {p / 'config.json'}: {str(e).splitlines()[0]}") from None


def load_encoder(model_dir: str | Path, random_init: bool = False) -> PreTrainedModel:
    """The encoder (AutoModel: ElectraModel, BertModel...) of a local model directory, with its
    pre-trained weights, or with fresh ones of the same architecture when `random_init`.

    Loading an ElectraForPreTraining directory drops its discriminator head; a directory whose
    weights miss any encoder weight is refused (those would silently stay random).
    """
    p = check_model_dir(model_dir)
    config = load_config(p)
    with quiet_transformers():
        if random_init:
            return AutoModel.from_config(config)
        try:
            encoder, info = AutoModel.from_pretrained(str(p), local_files_only=True, output_loading_info=True)
        except Exception as e:
            raise ValueError(f"cannot load model weights from {p}: {str(e).splitlines()[0]}") from None
    missing = sorted(k for k in info['missing_keys'] if not k.startswith('pooler.'))  # BERT's pooler is unused here
    if missing:
        raise ValueError(f"{p} lacks {len(missing)} encoder weight(s) (e.g. {missing[0]}); it is not a "
                         f"pre-trained encoder of type {config.model_type}")
    return encoder


class SentenceClassifier(nn.Module):
    """ELECTRA's fine-tuning head: dropout then one linear layer on the [CLS] hidden state.

    forward(input_ids (B, L), token_type_ids (B, L)) -> (B, n_outputs) logits (scores for
    regression, n_outputs = 1). Padding positions (`pad_token_id`) are masked from attention.
    """

    def __init__(self, encoder: PreTrainedModel, n_outputs: int, pad_token_id: int, dropout: float = 0.1):
        super().__init__()
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be positive, got {n_outputs}")
        self.encoder, self.pad_token_id = encoder, pad_token_id
        # models with a single token type (RoBERTa-style) have no embedding for segment B
        self.use_token_types = getattr(encoder.config, 'type_vocab_size', 2) >= 2
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_outputs)
        # the encoder's own initialisation: normal(0, initializer_range), zero bias
        nn.init.normal_(self.head.weight, std=getattr(encoder.config, 'initializer_range', 0.02))
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids, attention_mask=input_ids != self.pad_token_id,
                              token_type_ids=token_type_ids if self.use_token_types else None
                              ).last_hidden_state  # (B, L, H)
        return self.head(self.dropout(hidden[:, 0]))  # (B, n_outputs)


def n_layers(model: SentenceClassifier) -> int:
    return model.encoder.config.num_hidden_layers


def layer_groups(model: SentenceClassifier) -> list[list[nn.Parameter]]:
    """A fastai splitter: [embeddings (+ embeddings_project), layer 0, ..., layer n-1, head]; the
    head group also takes whatever else the encoder holds (BERT's pooler, unused here)."""
    groups: list[list[nn.Parameter]] = [[] for _ in range(n_layers(model) + 2)]
    for name, p in model.named_parameters():
        layer = re.match(r'encoder\.encoder\.layer\.(\d+)\.', name)
        if layer:
            groups[int(layer.group(1)) + 1].append(p)
        elif re.match(r'encoder\.embeddings(_project)?\.', name):
            groups[0].append(p)
        else:
            groups[-1].append(p)
    if any(not g for g in groups):
        raise ValueError(f"cannot find the {n_layers(model)} layers of a {type(model.encoder).__name__} under "
                         f"encoder.layer.N; layer-wise learning rates need a BERT-style encoder")
    return groups


def layer_lr_scales(n_layers: int, decay: float) -> list[float]:
    """Learning-rate multipliers for [embeddings, layer 0, ..., layer n-1, head], Google's
    `_get_layer_lrs`: depth 0 for the embeddings, i + 1 for layer i, n + 2 for the head; a
    group at depth d gets decay ** (n + 2 - d). So the head trains at the full rate, the top
    layer at decay^2 and the embeddings at decay^(n + 2)."""
    if not 0 < decay <= 1:
        raise ValueError(f"layer decay must be in (0, 1] (1: no decay), got {decay}")
    depths = [0] + [i + 1 for i in range(n_layers)] + [n_layers + 2]
    return [decay ** (n_layers + 2 - d) for d in depths]


def default_layer_decay(n_layers: int) -> float:
    """0.8 as in ELECTRA's fine-tuning, 0.9 for the 24-layer large model."""
    return 0.9 if n_layers >= 24 else 0.8


def default_lr(hidden_size: int) -> float:
    """ELECTRA's fine-tuning peak learning rates: small 3e-4, base 1e-4, large 5e-5."""
    return 3e-4 if hidden_size <= 256 else 1e-4 if hidden_size <= 768 else 5e-5


def finetune_opt(params: list[list[nn.Parameter]], lr: float, eps: float = 1e-6, mom: float = 0.9,
                 sqr_mom: float = 0.999, weight_decay: float = 0.0) -> OptimWrapper:
    """A fastai `opt_func`: `ElectraAdam` without bias correction, one param group per entry of
    the splitter's output (so each layer can get its own learning rate), no weight decay."""
    groups = [dict(params=g) for g in params]
    return OptimWrapper(opt=ElectraAdam(groups, lr=lr, betas=(mom, sqr_mom), eps=eps, weight_decay=weight_decay,
                                        bias_correction=False))
