"""``ocibuild pull``, ``push``, ``login``, ``logout``: flags here, commands in
``registry_commands`` (imported only when one runs: oras and requests are slow to load)."""

from __future__ import annotations

import argparse
from typing import Any

from ocibuild.options import COMPRESSIONS


def tls_flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_tls_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tls-verify",
        type=tls_flag,
        default=None,
        metavar="BOOL",
        help="verify TLS (default true; loopback registries use plain HTTP unless true); "
        "false also allows plain HTTP",
    )


def _registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="store directory (default: $OCIBUILD_ROOT or /var/lib/ocibuild)")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    add_tls_flag(p)
    p.add_argument("--authfile", help="credentials file (default: $REGISTRY_AUTH_FILE, ...)")
    p.add_argument("--creds", metavar="USER[:PASS]", help="credentials for this command")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--jobs", type=int, default=4, help="parallel blob transfers (default 4)")


def register(sub: Any) -> None:
    p = sub.add_parser("pull", help="pull an image from a registry into the store")
    _registry_flags(p)
    p.add_argument("--platform", help="OS/ARCH[/VARIANT] to pick from an index (linux/amd64)")
    p.add_argument("reference", help="NAME[:TAG][@DIGEST], e.g. 127.0.0.1:5000/team/app:1")
    p.set_defaults(func=cmd_pull)
    p = sub.add_parser("push", help="push an image from the store to a registry")
    _registry_flags(p)
    p.add_argument("--compression", choices=COMPRESSIONS, help="layer compression (gzip)")
    p.add_argument("--digestfile", help="write the pushed manifest digest to this file")
    p.add_argument("name", help="the local image (name, tag or ID)")
    p.add_argument("dest", nargs="?", help="where to push (default: NAME)")
    p.set_defaults(func=cmd_push)
    p = sub.add_parser("login", help="store credentials for a registry")
    add_tls_flag(p)
    p.add_argument("--authfile", help="file to write (default: $REGISTRY_AUTH_FILE, ...)")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("registry", help="HOST[:PORT]")
    p.set_defaults(func=cmd_login)
    p = sub.add_parser("logout", help="remove stored credentials for a registry")
    p.add_argument("--authfile", help="file to edit (default: $REGISTRY_AUTH_FILE, ...)")
    p.add_argument("registry", help="HOST[:PORT]")
    p.set_defaults(func=cmd_logout)


def _lazy(name: str) -> Any:
    def command(args: argparse.Namespace) -> int:
        from ocibuild.cli import registry_commands

        rc: int = getattr(registry_commands, name)(args)
        return rc

    return command


cmd_pull = _lazy("cmd_pull")
cmd_push = _lazy("cmd_push")
cmd_login = _lazy("cmd_login")
cmd_logout = _lazy("cmd_logout")
