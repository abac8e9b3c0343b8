"""pretrain/run/metrics.py on hand-made logits with hand-computed values; AUC against scikit-learn."""
import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from pretrain.run.metrics import (average_ranks, disc_accuracy, disc_auc, disc_loss, electra_metrics, mlm_accuracy,
                              mlm_loss, replaced_precision_recall, roc_auc)

GEN_LOGITS = torch.tensor([[2.0, 1.0, 0.0, 0.0],
                           [0.0, 0.0, 3.0, 0.0],
                           [1.0, 0.0, 0.0, 5.0]])
GEN_TARGETS = torch.tensor([0, 1, 3])  # argmax is [0, 2, 3]: 2 of 3 right

# row 1's last token is padding: it is "replaced" with a negative logit, so counting it would
# change every metric
DISC_LOGITS = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 3.0, -2.0]])
IS_REPLACED = torch.tensor([[True, False, False], [False, True, True]])
NON_PAD = torch.tensor([[True, True, True], [True, True, False]])


def softplus(x):
    return math.log1p(math.exp(x))


def test_mlm_accuracy_and_loss():
    assert mlm_accuracy(GEN_LOGITS, GEN_TARGETS).item() == pytest.approx(2 / 3)
    nll = [-(2 - math.log(math.exp(2) + math.exp(1) + 2)),
           -(0 - math.log(3 + math.exp(3))),
           -(5 - math.log(math.exp(1) + 2 + math.exp(5)))]
    assert mlm_loss(GEN_LOGITS, GEN_TARGETS).item() == pytest.approx(sum(nll) / 3, rel=1e-6)


def test_mlm_metrics_are_nan_without_masked_positions():
    empty = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    assert math.isnan(mlm_accuracy(*empty).item()) and math.isnan(mlm_loss(*empty).item())


def test_discriminator_metrics_over_non_pad_tokens():
    # non-pad: logits [2, -1, 0.5, -0.5, 3], targets [1, 0, 0, 0, 1], predicted [1, 0, 1, 0, 1]
    assert disc_accuracy(DISC_LOGITS, IS_REPLACED, NON_PAD).item() == pytest.approx(4 / 5)
    precision, recall = replaced_precision_recall(DISC_LOGITS, IS_REPLACED, NON_PAD)
    assert precision.item() == pytest.approx(2 / 3) and recall.item() == pytest.approx(1.0)
    expected = (softplus(-2) + softplus(-1) + softplus(0.5) + softplus(-0.5) + softplus(-3)) / 5
    assert disc_loss(DISC_LOGITS, IS_REPLACED, NON_PAD).item() == pytest.approx(expected, rel=1e-6)
    assert disc_auc(DISC_LOGITS, IS_REPLACED, NON_PAD) == 1.0  # both positives outscore all negatives
    # without the mask the padded "replaced" token counts: recall 2/3, AUC 4/6
    assert replaced_precision_recall(DISC_LOGITS, IS_REPLACED)[1].item() == pytest.approx(2 / 3)
    assert disc_auc(DISC_LOGITS, IS_REPLACED) == pytest.approx(4 / 6)


def test_precision_recall_nan_when_undefined():
    logits, replaced = torch.tensor([-1.0, -2.0]), torch.tensor([False, False])
    precision, recall = replaced_precision_recall(logits, replaced)
    assert math.isnan(precision.item()) and math.isnan(recall.item())


def test_average_ranks_share_tied_ranks():
    assert average_ranks(torch.tensor([10.0, 20.0, 20.0, 30.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert average_ranks(torch.tensor([3.0, 1.0, 3.0, 3.0])).tolist() == [3.0, 1.0, 3.0, 3.0]


def test_auc_with_ties_by_hand():
    # pairs (pos, neg): 0.4 vs 0.1 -> 1, 0.4 vs 0.4 -> 1/2, 0.8 vs both -> 2: 3.5 / 4
    assert roc_auc(torch.tensor([0.1, 0.4, 0.4, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.875


def test_auc_single_class_is_nan():
    assert math.isnan(roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([True, True])))
    assert math.isnan(roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([False, False])))


@pytest.mark.parametrize('seed', range(5))
def test_auc_matches_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.rand(500, generator=g) < 0.2
    # rounded scores: many ties; shifted by label: an informative score
    scores = (torch.randn(500, generator=g) + labels.float()).mul(4).round() / 4
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-12)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match='shapes differ'):
        disc_accuracy(DISC_LOGITS, IS_REPLACED[:, :2], NON_PAD)
    with pytest.raises(ValueError, match=r'gen_logits must be \(M, V\)'):
        mlm_accuracy(GEN_LOGITS, GEN_TARGETS[:2])
    with pytest.raises(ValueError, match='scores contain nan'):
        roc_auc(torch.tensor([math.nan, 1.0]), torch.tensor([True, False]))


def test_electra_metrics_from_model_outputs():
    is_mlm = torch.tensor([[True, False, True], [False, True, False]])
    labels = torch.full((2, 3), -100).masked_scatter(is_mlm, GEN_TARGETS)
    pred = (GEN_LOGITS, None, DISC_LOGITS, IS_REPLACED, NON_PAD, is_mlm)
    m = electra_metrics(pred, labels)
    assert list(m) == ['gen_loss', 'disc_loss', 'gen_acc', 'disc_acc', 'disc_precision', 'disc_recall', 'disc_auc']
    assert m['gen_acc'] == pytest.approx(2 / 3) and m['disc_acc'] == pytest.approx(4 / 5)
    assert m['disc_precision'] == pytest.approx(2 / 3) and m['disc_auc'] == 1.0


def test_mean_pairwise_cosine_is_the_mean_over_distinct_pairs():
    from pretrain.run.metrics import mean_pairwise_cosine
    torch.manual_seed(0)
    states = torch.randn(7, 5)
    unit = F.normalize(states, dim=-1)
    sims = unit @ unit.T
    brute = (sims.sum() - sims.diagonal().sum()) / (7 * 6)
    assert mean_pairwise_cosine(states) == pytest.approx(brute.item(), abs=1e-6)
    assert mean_pairwise_cosine(torch.ones(4, 3) * torch.tensor([[1.0], [2.0], [3.0], [4.0]])) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.eye(3)) == pytest.approx(0.0)
    assert math.isnan(mean_pairwise_cosine(torch.ones(1, 3)))
    with pytest.raises(ValueError, match=r'must be \(N, H\)'):
        mean_pairwise_cosine(torch.ones(2, 3, 4))
