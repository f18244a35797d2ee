"""The cluster recipe of docs/cluster.md, done as a user does it: `ray start --head` with Ray's
token authentication in a process of its own, a second `ray start --address` node joining it
(two nodes on one machine stand in for two machines), then `convexify surface --ray HOST:PORT`
and `convexify sweep --ray HOST:PORT` as separate processes, each equal to the in-process run.
A client without the token, or with a wrong one, and a wrong port each end in one sentence that
says what to set; a worker node killed mid-run (its processes, by PID) loses no finished shard
of a `--checkpoint`, and the rerun computes only the missing ones; every node stops by its own
command (`ray start --block` ends its node on SIGTERM) and leaves no process behind.

Everything lives in a temporary directory: each node's HOME (so the user's ~/.ray is never
read or written), Ray's --temp-dir, the token, the files. Nothing runs `ray stop`, which stops
every Ray process of the machine, the user's own clusters included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landscape import cli
from landscape.files import surface_files

pytest.importorskip("ray")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(480),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes in /proc"),
]

ROOT = Path(__file__).resolve().parents[1]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command of this interpreter
START_SECONDS = 180  # a node's `ray start` on a loaded two-core machine
RUN_SECONDS = 300  # one command line run
NODE_OPTIONS = [
    "--num-cpus=1",
    "--object-store-memory=100000000",
    "--disable-usage-stats",
    "--block",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_environment(home: Path) -> dict[str, str]:
    """This process's environment without any Ray setting, with ``home`` as HOME and this
    checkout first on the path (the Ray workers import it to run the shards)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        HOME=str(home),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        CONVEXIFY_TORCH_THREADS="1",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="5",  # SIGTERM: drain briefly, then stop
    )
    home.mkdir(parents=True, exist_ok=True)
    return env


