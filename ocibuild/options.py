"""One frozen options object, from explicit arguments first, then OCIBUILD_* variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ocibuild.errors import OcibuildError

COMPRESSIONS = ("gzip", "zstd", "none")


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
    extra_env: Mapping[str, str] = field(default_factory=dict)

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
        env: Mapping[str, str] | None = None,
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
            runtime=runtime or env.get("OCIBUILD_RUNTIME") or "runc",
            compression=comp,
            source_date_epoch=epoch,
            keep_failed=keep_failed,
            debug=debug or env.get("OCIBUILD_DEBUG", "") not in ("", "0"),
            quiet=quiet,
            no_cache=no_cache,
        )
