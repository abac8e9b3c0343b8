"""The fine-tuning models of ELECTRA's code: a pre-trained encoder and one dense layer, as Google's
`tf.layers.dense` builds it (Glorot-uniform weights, zero bias): on the dropped-out [CLS] state
for classification and regression, one score per option on [CLS] for multiple choice, a start
and an end logit per token for extractive QA. Layer-wise learning-rate decay; Adam without bias
correction, with weight decay on the weight matrices only."""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from fastai.optimizer import OptimWrapper
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from _utils.cli import first_line
from _utils.quiet_transformers import quiet_transformers
from pretrain.optim import ElectraAdam
from pretrain.prepare.vocab import check_tokenizer_files, check_vocabulary


def check_model_dir(model_dir: str | Path) -> Path:
    p = Path(model_dir)
    if not p.is_dir():
        raise ValueError(f"model directory {p} does not exist; export one with `python -m pretrain export`")
    if not (p / 'config.json').is_file():
        raise ValueError(f"{p} has no config.json; point --model at a Hugging Face model directory")
    return p


def load_tokenizer(model_dir: str | Path):
    """The tokenizer saved with the model (local files only), its vocabulary checked against its
    config (`pretrain.prepare.tokenizer.check_vocabulary`)."""
    p = check_model_dir(model_dir)
    check_tokenizer_files(p, 'model directory')
    try:
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as e:  # transformers raises OSError/ValueError/KeyError for broken dirs
        raise ValueError(f"cannot load a tokenizer from {p}: {first_line(e)}") from None
    return check_vocabulary(tok, p)  # a special token off its id would fine-tune on shifted ids


def load_config(model_dir: str | Path):
    """The model directory's config (AutoConfig, local files only)."""
    p = check_model_dir(model_dir)
    try:
        with quiet_transformers():
            return AutoConfig.from_pretrained(str(p), local_files_only=True)
    except Exception as e:
        raise ValueError(f"cannot read {p / 'config.json'}: {first_line(e)}") from None


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
            raise ValueError(f"cannot load model weights from {p}: {first_line(e)}") from None
    missing = sorted(k for k in info['missing_keys'] if not k.startswith('pooler.'))  # BERT's pooler is unused here
    if missing:
        raise ValueError(f"{p} lacks {len(missing)} encoder weight(s) (e.g. {missing[0]}); it is not a "
                         f"pre-trained encoder of type {config.model_type}")
    return encoder


