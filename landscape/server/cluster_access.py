"""Before joining a Ray cluster by its address: does anything answer there, and does the cluster
accept this machine's token? Checked in about a second, so that a wrong address or a missing
token ends in one sentence that says what to set, not in `ray.init`'s tens of seconds of retry
lines and a misleading hint that a previous Ray instance crashed.

Ray's token authentication (on by default, from Ray 2.59, for the local clusters ``ray.init()``
starts; for ``ray start --head`` with ``RAY_AUTH_MODE=token`` or once a token exists): every RPC
carries a shared secret, read from ``RAY_AUTH_TOKEN``, from the file named by
``RAY_AUTH_TOKEN_PATH``, or from ``~/.ray/auth_token`` (in that order). A client that names the
cluster's address sends it only with ``RAY_AUTH_MODE=token`` (Ray sends no local token to an
address it did not find itself); ``auto`` finds this machine's cluster and its token on its own.

The token check runs Ray's own GCS client in a child process: on a port that is not a Ray GCS
it waits without end, and with ``RAY_AUTH_MODE=token`` but no token it aborts its process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

CONNECT_SECONDS = 2.0  # TCP connection to the address
TOKEN_CHECK_SECONDS = 20.0  # the child process: Python, `import ray._raylet`, one RPC
TOKEN_REFUSED = "token-refused"
GCS_ANSWERED = "gcs-answered"
_TOKEN_CHECK = f"""
import sys
from ray._raylet import GcsClient
from ray.exceptions import AuthenticationError
try:
    GcsClient(address=sys.argv[1])
except AuthenticationError:
    print({TOKEN_REFUSED!r}, flush=True)
else:
    print({GCS_ANSWERED!r}, flush=True)
"""
HOW_THE_TOKEN_COMES = (
    "RAY_AUTH_TOKEN to the output of `ray get-auth-token` on the head (or copy the head's "
    "~/.ray/auth_token to this machine's ~/.ray/)"
)


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"ray://host:port"`` (IPv6 hosts in brackets) -> (host, port)."""
    text = address.strip().removeprefix("ray://")
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"the Ray address must be auto, local, HOST:PORT or ray://HOST:PORT with a port in "
            f"[1, 65535], got {address!r}"
        )
    return host, int(port)


def token_source() -> str:
    """Where Ray would read this process's token, as Ray looks (``RAY_AUTH_TOKEN``, then
    ``RAY_AUTH_TOKEN_PATH``, then ``~/.ray/auth_token``), or ``""`` when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH", "")
    if named:
        return f"RAY_AUTH_TOKEN_PATH={named}"
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else ""


def token_mode() -> bool:
    """True when this process sends a token (``RAY_AUTH_MODE=token``)."""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"


def check_address(address: str) -> None:
    """Raise ``ValueError`` saying what to do when nothing answers at ``address`` (a TCP
    connection within `CONNECT_SECONDS`), or when the cluster there refuses this process's token
    (or its lack of one); return when Ray may join. A Ray Client address (``ray://``) is only
    checked for an answer: its own connection reports the rest."""
    host, port = split_address(address)
    where = f"{host}:{port}"
    if token_mode() and not token_source():
        raise ValueError(
            f"RAY_AUTH_MODE=token but this machine has no Ray token for {where}: set "
            + HOW_THE_TOKEN_COMES
        )
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            pass
    except OSError:
        raise ValueError(
            f"nothing answers at {where}: start the cluster there with `ray start --head "
            f"--port={port}`, or check the address (HEAD_IP:PORT of `ray start --head`)"
        ) from None
    if address.strip().startswith("ray://"):
        return
    answer = _token_check(where)
    if answer == TOKEN_REFUSED and token_mode():
        raise ValueError(
            f"the Ray cluster at {where} refused this client's token (from {token_source()}): "
            f"set {HOW_THE_TOKEN_COMES}"
        )
    if answer == TOKEN_REFUSED:
        raise ValueError(
            f"the Ray cluster at {where} refused this client, which sent no token (the cluster "
            f"uses Ray's token authentication): set RAY_AUTH_MODE=token and {HOW_THE_TOKEN_COMES}"
        )
    if answer != GCS_ANSWERED:
        raise ValueError(
            f"{where} answers, but not as a Ray cluster within {TOKEN_CHECK_SECONDS:.0f} s: "
            f"is {port} the port given to `ray start --head --port`?"
        )


def _token_check(where: str) -> str:
    """`GCS_ANSWERED`, `TOKEN_REFUSED`, or ``""`` (no answer in time), from Ray's GCS client in a
    child process with this process's environment (its log lines are discarded)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _TOKEN_CHECK, where],
            capture_output=True,
            text=True,
            timeout=TOKEN_CHECK_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    lines = done.stdout.split()
    return lines[-1] if lines else ""


def address_problem(address: str) -> str:
    """What stops this process from joining the cluster at ``address`` (`check_address`'s
    message), or ``""``: nothing, or ``address`` is ``auto``/``local`` (always usable)."""
    if address.strip() in ("", "auto", "local"):
        return ""
    try:
        check_address(address)
    except ValueError as error:
        return str(error)
    return ""
