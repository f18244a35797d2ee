"""Run a study through Streamlit's cache, with a progress bar; show bad input as st.error; offer
the run's exports and load a saved run file back."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from types import ModuleType
from typing import Any, Protocol, TypeVar, cast

import streamlit as st
from streamlit.runtime.scriptrunner import RerunException, StopException, get_script_run_ctx

from landscape.engine import byte_lru
from landscape.files import presets, results, uploads
from landscape.server import cluster, heap, serving, study_parts
from ui.export import figure_cache_stats, result_downloads

log = logging.getLogger(__name__)

#: What a run may raise that is not a failure of the run: the user stopping the server, and
#: Streamlit's own rerun/stop signals. Everything else (Clarabel's Rust ``PanicException``
#: derives from ``BaseException``, not ``Exception``) becomes a message on the page.
PASS_THROUGH = (KeyboardInterrupt, SystemExit, RerunException, StopException)

ConfigT = TypeVar("ConfigT", contravariant=True)
ResultT = TypeVar("ResultT", covariant=True)


class Validated(Protocol):
    """A study's Config: ``validate()`` raises ValueError naming the field."""

    def validate(self) -> None: ...


Config = TypeVar("Config", bound=Validated)
Result = TypeVar("Result")


class Study(Protocol[ConfigT, ResultT]):
    """What a study module offers the runner: its name and ``run(config, progress) -> Result``.

    A module passes for it (PEP 544), so ``run_study(width, config)`` is typed as returning
    ``width.Result | None``.
    """

    @property
    def __name__(self) -> str: ...

    def run(
        self, config: ConfigT, progress: Callable[[float, str], None] | None = None
    ) -> ResultT: ...


RESULT_CACHE_VARIABLE = "CONVEXIFY_RESULT_CACHE_MB"
RESULT_CACHE_DEFAULT_MB = 128
MAX_RUNS_VARIABLE = "CONVEXIFY_MAX_RUNS"
DATA_DIR_VARIABLE = "CONVEXIFY_DATA_DIR"
POLL_SECONDS = 0.25  # how often a waiting page looks at its run
#: A fresh computation starts only once the page has asked for it this long (`_settle`).
SETTLE_SECONDS = 0.5
#: Session state: a computation of this session is under way (`_compute`); still set when a run
#: starts, the previous run was stopped midway by a newer rerun (a burst of moves: `_settle`).
RUN_OPEN = "_convexify_run_open"
#: Session state: this session's name in the admission queue (`_requester`).
REQUESTER = "_convexify_requester"
REDRAW_SECONDS = 1.0  # the longest a waiting page goes without a redraw (which notices an exit)
SECRETS_SECTION = "convexify"  # [convexify] in .streamlit/secrets.toml: max_runs, result_cache_mb,
# data_dir