@dataclass
class Node:
    """One `ray start ... --block` process, started in a session of its own: every process of
    its node (GCS, raylet, Ray workers, ...) belongs to that session, even once orphaned."""

    process: subprocess.Popen[bytes]
    log: Path

    def wait_started(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def alive(self) -> list[int]:
        """The PIDs of this node's live processes."""
        return session_members(self.process.pid)

    def stop(self) -> list[int]:
        """SIGTERM to `ray start --block`, which stops its node; returns the PIDs still alive
        20 s after it ended (then killed, so that nothing outlives the test)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 20
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = self.alive()
        self.kill()
        return left

    def kill(self) -> None:
        """SIGKILL to every process of this node, by PID, until none is left (a process
        started meanwhile is killed in the next round)."""
        deadline = time.monotonic() + 30
        while (members := self.alive()) and time.monotonic() < deadline:
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def session_members(session: int) -> list[int]:
    """The live (not zombie) processes of a session, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            text = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue  # ended meanwhile
        if text:
            state, _parent, _group, member_of = text[text.rindex(")") + 2 :].split()[:4]
            if int(member_of) == session and state != "Z":
                members.append(int(entry.name))
    return sorted(members)


@dataclass
class Cluster:
    """A head with token authentication, and how to join it, reach it and read its token."""

    base: Path
    port: int
    token: str
    head_env: dict[str, str]
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, name: str, arguments: list[str], env: dict[str, str]) -> Node:
        log = self.base / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*RAY, "start", *arguments, *NODE_OPTIONS],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                start_new_session=True,
            )
        node = Node(process, log)
        self.nodes.append(node)
        node.wait_started()
        return node

    def join(self, name: str) -> Node:
        """A worker node, as on another machine: its own HOME, the token in RAY_AUTH_TOKEN."""
        env = base_environment(self.base / f"{name}-home")
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        arguments = [f"--address={self.address}", f"--temp-dir={self.base / 'ray'}"]
        return self.start(name, arguments, env)

    def client_env(self, *, on_head: bool = True) -> dict[str, str]:
        """A client on the head (the token in its ~/.ray/auth_token) or on another machine
        (the token in RAY_AUTH_TOKEN); RAY_AUTH_MODE=token either way."""
        if on_head:
            env = dict(self.head_env)
        else:
            env = base_environment(self.base / "other-home")
            env["RAY_AUTH_TOKEN"] = self.token
        env["RAY_AUTH_MODE"] = "token"
        return env


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """The head (its token made by `ray get-auth-token --generate`, as the recipe says) and one
    worker node; both stopped, and the directory removed, however the tests end."""
    base = Path(tempfile.mkdtemp(prefix="cvx-ray-"))  # short: Ray's socket paths must fit
    head_env = base_environment(base / "head-home")
    made = subprocess.run(
        [*RAY, "get-auth-token", "--generate"],
        env=head_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    token = made.stdout.strip()
    assert token == (base / "head-home" / ".ray" / "auth_token").read_text().strip()
    cluster = Cluster(base, free_port(), token, head_env)
    try:
        head = dict(head_env, RAY_AUTH_MODE="token")
        arguments = ["--head", f"--port={cluster.port}", f"--temp-dir={base / 'ray'}"]
        cluster.start("head", [*arguments, "--include-dashboard=false"], head)
        cluster.join("worker")
        yield cluster
    finally:
        for node in reversed(cluster.nodes):
            node.stop()
        shutil.rmtree(base, ignore_errors=True)


def convexify(arguments: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The command line in a process of its own: ``python -m landscape.cli ...``."""
    return subprocess.run(
        [sys.executable, "-m", "landscape.cli", *arguments],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def files(ray_cluster: Cluster) -> dict[str, Path]:
    """A model file (`torch.export`, reloaded by every worker) and two data files: 300 samples
    (quick) and 8000 (shards that take a while)."""
    folder = ray_cluster.base / "files"
    folder.mkdir()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3)).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (torch.zeros(4, 10),), dynamic_shapes=({0: batch},))
    torch.export.save(program, folder / "model.pt2")
    rng = np.random.default_rng(0)
    for name, n in (("small", 300), ("large", 8000)):
        X = rng.standard_normal((n, 10)).astype(np.float32)
        np.savez(folder / f"{name}.npz", X=X, y=rng.integers(0, 3, n))
    return {"model": folder / "model.pt2", "folder": folder}


def surface_arguments(files: dict[str, Path], data: str, resolution: int) -> list[str]:
    return [
        "surface",
        "--model",
        str(files["model"]),
        "--data",
        str(files["folder"] / f"{data}.npz"),
        "--loss",
        "cross_entropy",
        "--resolution",
        str(resolution),
        "--shard-rows",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ]


def in_process_surface(arguments: list[str], out: Path) -> np.ndarray:
    assert cli.main([*arguments, "--out", str(out)]) == 0
    return surface_files.load_surface(out.read_bytes()).loss


@pytest.mark.parametrize("token", ["none", "wrong"])
def test_a_client_without_the_token_is_told_what_to_set(
    ray_cluster: Cluster, files: dict[str, Path], token: str
) -> None:
    env = base_environment(ray_cluster.base / "stranger-home")  # no ~/.ray/auth_token
    if token == "wrong":
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
    arguments = [*surface_arguments(files, "small", 3), "--ray", ray_cluster.address]
    done = convexify([*arguments, "--out", "refused.npz"], env, files["folder"])
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert message.startswith("convexify: error: the Ray cluster at ")
    assert "RAY_AUTH_TOKEN" in message and "ray get-auth-token" in message
    expected = "RAY_AUTH_MODE=token" if token == "none" else "token (from RAY_AUTH_TOKEN)"
    assert expected in message
    assert len(message.splitlines()) == 1  # none of Ray's retry lines
    assert not (files["folder"] / "refused.npz").exists()


def test_nothing_answers_at_a_wrong_port(ray_cluster: Cluster, files: dict[str, Path]) -> None:
    port = free_port()
    arguments = [*surface_arguments(files, "small", 3), "--ray", f"127.0.0.1:{port}"]
    done = convexify([*arguments, "--out", "x.npz"], ray_cluster.client_env(), files["folder"])
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"convexify: error: nothing answers at 127.0.0.1:{port}: start the cluster there with "
        f"`ray start --head --port={port}`, or check the address (HEAD_IP:PORT of `ray start "
        "--head`)"
    )


def test_the_dashboard_says_what_to_set(ray_cluster: Cluster, monkeypatch, tmp_path) -> None:
    """The server's operator points CONVEXIFY_RAY_ADDRESS at the cluster: without the token
    the sidebar's *Compute on: Ray cluster* says what to set and sweeps stay on this machine;
    with the token (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN) they go to the cluster."""
    from streamlit.testing.v1 import AppTest

    from ui.sidebar import cluster_problem

    for name in [k for k in os.environ if k.startswith("RAY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CONVEXIFY_RAY_ADDRESS", ray_cluster.address)
    answers = {}
    for token in ("", ray_cluster.token):
        if token:
            monkeypatch.setenv("RAY_AUTH_MODE", "token")
            monkeypatch.setenv("RAY_AUTH_TOKEN", token)
        cluster_problem.clear()
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        app.run()
        app.radio(key="compute_on").set_value("Ray cluster").run()
        answers[bool(token)] = app
    refused = answers[False]
    errors = [e.value for e in refused.sidebar.error]
    assert len(errors) == 1 and f"the Ray cluster at {ray_cluster.address} refused" in errors[0]
    assert "RAY_AUTH_MODE=token" in errors[0] and "ray get-auth-token" in errors[0]
    assert not refused.exception and refused.session_state["settings"].compute_on == ""
    accepted = answers[True]
    assert not accepted.sidebar.error and not accepted.exception
    assert accepted.session_state["settings"].compute_on == ray_cluster.address


def test_surface_and_sweep_on_two_nodes_equal_the_in_process_runs(
    ray_cluster: Cluster, files: dict[str, Path], tmp_path: Path
) -> None:
    arguments = surface_arguments(files, "small", 7)
    here = in_process_surface(arguments, tmp_path / "here.npz")
    on_ray = [*arguments, "--ray", ray_cluster.address, "--out", str(tmp_path / "ray.npz")]
    done = convexify(on_ray, ray_cluster.client_env(on_head=True), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    there = surface_files.load_surface((tmp_path / "ray.npz").read_bytes())
    assert there.metadata["backend"] == "ray (2 CPUs)"  # both nodes joined
    assert there.metadata["shards_computed"] == 7
    np.testing.assert_array_equal(there.loss, here)  # the same shards: bitwise

    sweep = ["sweep", "gap-vs-I", "--branch-counts", "1,3", "--restarts", "2", "--steps", "40"]
    sweep += ["--n", "8", "--threads", "1", "--no-progress"]
    assert cli.main([*sweep, "--out", str(tmp_path / "here.json")]) == 0
    on_ray = [*sweep, "--ray", ray_cluster.address, "--out", str(tmp_path / "ray.json")]
    done = convexify(on_ray, ray_cluster.client_env(on_head=False), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    here_run = json.loads((tmp_path / "here.json").read_text())["result"]
    ray_run = json.loads((tmp_path / "ray.json").read_text())["result"]
    timings = [name for name in here_run if name.endswith("_seconds")]
    assert timings and all(ray_run.pop(name) is not None for name in timings)
    assert ray_run == {k: v for k, v in here_run.items() if k not in timings}


def test_a_killed_worker_node_loses_no_finished_shard(
    ray_cluster: Cluster, files: dict[str, Path], tmp_path: Path
) -> None:
    """The shards are spread over both nodes; the worker node's processes are killed (SIGKILL,
    by PID) mid-run; the run goes on on the head until the client itself is killed (a crash);
    every shard written is still there, unchanged, and the same command computes exactly the
    missing ones."""
    resolution = 25
    arguments = surface_arguments(files, "large", resolution)
    checkpoint = tmp_path / "checkpoint"
    run = [*arguments, "--ray", ray_cluster.address, "--checkpoint", str(checkpoint)]
    with (tmp_path / "first.log").open("w") as log:
        client = subprocess.Popen(
            [sys.executable, "-m", "landscape.cli", *run, "--out", str(tmp_path / "first.npz")],
            env=ray_cluster.client_env(),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        written = wait_for_shards(checkpoint, 2, client)
        worker = next(node for node in ray_cluster.nodes if "worker" in node.log.name)
        worker.kill()
        assert not worker.alive()
        wait_for_shards(checkpoint, len(written) + 1, client)  # the head carries on
    finally:
        client.kill()
        client.wait()
    kept = shard_files(checkpoint)
    assert all(kept.get(name) == data for name, data in written.items())  # none lost
    assert len(written) < len(kept) < resolution
    assert not (tmp_path / "first.npz").exists()

    rerun = [*run, "--out", str(tmp_path / "rerun.npz")]
    done = convexify(rerun, ray_cluster.client_env(), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    surface = surface_files.load_surface((tmp_path / "rerun.npz").read_bytes())
    assert surface.metadata["shards"] == resolution
    assert surface.metadata["shards_computed"] == resolution - len(kept)
    here = in_process_surface(arguments, tmp_path / "here.npz")
    np.testing.assert_array_equal(surface.loss, here)


def shard_files(checkpoint: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(checkpoint.glob("rows-*.npy"))}


def wait_for_shards(checkpoint: Path, count: int, client: subprocess.Popen) -> dict[str, bytes]:
    """The checkpoint's shard files once there are at least ``count`` (fails if the client
    ends first)."""
    deadline = time.monotonic() + RUN_SECONDS
    while len(found := shard_files(checkpoint)) < count:
        if client.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run ended (status {client.poll()}) with {len(found)} shards")
        time.sleep(0.05)
    return found


def test_nodes_stop_by_their_own_command(ray_cluster: Cluster) -> None:
    """A node that joins and then receives SIGTERM (what `ray start --block` stops on) ends
    every process it started; so does the head."""
    node = ray_cluster.join("leaver")
    assert len(node.alive()) > 1
    assert node.stop() == []
    head = ray_cluster.nodes[0]
    assert head.stop() == []
