"""The Lab's data, models and training: full-batch Adam, shared between runs and stored with the
presets.

Runs that differ only in what the training does not read (the range, the resolution, the
curvature grid) share one training (`trained`, keyed by `reuse.TRAINING`). The training of a
key that a stored preset has is read back from it (`restored`) instead of trained again.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine import datasets
from landscape.engine.device import resolve_device
from landscape.engine.directions import Params, parameters_of
from landscape.engine.nets import MultiBranchNet, mlp
from landscape.engine.problem import LossFn
from landscape.engine.progress import Progress, silent
from landscape.files import presets, uploads
from landscape.server import seeding, study_parts
from landscape.server.threads import limited_threads
from landscape.studies.lab.config import STUDY, Config
from landscape.studies.lab.reuse import TRAINING

MOONS_SAMPLES = 400
MAX_CHECKPOINTS = 60


class Diverged(Exception):
    """Training met a non-finite loss; `run` turns it into a `Result` with ``diverged=True``."""

    def __init__(self, message: str, model: nn.Module, history: np.ndarray) -> None:
        super().__init__(message)
        self.message, self.model, self.history = message, model, history


@dataclass
class Data:
    """The data as arrays (``X`` (n, ...), ``y`` (n,) labels or (n, k) targets) and tensors."""

    X: np.ndarray
    y: np.ndarray
    task: str  # "classification" or "regression"
    X_t: torch.Tensor  # float32 on the device
    y_t: torch.Tensor  # labels, or float32 targets
    loss_fn: LossFn  # cross-entropy or mean squared error
    outputs: int  # the model's output width: classes, or targets per sample


@dataclass
class Trained:
    """The trained models (three for the three-model plane) and the first one's history."""

    models: list[nn.Module]
    history: np.ndarray  # (E,) loss per epoch of models[0]
    trajectory: list[Params]  # checkpoints of models[0], initial to final
    start: Params  # models[0] before training
    restored: bool = False  # read from the presets' stored training (`restored`), not trained


_FLIGHTS_LOCK = threading.Lock()
_FLIGHTS: dict[Config, threading.Lock] = {}  # one training per key at a time


def training_key(config: Config) -> Config:
    """``config`` with every field that the data and the training do not read set to its
    default: configurations with equal keys share one training (`trained`)."""
    return TRAINING.key(config)


def trained(config: Config, report: Progress) -> tuple[Data, Trained]:
    """The data and the trained models of ``config`` (`shared_training`), the models this
    caller's own copies: ``torch.func.functional_call`` (the surface, the curvature) swaps a
    module's parameters in place while it evaluates, and forward hooks are the module's, so two
    runs evaluating one module object at once (the run queue runs several ranges of one
    training at once) would read each other's weights."""
    data, found = shared_training(config, report)
    return data, replace(found, models=[copy.deepcopy(m) for m in found.models])


def shared_training(config: Config, report: Progress) -> tuple[Data, Trained]:
    """The data and the trained models of ``config``, kept under its `training_key`: moving the
    range, the resolution or the curvature controls reuses them. The kept models are never
    evaluated, only copied (`trained`). One training per key at a time: a second caller waits
    for the first one's models (`prepare` may have started it). A diverged training raises
    `Diverged` and is not kept. A key that a stored preset has is restored from it."""
    key = training_key(config)
    with _FLIGHTS_LOCK:
        found = _kept_training(key)
        flight = _FLIGHTS.setdefault(key, threading.Lock())
    if found is not None:
        return found
    try:
        with flight:
            found = _kept_training(key)
            if found is None:
                data = prepare_data(config)
                found = (data, restored(config, data) or train_models(config, data, report))
                study_parts.keep(TRAINING.table, key, found)
    finally:
        with _FLIGHTS_LOCK:
            _FLIGHTS.pop(key, None)
    return found


def _kept_training(key: Config) -> tuple[Data, Trained] | None:
    """The training kept under ``key``, unless it was restored from a stored preset and this
    is inside `presets.afresh` (where everything is computed anew)."""
    found = study_parts.kept(TRAINING.table, key)
    if found is not None and found[1].restored and presets.afresh_active():
        return None
    return found


def trained_ready(config: Config) -> bool:
    """Whether the models of ``config`` are trained (or restored) and kept (`trained`)."""
    return TRAINING.held(config)