class ResultCache(byte_lru.ByteLRU[tuple[str, Any], Any]):
    """A bounded, thread-safe LRU cache of study results keyed on ``(module, frozen Config)``,
    bounded in bytes (each result's size estimated from its arrays, `byte_lru.estimate_nbytes`).

    Shared by all sessions, like ``st.cache_data``, but it calls ``run`` with a live progress
    callback: Streamlit cannot replay element updates made inside an ``st.cache_data`` function
    (``CacheReplayClosureError`` on the next cache hit), so the cache is kept here instead.
    Results are NumPy arrays and floats that pages only read.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, name="Results")


def _secret(name: str) -> Any | None:
    """``st.secrets["convexify"][name]`` when a secrets file sets it, else None."""
    try:
        section = st.secrets.get(SECRETS_SECTION)
    except Exception:  # noqa: BLE001 - no secrets file (StreamlitSecretNotFoundError) or unreadable
        return None
    if section is None or not hasattr(section, "get"):
        return None
    return section.get(name)


def max_runs() -> int:
    """Heavy runs at once: ``CONVEXIFY_MAX_RUNS``, else ``[convexify] max_runs`` in the
    Streamlit secrets, else the CPU cores this process may use."""
    text = os.environ.get(MAX_RUNS_VARIABLE, "").strip()
    source = MAX_RUNS_VARIABLE
    if not text:
        secret = _secret("max_runs")
        if secret is None:
            return serving.available_cores()
        text, source = str(secret), f"[{SECRETS_SECTION}] max_runs"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{source} must be an integer >= 1, got {text!r}")
    return value


def data_folder() -> str:
    """The server's folder of data files (full MNIST, CIFAR-10): ``CONVEXIFY_DATA_DIR``, else
    ``[convexify] data_dir`` in the Streamlit secrets, else ``""`` (none).

    The operator's setting only: no link, widget or upload chooses a folder on the server.
    """
    text = os.environ.get(DATA_DIR_VARIABLE, "").strip()
    if not text:
        secret = _secret("data_dir")
        text = str(secret).strip() if secret is not None else ""
    return text


def result_cache_bytes() -> int:
    """The result cache's ceiling: ``CONVEXIFY_RESULT_CACHE_MB``, else ``[convexify]
    result_cache_mb`` in the Streamlit secrets, else 128 MiB."""
    if not os.environ.get(RESULT_CACHE_VARIABLE, "").strip():
        secret = _secret("result_cache_mb")
        if secret is not None:
            try:
                value = float(secret)
            except (TypeError, ValueError):
                value = -1.0
            if not value >= 0:
                raise ValueError(
                    f"[{SECRETS_SECTION}] result_cache_mb must be a number of MiB >= 0, "
                    f"got {secret!r}"
                )
            return int(value * 2**20)
    return byte_lru.mebibytes_from_env(RESULT_CACHE_VARIABLE, RESULT_CACHE_DEFAULT_MB)


_shared_lock = threading.Lock()
_shared: dict[str, Any] = {}
#: After every heavy run, at most once per 5 s: cyclic garbage collected, freed pages given back
#: to the system (`heap.HeapRelease`), so the server's memory returns to its level between runs.
_heap_release = heap.HeapRelease(min_interval=5.0)


def result_cache() -> ResultCache:
    """The process's result cache (one for every session)."""
    with _shared_lock:
        if "cache" not in _shared:
            _shared["cache"] = ResultCache(result_cache_bytes())
        return _shared["cache"]


def run_queue() -> serving.RunQueue:
    """The process's admission queue: at most `max_runs` heavy runs at once, single flight."""
    with _shared_lock:
        if "queue" not in _shared:
            _shared["queue"] = serving.RunQueue(max_runs(), after_each=_heap_release)
        return _shared["queue"]


def build_config(config_cls: Callable[..., Config], **fields: Any) -> Config | None:
    """``config_cls(**fields)`` validated; on ``ValueError`` shows ``st.error`` and returns None."""
    try:
        config = config_cls(**fields)
        config.validate()
    except ValueError as error:
        st.error(f"Invalid setting: {error}")
        return None
    return config


def _waiting_text(ticket: serving.Ticket, queue: serving.RunQueue) -> tuple[float, str]:
    """The progress bar's fraction and text for a request waiting in ``queue``."""
    estimate = ticket.estimate_seconds()
    about = f", about {estimate:.0f} s" if estimate is not None else ""
    position = ticket.position()
    if ticket.state == serving.QUEUED and position > 0:
        stats = queue.stats()
        return 0.0, (
            f"In the queue: position {position} of {stats.queued} "
            f"({stats.running} of {stats.slots} runs at once on this server){about}"
        )
    fraction, stage = ticket.progress
    shared = ticket.waiters - 1
    if shared > 0:
        stage += f" (shared with {shared} other session{'s' if shared > 1 else ''})"
    return fraction, stage + about


def _settle(bar: Any) -> None:
    """Wait `SETTLE_SECONDS`, then redraw ``bar``: Streamlit stops the script at that redraw
    when the session has asked for something newer meanwhile.

    A slider moved with the arrow keys asks for every value on its way (each press is a rerun);
    without this pause each of those values would start a computation that runs on, unwanted,
    until the queue's grace time is over, filling the slots while other students wait. Only such
    a burst settles: a run whose session's previous computation
    was stopped midway by a newer rerun (`RUN_OPEN` still set). A single move (a drag released,
    a click) starts at once; presets, cached answers and computations already in flight never
    wait here.
    """
    time.sleep(SETTLE_SECONDS)
    bar.progress(0.0, text="Starting")


def _requester(key: tuple[str, Any], name: str) -> Hashable | None:
    """Who asks for ``key`` now: this session's place on its page for the study, ``(session,
    study, name)``, None outside a Streamlit session. What that place asked for before is
    dropped as soon as nobody waits for it (`serving.RunQueue.supersede`): a value passed over
    stops computing at once."""
    if get_script_run_ctx() is None:
        return None
    session = st.session_state.setdefault(REQUESTER, uuid.uuid4().hex)
    owner = (session, key[0], name)
    run_queue().supersede(owner, key)
    return owner


