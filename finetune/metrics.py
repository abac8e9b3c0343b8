"""Task metrics on numpy arrays: accuracy, binary F1 and Matthews correlation for
classification, Pearson and Spearman correlation for regression. Every metric is
higher-is-better, so "best over seeds" is the maximum."""
from __future__ import annotations

import math

import numpy as np
import torch

from pretrain.metrics import average_ranks

CLASSIFICATION_METRICS = ('accuracy', 'f1', 'mcc')
REGRESSION_METRICS = ('spearman', 'pearson')


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


def summarize(values: list[float]) -> dict:
    """mean, std (sample standard deviation; 0 for one run), best (max) and the runs themselves."""
    arr = np.asarray(values, dtype=np.float64)
    return {'mean': float(arr.mean()), 'std': float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            'best': float(arr.max()), 'runs': [float(v) for v in arr]}
