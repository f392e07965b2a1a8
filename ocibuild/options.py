"""One frozen options object, from explicit arguments first, then OCIBUILD_* variables."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping, Sequence

from ocibuild._record import dataclass, field
from ocibuild.errors import OcibuildError

COMPRESSIONS = ("gzip", "zstd", "none")
ISOLATIONS = ("auto", "native-chroot", "native-rootless", "oci", "docker-with-fuse")
STORAGE_DRIVERS = ("overlay", "fuse-overlayfs", "vfs")
NETWORK_MODES = ("default", "none", "host")  # RUN steps' network (BuildKit's names)


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise OcibuildError(f"unknown {what} {value!r}", hint=f"use one of: {', '.join(allowed)}")
    return value


PULL_POLICIES = ("always", "missing", "never")


def _pull_policy(value: str) -> str:
    if value not in PULL_POLICIES:
        raise OcibuildError(
            f"unknown pull policy {value!r}", hint=f"use one of: {', '.join(PULL_POLICIES)}"
        )
    return value


def default_root(env: Mapping[str, str] | None = None) -> str:
    """`/var/lib/ocibuild` for root, `$XDG_DATA_HOME/ocibuild` for everyone else."""
    env = os.environ if env is None else env
    if os.geteuid() == 0:
        return "/var/lib/ocibuild"
    data = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "ocibuild")


def parse_epoch(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        epoch = int(value)
    except ValueError:
        raise OcibuildError(
            f"SOURCE_DATE_EPOCH must be an integer number of seconds, not {value!r}",
            hint="e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)",
        ) from None
    if epoch < 0:
        raise OcibuildError(f"SOURCE_DATE_EPOCH must not be negative: {value!r}")
    return epoch


@dataclass(frozen=True)
class Secret:
    """``--secret id=ID[,src=FILE|,env=VAR]`` as BuildKit/buildx take it."""

    id: str
    kind: str  # "file" or "env"
    source: str


def parse_secret(text: str) -> Secret:
    """``id=ID,src=FILE`` | ``id=ID,env=VAR`` | ``id=ID`` (env var ID, else file ID)."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise OcibuildError(
                f"invalid --secret {text!r}", hint="write it as id=ID,src=FILE or id=ID,env=VAR"
            )
        fields[key.strip().lower()] = value.strip()
    secret_id = fields.get("id", "")
    if not secret_id:
        raise OcibuildError(f"--secret {text!r} has no id", hint="e.g. --secret id=token,src=FILE")
    kind = fields.get("type", "")
    if "env" in fields:
        return Secret(secret_id, "env", fields["env"])
    source = fields.get("src") or fields.get("source")
    if source is not None or kind == "file":
        return Secret(secret_id, "file", os.path.abspath(source or secret_id))
    if kind == "env" or secret_id in os.environ:
        return Secret(secret_id, "env", secret_id)
    return Secret(secret_id, "file", os.path.abspath(secret_id))


def parse_ssh(text: str, env: Mapping[str, str]) -> tuple[str, str]:
    """``--ssh default|ID[=SOCKET]`` (buildx): an SSH agent socket for
    ``RUN --mount=type=ssh``; without a socket, ``$SSH_AUTH_SOCK``."""
    ssh_id, sep, path = text.partition("=")
    ssh_id = ssh_id.strip() or "default"
    if not sep:
        path = env.get("SSH_AUTH_SOCK", "")
        if not path:
            raise OcibuildError(
                f"--ssh {text}: SSH_AUTH_SOCK is not set",
                hint="start an agent (eval $(ssh-agent); ssh-add) or give --ssh ID=SOCKET",
            )
    if "," in path:
        raise OcibuildError(
            f"--ssh {text}: only an agent socket can be forwarded (not key files)",
            hint="load the keys into an agent (ssh-add KEY) and give its socket",
        )
    path = os.path.abspath(path)
    try:
        is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError as exc:
        raise OcibuildError(f"--ssh {text}: {path}: {exc.strerror}") from None
    if not is_socket:
        raise OcibuildError(
            f"--ssh {text}: {path} is not a socket",
            hint="give an SSH agent's socket ($SSH_AUTH_SOCK)",
        )
    return ssh_id, path