def _computation(
    study: Study[Config, Result], config: Config, key: tuple[str, Any]
) -> Callable[[serving.Progress], Any]:
    """What the queue runs for ``key``: the cached answer if one arrived meanwhile, else
    ``study.run`` (on the sidebar's "Compute on" cluster, read here in the session's thread),
    put into the result cache."""
    cache = result_cache()
    # the sidebar's "Compute on" (a Ray address, or "" for this machine): the run happens in a
    # worker thread, so the setting is read here and set there
    address = getattr(st.session_state.get("settings"), "compute_on", "") or None

    def compute(progress: serving.Progress) -> Any:
        done = cache.get(key)  # computed while this request was queued
        if done is not None:
            return done
        with cluster.compute_on(address):
            answer = study.run(config, progress=progress)
        cache.put(key, answer)
        return answer

    return compute


def _await(
    study: Study[Config, Result],
    config: Config,
    key: tuple[str, Any],
    owner: Hashable | None = None,
    settle: bool = False,
) -> Result:
    """The answer for ``key`` through the admission queue, drawing the queue position or the
    run's progress while it waits; raises what the run raised. With ``settle`` (the session's
    previous computation was stopped for this rerun) a fresh computation first `_settle`s.

    Every `POLL_SECONDS` the bar is redrawn if its text changed, and at least every
    `REDRAW_SECONDS`: each redraw is a point where Streamlit stops the script when the session
    reruns or leaves, and the ``finally`` then releases the ticket, so work nobody waits for any
    more is dropped from the queue.
    """
    queue = run_queue()
    compute = _computation(study, config, key)
    bar = st.progress(0.0, text="Starting")
    try:
        if settle and not queue.in_flight(key):
            _settle(bar)
            done = result_cache().get(key)  # computed by another session meanwhile
            if done is not None:
                return cast(Result, done)
        for _attempt in range(3):
            ticket = queue.submit(key, compute, kind=key[0], owner=owner)
            try:
                shown, drawn = None, 0.0
                while not ticket.wait(POLL_SECONDS):
                    status = _waiting_text(ticket, queue)
                    if status != shown or time.monotonic() - drawn >= REDRAW_SECONDS:
                        bar.progress(status[0], text=status[1])
                        shown, drawn = status, time.monotonic()
                try:
                    return ticket.result()
                except serving.Cancelled:
                    # dropped for want of waiters just as this request joined it: ask again
                    continue
                except Exception:
                    raise
                except BaseException as error:
                    # (SystemExit, KeyboardInterrupt from a study): a failure of that run, never
                    # a Streamlit stop, which can only come from this thread's own st calls
                    raise RuntimeError(f"{type(error).__name__}: {error}") from error
            finally:
                ticket.release()
        raise RuntimeError("the run was cancelled three times; try again")
    finally:
        bar.empty()


def _compute(study: Study[Config, Result], config: Config, name: str) -> Result | None:
    module_name = study.__name__
    key = (module_name, config)
    owner = _requester(key, name)
    stored = presets.lookup(module_name, config)
    if stored is not None:
        st.caption(
            ":material/bolt: Precomputed for the lecture's settings: "
            "move any control to compute afresh."
        )
        return stored
    cached = result_cache().get(key)
    if cached is not None:
        return cached
    interrupted = bool(st.session_state.get(RUN_OPEN, False))
    st.session_state[RUN_OPEN] = True
    answer: Result | None = None
    try:
        answer = _await(study, config, key, owner, settle=interrupted)
    except ValueError as error:
        st.error(f"Invalid setting: {error}")
    except PASS_THROUGH:
        raise  # stopped for a newer rerun: RUN_OPEN stays set, and that rerun settles
    except BaseException as error:
        log.exception("study %s failed", module_name)
        st.error(f"The computation failed ({type(error).__name__}: {error}). Try other settings.")
    st.session_state[RUN_OPEN] = False
    return answer


