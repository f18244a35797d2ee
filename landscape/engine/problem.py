"""The problem a loss surface or a curvature is computed for: a model, its loss, its data.

Every function of the engine that evaluates ``L(theta) = loss_fn(f(theta; X), y)`` at many
parameter points (`landscape.engine.surface`, `landscape.engine.curvature`) takes one `Problem`
instead of repeating ``model, loss_fn, X, y`` and their options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

MiB = 2**20
# Working memory per pass (not counting the data and the model): small on a CPU, where chunks
# that stay in cache run fastest; large on a GPU, where big batches do.
DEFAULT_BUDGET = {"cpu": 64 * MiB}
DEFAULT_BUDGET_ACCELERATOR = 1024 * MiB


def cross_entropy_over_positions(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every sample and position, classes on the last axis.

    ``outputs`` (n, ..., C) scores, ``labels`` (n, ...) integers in ``[0, C)``:
    ``L = (1 / N) sum_p -log softmax(outputs_p)[labels_p]`` over the ``N`` positions ``p``;
    for outputs (n, C) and labels (n,) this is ``F.cross_entropy``. A causal language model's
    logits (n, T, V) against next tokens (n, T) average over all ``n T`` predictions.
    """
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), labels.reshape(-1))


class Problem:
    """A model, a loss that averages over samples, and the data, on the model's device.

    ``X`` (n, ...) and ``y`` (n, ...) are moved to the device of the model's parameters, and
    floating-point data take the parameters' dtype (integer labels stay integers).
    ``memory_budget`` bounds the working memory of one pass over a chunk of parameter points,
    in bytes (at least 1 MiB); ``None`` takes 64 MiB on a CPU and 1 GiB on an accelerator.
    The model itself is not copied: callers that evaluate it leave it as it was.

    ``batch_rows`` evaluates the data in batches of at most that many consecutive rows
    (`batches`): a loss that averages over samples is ``L = sum_k (n_k / n) L_k`` over batches
    of ``n_k`` rows, so the surface functions accumulate ``(n_k / n) L_k`` in float64 and give
    the one-batch result to float rounding, with the activations of one batch in memory at a
    time. ``None`` (or ``>= n``): one batch.

    Attributes: ``model``, ``loss_fn``, ``X``, ``y`` (tensors, converted), ``device``,
    ``dtype`` (of the parameters), ``memory_budget`` (bytes, resolved), ``batch_rows`` (None
    when unbatched).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        X: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
        *,
        memory_budget: int | None = None,
        batch_rows: int | None = None,
    ) -> None:
        first = next(iter(model.parameters()), None)
        if first is None:
            raise ValueError("model must have at least one parameter")
        self.model, self.loss_fn = model, loss_fn
        self.device: torch.device = first.device
        self.dtype: torch.dtype = first.dtype
        self.X = _on(first, X)
        self.y = _on(first, y)
        if self.X.shape[0] != self.y.shape[0] or self.X.shape[0] == 0:
            raise ValueError(
                f"X and y must have the same number n >= 1 of rows, got {self.X.shape[0]} and "
                f"{self.y.shape[0]}"
            )
        self.memory_budget = _budget(memory_budget, self.device)
        if batch_rows is not None and (int(batch_rows) != batch_rows or batch_rows < 1):
            raise ValueError(f"batch_rows must be an integer >= 1 or None, got {batch_rows}")
        n = self.n_samples
        self.batch_rows = None if batch_rows is None or batch_rows >= n else int(batch_rows)

    @property
    def n_samples(self) -> int:
        """``n``, the number of rows of ``X`` and ``y``."""
        return int(self.X.shape[0])

    def sample(self, sample_size: int, seed: int) -> Problem:
        """The same problem on ``sample_size`` rows drawn without replacement (seeded)."""
        n = self.n_samples
        if int(sample_size) != sample_size or not 1 <= sample_size <= n:
            raise ValueError(f"sample_size must be an integer in [1, {n}], got {sample_size}")
        generator = torch.Generator().manual_seed(int(seed))
        keep = torch.randperm(n, generator=generator)[: int(sample_size)].to(self.device)
        return Problem(
            self.model,
            self.loss_fn,
            self.X[keep],
            self.y[keep],
            memory_budget=self.memory_budget,
            batch_rows=self.batch_rows,
        )

    def batches(self) -> Iterator[tuple[Problem, float]]:
        """``(part, n_k / n)`` for consecutive batches of at most ``batch_rows`` rows (views of
        ``X`` and ``y``, unbatched problems); the problem itself with weight 1.0 when
        unbatched."""
        if self.batch_rows is None:
            yield self, 1.0
            return
        n = self.n_samples
        for start in range(0, n, self.batch_rows):
            stop = min(start + self.batch_rows, n)
            part = Problem(
                self.model,
                self.loss_fn,
                self.X[start:stop],
                self.y[start:stop],
                memory_budget=self.memory_budget,
            )
            yield part, (stop - start) / n

    def __repr__(self) -> str:
        return (
            f"Problem({type(self.model).__name__}, X {tuple(self.X.shape)}, "
            f"y {tuple(self.y.shape)}, {self.device}, {self.dtype}, "
            f"memory_budget={self.memory_budget}, batch_rows={self.batch_rows})"
        )


def _on(reference: torch.Tensor, data: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``data`` on the reference's device; floating-point data in the reference's dtype."""
    t = torch.as_tensor(data).to(reference.device)
    return t.to(reference.dtype) if t.is_floating_point() else t


def _budget(memory_budget: int | None, device: torch.device) -> int:
    if memory_budget is None:
        return DEFAULT_BUDGET.get(device.type, DEFAULT_BUDGET_ACCELERATOR)
    if int(memory_budget) != memory_budget or memory_budget < MiB:
        raise ValueError(f"memory_budget must be an integer >= {MiB} bytes, got {memory_budget}")
    return int(memory_budget)