def prepare(config: Config) -> None:
    """Train ``config``'s models now and keep them (`shared_training`), so that the runs that
    follow (a new range or resolution) find them; a page calls it in the background while it
    shows a stored preset. A diverged training is left for `run` to report."""
    config.validate()
    with limited_threads(1):
        try:
            shared_training(config, silent)
        except Diverged:
            pass


def prepare_data(config: Config) -> Data:
    """The configured data set on the configured device, with its task and loss."""
    device = resolve_device(config.device)
    X, y, task = _data(config)
    X_t = torch.as_tensor(X, dtype=torch.float32, device=device)
    y_t = torch.as_tensor(y, device=device)
    y_t = y_t.float() if task == "regression" else y_t
    loss_fn: LossFn = F.cross_entropy if task == "classification" else F.mse_loss
    outputs = int(y.max()) + 1 if task == "classification" else int(np.prod(y.shape[1:]) or 1)
    return Data(X, y, task, X_t, y_t, loss_fn, outputs)


def _data(config: Config) -> tuple[np.ndarray, np.ndarray, str]:
    """``X``, ``y`` and the task of the configured data set; ``y`` (n, k) for regression."""
    if config.dataset == "digits":
        X, y = datasets.digits()
    elif config.dataset == "iris":
        X, y = datasets.iris()
    elif config.dataset == "moons":
        X, y = datasets.two_dimensional("moons", MOONS_SAMPLES, 0.2, config.seed)
    else:
        X, y = uploads.load_table(uploads.fetch(config.data_upload), config.data_name)
    if config.sample_size > len(y):
        raise ValueError(
            f"sample_size must be in [0, {len(y)}] for this data, got {config.sample_size}"
        )
    task = uploads.task_of(y)
    if task == "regression" and y.ndim == 1:
        y = y[:, None]  # one output per sample: (n, 1), as the model returns it
    return X, y, task


def build_model(
    config: Config, X: np.ndarray, y: np.ndarray, task: str, outputs: int, seed: int
) -> nn.Module:
    """The configured model for data ``X`` (n, d), ``y`` with ``outputs`` outputs, initialised
    from ``seed`` (an uploaded model is checked against the data instead)."""
    if config.model == "upload":
        model = uploads.load_model(uploads.fetch(config.model_upload)).float()
        uploads.check_model(model, X, y, task)
        return model
    if X.ndim != 2:
        raise ValueError(f"built-in models need flat features (n, d), got X of shape {X.shape}")
    with seeding.seeded(seed):
        if config.model == "multibranch":
            built: nn.Module = MultiBranchNet(
                X.shape[1],
                outputs,
                config.branches,
                config.width,
                config.depth,
                config.activation,
            )
        else:
            built = mlp(X.shape[1], outputs, [config.hidden, config.hidden], config.activation)
    return built


def model_name(config: Config, shape: tuple[int, ...], outputs: int) -> str:
    """The model as the page names it, e.g. ``MLP 64-32-32-10 (relu)``."""
    if config.model == "upload":
        return "uploaded ONNX model"
    if config.model == "multibranch":
        return (
            f"MultiBranchNet({shape[0]}, {outputs}, branches={config.branches}, "
            f"width={config.width}, depth={config.depth}, {config.activation})"
        )
    return f"MLP {shape[0]}-{config.hidden}-{config.hidden}-{outputs} ({config.activation})"


def model_count(config: Config) -> int:
    """How many models are trained: three for the three-model plane (seeds ``seed + k``)."""
    return 3 if config.directions == "three_models" else 1


def train_models(config: Config, data: Data, report: Progress) -> Trained:
    """One model (three for the three-model plane, seeds ``seed + k``), trained; raises
    `Diverged` when a loss is not finite."""
    models: list[nn.Module] = []
    history, trajectory, start = np.zeros(0), [], {}
    for k in range(model_count(config)):
        model = build_model(
            config, data.X, data.y, data.task, data.outputs, seed=config.seed + k
        ).to(data.X_t.device)
        initial = parameters_of(model)
        report(0.35 * k / 3, f"Training model {k + 1}")
        losses, checkpoints = train(model, data, config, report, k)
        if k == 0:
            history, trajectory, start = losses, checkpoints, initial
        if not np.all(np.isfinite(losses)):
            raise Diverged("training diverged (NaN/inf): lower the learning rate", model, losses)
        models.append(model)
    return Trained(models, history, trajectory, start)


