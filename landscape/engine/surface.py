"""Loss surfaces ``Z[i, j] = L(f(theta + alpha_i d1 + beta_j d2; X), y)``, many points per pass.

Three ways to evaluate a grid, all returning the same numbers (``method=``):

- ``"fast"``: a ``MultiBranchNet`` with one hidden layer. The hidden pre-activation is affine in
  the grid coordinates, ``X (W + a U + b V)^T + (c + a u + b v) = P0 + a P1 + b P2``, so the three
  ``(n, I*w)`` products are computed once; a grid row then costs, per cache-sized block of
  samples, one outer-product update, the activation and one batched product with the output
  weights ``W2 + a U2 + b_j V2`` of every ``beta_j``.
- ``"vmap"``: any ``nn.Module``: ``torch.func.functional_call`` under ``vmap`` over chunks of grid
  points, the chunk size chosen from a memory budget. The ``Linear``/``Conv`` calls whose input
  does not depend on the parameters are first hoisted out of the loop (`landscape.engine.hoisting`:
  their outputs are affine in the grid coordinates), whatever the model's class. Where ``vmap``
  cannot run the model (an LSTM: no batching rule for ``aten::lstm.input``), the same chunks are
  evaluated one ``functional_call`` per point, by itself, with the same numbers
  (`landscape.engine.grid_points`); `path_taken` names the path.
- ``"loop"``: the per-point baseline of the usual tools: load the weights into the model, forward
  the whole data set, repeat (the only way for TorchScript models, which ``torch.func`` rejects).

``"auto"`` picks the first that applies. The model is evaluated in eval mode and is left as it
was: same parameters, same training flag. Nothing here changes process-wide state; the command
line tunes glibc's allocator for chunked work (`landscape.server.heap.tune_for_chunked_work`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from landscape.engine.directions import Params, parameters_of
from landscape.engine.grid_points import (
    WRITE_IN_PATH,
    GridPlane,
    PointLosses,
    batched_loss,
    chunked_points,
    loop_path,
    vmap_refusal,
    write_in_points,
)
from landscape.engine.hoisting import data_calls
from landscape.engine.nets import MultiBranchNet
from landscape.engine.problem import MiB, Problem
from landscape.engine.progress import Progress

METHODS = ("auto", "fast", "vmap", "loop")
CPU_BLOCK_BYTES = MiB // 2


def surface_2d(
    problem: Problem,
    d1: Mapping[str, torch.Tensor],
    d2: Mapping[str, torch.Tensor],
    alphas: Sequence[float] | np.ndarray,
    betas: Sequence[float] | np.ndarray,
    *,
    center: Mapping[str, torch.Tensor] | None = None,
    method: str = "auto",
    progress: Progress | None = None,
) -> np.ndarray:
    """``Z[i, j] = loss_fn(f(theta + alphas[i] d1 + betas[j] d2; X), y)``, shape (A, B), float64.

    ``theta`` is ``center`` (default: the model's parameters); ``d1``, ``d2`` and ``center`` are
    shaped like the model's parameters. ``problem.loss_fn`` must average over the samples; one
    pass uses at most about ``problem.memory_budget`` bytes of working memory. For a surface on
    a sub-sample, pass ``problem.sample(size, seed)``.
    """
    a = _grid("alphas", alphas)
    b = _grid("betas", betas)
    if problem.batch_rows is not None:
        return over_batches(
            problem,
            lambda part, report: surface_2d(
                part, d1, d2, a, b, center=center, method=method, progress=report
            ),
            progress,
        )
    plane = GridPlane.build(problem, center, {"d1": d1, "d2": d2})
    chosen = _choose_method(method, problem.model)
    with eval_mode(problem.model), torch.no_grad():
        if chosen == "fast":
            Z = _fast_multibranch(plane, a, b, problem.memory_budget, progress)
        else:
            coords = np.stack(np.meshgrid(a, b, indexing="ij"), axis=-1).reshape(-1, 2)
            Z = _points(plane, coords, problem.memory_budget, chosen, progress).values
            Z = Z.reshape(len(a), len(b))
    return Z


def surface_points(
    problem: Problem,
    d1: Mapping[str, torch.Tensor],
    d2: Mapping[str, torch.Tensor],
    coords: Sequence[Sequence[float]] | np.ndarray,
    *,
    center: Mapping[str, torch.Tensor] | None = None,
) -> np.ndarray:
    """``z[p] = loss_fn(f(theta + coords[p, 0] d1 + coords[p, 1] d2; X), y)`` for scattered
    points (a trajectory, marked models), shape (P,); by ``vmap``, or per point where ``vmap``
    cannot run the model (TorchScript: the loop)."""
    points = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(points)):
        raise ValueError("coords must be finite (P, 2) coordinates")
    if problem.batch_rows is not None:
        return over_batches(
            problem, lambda part, _: surface_points(part, d1, d2, points, center=center), None
        )
    plane = GridPlane.build(problem, center, {"d1": d1, "d2": d2})
    method = "loop" if isinstance(problem.model, torch.jit.ScriptModule) else "vmap"
    with eval_mode(problem.model), torch.no_grad():
        return _points(plane, points, problem.memory_budget, method, None).values


def over_batches(
    problem: Problem,
    evaluate: Callable[[Problem, Progress | None], np.ndarray],
    progress: Progress | None,
) -> np.ndarray:
    """``sum_k (n_k / n) evaluate(part_k)`` over ``problem.batches()``, in float64: a loss that
    averages over samples, evaluated batch by batch (one batch: ``evaluate(problem)`` exactly)."""
    parts = list(problem.batches())
    total: np.ndarray | None = None
    for k, (part, weight) in enumerate(parts):
        report = None
        if progress is not None:

            def report(fraction: float, stage: str, k: int = k) -> None:
                progress((k + fraction) / len(parts), f"Batch {k + 1} of {len(parts)}: {stage}")

        value = np.asarray(evaluate(part, report), dtype=np.float64)
        total = value * weight if total is None else total + value * weight
    assert total is not None
    return total


def surface_2d_band(
    problem: Problem,
    d1: Mapping[str, torch.Tensor],
    d2: Mapping[str, torch.Tensor],
    alphas: Sequence[float] | np.ndarray,
    betas: Sequence[float] | np.ndarray,
    *,
    sample_size: int,
    repeats: int = 5,
    seed: int = 0,
    center: Mapping[str, torch.Tensor] | None = None,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof=1) of ``repeats`` sub-sampled surfaces, each (A, B).

    Surface ``r`` uses ``sample_size`` samples drawn with seed ``seed + r``
    (``problem.sample``); the band ``mean +/- std`` shows how much a surface drawn on a sample
    moves with the sample.
    """
    if int(repeats) != repeats or repeats < 2:
        raise ValueError(f"repeats must be an integer >= 2, got {repeats}")
    surfaces = np.stack(
        [
            surface_2d(
                problem.sample(sample_size, seed + r),
                d1,
                d2,
                alphas,
                betas,
                center=center,
                method=method,
            )
            for r in range(int(repeats))
        ]
    )
    return surfaces.mean(0), surfaces.std(0, ddof=1)


def surface_1d(
    problem: Problem,
    d: Mapping[str, torch.Tensor],
    alphas: Sequence[float] | np.ndarray,
    *,
    center: Mapping[str, torch.Tensor] | None = None,
    method: str = "auto",
    progress: Progress | None = None,
) -> np.ndarray:
    """``z[i] = loss_fn(f(theta + alphas[i] d; X), y)``, shape (A,); as ``surface_2d``."""
    zero = {name: torch.zeros_like(t) for name, t in d.items()}
    Z = surface_2d(problem, d, zero, alphas, [0.0], center=center, method=method, progress=progress)
    return Z[:, 0]


def interpolate(
    problem: Problem,
    start: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    ts: Sequence[float] | np.ndarray,
    *,
    method: str = "auto",
    progress: Progress | None = None,
) -> np.ndarray:
    """Loss on the segment between two checkpoints: ``z[i] = L((1 - t_i) start + t_i end)``,
    shape (len(ts),): ``surface_1d`` along ``end - start`` from ``start``."""
    d = {name: end[name] - start[name] for name in start}
    return surface_1d(problem, d, ts, center=start, method=method, progress=progress)


def _grid(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of finite numbers, got shape {array.shape}"
        )
    return array


def _choose_method(method: str, model: nn.Module) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    fast_ok = has_fast_path(model)
    scripted = isinstance(model, torch.jit.ScriptModule)
    if method == "fast" and not fast_ok:
        raise ValueError("method='fast' needs a MultiBranchNet with depth 1")
    if method == "vmap" and scripted:
        raise ValueError("method='vmap' cannot run a TorchScript model; use 'loop'")
    return auto_method(model) if method == "auto" else method


def auto_method(model: nn.Module) -> str:
    """The path ``method="auto"`` takes for this model: ``"fast"``, ``"vmap"`` or ``"loop"``."""
    if has_fast_path(model):
        return "fast"
    return "loop" if isinstance(model, torch.jit.ScriptModule) else "vmap"


def path_taken(problem: Problem, center: Mapping[str, torch.Tensor] | None = None) -> str:
    """The path ``method="auto"`` takes, in words: ``"fast"``, ``"loop"``, or the chunked path
    with the layers it hoists out of the grid loop, e.g. ``"vmap, hoisted: 0 (Linear)"``, or,
    where ``vmap`` cannot run the model (found by one probe point),
    ``"loop (vmap has no batching rule for aten::lstm.input), nothing hoisted"``."""
    model = problem.model
    method = auto_method(model)
    if method == "loop":
        return WRITE_IN_PATH
    if method != "vmap":
        return method
    center = parameters_of(model) if center is None else center
    with eval_mode(model), torch.no_grad():
        calls = data_calls(model, problem.X, center, max_bytes=problem.memory_budget)
        refusal = _probe_vmap(problem, center)
    path = "vmap" if refusal is None else loop_path(refusal)
    if not calls:
        return path + ", nothing hoisted"
    names = (f"{c.layer} ({type(model.get_submodule(c.layer)).__name__})" for c, _ in calls)
    return f"{path}, hoisted: " + ", ".join(names)


def _probe_vmap(problem: Problem, center: Mapping[str, torch.Tensor]) -> str | None:
    """`vmap_refusal` for the model's forward at ``center`` (one point)."""
    params = {name: t[None] for name, t in center.items()}

    def forward(point: Params) -> torch.Tensor:
        return functional_call(problem.model, point, (problem.X,))

    def losses(outputs: torch.Tensor) -> torch.Tensor:
        return batched_loss(problem.loss_fn, outputs, problem.y)

    return vmap_refusal(
        lambda: losses(vmap(forward)(params)),
        lambda: losses(forward(dict(center))[None]),
    )


def has_fast_path(model: nn.Module) -> bool:
    """True when ``surface_2d`` has a structure-aware path for this model."""
    return (
        isinstance(model, MultiBranchNet)
        and model.depth == 1
        and type(model).forward is MultiBranchNet.forward
    )


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the block with every submodule in eval mode, then restore each one's flag."""
    modes = {name: m.training for name, m in model.named_modules()}
    model.eval()
    try:
        yield
    finally:
        for name, m in model.named_modules():
            m.training = modes[name]


def _points(
    plane: GridPlane, coords: np.ndarray, budget: int, method: str, progress: Progress | None
) -> PointLosses:
    """Losses at ``center + coords[p, 0] d1 + coords[p, 1] d2``, shape (P,), and the path."""
    if method == "loop":
        return write_in_points(plane, coords, progress)
    return chunked_points(plane, coords, budget, progress)


# --------------------------------------------------------------------------------------------
# The multi-branch path.


def _stacked(model: MultiBranchNet, params: Params) -> tuple[torch.Tensor, ...]:
    """``(W1, b1, W2, b2)`` with branches stacked: (I*w, d), (I*w,), (k, I*w) / I, mean bias."""
    branches = range(model.num_branches)
    W1 = torch.cat([params[f"branches.{i}.0.weight"] for i in branches])
    b1 = torch.cat([params[f"branches.{i}.0.bias"] for i in branches])
    W2 = torch.cat([params[f"branches.{i}.2.weight"] for i in branches], dim=1)
    b2 = torch.stack([params[f"branches.{i}.2.bias"] for i in branches]).mean(0)
    return W1, b1, W2 / model.num_branches, b2


def _fast_multibranch(
    plane: GridPlane, alphas: np.ndarray, betas: np.ndarray, budget: int, progress: Progress | None
) -> np.ndarray:
    """Rows of the grid for ``f(x) = (1/I) sum_i V_i s(W_i x + c_i) + e_i`` (one hidden layer).

    With ``W(a, b) = W + a U + b V`` for every weight, the hidden pre-activation of all branches
    is ``P0 + a P1 + b P2`` (n, I*w), three products computed once; for a row ``a`` the outputs
    at all ``b_j`` are ``s(Q + b_j P2) (W2 + a U2 + b_j V2)^T + bias(a, b_j)``, ``Q = P0 + a P1``:
    one outer-product update, the activation, and one batched product per block of samples.
    """
    model = plane.model
    assert isinstance(model, MultiBranchNet)
    X = plane.X.reshape(plane.X.shape[0], -1)
    n = X.shape[0]
    W1, b1, W2, b2 = _stacked(model, plane.center)
    U1, u1, U2, u2 = _stacked(model, plane.directions["d1"])
    V1, v1, V2, v2 = _stacked(model, plane.directions["d2"])
    P0, P1, P2 = (torch.addmm(bias, X, W.T) for W, bias in ((W1, b1), (U1, u1), (V1, v1)))
    k_out = W2.shape[0]
    J, m, blocks = _block_shape(plane.device, budget, P0, len(betas))
    grid = _BlockBuffers(P0, P1, P2, J, m, blocks, len(betas), k_out)
    b_all = torch.as_tensor(betas, device=plane.device, dtype=P0.dtype)
    activation = _in_place_activation(model)
    Z = np.empty((len(alphas), len(betas)))
    for i, a in enumerate(alphas.tolist()):
        torch.add(grid.P0, grid.P1, alpha=a, out=grid.Q)
        Wa, ba = torch.add(W2, U2, alpha=a), torch.add(b2, u2, alpha=a)
        for j0 in range(0, len(betas), J):
            bj = b_all[j0 : j0 + J]
            # Output weights and biases at every beta of the chunk: (width, k, K), (width, k).
            weights = torch.addcmul(Wa, bj[:, None, None], V2)
            biases = torch.addcmul(ba, bj[:, None], v2)
            grid.fill_logits(j0, bj, weights, biases, activation)
        losses = batched_loss(plane.loss_fn, grid.logits[:, :, :n].transpose(1, 2), plane.y)
        Z[i] = losses.cpu().numpy()
        if progress is not None:
            progress((i + 1) / len(alphas), f"Surface row {i + 1} of {len(alphas)}")
    return Z


def _block_shape(
    device: torch.device, budget: int, P0: torch.Tensor, n_betas: int
) -> tuple[int, int, int]:
    """Betas per block ``J``, samples per block ``m`` and the number of sample blocks.

    One block of activations (betas x samples x units) takes a quarter of the budget, and on a
    CPU at most CPU_BLOCK_BYTES per thread, so that it stays in cache between its three passes.
    """
    n, K = P0.shape
    block_bytes = budget // 4
    if device.type == "cpu":
        block_bytes = min(block_bytes, CPU_BLOCK_BYTES * torch.get_num_threads())
    block = max(1, block_bytes // (P0.element_size() * K))
    J = min(n_betas, block)
    m = max(1, min(n, block // J))
    return J, m, -(-n // m)


class _BlockBuffers:
    """The multi-branch path's buffers, allocated once and refilled in place for every row.

    Samples are padded to whole blocks (zero rows, dropped before the loss); buffers are reused
    across blocks and rows, since fresh large tensors cost page faults on every allocation.
    """

    def __init__(
        self,
        P0: torch.Tensor,
        P1: torch.Tensor,
        P2: torch.Tensor,
        J: int,
        m: int,
        blocks: int,
        n_betas: int,
        k_out: int,
    ) -> None:
        K = P0.shape[1]
        pad = blocks * m - P0.shape[0]
        self.P0, self.P1, P2 = (torch.cat([P, P.new_zeros(pad, K)]) for P in (P0, P1, P2))
        self.Q = torch.empty_like(self.P0)
        self.Q_blocks = self.Q.view(blocks, 1, m * K).unbind(0)  # views: Q is refilled per row
        self.P2_blocks = P2.view(blocks, m * K).unbind(0)
        device, dtype = P0.device, P0.dtype
        self.hidden = torch.empty(J * m * K, device=device, dtype=dtype)
        self.products = torch.empty(blocks, J * k_out * m, device=device, dtype=dtype)
        self.logits = torch.empty(n_betas, k_out, blocks * m, device=device, dtype=dtype)
        self.m, self.K, self.k_out, self.blocks = m, K, k_out, blocks

    def fill_logits(
        self,
        j0: int,
        bj: torch.Tensor,
        weights: torch.Tensor,
        biases: torch.Tensor,
        activation: Callable[[torch.Tensor], object],
    ) -> None:
        """``logits[j0 : j0 + len(bj)]`` = ``s(Q + b_j P2) weights_j^T + biases_j``, block by
        block of samples (``Q`` holds ``P0 + a P1`` for the current row)."""
        m, K, k_out, blocks, width = self.m, self.K, self.k_out, self.blocks, len(bj)
        h = self.hidden[: width * m * K].view(width, m * K)
        hT = h.view(width, m, K).transpose(1, 2)
        out = self.products[:, : width * k_out * m]
        targets = out.view(blocks, width, k_out, m).unbind(0)
        for q, p, target in zip(self.Q_blocks, self.P2_blocks, targets, strict=True):
            torch.addr(q, bj, p, out=h)
            activation(h)
            torch.bmm(weights, hT, out=target)
        # (blocks, width, k, m) + bias -> logits (width, k, blocks * m), in one pass
        torch.add(
            out.view(blocks, width, k_out, m).permute(1, 2, 0, 3),
            biases[:, :, None, None],
            out=self.logits[j0 : j0 + width].view(width, k_out, blocks, m),
        )


def _in_place_activation(model: MultiBranchNet) -> Callable[[torch.Tensor], object]:
    """The branches' activation, applied in place."""
    if model.activation == "relu":
        return torch.relu_
    if model.activation == "tanh":
        return torch.tanh_
    if model.activation == "linear":
        return lambda h: h
    return lambda h: h.copy_(model.act(h))
