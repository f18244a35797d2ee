"""The checks made before joining a Ray cluster, where no cluster is needed: the address's form,
an address where nothing answers, a token mode without a token, and where Ray finds the token
(the cluster itself: tests/test_ray_recipe.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from landscape.server import cluster_access


@pytest.fixture
def no_ray_settings(monkeypatch, tmp_path: Path) -> Path:
    """No RAY_* variable and an empty HOME (no ~/.ray/auth_token); returns that HOME."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # free again once closed: nothing listens


@pytest.mark.parametrize(
    ("address", "split"),
    [
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        (" head.example:6380 ", ("head.example", 6380)),
        ("ray://head:10001", ("head", 10001)),
        ("[::1]:6379", ("::1", 6379)),
    ],
)
def test_addresses_split_into_host_and_port(address: str, split: tuple[str, int]) -> None:
    assert cluster_access.split_address(address) == split


@pytest.mark.parametrize("address", ["head", "head:", ":6379", "head:0", "head:65536", "h:x"])
def test_malformed_addresses_are_refused_with_the_allowed_forms(address: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT or ray://HOST:PORT with a port in"):
        cluster_access.split_address(address)


def test_nothing_answers_at_a_closed_port(no_ray_settings: Path) -> None:
    port = closed_port()
    with pytest.raises(ValueError) as raised:
        cluster_access.check_address(f"127.0.0.1:{port}")
    assert str(raised.value) == (
        f"nothing answers at 127.0.0.1:{port}: start the cluster there with `ray start --head "
        f"--port={port}`, or check the address (HEAD_IP:PORT of `ray start --head`)"
    )
    assert cluster_access.address_problem(f"ray://127.0.0.1:{port}").startswith("nothing")


def test_token_mode_without_a_token_says_where_to_put_one(no_ray_settings, monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    problem = cluster_access.address_problem(f"127.0.0.1:{closed_port()}")
    assert problem.startswith("RAY_AUTH_MODE=token but this machine has no Ray token for")
    assert "RAY_AUTH_TOKEN" in problem and "~/.ray/auth_token" in problem


def test_the_token_is_looked_for_where_ray_looks(no_ray_settings: Path, monkeypatch) -> None:
    assert cluster_access.token_source() == ""
    default = no_ray_settings / ".ray" / "auth_token"
    default.parent.mkdir()
    default.write_text("secret")
    assert cluster_access.token_source() == str(default)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/elsewhere/token")
    assert cluster_access.token_source() == "RAY_AUTH_TOKEN_PATH=/elsewhere/token"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    assert cluster_access.token_source() == "RAY_AUTH_TOKEN"


def test_auto_and_local_need_no_check(no_ray_settings: Path) -> None:
    assert cluster_access.address_problem("auto") == ""
    assert cluster_access.address_problem("local") == ""
