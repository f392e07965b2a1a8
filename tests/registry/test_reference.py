"""Reference normalisation as Docker does it, and credential-file lookup (no registry)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from ocibuild.registry.auth import (
    Credentials,
    auth_files,
    find_credentials,
    remove_credentials,
    store_credentials,
)
from ocibuild.registry.reference import ReferenceError, is_loopback, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("debian", "docker.io/library/debian:latest", "debian:latest"),
        ("debian:bookworm", "docker.io/library/debian:bookworm", "debian:bookworm"),
        ("library/debian", "docker.io/library/debian:latest", "debian:latest"),
        ("docker.io/debian", "docker.io/library/debian:latest", "debian:latest"),
        ("index.docker.io/library/debian:12", "docker.io/library/debian:12", "debian:12"),
        ("user/app", "docker.io/user/app:latest", "user/app:latest"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1"),
        ("127.0.0.1:5000/team/sub/app:v1.2", "127.0.0.1:5000/team/sub/app:v1.2", None),
        ("registry.example.com/team/base@" + D, "registry.example.com/team/base@" + D, None),
        ("debian:12@" + D, "docker.io/library/debian:12@" + D, "debian:12@" + D),
        ("debian@" + D, "docker.io/library/debian@" + D, "debian@" + D),
        ("Example.com/app", "Example.com/app:latest", None),
        ("[::1]:5000/app", "[::1]:5000/app:latest", None),
        ("a__b/c-d.e_f", "docker.io/a__b/c-d.e_f:latest", "a__b/c-d.e_f:latest"),
    ],
)
def test_normalised_like_docker(text: str, full: str, familiar: str | None) -> None:
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar() == (familiar or full)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Debian", "must be lowercase"),
        ("debian:", "invalid tag"),
        ("debian:bad/tag", "invalid"),
        ("debian@sha256:abc", "invalid digest"),
        ("ab" * 32, "image ID"),
        ("-bad", "invalid"),
        ("a b", "invalid image reference"),
        ("", "invalid image reference"),
        ("host:5000/app:" + "t" * 129, "invalid tag"),
    ],
)
def test_rejected_like_docker(text: str, message: str) -> None:
    with pytest.raises(ReferenceError, match=message):
        parse_reference(text)


def test_api_host_and_loopback() -> None:
    assert parse_reference("debian").api_host == "registry-1.docker.io"
    assert parse_reference("127.0.0.1:5000/a").api_host == "127.0.0.1:5000"
    for host in ("127.0.0.1:5000", "localhost", "localhost:80", "[::1]:5000", "127.8.9.1"):
        assert is_loopback(host), host
    for host in ("registry.example.com", "10.0.0.1:5000", "example.com:443"):
        assert not is_loopback(host), host


def _write(path: Path, auths: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = {k: {"auth": base64.b64encode(v.encode()).decode()} for k, v in auths.items()}
    path.write_text(json.dumps({"auths": entries}))


def test_credentials_lookup_order(tmp_path: Path) -> None:
    env = {
        "REGISTRY_AUTH_FILE": str(tmp_path / "reg.json"),
        "XDG_RUNTIME_DIR": str(tmp_path / "xdg"),
        "HOME": str(tmp_path / "home"),
    }
    assert auth_files(env) == [
        str(tmp_path / "reg.json"),
        str(tmp_path / "xdg" / "containers" / "auth.json"),
        str(tmp_path / "home" / ".docker" / "config.json"),
    ]
    _write(
        tmp_path / "home" / ".docker" / "config.json",
        {"https://index.docker.io/v1/": "hub:1", "h:5000": "docker:1", "only.docker": "od:1"},
    )
    _write(tmp_path / "xdg" / "containers" / "auth.json", {"h:5000": "xdg:1"})
    _write(tmp_path / "reg.json", {"h:5000/team/app": "repo:1"})
    assert find_credentials("h:5000", "team/app", env) == Credentials(
        "repo", "1", str(tmp_path / "reg.json")
    )
    assert find_credentials("h:5000", "other", env).username == "xdg"  # type: ignore[union-attr]
    assert find_credentials("only.docker", "x", env).username == "od"  # type: ignore[union-attr]
    assert find_credentials("docker.io", "library/debian", env).username == "hub"  # type: ignore[union-attr]
    assert find_credentials("nowhere:1", "x", env) is None


def test_store_and_remove_credentials(tmp_path: Path) -> None:
    file = tmp_path / "dir" / "auth.json"
    store_credentials("h:5000", Credentials("u", "p:w"), str(file))
    assert os.stat(file).st_mode & 0o777 == 0o600
    env = {"REGISTRY_AUTH_FILE": str(file), "HOME": str(tmp_path)}
    found = find_credentials("h:5000", "x", env)
    assert found is not None and (found.username, found.password) == ("u", "p:w")
    assert remove_credentials("h:5000", str(file))
    assert not remove_credentials("h:5000", str(file))
    assert find_credentials("h:5000", "x", env) is None