def train(
    model: nn.Module, data: Data, config: Config, report: Progress, k: int = 0
) -> tuple[np.ndarray, list[Params]]:
    """Full-batch ``torch.optim.Adam`` (torch's defaults, ``lr``) for ``epochs`` epochs; returns
    the loss per epoch (E,) and checkpoints: the initial parameters, then every
    ``epochs // MAX_CHECKPOINTS`` epochs and the final ones. Stops at a non-finite loss."""
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    every = max(1, config.epochs // MAX_CHECKPOINTS)
    checkpoints = [parameters_of(model)]
    losses = np.empty(config.epochs)
    for epoch in range(config.epochs):
        optimiser.zero_grad()
        loss = data.loss_fn(model(data.X_t), data.y_t)
        loss.backward()
        optimiser.step()
        losses[epoch] = loss.item()
        if not np.isfinite(losses[epoch]):
            return losses[: epoch + 1], checkpoints
        if (epoch + 1) % every == 0 or epoch + 1 == config.epochs:
            checkpoints.append(parameters_of(model))
        if epoch % 10 == 0:
            report(
                0.35 * (k + (epoch + 1) / config.epochs) / 3,
                f"Training model {k + 1}: epoch {epoch + 1} of {config.epochs}",
            )
    model.eval()
    return losses, checkpoints


def training_state(config: Config) -> dict[str, np.ndarray]:
    """``config``'s training (`trained`) as named arrays, which `landscape.precompute` stores
    once per `training_key` of the presets and `restored` reads back instead of training:

    - ``model/<name>`` (K, *shape): entry ``<name>`` of the K models' state dicts (float32);
    - ``trajectory/<name>`` (T, *shape): parameter ``<name>`` at the T checkpoints of models[0]
      (`train`: initial, every ``epochs // MAX_CHECKPOINTS`` epochs, final);
    - ``history`` (E,): the loss per epoch of models[0] (float64).

    The start is not stored: training starts from the model that `build_model` builds.
    """
    with limited_threads(1):
        _, found = shared_training(config, silent)
    state = {"history": found.history}
    for name in found.models[0].state_dict():
        state[f"model/{name}"] = np.stack(
            [m.state_dict()[name].detach().cpu().numpy() for m in found.models]
        )
    for name in found.start:
        state[f"trajectory/{name}"] = np.stack([c[name].cpu().numpy() for c in found.trajectory])
    return state


def restored(config: Config, data: Data) -> Trained | None:
    """The training of ``config`` read back from the presets (`training_state`,
    `presets.stored_training` of its `training_key`) onto the data's device: the models built
    by `build_model` from their seeds (models[0] so is the start), then their stored weights
    loaded. None when no preset stores this key, inside `presets.afresh`, or when the stored
    arrays do not fit these models (a file from another model, cut short): the caller trains."""
    state = presets.stored_training(STUDY, training_key(config))
    if state is None:
        return None
    models: list[nn.Module] = []
    start: Params = {}
    try:
        for k in range(model_count(config)):
            model = build_model(
                config, data.X, data.y, data.task, data.outputs, seed=config.seed + k
            ).to(data.X_t.device)
            if k == 0:
                start = parameters_of(model)
            weights = {n: state[f"model/{n}"][k] for n in model.state_dict()}
            model.load_state_dict({n: torch.as_tensor(w) for n, w in weights.items()})
            models.append(model.eval())
        trajectory = _checkpoints(state, start)
        history = state["history"]
    except (KeyError, IndexError, RuntimeError, ValueError):
        return None
    if history.shape != (config.epochs,):
        return None
    return Trained(models, history, trajectory, start, restored=True)


def _checkpoints(state: dict[str, np.ndarray], start: Params) -> list[Params]:
    """The checkpoints ``trajectory/<name>`` (T, *shape) of a stored training as T parameter
    sets like ``start`` (names, shapes, device); ValueError when they do not fit it."""
    stacks = {name: state[f"trajectory/{name}"] for name in start}
    counts = {len(stack) for stack in stacks.values()}
    if len(counts) != 1 or any(s.shape[1:] != start[n].shape for n, s in stacks.items()):
        raise ValueError("the stored checkpoints do not fit the model")
    return [
        {n: torch.tensor(s[t], device=start[n].device) for n, s in stacks.items()}
        for t in range(counts.pop())
    ]


def accuracy(model: nn.Module, data: Data) -> float:
    """The share of training samples classified right; NaN for regression."""
    if data.task != "classification":
        return float("nan")
    with torch.no_grad():
        return float((model(data.X_t).argmax(1) == data.y_t).double().mean())


def size(model: nn.Module) -> int:
    """The number of parameters."""
    return sum(p.numel() for p in model.parameters())
