"""ELECTRA's replaced-token-detection task: a small generator fills the masked positions,
the discriminator tells which tokens were replaced."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from _utils.cli import first_line
from pretrain.config import SAMPLINGS, check_allowed



def build_electra(disc_config: ElectraConfig, gen_config: ElectraConfig) -> tuple[ElectraForMaskedLM, ElectraForPreTraining]:
    """A fresh (generator, discriminator) pair with ELECTRA's weight sharing (see `tie_embeddings`)."""
    generator, discriminator = ElectraForMaskedLM(gen_config), ElectraForPreTraining(disc_config)
    tie_embeddings(generator, discriminator)
    return generator, discriminator


def tie_embeddings(generator: ElectraForMaskedLM, discriminator: ElectraForPreTraining) -> None:
    """Share the whole embedding block (word, position, token type and its LayerNorm) and tie
    the generator's output layer to the word embeddings (it keeps its own bias). Each model
    keeps its own `embeddings_project` when embedding size != hidden size."""
    discriminator.electra.embeddings = generator.electra.embeddings
    generator.generator_lm_head.weight = generator.electra.embeddings.word_embeddings.weight


def from_pretrained_pair(generator_dir: str | Path, discriminator_dir: str | Path,
                         freeze_layers: int = 0) -> tuple[ElectraForMaskedLM, ElectraForPreTraining]:
    """Continue pre-training from local Hugging Face ELECTRA directories (ours from
    `python -m pretrain export`, or e.g. a copy of google/electra-small-*).

    The discriminator's embeddings become the shared block again (the two saved copies may have
    drifted apart in other projects); `freeze_layers` stops training the lowest N transformer
    layers of both models.
    """
    for d in (generator_dir, discriminator_dir):
        if not (Path(d) / 'config.json').is_file():
            raise ValueError(f"{str(d)!r} is not a Hugging Face model directory (no config.json)")
    try:
        generator = ElectraForMaskedLM.from_pretrained(str(generator_dir), local_files_only=True)
        discriminator = ElectraForPreTraining.from_pretrained(str(discriminator_dir), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot load the ELECTRA pair: {first_line(e)}") from None
    g, d = generator.config, discriminator.config
    if (g.vocab_size, g.embedding_size) != (d.vocab_size, d.embedding_size):
        raise ValueError(f"generator and discriminator cannot share embeddings: vocab/embedding sizes "
                         f"{(g.vocab_size, g.embedding_size)} vs {(d.vocab_size, d.embedding_size)}")
    generator.electra.embeddings = discriminator.electra.embeddings
    generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
    for model in (generator, discriminator):
        if freeze_layers > model.config.num_hidden_layers:
            raise ValueError(f"freeze_layers={freeze_layers} but the model has {model.config.num_hidden_layers} layers")
        for layer in model.electra.encoder.layer[:freeze_layers]:
            layer.requires_grad_(False)
    return generator, discriminator


def mask_slots(is_mlm_applied: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Google's fixed mask slots: the first `n` masked positions of each row, in order (B, n),
    and which slots hold one (B, n) bool. A sort, so no host sync and static shapes; rows must
    have at most `n` masked positions (Google's exact count guarantees it)."""
    order = is_mlm_applied.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :n]
    return order, is_mlm_applied.gather(1, order)


def gen_logits_at_masks(mlm_gen_logits: torch.Tensor, is_mlm_applied: torch.Tensor) -> torch.Tensor:
    """The generator's logits as (M, V) rows in the order of `labels[is_mlm_applied]`, from either
    path: (M, V) already, or (B, N, V) slots of the static path (unused slots dropped)."""
    if mlm_gen_logits.dim() == 2:
        return mlm_gen_logits
    _, used = mask_slots(is_mlm_applied, mlm_gen_logits.shape[1])
    return mlm_gen_logits[used]


def gumbel_noise(shape: torch.Size, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """g = -log(-log(u + 1e-9) + 1e-9), u ~ U(0, 1), as in Google's implementation."""
    u = torch.rand(shape, device=device, dtype=dtype)
    return -torch.log(-torch.log(u + 1e-9) + 1e-9)


def pad_mask_and_token_types(input_ids: torch.Tensor, sentA_lengths: torch.Tensor,
                              pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """attention_mask (B, L) bool, token_type_ids (B, L): 0 for [CLS] A [SEP], 1 for B [SEP],
    0 on padding. Computed on the device: no `.tolist()` host sync (the seed's had one)."""
    attention_mask = input_ids != pad_token_id
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    token_type_ids = ((positions[None, :] >= sentA_lengths[:, None]) & attention_mask).long()
    return attention_mask, token_type_ids


def masked_lm_logits(mlm: ElectraForMaskedLM, masked_inputs: torch.Tensor, attention_mask: torch.Tensor,
                     token_type_ids: torch.Tensor, is_mlm_applied: torch.Tensor,
                     n_slots: int | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A masked-LM model's logits at the masked positions only (Google gathers before the output
    layer: M rows, not B * L): (M, V) in the order of `labels[is_mlm_applied]`, or with `n_slots`
    N (static shapes) (B, N, V) for the first N masked positions of each row, with those positions
    (B, N) and which slots hold one (B, N) bool (else None, None)."""
    hidden = mlm.electra(masked_inputs, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state  # (B, L, H)
    positions = used = None
    if n_slots:
        positions, used = mask_slots(is_mlm_applied, n_slots)
        hidden = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))  # (B, N, H)
    else:
        hidden = hidden[is_mlm_applied]  # (M, H)
    return mlm.generator_lm_head(mlm.generator_predictions(hidden)), positions, used


class ElectraOutput(tuple):
    """`ELECTRAModel`'s outputs by name: `mlm_gen_logits` (M, V) or (B, N, V), `generated` (B, L),
    `disc_logits` (B, L), `is_replaced` (B, L) bool, `attention_mask` (B, L) bool (non-pad),
    `is_mlm_applied` (B, L) bool. Still the seed's 6-tuple by position. Not a NamedTuple:
    fastai rebuilds outputs as `type(x)(list)` (`to_float` under mixed precision), which a
    NamedTuple's constructor refuses and a tuple subclass takes."""
    __slots__ = ()

    mlm_gen_logits = property(lambda self: self[0])
    generated = property(lambda self: self[1])
    disc_logits = property(lambda self: self[2])
    is_replaced = property(lambda self: self[3])
    attention_mask = property(lambda self: self[4])
    is_mlm_applied = property(lambda self: self[5])


class ELECTRAModel(nn.Module):
    """Generator + discriminator for one pre-training step.

    forward(masked_inputs (B, L), sentA_lengths (B,), is_mlm_applied (B, L) bool, labels (B, L))
    returns (mlm_gen_logits (M, V) at the M masked positions, generated (B, L) discriminator
    input, disc_logits (B, L), is_replaced (B, L) bool, attention_mask (B, L) bool,
    is_mlm_applied (B, L)).

    With `max_predictions` N (static shapes, as Google's TF code): the generator works on N
    mask slots per row, gathered and scattered with `mask_slots`; `mlm_gen_logits` is then
    (B, N, V) and nothing in the step depends on the number of masked tokens, so there is no
    host sync and `torch.compile` sees one shape. Same math as the boolean-indexing path.
    """
    PARTS = ('generator', 'discriminator')  # the Hugging Face models inside: checkpoints and exports name them

    def __init__(self, generator: ElectraForMaskedLM, discriminator: ElectraForPreTraining, hf_tokenizer,
                 sampling: str = 'fp32_gumbel', temperature: float = 1.0, max_predictions: int | None = None):
        super().__init__()
        check_allowed('sampling', sampling, SAMPLINGS)
        self.generator, self.discriminator = generator, discriminator
        self.pad_token_id = hf_tokenizer.pad_token_id
        self.sampling, self.temperature, self.max_predictions = sampling, temperature, max_predictions

    def _get_pad_mask_and_token_type(self, input_ids: torch.Tensor, sentA_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_mask_and_token_types(input_ids, sentA_lengths, self.pad_token_id)

    @property
    def finetuned_encoder(self) -> nn.Module:
        """The encoder users fine-tune: the discriminator's."""
        return self.discriminator.electra

    def n_slots(self, length: int) -> int | None:
        """Mask slots per row on the static path for rows of `length` tokens; None on the
        boolean-indexing path. The loss denominators of gradient accumulation count these too."""
        return min(self.max_predictions, length) if self.max_predictions else None

    def forward(self, masked_inputs: torch.Tensor, sentA_lengths: torch.Tensor, is_mlm_applied: torch.Tensor,
                labels: torch.Tensor):
        attention_mask, token_type_ids = self._get_pad_mask_and_token_type(masked_inputs, sentA_lengths)
        mlm_gen_logits, positions, used = masked_lm_logits(self.generator, masked_inputs, attention_mask, token_type_ids,
                                                           is_mlm_applied, self.n_slots(masked_inputs.shape[1]))
        with torch.no_grad():
            pred_toks = self.sample(mlm_gen_logits)  # (M,) or (B, N)
            if self.max_predictions:  # unused slots write back the token already there
                pred_toks = torch.where(used, pred_toks, masked_inputs.gather(1, positions))
                generated = masked_inputs.scatter(1, positions, pred_toks)  # (B, L)
            else:
                generated = masked_inputs.masked_scatter(is_mlm_applied, pred_toks)  # (B, L)
            # a sampled token equal to the original counts as original
            is_replaced = is_mlm_applied & (generated != labels)
        disc_logits = self.discriminator(generated, attention_mask=attention_mask,
                                         token_type_ids=token_type_ids).logits  # (B, L)
        return ElectraOutput((mlm_gen_logits, generated, disc_logits, is_replaced, attention_mask, is_mlm_applied))

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        """Token ids (...) drawn from the generator's logits (..., V); no gradient flows through."""
        if self.sampling == 'fp32_gumbel':  # fp16 noise is wrong: its log(-log u) saturates
            return (logits.float() / self.temperature + gumbel_noise(logits.shape, logits.device)).argmax(-1)
        if self.sampling == 'fp16_gumbel':  # noise in the logits' own dtype, as the original fp16 runs did
            return (logits / self.temperature + gumbel_noise(logits.shape, logits.device, logits.dtype)).argmax(-1)
        probs = F.softmax(logits.float() / self.temperature, dim=-1)
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])


class MLMOutput(tuple):
    """`MLMModel`'s outputs by name: `mlm_gen_logits` (M, V) or (B, N, V) as `ElectraOutput`'s,
    `attention_mask` (B, L) bool (non-pad), `is_mlm_applied` (B, L) bool."""
    __slots__ = ()

    mlm_gen_logits = property(lambda self: self[0])
    attention_mask = property(lambda self: self[1])
    is_mlm_applied = property(lambda self: self[2])


class MLMModel(nn.Module):
    """BERT's masked-LM pre-training of one encoder the discriminator's size: the baseline the
    ELECTRA paper compares against at equal compute (Google's `electra_objective=False`). Same
    inputs, masking and mask slots as `ELECTRAModel`; the output layer (tied to the word
    embeddings) runs at masked positions only.

    forward(masked_inputs (B, L), sentA_lengths (B,), is_mlm_applied (B, L) bool, labels (B, L))
    returns an `MLMOutput` (mlm_gen_logits (M, V) or (B, N, V), attention_mask, is_mlm_applied).
    """
    PARTS = ('mlm',)

    def __init__(self, mlm: ElectraForMaskedLM, hf_tokenizer, max_predictions: int | None = None):
        super().__init__()
        self.mlm = mlm
        self.pad_token_id = hf_tokenizer.pad_token_id
        self.max_predictions = max_predictions

    @property
    def finetuned_encoder(self) -> nn.Module:
        return self.mlm.electra

    def n_slots(self, length: int) -> int | None:
        """As `ELECTRAModel.n_slots`: mask slots per row on the static path, else None."""
        return min(self.max_predictions, length) if self.max_predictions else None

    def forward(self, masked_inputs: torch.Tensor, sentA_lengths: torch.Tensor, is_mlm_applied: torch.Tensor,
                labels: torch.Tensor) -> MLMOutput:
        attention_mask, token_type_ids = pad_mask_and_token_types(masked_inputs, sentA_lengths, self.pad_token_id)
        logits, _, _ = masked_lm_logits(self.mlm, masked_inputs, attention_mask, token_type_ids, is_mlm_applied,
                                        self.n_slots(masked_inputs.shape[1]))
        return MLMOutput((logits, attention_mask, is_mlm_applied))


def build_mlm(config: ElectraConfig) -> ElectraForMaskedLM:
    """A fresh masked-LM model of `config` (the discriminator's), its output layer tied to the word
    embeddings as BERT's and ELECTRA's generator's are."""
    return ElectraForMaskedLM(config)


def mlm_losses(mlm_gen_logits: torch.Tensor, targ_ids: torch.Tensor, is_mlm_applied: torch.Tensor,
               label_smooth: float = 0.0) -> tuple[torch.Tensor, int | None]:
    """Cross-entropy per masked position, unreduced: (M,) on the boolean path, (B * N,) on the
    static path (0 in unused slots), and the slots per row (None on the boolean path)."""
    if mlm_gen_logits.dim() == 3:  # static slots (B, N, V): weighted, no boolean indexing
        positions, used = mask_slots(is_mlm_applied, mlm_gen_logits.shape[1])
        targets = targ_ids.gather(1, positions).clamp(min=0)
        losses = F.cross_entropy(mlm_gen_logits.flatten(0, 1).float(), targets.flatten(),
                                 label_smoothing=label_smooth, reduction='none') * used.flatten()
        return losses, mlm_gen_logits.shape[1]
    return F.cross_entropy(mlm_gen_logits.float(), targ_ids[is_mlm_applied], label_smoothing=label_smooth,
                           reduction='none'), None


class ELECTRALoss:
    """loss = w_gen * MLM cross-entropy (mean over masked positions)
             + w_disc * sigmoid cross-entropy (mean over non-pad tokens), weights (1, 50).

    Label smoothing (a float, or True for 0.1): for the generator, the usual smoothed
    cross-entropy; for the discriminator, original tokens get target `disc_label_smooth`.
    The last step's parts are kept detached in `last_losses` (generator, discriminator).

    The means divide sums by `counts` (generator, discriminator): by default this batch's own
    (`loss_counts`), made global over data-parallel ranks (`global_counts`); under gradient
    accumulation the whole step's, given by `AccumulationMaskedLM` (pretrain/grad_accum.py).
    """

    def __init__(self, loss_weights: tuple[float, float] = (1.0, 50.0), gen_label_smooth: float | bool = False,
                 disc_label_smooth: float | bool = False):
        self.loss_weights = loss_weights
        self.gen_label_smooth = 0.1 if gen_label_smooth is True else float(gen_label_smooth or 0.0)
        self.disc_label_smooth = 0.1 if disc_label_smooth is True else float(disc_label_smooth or 0.0)
        self.last_losses: tuple[torch.Tensor, torch.Tensor] | None = None

    PARTS = ('gen_loss', 'disc_loss')  # the names of `last_losses`, columns of the training log

    @classmethod
    def from_config(cls, c) -> ELECTRALoss:
        """The loss of config `c`: weights `c.loss_weights` (Google's 1 and 50) and label smoothing."""
        return cls(c.loss_weights, c.gen_smooth_label, c.disc_smooth_label)

    def __call__(self, pred, targ_ids: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """pred: `ELECTRAModel`'s outputs; targ_ids (B, L) labels (-100 where not masked);
        counts: (2,) float denominators, already global (None: this batch's). Returns the scalar loss."""
        pred = ElectraOutput(pred)
        mlm_gen_logits, disc_logits, is_replaced = pred.mlm_gen_logits, pred.disc_logits, pred.is_replaced
        non_pad, is_mlm_applied = pred.attention_mask, pred.is_mlm_applied
        gen_losses, n_slots = mlm_losses(mlm_gen_logits, targ_ids, is_mlm_applied, self.gen_label_smooth)
        targets = is_replaced.float()
        if self.disc_label_smooth:
            targets = targets.masked_fill(~is_replaced, self.disc_label_smooth)
        disc_losses = F.binary_cross_entropy_with_logits(disc_logits.float(), targets, reduction='none') * non_pad
        if counts is None:
            counts = global_counts(loss_counts(is_mlm_applied, non_pad, n_slots))
        gen_loss, disc_loss = gen_losses.sum() / counts[0], disc_losses.sum() / counts[1]
        self.last_losses = (gen_loss.detach(), disc_loss.detach())
        return gen_loss * self.loss_weights[0] + disc_loss * self.loss_weights[1]


class MLMLoss:
    """BERT's loss: `weight` * masked-LM cross-entropy, mean over masked positions (label
    smoothing optional), for `MLMModel`. `last_losses` holds the detached generator part; the
    denominators come as `ELECTRALoss`'s (`counts`: this batch's, global over ranks, or the
    whole step's under gradient accumulation; only the first, masked positions, is used)."""
    PARTS = ('gen_loss',)

    def __init__(self, weight: float = 1.0, label_smooth: float | bool = False):
        self.weight = weight
        self.label_smooth = 0.1 if label_smooth is True else float(label_smooth or 0.0)
        self.last_losses: tuple[torch.Tensor] | None = None

    def __call__(self, pred, targ_ids: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        pred = MLMOutput(pred)
        losses, n_slots = mlm_losses(pred.mlm_gen_logits, targ_ids, pred.is_mlm_applied, self.label_smooth)
        if counts is None:
            counts = global_counts(loss_counts(pred.is_mlm_applied, pred.attention_mask, n_slots))
        loss = losses.sum() / counts[0]
        self.last_losses = (loss.detach(),)
        return loss * self.weight


def loss_from_config(c) -> ELECTRALoss | MLMLoss:
    """The loss of config `c`'s objective: ELECTRA's (generator + 50 x discriminator) or, for the
    MLM baseline, the generator weight times the masked-LM loss (Google's gen_weight, 1)."""
    if c.objective == 'mlm':
        return MLMLoss(c.loss_weights[0], c.gen_smooth_label)
    return ELECTRALoss.from_config(c)


def loss_counts(is_mlm_applied: torch.Tensor, non_pad: torch.Tensor, n_slots: int | None = None) -> torch.Tensor:
    """`ELECTRALoss`'s denominators for one batch, (2,) float: the masked positions the generator
    is scored on and the non-pad tokens. is_mlm_applied, non_pad: (B, L) bool. With `n_slots`
    (static shapes), only a row's first `n_slots` masked positions have a slot (`mask_slots`),
    so only those count."""
    per_row = is_mlm_applied.sum(1)
    if n_slots is not None:
        per_row = per_row.clamp(max=n_slots)
    return torch.stack([per_row.sum(), non_pad.sum()]).float()


def global_counts(counts: torch.Tensor) -> torch.Tensor:
    """Denominators for means over the *global* batch under data parallelism.

    DDP averages gradients over ranks; dividing each rank's sum by (global count / world size)
    makes that average equal the gradient of the mean over all ranks' positions, whatever each
    rank's share of masked or non-pad tokens. One process: the counts themselves.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        counts = counts.clone()
        dist.all_reduce(counts)
        counts = counts / dist.get_world_size()
    return counts
