"""Task metrics on numpy arrays: accuracy, binary F1 and Matthews correlation for
classification, Pearson and Spearman correlation for regression, accuracy for multiple choice,
exact match and F1 for extractive QA (SQuAD's word F1, or JSQuAD's character F1 as JGLUE
computes it). Every metric is higher-is-better, so "best over seeds" is the maximum."""
from __future__ import annotations

import collections
import math
import re
import string

import numpy as np
import torch

from pretrain.run.metrics import average_ranks

CLASSIFICATION_METRICS = ('accuracy', 'f1', 'mcc')
REGRESSION_METRICS = ('spearman', 'pearson')
MULTIPLE_CHOICE_METRICS = ('accuracy',)
QA_METRICS = ('exact_match', 'f1')
F1_UNITS = ('word', 'char')  # extractive QA's F1: SQuAD's over words, JGLUE's over characters
PUNCTUATION = frozenset(string.punctuation)


def accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    return float((preds == labels).mean())


def f1_binary(preds: np.ndarray, labels: np.ndarray, positive: int = 1) -> float:
    """F1 of the `positive` class; 0 when it is neither predicted nor present."""
    tp = int(((preds == positive) & (labels == positive)).sum())
    denom = int((preds == positive).sum() + (labels == positive).sum())
    return 2 * tp / denom if denom else 0.0


def matthews_corrcoef(preds: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation (multi-class form, from the confusion matrix); 0 when a side is
    constant, as scikit-learn reports it."""
    n = int(max(preds.max(), labels.max())) + 1
    confusion = np.zeros((n, n), dtype=np.float64)
    np.add.at(confusion, (labels, preds), 1)
    t, p = confusion.sum(1), confusion.sum(0)  # true / predicted counts per class
    s, c = confusion.sum(), np.trace(confusion)
    denom = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / denom) if denom else 0.0


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; nan when either side is constant."""
    x, y = x.astype(np.float64) - x.mean(), y.astype(np.float64) - y.mean()
    denom = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom else math.nan


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation: Pearson of the (tie-averaged) ranks."""
    return pearson(average_ranks(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy(),
                   average_ranks(torch.from_numpy(np.asarray(y, dtype=np.float64))).numpy())


def task_metrics(task_type: str, outputs: np.ndarray, labels: np.ndarray, n_labels: int = 2) -> dict[str, float]:
    """The metrics of a task from the model's outputs on the dev set.

    classification: outputs (N, C) logits, labels (N,) ids -> accuracy, f1 (of id 1, when
    binary), mcc. regression: outputs (N,) or (N, 1), labels (N,) -> spearman, pearson.
    """
    labels = np.asarray(labels)
    if task_type == 'classification':
        preds = np.asarray(outputs).argmax(-1)
        out = {'accuracy': accuracy(preds, labels)}
        if n_labels == 2:
            out['f1'] = f1_binary(preds, labels)
        out['mcc'] = matthews_corrcoef(preds, labels)
        return out
    preds = np.asarray(outputs, dtype=np.float64).reshape(-1)
    return {'spearman': spearman(preds, labels), 'pearson': pearson(preds, labels)}


def multiple_choice_metrics(outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """outputs (N, C): one score per option; the prediction is the best-scored option."""
    return {'accuracy': accuracy(np.asarray(outputs).argmax(-1), np.asarray(labels))}


# ---- extractive QA ----------------------------------------------------------------------------
def normalize_squad(text: str) -> str:
    """SQuAD v1.1's official normalisation: lower case, no punctuation, no articles (a, an, the),
    single spaces."""
    text = ''.join(c for c in text.lower() if c not in PUNCTUATION)
    return ' '.join(re.sub(r'\b(a|an|the)\b', ' ', text).split())


def normalize_jsquad(text: str) -> str:
    """JGLUE's normalisation for JSQuAD (its patch of transformers' squad_metrics): lower case,
    punctuation kept, a final 。 removed instead of articles, single spaces."""
    return ' '.join(text.lower().rstrip('。').split())


def qa_scores(prediction: str, golds: list[str], unit: str = 'word') -> tuple[float, float]:
    """(exact match, F1) of one prediction against its gold answers, the best over the golds.
    unit 'word': SQuAD's F1 over the words of the normalised texts; 'char': JGLUE's F1 over the
    characters of JSQuAD's normalised texts (spaces included, as JGLUE counts them)."""
    if unit not in F1_UNITS:
        raise ValueError(f"unknown F1 unit {unit!r}; use 'word' (SQuAD) or 'char' (JSQuAD)")
    normalize = normalize_squad if unit == 'word' else normalize_jsquad
    pieces = (lambda t: normalize(t).split()) if unit == 'word' else (lambda t: list(normalize(t)))
    golds = [g for g in golds if normalize(g)] or ['']  # as squad_evaluate: empty golds count as ''
    pred = pieces(prediction)
    em = f1 = 0.0
    for gold in golds:
        em = max(em, float(normalize(gold) == normalize(prediction)))
        ref = pieces(gold)
        if not ref or not pred:
            f1 = max(f1, float(ref == pred))
            continue
        same = sum((collections.Counter(ref) & collections.Counter(pred)).values())
        if same:
            precision, recall = same / len(pred), same / len(ref)
            f1 = max(f1, 2 * precision * recall / (precision + recall))
    return em, f1


def qa_metrics(predictions: list[str], golds: list[list[str]], unit: str = 'word') -> dict[str, float]:
    """Mean exact match and F1 over the questions, as fractions (the official scripts print
    them x 100)."""
    scores = [qa_scores(p, g, unit) for p, g in zip(predictions, golds)]
    return {'exact_match': float(np.mean([s[0] for s in scores])), 'f1': float(np.mean([s[1] for s in scores]))}


def summarize(values: list[float]) -> dict:
    """mean, std (sample standard deviation; 0 for one run), best (max) and the runs themselves."""
    arr = np.asarray(values, dtype=np.float64)
    return {'mean': float(arr.mean()), 'std': float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            'best': float(arr.max()), 'runs': [float(v) for v in arr]}