def run_study(study: Study[Config, Result], config: Config | None, name: str = "") -> Result | None:
    """``study.run(config)``, cached on the frozen config (or a stored preset), with progress.

    Draws an expander to export the run (NPZ, CSV, JSON run file) or load a run file back; a
    loaded run file replaces the computation until it is removed. A ``ValueError`` is shown with
    ``st.error``; any other failure is logged and shown as a short message, never a traceback.
    Returns None when there is nothing to show (``config`` None: `build_config` refused it).
    ``name`` tells apart several runs of the same study on one page (it keys their widgets).
    Typed: for a study module ``s``, the result is ``s.Result | None``.
    """
    if config is None:
        return None
    module_name = study.__name__
    stem = module_name.rsplit(".", 1)[-1] + (f"_{name}" if name else "")
    box = st.expander("Export this run, or load a saved run file")
    upload = box.file_uploader(
        "Load a run file (JSON)",
        type=["json"],
        key=f"load_{stem}",
        help="A run file downloaded from this page: its configuration and results are shown "
        "instead of the controls' values until you remove the file.",
    )
    if upload is not None:
        try:
            config, result = results.load_run_file(upload.getvalue(), cast(ModuleType, study))
        except ValueError as error:
            box.error(f"Could not load {upload.name}: {error}")
        except PASS_THROUGH:
            raise
        except BaseException as error:
            log.exception("run file %s of %s failed to load", upload.name, module_name)
            box.error(f"Could not load {upload.name} ({type(error).__name__}: {error}).")
        else:
            st.info(f"Showing the run file {upload.name}; remove it to use the controls again.")
            box.code(json.dumps(results.config_to_dict(config), indent=1), language="json")
            with box:
                result_downloads(module_name, config, result, stem)
            return result
    result = _compute(study, config, name)
    if result is not None:
        with box:
            result_downloads(module_name, config, result, stem)
    return result


def computed(study: Study[Config, Result], config: Config) -> Result | None:
    """The answer for ``config`` if it is already there (a stored preset or a cached run),
    else None; computes nothing."""
    stored = presets.lookup(study.__name__, config)
    if stored is not None:
        return cast(Result, stored)
    return cast("Result | None", result_cache().get((study.__name__, config)))


def poll_study(study: Study[Config, Result], config: Config, name: str = "") -> Result | None:
    """Start ``study.run(config)`` in the admission queue, or join the run already under way,
    without waiting for it: its answer once it is there, else None after drawing its progress.

    For a part of a page that fills in later: call it again (an ``st.fragment`` with
    ``run_every`` below the queue's grace time) until it answers. Each call holds the run only
    while it draws; a page that stops asking lets it be dropped after the grace time. A failed
    run is shown with ``st.error`` (a ``ValueError`` as an invalid setting) and gives None.
    ``name`` tells it apart from the page's other runs of the study (as in `run_study`): what
    this place polled before is dropped once it polls another configuration.
    """
    key = (study.__name__, config)
    owner = _requester(key, name)
    done = computed(study, config)
    if done is not None:
        return done
    queue = run_queue()
    ticket = queue.submit(key, _computation(study, config, key), kind=key[0], owner=owner)
    try:
        if not ticket.wait(0.0):
            fraction, stage = _waiting_text(ticket, queue)
            st.progress(fraction, text=stage)
            return None
        return cast(Result, ticket.result())
    except ValueError as error:
        st.error(f"Invalid setting: {error}")
    except serving.Cancelled:
        st.progress(0.0, text="Starting again")
    except PASS_THROUGH:
        raise
    except BaseException as error:
        log.exception("study %s failed", study.__name__)
        st.error(f"The computation failed ({type(error).__name__}: {error}). Try other settings.")
    finally:
        ticket.release()
    return None


def prefetch(kind: str, key: Any, work: Callable[[], object]) -> None:
    """Start ``work()`` in the admission queue without waiting for it (one at a time per
    ``(kind, key)``): what a page expects its next run to need, computed while the page is
    being read. Best effort: nobody holds it, so a queue busy for longer than its grace time
    drops it, and a failure is only logged."""

    def job(progress: serving.Progress) -> None:
        try:
            work()
        except Exception:  # a prefetch that fails is redone, and reported, by the run itself
            log.exception("prefetch %s failed", kind)

    run_queue().submit((kind, key), job, kind=kind).release()


def clear_cache() -> None:
    """Forget every cached study result (tests call this between runs)."""
    result_cache().clear()


def serving_stats() -> tuple[serving.QueueStats, list[byte_lru.CacheStats]]:
    """The admission queue's state and each cache's bytes and ceiling, for the about box."""
    return run_queue().stats(), [
        result_cache().stats(),
        figure_cache_stats(),
        presets.cache_stats(),
        uploads.store_stats(),
        study_parts.stats(),
    ]
