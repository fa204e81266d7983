"""The math of fitting a projection head: shrinkage LDA and an L2 multinomial logistic regression
on (n, d) vectors and integer labels, each returning the head's (mean, weight, bias)."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

# Parameters chosen on a held-out 10% of CIFAR-10's train split (never the test split), with
# EfficientNet-Lite0 features: benchmarks/bench_better_neighbours.py heads.
LDA_SHRINKAGE = 0.01  # 0.0 scored 0.002 higher but is singular whenever a split has fewer images than dims
LOGREG_L2 = 3e-3  # penalty on the mean cross-entropy, for standardised features
LOGREG_MAX_ITER = 60


def _class_stats(x: np.ndarray, y: np.ndarray, n_classes: int):
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        missing = int(np.flatnonzero(counts == 0)[0])
        raise InvalidInputError(f"class {missing} has no training vectors; a head needs every class")
    sums = np.zeros((n_classes, x.shape[1]), dtype=np.float64)
    np.add.at(sums, y, x)
    return counts, sums / counts[:, None]


def fit_lda(x: np.ndarray, y: np.ndarray, n_classes: int, shrinkage: float = LDA_SHRINKAGE):
    """(mean, weight, bias) of shrinkage LDA: ``n_classes - 1`` directions, ``W^T S_w W = I``."""
    from scipy.linalg import eigh

    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    xc = x - mean
    counts, class_means = _class_stats(xc, y, n_classes)
    within = xc - class_means[y]
    d = x.shape[1]
    sw = within.T @ within / max(1, len(x) - n_classes)
    sw = (1.0 - shrinkage) * sw + shrinkage * (np.trace(sw) / d) * np.eye(d)
    priors = counts / counts.sum()
    sb = (class_means * priors[:, None]).T @ class_means
    n_out = min(n_classes - 1, d)
    evals, evecs = eigh(sb, sw, subset_by_index=[d - n_out, d - 1])
    weight = evecs[:, np.argsort(-evals)]
    # a fixed sign per direction, so refits give identical vectors
    weight *= np.sign(weight[np.abs(weight).argmax(axis=0), np.arange(n_out)])
    return mean, weight, np.zeros(n_out)


def fit_logreg(
    x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = LOGREG_L2, max_iter: int = LOGREG_MAX_ITER
):
    """(mean, weight, bias) of an L2 multinomial logistic regression (L-BFGS on standardised inputs).

    Each L-BFGS step reads the whole training matrix twice, so the fit is bound by memory
    bandwidth: the loss and gradient are computed in float32 (the optimiser's state stays
    float64) and ``max_iter`` is capped where held-out precision had stopped changing.
    """
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=0, dtype=np.float64)
    scale = x.std(axis=0, dtype=np.float64)
    scale[scale < 1e-8] = 1.0
    z = ((x - mean) / scale).astype(np.float32)
    n, d = z.shape
    rows = np.arange(n)

    def loss(params):
        w = params[: d * n_classes].reshape(d, n_classes)
        b = params[d * n_classes :]
        logp = log_softmax(z @ w.astype(np.float32) + b.astype(np.float32), axis=1)
        value = -float(logp[rows, y].sum(dtype=np.float64)) / n + 0.5 * l2 * float((w * w).sum())
        delta = np.exp(logp)
        delta[rows, y] -= 1.0
        delta /= n
        grad_w = (z.T @ delta).astype(np.float64) + l2 * w
        return value, np.concatenate([grad_w.ravel(), delta.sum(axis=0, dtype=np.float64)])

    start = np.zeros(d * n_classes + n_classes)
    result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    w = result.x[: d * n_classes].reshape(d, n_classes)
    b = result.x[d * n_classes :]
    return mean, w / scale[:, None], b
