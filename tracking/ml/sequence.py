"""A small LSTM over the last N bars of a few channels, on CPU, seeded and deterministic.

Framework: **autograd** (HIPS; reverse-mode differentiation of NumPy code, the library JAX grew out of) —
0.7 MB installed, pure Python over NumPy, so every operation runs in NumPy's deterministic kernels on the
CPU.  Measured on this machine (README "Sequence model"): JAX 0.10 adds 383 MB, PyTorch's CPU build 754 MB,
tinygrad 0.14 40 MB but its CPU device compiles kernels with ``clang`` (not on a fresh machine; without it
no CPU device exists, and its pure-Python fallback took 12 s for 5 steps of a linear model).

The estimator follows scikit-learn's ``fit`` / ``predict_proba``; its input is one row per sample holding
the window as columns (:func:`tracking.ml.feature_registry.window_columns`: ``channel__tK`` = the channel K
sessions earlier), so a registered pyfunc model needs nothing but the row, like the tree models.

Model: per-channel standardization (training-window mean/std; missing values -> 0 after it, clipped to
±5), one LSTM layer of ``hidden`` units (forget-gate bias 1), a logistic output on the last hidden state;
log-loss + L2, Adam (autograd's), mini-batches in a seeded order.  The same seed, data and parameters give
bitwise the same weights.
"""

from __future__ import annotations

from typing import Any

import autograd.numpy as anp
import numpy as np
import pandas as pd
from autograd import grad
from autograd.misc.optimizers import adam

from tracking.ml.feature_registry import window_columns


def _sigmoid(z: Any) -> Any:
    return 0.5 * (anp.tanh(0.5 * z) + 1.0)


def _forward(p: dict[str, Any], x: Any, hidden: int) -> Any:
    """Logit of P(up) for ``x`` of shape (batch, window, channels)."""
    n = x.shape[0]
    h = anp.zeros((n, hidden))
    c = anp.zeros((n, hidden))
    for t in range(x.shape[1]):
        z = anp.dot(x[:, t, :], p["wx"]) + anp.dot(h, p["wh"]) + p["b"]
        i = _sigmoid(z[:, :hidden])
        f = _sigmoid(z[:, hidden : 2 * hidden] + 1.0)
        o = _sigmoid(z[:, 2 * hidden : 3 * hidden])
        g = anp.tanh(z[:, 3 * hidden :])
        c = f * c + i * g
        h = o * anp.tanh(c)
    return anp.dot(h, p["v"]) + p["c"][0]


class SequenceClassifier:
    """LSTM classifier of "forward return > 0" over a window of ``window`` bars of ``channels``."""

    def __init__(
        self,
        channels: list[str],
        window: int = 10,
        hidden: int = 8,
        epochs: int = 4,
        learning_rate: float = 0.01,
        l2: float = 1e-4,
        batch_size: int = 1024,
        max_rows: int | None = 5000,
        seed: int = 0,
    ) -> None:
        self.channels = list(channels)
        self.window = int(window)
        self.hidden = int(hidden)
        self.epochs = int(epochs)
        self.learning_rate = float(learning_rate)
        self.l2 = float(l2)
        self.batch_size = int(batch_size)
        self.max_rows = max_rows
        self.seed = int(seed)
        self.params_: dict[str, np.ndarray] | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    @property
    def feature_names_in_(self) -> list[str]:
        return window_columns(self.channels, self.window)

    def _tensor(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame[self.feature_names_in_].to_numpy(dtype=float)
        return x.reshape(len(frame), len(self.channels), self.window).transpose(0, 2, 1)

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        assert self.mean_ is not None and self.scale_ is not None
        z = (x - self.mean_) / self.scale_
        return np.clip(np.nan_to_num(z, nan=0.0), -5.0, 5.0)

    def fit(self, frame: pd.DataFrame, y: Any) -> SequenceClassifier:
        labels = np.asarray(y, dtype=float)
        x = self._tensor(frame)
        if self.max_rows is not None and len(x) > self.max_rows:  # the most recent rows of the window
            x, labels = x[-self.max_rows :], labels[-self.max_rows :]
        flat = x.reshape(-1, len(self.channels))
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(flat, axis=0)
            sd = np.nanstd(flat, axis=0)
        self.mean_ = np.nan_to_num(mean, nan=0.0)
        self.scale_ = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        xs = self._scaled(x)
        rng = np.random.default_rng(self.seed)
        n_in, h = len(self.channels), self.hidden
        params: dict[str, np.ndarray] = {
            "wx": rng.standard_normal((n_in, 4 * h)) / np.sqrt(n_in + h),
            "wh": rng.standard_normal((h, 4 * h)) / np.sqrt(n_in + h),
            "b": np.zeros(4 * h),
            "v": rng.standard_normal(h) * 0.1,
            "c": np.zeros(1),
        }
        bs = max(1, min(self.batch_size, len(xs)))
        order = np.concatenate([rng.permutation(len(xs)) for _ in range(self.epochs)])
        l2 = self.l2

        def objective(p: dict[str, Any], it: int) -> Any:
            idx = order[it * bs : (it + 1) * bs]
            z = _forward(p, xs[idx], h)
            loss = anp.mean(anp.logaddexp(0.0, z) - labels[idx] * z)
            return loss + l2 * (anp.sum(p["wx"] ** 2) + anp.sum(p["wh"] ** 2) + anp.sum(p["v"] ** 2))

        steps = max(1, int(np.ceil(len(order) / bs)))
        self.params_ = adam(grad(objective), params, step_size=self.learning_rate, num_iters=steps)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self.params_ is None:
            raise RuntimeError("SequenceClassifier is not fitted")
        xs = self._scaled(self._tensor(pd.DataFrame(frame)))
        p = 1.0 / (1.0 + np.exp(-np.asarray(_forward(self.params_, xs, self.hidden), dtype=float)))
        return np.column_stack([1.0 - p, p])
