"""The pull, push, login and logout commands (loaded only when one of them runs)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import threading
import time
from typing import IO, Any

from ocibuild.cli.common import options_from
from ocibuild.errors import OcibuildError
from ocibuild.image.store import Store
from ocibuild.registry.auth import (
    Credentials,
    login_file,
    remove_credentials,
    store_credentials,
)
from ocibuild.registry.client import Client
from ocibuild.registry.progress import NoProgress, PlainLines, Progress, human_size
from ocibuild.registry.pull import pull
from ocibuild.registry.push import push
from ocibuild.registry.reference import DEFAULT_DOMAIN, LEGACY_DOMAIN, parse_reference
from ocibuild.registry.transfer import RegistryOptions


# -- progress ---------------------------------------------------------------------------
class LineProgress(PlainLines):
    """One line when a blob is done, and how far a long one got every few seconds."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        super().__init__(self._line)

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class BarProgress:
    """One redrawn line per blob with a bar, on a terminal (at most 10 redraws a second)."""

    WIDTH = 30

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._rows: dict[str, list[Any]] = {}  # key -> [label, total, done, note]
        self._drawn = 0
        self._last = 0.0

    def _line(self, row: list[Any]) -> str:
        label, total, done, note = row
        if note:
            return f"{label}  {note}"
        frac = min(1.0, done / total) if total else 0.0
        fill = int(frac * self.WIDTH)
        bar = "#" * fill + "." * (self.WIDTH - fill)
        return f"{label}  [{bar}] {human_size(done)} / {human_size(total)}"

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")
        for row in self._rows.values():
            out.append("\x1b[2K" + self._line(row) + "\n")
        self._drawn = len(self._rows)
        self.stream.write("".join(out))
        self.stream.flush()

    def begin(self, key: str, label: str, total: int) -> None:
        with self._lock:
            self._rows[key] = [label, total, 0, ""]
            self._draw(force=True)

    def update(self, key: str, done: int) -> None:
        with self._lock:
            if key in self._rows:
                self._rows[key][2] = done
                self._draw()

    def end(self, key: str, note: str) -> None:
        with self._lock:
            if key not in self._rows:
                self._rows[key] = [key, 0, 0, ""]
            self._rows[key][3] = note
            self._draw(force=True)

    def note(self, message: str) -> None:
        with self._lock:
            self._draw(force=True)
            self.stream.write(message + "\n")
            self.stream.flush()
            self._rows.clear()
            self._drawn = 0


def make_progress(quiet: bool, stream: IO[str] | None = None) -> Progress:
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return NoProgress()
    return BarProgress(stream) if stream.isatty() else LineProgress(stream)


# -- commands -----------------------------------------------------------------------------
def _env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if getattr(args, "authfile", None):
        env["REGISTRY_AUTH_FILE"] = os.path.abspath(args.authfile)
    return env


def _ropts(args: argparse.Namespace) -> RegistryOptions:
    creds = None
    if args.creds:
        user, sep, password = args.creds.partition(":")
        if not sep:
            password = getpass.getpass(f"Password for {user}: ")
        creds = Credentials(user, password, "--creds")
    if args.jobs < 1:
        raise OcibuildError("--jobs must be at least 1")
    return RegistryOptions(
        tls_verify=args.tls_verify, credentials=creds, env=_env(args), jobs=args.jobs
    )


def cmd_pull(args: argparse.Namespace) -> int:
    options = options_from(args)
    ref = parse_reference(args.reference)
    started = time.monotonic()
    result = pull(
        Store(options.root),
        ref,
        platform=args.platform,
        ropts=_ropts(args),
        progress=make_progress(args.quiet),
    )
    if not args.quiet:
        print(
            f"pulled {ref.familiar()}@{result.manifest_digest}: {result.layers} layers, "
            f"{result.fetched} downloaded ({human_size(result.fetched_bytes)}) "
            f"in {time.monotonic() - started:.2f}s",
            file=sys.stderr,
        )
    print(result.image_id)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    options = options_from(args, compression=args.compression)
    store = Store(options.root)
    image_id = store.resolve(args.name)
    ref = parse_reference(args.dest or args.name)
    multi = store.index_of(args.name)
    if multi is not None:  # a multi-platform tag: every platform, one index over them
        return _push_index(args, store, multi, ref.familiar(), options.compression)
    started = time.monotonic()
    result = push(
        store,
        image_id,
        ref,
        compression=options.compression,
        ropts=_ropts(args),
        progress=make_progress(args.quiet),
    )
    if args.digestfile:
        with open(args.digestfile, "w") as f:
            f.write(result.manifest_digest)
    if not args.quiet:
        counts: dict[str, int] = {}
        for action in result.actions.values():
            word = action.split(" ", 1)[0]
            counts[word] = counts.get(word, 0) + 1
        summary = ", ".join(f"{n} {w}" for w, n in sorted(counts.items()))
        print(
            f"pushed {result.reference.familiar()} in {time.monotonic() - started:.2f}s "
            f"(blobs: {summary})",
            file=sys.stderr,
        )
    print(result.manifest_digest)
    return 0


def _push_index(
    args: argparse.Namespace,
    store: Store,
    images: list[tuple[str, dict[str, str]]],
    dest: str,
    compression: str,
) -> int:
    """``push`` of a multi-platform tag: each platform's image, then the OCI image index
    over them under ``dest``; prints the index's digest."""
    from ocibuild.observe.log import SilentReporter, StreamReporter
    from ocibuild.registry.base import push_index

    reporter = SilentReporter() if args.quiet else StreamReporter()
    digest = push_index(store, images, dest, compression=compression, reporter=reporter,
                        ropts=_ropts(args))  # fmt: skip
    if args.digestfile:
        with open(args.digestfile, "w") as f:
            f.write(digest)
    print(digest)
    return 0


def _registry_host(text: str) -> str:
    host = text.split("://", 1)[-1].split("/", 1)[0]
    if not host:
        raise OcibuildError(f"invalid registry {text!r}", hint="give HOST[:PORT]")
    return DEFAULT_DOMAIN if host in (LEGACY_DOMAIN, "registry-1.docker.io") else host


def cmd_login(args: argparse.Namespace) -> int:
    host = _registry_host(args.registry)
    user = args.username
    if not user:
        user = input("Username: ").strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password is not None:
        password = args.password
    else:
        password = getpass.getpass("Password: ")
    if not user or not password:
        raise OcibuildError("login needs a user name and a password")
    creds = Credentials(user, password, "the login command")
    api_host = "registry-1.docker.io" if host == DEFAULT_DOMAIN else host
    Client(api_host, credentials=creds, tls_verify=args.tls_verify).ping()
    env = _env(args)
    file = env.get("REGISTRY_AUTH_FILE") or login_file(env)
    store_credentials(host, creds, file)
    print(f"Login Succeeded (credentials for {host} stored in {file})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    host = _registry_host(args.registry)
    env = _env(args)
    file = env.get("REGISTRY_AUTH_FILE") or login_file(env)
    if not remove_credentials(host, file):
        raise OcibuildError(f"not logged in to {host}", hint=f"{file} has no entry for it")
    print(f"Removed login credentials for {host} from {file}")
    return 0