def glorot_dense_(layer: nn.Linear) -> nn.Linear:
    """Initialise `layer` as `tf.layers.dense` does (Google's heads pass no initializer):
    Glorot-uniform weights, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), and a zero bias."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class _EncoderHead(nn.Module):
    """The encoder plus whether it takes token types (RoBERTa-style models have one type only)."""

    def __init__(self, encoder: PreTrainedModel, pad_token_id: int):
        super().__init__()
        self.encoder, self.pad_token_id = encoder, pad_token_id
        self.use_token_types = getattr(encoder.config, 'type_vocab_size', 2) >= 2

    def hidden(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """(B, L, H) last hidden states; padding positions masked from attention."""
        return self.encoder(input_ids, attention_mask=input_ids != self.pad_token_id,
                            token_type_ids=token_type_ids if self.use_token_types else None).last_hidden_state


class SentenceClassifier(_EncoderHead):
    """ELECTRA's classification / regression head: dropout then one dense layer on the [CLS]
    hidden state (Google's `get_pooled_output` is the [CLS] state itself, no pooler).

    forward(input_ids (B, L), token_type_ids (B, L)) -> (B, n_outputs) logits (scores for
    regression, n_outputs = 1). Padding positions (`pad_token_id`) are masked from attention.
    """

    def __init__(self, encoder: PreTrainedModel, n_outputs: int, pad_token_id: int, dropout: float = 0.1):
        super().__init__(encoder, pad_token_id)
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be positive, got {n_outputs}")
        self.dropout = nn.Dropout(dropout)
        self.head = glorot_dense_(nn.Linear(encoder.config.hidden_size, n_outputs))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.hidden(input_ids, token_type_ids)[:, 0]))  # (B, n_outputs)


class MultipleChoiceScorer(_EncoderHead):
    """Multiple choice: each option is read as [CLS] question [SEP] option [SEP]; dropout and one
    dense layer give one score per option on its [CLS] state; the scores of a question's options
    are its logits (softmax over the options in the loss).

    forward(input_ids (B, C, L), token_type_ids (B, C, L)) -> (B, C) scores."""

    def __init__(self, encoder: PreTrainedModel, pad_token_id: int, dropout: float = 0.1):
        super().__init__(encoder, pad_token_id)
        self.dropout = nn.Dropout(dropout)
        self.head = glorot_dense_(nn.Linear(encoder.config.hidden_size, 1))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        B, C, L = input_ids.shape
        cls = self.hidden(input_ids.reshape(B * C, L), token_type_ids.reshape(B * C, L))[:, 0]
        return self.head(self.dropout(cls)).reshape(B, C)


class SpanExtractor(_EncoderHead):
    """Extractive QA, Google's head without joint prediction (`joint_prediction=False` in
    configure_finetuning.py): one dense layer per token gives a start and an end logit, on the
    last hidden states without extra dropout. Positions outside the context (the question, the
    padding), except [CLS] at 0, get -1000 added, as Google's `answer_mask` does.

    forward(input_ids (B, L), token_type_ids (B, L)) -> (B, L, 2) start and end logits."""

    def __init__(self, encoder: PreTrainedModel, pad_token_id: int):
        super().__init__(encoder, pad_token_id)
        hidden = encoder.config.hidden_size
        self.head = nn.Linear(hidden, 2)
        # two dense layers of one output each in Google's code: Glorot with fan-out 1 per row
        bound = math.sqrt(6 / (hidden + 1))
        nn.init.uniform_(self.head.weight, -bound, bound)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.hidden(input_ids, token_type_ids)).float()  # (B, L, 2)
        allowed = (token_type_ids == 1) & (input_ids != self.pad_token_id)
        allowed[:, 0] = True
        return logits + 1000.0 * (allowed.unsqueeze(-1).float() - 1)


def build_model(encoder: PreTrainedModel, task_type: str, n_outputs: int, pad_token_id: int,
                dropout: float = 0.1) -> nn.Module:
    """The head of `task_type` on `encoder`."""
    if task_type in ('classification', 'regression'):
        return SentenceClassifier(encoder, n_outputs, pad_token_id, dropout)
    if task_type == 'multiple_choice':
        return MultipleChoiceScorer(encoder, pad_token_id, dropout)
    if task_type == 'extractive_qa':
        return SpanExtractor(encoder, pad_token_id)
    raise ValueError(f"no head for task type {task_type!r}")


def n_layers(model: nn.Module) -> int:
    return model.encoder.config.num_hidden_layers


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
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


def decayed(p: nn.Parameter) -> bool:
    """Whether Google's optimizer decays `p`: it excludes LayerNorm weights and biases
    (`exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"]`), which in a BERT-style
    model are exactly the 1-D parameters (`pretrain.optim.param_groups`'s rule)."""
    return p.ndim >= 2


def finetune_opt(params: list[list[nn.Parameter]], lr: float, eps: float = 1e-6, mom: float = 0.9,
                 sqr_mom: float = 0.999, weight_decay: float = 0.01) -> OptimWrapper:
    """A fastai `opt_func`: `ElectraAdam` without bias correction (Google's
    `AdamWeightDecayOptimizer`), decoupled weight decay `weight_decay` (Google's fine-tuning
    rate: 0.01) on the weight matrices only, never on LayerNorm weights or biases.

    `params`: the splitter's groups (embeddings, each layer, head); each becomes a param group
    of decayed and one of undecayed parameters, both marked with the splitter group's index
    ('layer'), so each layer keeps its own learning rate."""
    groups = []
    for i, g in enumerate(params):
        for decay in (True, False):
            ps = [p for p in g if decayed(p) == decay]
            if ps:
                groups.append(dict(params=ps, layer=i, weight_decay=weight_decay if decay else 0.0))
    return OptimWrapper(opt=ElectraAdam(groups, lr=lr, betas=(mom, sqr_mom), eps=eps, bias_correction=False))
