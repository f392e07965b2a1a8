"""What every command module shares: common flags, options, root check."""

from __future__ import annotations

import argparse
import os
import sys

from ocibuild.options import ISOLATIONS, STORAGE_DRIVERS, Options


def kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if not sep:
        value = os.environ.get(key, "")  # docker build --build-arg NAME takes it from the env
    return key, value


def common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="store directory (default: $OCIBUILD_ROOT or /var/lib/ocibuild)")
    p.add_argument("--runtime", help="OCI runtime: crun (default when installed), runc or a path")
    p.add_argument("--debug", action="store_true", help="print mounts and runtime commands")
    p.add_argument(
        "--isolation",
        choices=ISOLATIONS,
        help="auto (default), native-chroot (no OCI runtime), native-rootless (user "
        "namespace), oci (runtime as root), docker-with-fuse (build: in the ocibuild image "
        "through docker or podman); or $OCIBUILD_ISOLATION",
    )
    p.add_argument(
        "--storage-driver",
        choices=STORAGE_DRIVERS,
        help="overlay (default; kernel, else fuse-overlayfs), fuse-overlayfs or vfs; "
        "or $OCIBUILD_STORAGE_DRIVER",
    )


def options_from(args: argparse.Namespace, **extra: object) -> Options:
    return Options.resolve(
        root=getattr(args, "root", None),
        runtime=getattr(args, "runtime", None),
        debug=getattr(args, "debug", False),
        isolation=getattr(args, "isolation", None),
        storage_driver=getattr(args, "storage_driver", None),
        **extra,  # type: ignore[arg-type]
    )


def require_root(args: argparse.Namespace | None = None) -> None:
    """Root, or an ordinary user: then re-run this command in a user namespace (rootless)
    and exit with its status. Also for ``--isolation native-rootless`` as root."""
    from ocibuild import isolation

    wanted = getattr(args, "isolation", None) or os.environ.get("OCIBUILD_ISOLATION") or "auto"
    if not isolation.needs_user_namespace(wanted):
        return

    def warn(text: str) -> None:
        print(f"warning: {text}", file=sys.stderr)

    raise SystemExit(isolation.reexec_in_user_namespace("ocibuild.cli", warn=warn))