def parse_add_host(text: str) -> tuple[str, str]:
    """``--add-host NAME:IP`` (or ``NAME=IP``) -> (ip, name) for /etc/hosts."""
    sep = "=" if "=" in text else ":"
    name, _, ip = text.partition(sep)
    import ipaddress

    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise OcibuildError(
            f"invalid --add-host {text!r}: {ip!r} is not an IP address",
            hint="write it as NAME:IP, e.g. --add-host db:10.0.0.5",
        ) from None
    if not name or any(c.isspace() for c in name):
        raise OcibuildError(f"invalid --add-host {text!r}: no host name")
    return ip.strip("[]"), name


RLIMITS = (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip
_UNLIMITED = 2**64 - 1


def parse_ulimit(text: str) -> tuple[str, int, int]:
    """``--ulimit NAME=SOFT[:HARD]`` (docker's; -1 or unlimited: no limit)."""
    name, sep, values = text.partition("=")
    hint = "write it as NAME=SOFT[:HARD], e.g. --ulimit nofile=1024:2048"
    if not sep or name not in RLIMITS:
        raise OcibuildError(
            f"invalid --ulimit {text!r}" + ("" if name in RLIMITS else f": no limit {name!r}"),
            hint=f"{hint}; names: {', '.join(RLIMITS)}",
        )
    soft_text, _, hard_text = values.partition(":")
    try:
        soft, hard = (
            _UNLIMITED if v.strip() in ("-1", "unlimited") else int(v)
            for v in (soft_text, hard_text or soft_text)
        )
    except ValueError:
        raise OcibuildError(f"invalid --ulimit {text!r}: not a number", hint=hint) from None
    if soft < 0 or hard < 0 or soft > hard:
        raise OcibuildError(f"invalid --ulimit {text!r}: soft must be <= hard", hint=hint)
    return name, soft, hard


def parse_bytes(what: str, text: str) -> int:
    """``64m``, ``1g``, ``512k``, ``1000`` -> bytes (docker's units are powers of 1024)."""
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = text.strip().lower()
    if len(value) > 1 and value.endswith("b") and value[-2] in units:
        value = value[:-1]  # 64mb is 64m
    number, unit = (value[:-1], value[-1]) if value and value[-1].isalpha() else (value, "")
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise OcibuildError(f"invalid {what} {text!r}", hint="e.g. 64m, 1g, 512k")
    return int(number) * units[unit]


def default_runtime() -> str:
    """``crun`` when it is on PATH (about 8 ms a RUN step here, against 27 ms for runc;
    device access is safe under either: rootfs and mounts are nodev), else ``runc``."""
    return "crun" if shutil.which("crun") else "runc"


def _runtime_path(runtime: str) -> str:
    """A runtime given as a path (``./wrap.sh``) is made absolute; a name stays a name."""
    return os.path.abspath(runtime) if os.sep in runtime else runtime


@dataclass(frozen=True)
class Options:
    """Everything that shapes how a build runs (not what it builds)."""

    root: str
    runtime: str = "runc"
    compression: str = "gzip"
    source_date_epoch: int | None = None
    keep_failed: bool = False
    debug: bool = False
    quiet: bool = False
    no_cache: bool = False
    no_cache_filter: tuple[str, ...] = ()  # stages whose steps never use the cache
    trace: str | None = None  # --trace FILE: one JSON record per step
    cache_from: tuple[str, ...] = ()  # --cache-from type=registry,ref=REF (repeatable)
    cache_to: tuple[str, ...] = ()  # --cache-to type=registry,ref=REF[,mode=min|max]
    pull: str = "missing"  # FROM: always | missing | never pull from the registry
    tls_verify: bool | None = None  # None: HTTPS verified, plain HTTP for loopback
    isolation: str = "auto"  # auto | native-chroot | native-rootless | oci | docker-with-fuse
    storage_driver: str = "overlay"  # overlay | fuse-overlayfs | vfs
    secrets: Mapping[str, Secret] = field(default_factory=dict)  # --secret id=...
    ssh: Mapping[str, str] = field(default_factory=dict)  # --ssh: id -> agent socket
    add_hosts: tuple[tuple[str, str], ...] = ()  # --add-host: (ip, name) in /etc/hosts
    ulimits: tuple[tuple[str, int, int], ...] = ()  # --ulimit: (name, soft, hard)
    shm_size: int | None = None  # --shm-size: /dev/shm's size in bytes (default 64 MiB)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    explain: bool = False  # --explain: print every step's cache-key inputs
    report: str | None = None  # --report FILE: one JSON document about the build
    keep_bundles: str | None = None  # --keep-bundles DIR: every RUN step's bundle
    network: str = "default"  # RUN steps: default (own namespace) | none | host

    @classmethod
    def resolve(
        cls,
        *,
        root: str | None = None,
        runtime: str | None = None,
        compression: str | None = None,
        source_date_epoch: int | None = None,
        keep_failed: bool = False,
        debug: bool = False,
        quiet: bool = False,
        no_cache: bool = False,
        no_cache_filter: tuple[str, ...] = (),
        trace: str | None = None,
        cache_from: Sequence[str] = (),
        cache_to: Sequence[str] = (),
        pull: str | None = None,
        tls_verify: bool | None = None,
        isolation: str | None = None,
        storage_driver: str | None = None,
        secrets: Sequence[str] = (),
        ssh: Sequence[str] = (),
        add_hosts: Sequence[str] = (),
        ulimits: Sequence[str] = (),
        shm_size: str | None = None,
        env: Mapping[str, str] | None = None,
        explain: bool = False,
        report: str | None = None,
        keep_bundles: str | None = None,
        network: str | None = None,
    ) -> Options:
        env = os.environ if env is None else env
        comp = compression or env.get("OCIBUILD_COMPRESSION") or "gzip"
        if comp not in COMPRESSIONS:
            raise OcibuildError(
                f"unknown compression {comp!r}", hint=f"use one of: {', '.join(COMPRESSIONS)}"
            )
        epoch = source_date_epoch
        if epoch is None:
            epoch = parse_epoch(env.get("SOURCE_DATE_EPOCH"))
        return cls(
            root=os.path.abspath(root or env.get("OCIBUILD_ROOT") or default_root(env)),
            runtime=_runtime_path(runtime or env.get("OCIBUILD_RUNTIME") or default_runtime()),
            isolation=_choice(
                "isolation", isolation or env.get("OCIBUILD_ISOLATION") or "auto", ISOLATIONS
            ),
            storage_driver=_choice(
                "storage driver",
                storage_driver or env.get("OCIBUILD_STORAGE_DRIVER") or "overlay",
                STORAGE_DRIVERS,
            ),
            compression=comp,
            pull=_pull_policy(pull or env.get("OCIBUILD_PULL") or "missing"),
            tls_verify=tls_verify,
            source_date_epoch=epoch,
            keep_failed=keep_failed,
            debug=debug or env.get("OCIBUILD_DEBUG", "") not in ("", "0"),
            quiet=quiet,
            no_cache=no_cache or env.get("OCIBUILD_NO_CACHE", "") not in ("", "0"),
            no_cache_filter=tuple(no_cache_filter),
            trace=os.path.abspath(trace) if trace else None,
            cache_from=tuple(cache_from),
            cache_to=tuple(cache_to),
            secrets={sec.id: sec for sec in map(parse_secret, secrets)},
            ssh=dict(parse_ssh(text, env) for text in ssh),
            add_hosts=tuple(map(parse_add_host, add_hosts)),
            ulimits=tuple(map(parse_ulimit, ulimits)),
            shm_size=parse_bytes("--shm-size", shm_size) if shm_size else None,
            explain=explain,
            report=os.path.abspath(report) if report else None,
            keep_bundles=os.path.abspath(keep_bundles) if keep_bundles else None,
            network=_choice(
                "network mode", network or env.get("OCIBUILD_NETWORK") or "default", NETWORK_MODES
            ),
        )
