"""What every command module shares: common flags, options, root check."""

from __future__ import annotations

import argparse
import os

from ocibuild.errors import OcibuildError
from ocibuild.options import Options


def kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if not sep:
        value = os.environ.get(key, "")  # docker build --build-arg NAME takes it from the env
    return key, value


def common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="store directory (default: $OCIBUILD_ROOT or /var/lib/ocibuild)")
    p.add_argument("--runtime", help="OCI runtime: runc (default), crun or a path")
    p.add_argument("--debug", action="store_true", help="print mounts and runtime commands")


def options_from(args: argparse.Namespace, **extra: object) -> Options:
    return Options.resolve(
        root=getattr(args, "root", None),
        runtime=getattr(args, "runtime", None),
        debug=getattr(args, "debug", False),
        **extra,  # type: ignore[arg-type]
    )


def require_root() -> None:
    if os.geteuid() != 0:
        raise OcibuildError(
            "building and running need root for now",
            hint="run as root (sudo); rootless builds arrive with the isolation modes",
        )
