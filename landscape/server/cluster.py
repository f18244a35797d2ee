"""Surfaces and sweeps split into shards: in this process, or as tasks on a Ray cluster.

A surface ``Z[i, j] = L(theta + alphas[i] d1 + betas[j] d2)`` (A, B) is cut into *shards*, blocks
of consecutive rows ``Z[start:stop]``. Each shard runs the same engine
(`landscape.engine.surface.surface_2d` on ``alphas[start:stop]`` and every beta), so the
assembled surface is the in-process one: bitwise when the dtype, device and thread count match
and the engine's path treats rows independently (the multi-branch path, the loop), otherwise to
float rounding (the vmap path groups points in chunks whose boundaries move with the shard).

Data larger than a memory budget is evaluated in batches of rows (`landscape.files.data_files`):
a loss that is a mean over samples satisfies ``L = sum_k (n_k / n) L_k`` over batches of
``n_k`` rows, accumulated in float64; a single batch gives ``L_1`` exactly.

On Ray (an optional dependency, ``pip install 'convexify[cluster]'``) the job (model, data,
directions) is put in the object store once and every worker deserialises it once per job; each
shard is a task retried by Ray (``max_retries``) when its worker dies. With a checkpoint
directory, every finished shard is written as it arrives (``.npy``, atomically), and a rerun of
the same job computes only the shards that are missing.

Sweeps (trainings at every width, depth, I or restart) go through `parallel_map`, which runs
in-process, or as Ray tasks inside ``with compute_on(address):``.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib.util
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine.directions import Params
from landscape.engine.problem import Problem, cross_entropy_over_positions
from landscape.engine.surface import surface_2d
from landscape.files.data_files import DEFAULT_DATA_BUDGET, ArrayData, NpzStream, batch_rows
from landscape.server.cluster_access import check_address

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": cross_entropy_over_positions,  # (n, C) / (n,) and (n, T, C) / (n, T)
    "mse": F.mse_loss,
}
RAY_ADDRESS_VARIABLE = "CONVEXIFY_RAY_ADDRESS"
CHECKPOINT_FORMAT = "convexify-checkpoint/1"
DEFAULT_MAX_RETRIES = 3
PointsDone = Callable[[int], None]
T = TypeVar("T")
R = TypeVar("R")


def ray_available() -> bool:
    """True when the optional package ``ray`` is installed (found, not imported: cheap)."""
    return importlib.util.find_spec("ray") is not None


def connect(address: str | None = "auto") -> Any:
    """The ``ray`` module, connected: an already initialised Ray is used as it is; ``"auto"``
    joins the cluster this machine belongs to (``ray start --head``) or, when there is none,
    starts a local one on this machine's cores; ``"local"`` always starts a local one; any other
    value is a cluster address (``host:6379``, ``ray://host:10001``), checked first
    (`cluster_access.check_address`: ``ValueError`` saying what to set when nothing answers or
    the cluster refuses this machine's token)."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "Ray is not installed: pip install 'convexify[cluster]' (or compute on this machine)"
        ) from None
    if ray.is_initialized():
        return ray
    if address in (None, "", "local"):
        ray.init(include_dashboard=False, log_to_driver=False)
    elif address == "auto":
        try:
            ray.init(address="auto", log_to_driver=False)
        except ConnectionError:
            ray.init(include_dashboard=False, log_to_driver=False)
    else:
        check_address(address)  # nothing answers, or the token is refused: say so at once
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise ValueError(f"could not join the Ray cluster at {address!r}: {error}") from None
    return ray


def default_address() -> str:
    """The Ray address in ``CONVEXIFY_RAY_ADDRESS``, or ``""`` (compute on this machine)."""
    return os.environ.get(RAY_ADDRESS_VARIABLE, "").strip()


def cluster_workers(ray_module: Any) -> int:
    """The number of CPUs the connected Ray cluster offers (at least 1)."""
    return max(1, int(ray_module.cluster_resources().get("CPU", 1)))


# --------------------------------------------------------------------------------------------
# The job: everything one shard needs.


@dataclass
class SurfaceJob:
    """A 2-D surface to compute: model, loss, data, plane and grid, and how to run each shard.

    ``loss`` is ``"cross_entropy"`` (integer labels (n,)) or ``"mse"``, a mean over samples;
    ``center``, ``d1``, ``d2`` are parameter dicts like ``dict(model.named_parameters())``;
    ``alphas`` (A,), ``betas`` (B,). ``data_budget`` bytes bound one batch of samples;
    ``memory_budget`` is the engine's working memory per pass; ``threads`` torch threads per
    shard (the same in-process and on every worker, so that both compute the same numbers).
    ``model_file`` (format and bytes, `landscape.files.model_files`) travels to the workers in
    place of the module when set (exported and TorchScript modules do not pickle).
    """

    model: nn.Module
    loss: str
    data: ArrayData | NpzStream
    center: Params
    d1: Params
    d2: Params
    alphas: np.ndarray
    betas: np.ndarray
    method: str = "auto"
    memory_budget: int | None = None
    data_budget: int = DEFAULT_DATA_BUDGET
    threads: int = 1
    model_digest: str = ""
    model_file: tuple[str, bytes] | None = None  # (format, bytes): workers reload the file
    integer_inputs: bool = False  # integer X goes to the model as integers (token ids)
    _fingerprint: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {self.loss!r}")
        self.alphas = np.asarray(self.alphas, dtype=np.float64)
        self.betas = np.asarray(self.betas, dtype=np.float64)
        for name, grid in (("alphas", self.alphas), ("betas", self.betas)):
            if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
                raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers")
        if int(self.threads) != self.threads or self.threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {self.threads}")
        if int(self.data_budget) != self.data_budget or self.data_budget < 1:
            raise ValueError(f"data_budget must be a positive integer, got {self.data_budget}")

    @property
    def shape(self) -> tuple[int, int]:
        """The grid's shape (A, B): ``len(alphas)``, ``len(betas)``; the surface is (A, B)."""
        return len(self.alphas), len(self.betas)

    def fingerprint(self) -> str:
        """SHA-256 of everything that decides the numbers: model class and digest, data digest,
        loss, plane, grid, path, budgets and threads. A checkpoint belongs to one fingerprint."""
        if self._fingerprint:
            return self._fingerprint
        digest = hashlib.sha256()
        header = {
            "model": type(self.model).__qualname__,
            "model_digest": self.model_digest,
            "data": self.data.digest,
            "loss": self.loss,
            "method": self.method,
            "memory_budget": self.memory_budget,
            "batch_rows": batch_rows(self.data, self.data_budget),
            "threads": self.threads,
        }
        digest.update(json.dumps(header, sort_keys=True).encode())
        for point in (self.center, self.d1, self.d2):
            for name, tensor in point.items():
                digest.update(name.encode())
                digest.update(_tensor_bytes(tensor))
        digest.update(self.alphas.tobytes())
        digest.update(self.betas.tobytes())
        self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.model_file is not None:
            state["model"] = None
        elif isinstance(self.model, torch.jit.ScriptModule):  # TorchScript does not pickle
            buffer = io.BytesIO()
            torch.jit.save(self.model, buffer)
            state["model"] = ("torchscript", buffer.getvalue())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        model = state["model"]
        reference = next(iter(state["center"].values()))
        if model is None and state["model_file"] is not None:
            from landscape.files.model_files import load_model_bytes

            kind, data = state["model_file"]
            state["model"] = load_model_bytes(data, kind).to(reference.device, reference.dtype)
        elif isinstance(model, tuple) and model[0] == "torchscript":
            loaded = torch.jit.load(io.BytesIO(model[1]), map_location=reference.device)
            state["model"] = loaded
        self.__dict__.update(state)


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def compute_rows(
    job: SurfaceJob, start: int, stop: int, points_done: PointsDone | None = None
) -> np.ndarray:
    """``Z[start:stop]`` of the job's surface, shape (stop - start, B), float64.

    The data are taken in batches of at most ``job.data_budget`` bytes (``Problem.batch_rows``
    in memory, chunks read from disk when streamed); the loss at a grid point is
    ``sum_k (n_k / n) L_k`` over the batches (exactly ``L_1`` for a single batch).
    ``points_done(p)`` reports the points finished so far in this shard (for progress bars).
    """
    A, B = job.shape
    if not 0 <= start < stop <= A:
        raise ValueError(f"shard rows must satisfy 0 <= start < stop <= {A}, got {start}, {stop}")
    rows = batch_rows(job.data, job.data_budget)
    n = job.data.n
    alphas = job.alphas[start:stop]
    points = (stop - start) * B
    # In memory: one Problem that batches itself. Streamed: each chunk read from disk is a batch.
    chunks = [(job.data.X, job.data.y)] if isinstance(job.data, ArrayData) else None
    count = 1 if chunks is not None else math.ceil(n / rows)
    Z = np.zeros((stop - start, B))
    previous = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        for k, (X_chunk, y_chunk) in enumerate(chunks or job.data.batches(rows)):
            X_t, y_t = job_tensors(job, X_chunk, y_chunk)
            problem = Problem(
                job.model,
                LOSSES[job.loss],
                X_t,
                y_t,
                memory_budget=job.memory_budget,
                batch_rows=rows,
            )

            def progress(fraction: float, _stage: str, k: int = k) -> None:
                if points_done is not None:
                    points_done(int(points * (k + min(max(fraction, 0.0), 1.0)) / count))

            Z_chunk = surface_2d(
                problem,
                job.d1,
                job.d2,
                alphas,
                job.betas,
                center=job.center,
                method=job.method,
                progress=progress,
            )
            if count == 1:
                Z = Z_chunk
            else:
                Z += Z_chunk * (len(X_chunk) / n)
    finally:
        torch.set_num_threads(previous)
    if points_done is not None:
        points_done(points)
    return Z


def job_tensors(job: SurfaceJob, X: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch as tensors on the model's device: features in the parameters' dtype (integer
    features as int64 with ``job.integer_inputs``), integer labels (int64) for cross-entropy,
    float targets for the squared loss (targets (n,) become (n, 1): the model returns one output
    per sample)."""
    reference = next(iter(job.center.values()))
    X_t = torch.as_tensor(np.ascontiguousarray(X)).to(reference.device)
    if job.integer_inputs and X.dtype.kind in "iu":
        X_t = X_t.long()
    elif X_t.is_floating_point() or X.dtype.kind in "iub":
        X_t = X_t.to(reference.dtype)
    y_t = torch.as_tensor(np.ascontiguousarray(y)).to(reference.device)
    if job.loss == "cross_entropy":
        return X_t, y_t.long()
    y_t = y_t.to(reference.dtype)
    return X_t, y_t[:, None] if y_t.dim() == 1 else y_t


def first_batch_problem(job: SurfaceJob) -> Problem:
    """The job's problem on its first batch of data (at most ``job.data_budget`` bytes): what
    `landscape.engine.surface.path_taken` probes for the path the shards take."""
    rows = batch_rows(job.data, job.data_budget)
    X, y = next(iter(job.data.batches(rows)))
    X_t, y_t = job_tensors(job, X, y)
    return Problem(job.model, LOSSES[job.loss], X_t, y_t, memory_budget=job.memory_budget)


# --------------------------------------------------------------------------------------------
# Shards and checkpoints.


def plan_shards(rows: int, shard_rows: int) -> list[tuple[int, int]]:
    """``[(0, s), (s, 2s), ...]`` covering ``rows`` rows in blocks of ``shard_rows``."""
    if int(shard_rows) != shard_rows or shard_rows < 1:
        raise ValueError(f"shard_rows must be an integer >= 1, got {shard_rows}")
    return [(start, min(start + shard_rows, rows)) for start in range(0, rows, shard_rows)]


class ShardCheckpoint:
    """Finished shards of one job on disk: ``manifest.json`` (the job's fingerprint, grid shape
    and shard plan) and one ``rows-START-STOP.npy`` per shard, each written atomically.

    Opening a directory that holds another job's checkpoint raises ``ValueError``.
    """

    def __init__(
        self, directory: str | Path, fingerprint: str, shape: tuple[int, int], shard_rows: int
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shape = shape
        manifest = self.directory / "manifest.json"
        if manifest.exists():
            try:
                stored = json.loads(manifest.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ValueError(f"checkpoint {manifest} is not valid JSON") from None
            if stored.get("format") != CHECKPOINT_FORMAT or stored.get("fingerprint") != (
                fingerprint
            ):
                raise ValueError(
                    f"checkpoint directory {self.directory} holds another computation (model, "
                    "data, plane or grid differ): choose an empty directory"
                )
            self.shard_rows = int(stored["shard_rows"])
        else:
            self.shard_rows = int(shard_rows)
            document = {
                "format": CHECKPOINT_FORMAT,
                "fingerprint": fingerprint,
                "shape": list(shape),
                "shard_rows": self.shard_rows,
            }
            _atomic_write(manifest, json.dumps(document).encode())

    def _path(self, start: int, stop: int) -> Path:
        return self.directory / f"rows-{start:06d}-{stop:06d}.npy"

    def load(self, start: int, stop: int) -> np.ndarray | None:
        """The stored rows ``Z[start:stop]``, or None when that shard is not (validly) stored."""
        path = self._path(start, stop)
        if not path.exists():
            return None
        try:
            rows = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None
        if rows.shape != (stop - start, self.shape[1]) or rows.dtype != np.float64:
            return None
        return rows

    def write(self, start: int, stop: int, rows: np.ndarray) -> None:
        """Store the losses ``Z[start:stop]`` (stop - start, B) as float64 in
        ``rows-START-STOP.npy``, atomically (a temporary file, then a rename)."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(rows, dtype=np.float64), allow_pickle=False)
        _atomic_write(self._path(start, stop), buffer.getvalue())


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@dataclass
class SurfaceRun:
    """An assembled surface and how it was obtained."""

    surface: np.ndarray  # (A, B)
    shards: list[tuple[int, int]]  # the plan
    computed: list[tuple[int, int]]  # shards computed by this call (the rest: from checkpoint)
    seconds: float
    backend: str  # "in-process" or "ray (N CPUs)"
    shard_seconds: dict[tuple[int, int], float] = field(default_factory=dict)  # compute time


def run_surface(
    job: SurfaceJob,
    *,
    ray_address: str | None = None,
    shard_rows: int | None = None,
    checkpoint: str | Path | None = None,
    points_done: PointsDone | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    gpus_per_shard: float = 0.0,
) -> SurfaceRun:
    """The job's surface, shard by shard: in this process (``ray_address`` None) or as Ray tasks
    (`connect`'s addresses). ``shard_rows`` defaults to the whole grid in-process without a
    checkpoint, else to about four shards per worker. ``points_done(p)`` reports the grid points
    finished so far (shards loaded from the checkpoint count at once).
    """
    started = time.perf_counter()
    A, B = job.shape
    ray_module = connect(ray_address) if ray_address is not None else None
    workers = cluster_workers(ray_module) // job.threads if ray_module is not None else 1
    if shard_rows is None:
        whole = ray_module is None and checkpoint is None
        shard_rows = A if whole else max(1, math.ceil(A / (4 * max(1, workers))))
    store = (
        ShardCheckpoint(checkpoint, job.fingerprint(), job.shape, shard_rows)
        if checkpoint is not None
        else None
    )
    shards = plan_shards(A, store.shard_rows if store is not None else shard_rows)
    Z = np.full((A, B), np.nan)
    missing, loaded = _load_checkpointed(store, shards, Z)
    finished = loaded * B
    report = points_done or (lambda p: None)
    report(finished)

    shard_seconds: dict[tuple[int, int], float] = {}

    def arrived(start: int, stop: int, rows: np.ndarray, seconds: float) -> None:
        nonlocal finished
        shard_seconds[(start, stop)] = seconds
        Z[start:stop] = rows
        if store is not None:
            store.write(start, stop, rows)
        finished += (stop - start) * B
        report(finished)

    if ray_module is None:
        for start, stop in missing:
            base = finished
            began = time.perf_counter()
            rows = compute_rows(job, start, stop, _shifted(report, base))
            arrived(start, stop, rows, time.perf_counter() - began)
        backend = "in-process"
    else:
        _run_on_ray(ray_module, job, missing, arrived, max_retries, gpus_per_shard)
        backend = f"ray ({cluster_workers(ray_module)} CPUs)"
    seconds = time.perf_counter() - started
    return SurfaceRun(Z, shards, missing, seconds, backend, shard_seconds)


def _load_checkpointed(
    store: ShardCheckpoint | None, shards: list[tuple[int, int]], Z: np.ndarray
) -> tuple[list[tuple[int, int]], int]:
    """Fill the rows of ``Z`` whose shards the checkpoint holds; returns the shards still
    missing and the number of rows loaded."""
    missing = []
    loaded = 0
    for start, stop in shards:
        rows = store.load(start, stop) if store is not None else None
        if rows is None:
            missing.append((start, stop))
        else:
            Z[start:stop] = rows
            loaded += stop - start
    return missing, loaded


_WORKER_JOBS: dict[str, SurfaceJob] = {}


def _shard_task(job_box: list[Any], start: int, stop: int) -> tuple[int, int, np.ndarray, float]:
    """A Ray task: one shard, and the seconds its computation took. The job (in a list, so that
    Ray passes the reference unresolved) is fetched from the object store once per worker and
    kept for the job's next shards."""
    import ray

    reference = job_box[0]
    key = reference.hex()
    job = _WORKER_JOBS.get(key)
    if job is None:
        job = ray.get(reference)
        _WORKER_JOBS.clear()
        _WORKER_JOBS[key] = job
    began = time.perf_counter()
    rows = compute_rows(job, start, stop)
    return start, stop, rows, time.perf_counter() - began


def _run_on_ray(
    ray_module: Any,
    job: SurfaceJob,
    shards: Sequence[tuple[int, int]],
    arrived: Callable[[int, int, np.ndarray, float], None],
    max_retries: int,
    gpus_per_shard: float,
) -> None:
    if not shards:
        return
    task = ray_module.remote(_shard_task).options(
        num_cpus=job.threads, num_gpus=gpus_per_shard, max_retries=max_retries
    )
    job_ref = ray_module.put(job)
    pending = {task.remote([job_ref], start, stop): (start, stop) for start, stop in shards}
    try:
        while pending:
            ready, _ = ray_module.wait(list(pending), num_returns=1)
            for reference in ready:
                pending.pop(reference)
                arrived(*ray_module.get(reference))
    finally:
        for reference in pending:
            ray_module.cancel(reference)


# --------------------------------------------------------------------------------------------
# Sweeps: a map over independent trainings.

_COMPUTE_ON: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "convexify_compute_on", default=None
)


@contextmanager
def compute_on(address: str | None) -> Iterator[None]:
    """Inside the block, `parallel_map` runs its calls as Ray tasks at ``address`` (see
    `connect`); ``None`` or ``""``: in this process."""
    token = _COMPUTE_ON.set(address or None)
    try:
        yield
    finally:
        _COMPUTE_ON.reset(token)


def compute_location() -> str | None:
    """The Ray address `parallel_map` uses now, or None for this process."""
    return _COMPUTE_ON.get()


def _call(function: Callable[[Any], Any], item: Any) -> Any:
    return function(item)


def parallel_map(
    function: Callable[[T], R],
    items: Sequence[T],
    progress: Callable[[int, T], None] | None = None,
) -> list[R]:
    """``[function(item) for item in items]``, in order: in this process, or as Ray tasks (each
    retried up to ``DEFAULT_MAX_RETRIES`` times if its worker dies) inside `compute_on`.

    ``function`` must be importable by name (a module-level function) and return picklable
    values. ``progress(k, item)`` is called before item ``k`` runs in-process, and as each
    result arrives on Ray (``k`` then counts the results in).
    """
    address = _COMPUTE_ON.get()
    if address is None:
        out = []
        for k, item in enumerate(items):
            if progress is not None:
                progress(k, item)
            out.append(function(item))
        return out
    ray_module = connect(address)
    task = ray_module.remote(_call).options(max_retries=DEFAULT_MAX_RETRIES)
    references = [task.remote(function, item) for item in items]
    index = {reference: k for k, reference in enumerate(references)}
    results: list[Any] = [None] * len(items)
    pending = list(references)
    done = 0
    try:
        while pending:
            ready, pending = ray_module.wait(pending, num_returns=1)
            for reference in ready:
                k = index[reference]
                results[k] = ray_module.get(reference)
                if progress is not None:
                    progress(done, items[k])
                done += 1
    finally:
        for reference in pending:
            ray_module.cancel(reference)
    return results


def _shifted(report: Callable[[int], None], base: int) -> Callable[[int], None]:
    """``p -> report(base + p)``: a shard's progress counted after the shards before it."""
    return lambda p: report(base + p)
