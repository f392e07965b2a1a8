"""Registry credentials: where they are read from, ``login`` and ``logout``.

Read order (the first file that has an entry for the registry wins):

1. ``$REGISTRY_AUTH_FILE`` (podman, buildah and skopeo honour it too),
2. ``${XDG_RUNTIME_DIR}/containers/auth.json``,
3. ``~/.docker/config.json``.

Entries are matched by ``host/repo/...`` prefixes first (podman's per-repository
entries), then by host; keys written as ``https://host/v1/`` are understood. ``login``
writes to ``--authfile`` or the first of those three that applies (``$REGISTRY_AUTH_FILE``
when set, else the XDG file when ``$XDG_RUNTIME_DIR`` is set, else Docker's), atomically
and mode 0600. The ``auth`` value is base64 ``user:password``, encoded by oras.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any

import oras.auth.utils

from ocibuild._record import dataclass
from ocibuild.fs.atomic import write_atomic
from ocibuild.registry.errors import AuthError
from ocibuild.registry.reference import DEFAULT_DOMAIN, DOCKER_HUB_API, LEGACY_DOMAIN

_HUB_KEYS = (DEFAULT_DOMAIN, LEGACY_DOMAIN, DOCKER_HUB_API, "https://index.docker.io/v1/")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str = ""  # the file they came from, for messages

    def basic(self) -> str:
        """base64 ``user:password`` (oras encodes it)."""
        encoded: str = oras.auth.utils.get_basic_auth(self.username, self.password)
        return encoded


def auth_files(env: Mapping[str, str] | None = None) -> list[str]:
    """The credential files, in lookup order."""
    env = os.environ if env is None else env
    files = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(env["REGISTRY_AUTH_FILE"])
    if env.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    home = env.get("HOME") or os.path.expanduser("~")
    files.append(os.path.join(home, ".docker", "config.json"))
    return files


def login_file(env: Mapping[str, str] | None = None) -> str:
    """Where ``login`` writes."""
    env = os.environ if env is None else env
    if env.get("REGISTRY_AUTH_FILE"):
        return env["REGISTRY_AUTH_FILE"]
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json")
    return auth_files(env)[-1]


def _normalize_key(key: str) -> str:
    """``https://host/v1/`` -> ``host``; ``host/repo`` stays; Docker Hub's aliases -> docker.io."""
    if key.startswith(("https://", "http://")):
        key = key.split("://", 1)[1].split("/", 1)[0]
    key = key.rstrip("/")
    host, sep, rest = key.partition("/")
    if host in _HUB_KEYS:
        host = DEFAULT_DOMAIN
    return host + sep + rest


def _write_private(file: str, data: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(file))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    write_atomic(file, json.dumps(data, indent=2) + "\n", mode=0o600, prefix=".tmp-auth-")


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data: Any = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise AuthError(
            f"cannot read credentials file {path}: {e}", hint="fix or remove the file"
        ) from e
    if not isinstance(data, dict):
        raise AuthError(f"credentials file {path} is not a JSON object")
    return data


def _candidates(domain: str, path: str) -> list[str]:
    parts = path.split("/") if path else []
    names = [f"{domain}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]
    names.append(domain)
    return names


def _decode(entry: Any, path: str, key: str) -> Credentials | None:
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    try:
        user, sep, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthError(f"credentials for {key} in {path} are not base64 user:password") from None
    if not sep:
        raise AuthError(f"credentials for {key} in {path} lack the ':password' part")
    return Credentials(user, password, path)


def find_credentials(
    domain: str, path: str = "", env: Mapping[str, str] | None = None
) -> Credentials | None:
    """Credentials for ``domain`` (and repository ``path``), or None (anonymous)."""
    wanted = _candidates(domain, path)
    for file in auth_files(env):
        auths = _read(file).get("auths")
        if not isinstance(auths, dict):
            continue
        by_key = {_normalize_key(str(key)): (str(key), entry) for key, entry in auths.items()}
        for name in wanted:
            if name in by_key:
                key, entry = by_key[name]
                creds = _decode(entry, file, key)
                if creds is not None:
                    return creds
    return None


def store_credentials(domain: str, creds: Credentials, file: str) -> None:
    """Write ``creds`` for ``domain`` into ``file`` (created 0600, other entries kept)."""
    data = _read(file)
    auths = data.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    auths[domain] = {"auth": creds.basic()}
    data["auths"] = auths
    _write_private(file, data)


def remove_credentials(domain: str, file: str) -> bool:
    """Drop ``domain``'s entry from ``file``; False when there was none."""
    data = _read(file)
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return False
    keys = [k for k in auths if _normalize_key(str(k)) == domain]
    if not keys:
        return False
    for key in keys:
        del auths[key]
    _write_private(file, data)
    return True
