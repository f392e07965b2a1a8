"""``docker build`` / ``buildx build`` conventions for ``ocibuild build``: the flags a
user brings from Docker (``--iidfile``, ``--metadata-file``, ``--label``, ``--platform``,
``--progress``, ``--rm``, ``--pull`` as a switch, ``--no-cache=false``, ``-o PATH``,
``-o -``, ``-`` as the context) and the set-up checks that run before the first step."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError
from ocibuild.fs.atomic import write_atomic
from ocibuild.observe.log import JsonReporter, QuietReporter, Reporter, human_size
from ocibuild.options import PULL_POLICIES

PROGRESS = ("auto", "plain", "tty", "quiet", "rawjson")
# Docker's boolean flags also take =true / =false
BOOL_FLAGS = ("--no-cache", "--rm", "--force-rm", "--push", "--quiet", "--keep-failed")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def add_flags(b: argparse.ArgumentParser) -> None:
    """The docker-build flags (kept here, apart from ocibuild's own)."""
    b.add_argument("--iidfile", metavar="FILE", help="write the image ID to FILE")
    b.add_argument(
        "--metadata-file",
        metavar="FILE",
        help="write the build result metadata (buildx's keys) to FILE as JSON",
    )
    b.add_argument("--label", action="append", default=[], metavar="K=V", help="set an image label")
    b.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="OS/ARCH[/VARIANT]",
        help=f"the target platform (default {host_platform()}, this machine's); another "
        "needs its emulator registered in binfmt_misc (see `ocibuild doctor --platform`)",
    )
    b.add_argument(
        "--platform-jobs",
        type=int,
        metavar="N",
        help="with several --platform: how many platforms build at once (default: one per "
        "platform, at most one per CPU; 1 builds them one after the other)",
    )
    b.add_argument(
        "--progress",
        choices=PROGRESS,
        default="auto",
        help="auto, plain and tty: step lines; quiet: as -q; rawjson: one JSON event per line",
    )
    b.add_argument(
        "--build-context",
        action="append",
        default=[],
        metavar="NAME=docker-image://REF|oci-layout://DIR",
        help="FROM NAME and COPY --from=NAME use this image (repeatable)",
    )
    b.add_argument(
        "--ssh",
        action="append",
        default=[],
        metavar="default|ID[=SOCKET]",
        help="forward an SSH agent socket to RUN --mount=type=ssh (default: $SSH_AUTH_SOCK)",
    )
    b.add_argument(
        "--add-host",
        action="append",
        default=[],
        metavar="NAME:IP",
        help="add a line to RUN steps' /etc/hosts (repeatable)",
    )
    b.add_argument(
        "--ulimit",
        action="append",
        default=[],
        metavar="NAME=SOFT[:HARD]",
        help="a resource limit for RUN steps, e.g. nofile=1024:2048 (repeatable)",
    )
    b.add_argument("--shm-size", metavar="SIZE", help="RUN steps' /dev/shm size (default 64m)")
    b.add_argument(
        "--annotation",
        action="append",
        default=[],
        metavar="[manifest:]KEY=VALUE",
        help="annotate the image manifest of a type=oci or oci-archive output (repeatable)",
    )
    b.add_argument("--rm", action="store_true", help="accepted, no effect (always so)")
    b.add_argument("--force-rm", action="store_true", help="accepted, no effect (always so)")
    b.add_argument("--pull-policy", dest="pull", choices=PULL_POLICIES, help=argparse.SUPPRESS)


def host_platform() -> str:
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
    return f"linux/{arch}"


def rewrite_argv(argv: Sequence[str]) -> list[str]:
    """``--pull=POLICY`` -> the policy; ``--FLAG=true|false`` for Docker's boolean flags
    (argparse switches take no value); only in ``build``'s arguments."""
    out = list(argv)
    if not out or out[0] != "build":
        return out
    result = [out[0]]
    for token in out[1:]:
        flag, eq, value = token.partition("=")
        if eq and flag == "--pull":
            result.append(f"--pull-policy={value}")
        elif eq and flag in BOOL_FLAGS:
            if value.lower() in _TRUE:
                result.append(flag)
            elif value.lower() not in _FALSE:
                raise OcibuildError(f"{flag}={value}: expected true or false")
        else:
            result.append(token)
    return result


def check_platforms(platforms: Sequence[str]) -> list[str]:
    """The platforms to build for (normalised: linux/aarch64 is linux/arm64; duplicates
    dropped); one whose programs cannot run here (no emulator registered) is refused
    before anything runs."""
    from ocibuild.platforms import check_runnable, parse_platforms

    wanted = parse_platforms(list(platforms))
    for target in wanted:
        check_runnable(target)
    return [str(p) for p in wanted] or [host_platform()]


MULTI_OUTPUTS = ("oci", "oci-archive", "registry")


def check_multi_output(output: Any, platforms: Sequence[str]) -> None:
    """A multi-platform build exports one image index: only to an OCI layout, an OCI
    archive or a registry."""
    if len(platforms) < 2 or output is None:
        return
    if output.type not in MULTI_OUTPUTS or output.dest == "-":
        raise OcibuildError(
            f"--output type={output.type}"
            + (",dest=-" if output.dest == "-" else "")
            + ": a multi-platform build ("
            + ",".join(platforms)
            + ") makes one image index",
            hint="export it with --output type=oci,dest=DIR, type=oci-archive,dest=FILE or "
            "type=registry (or --push); or build one platform at a time",
        )
    if output.annotations:
        raise OcibuildError(
            "--annotation: not supported with a multi-platform build yet",
            hint="build one platform at a time to annotate its manifest",
        )


def check_writable_dir(path: str, what: str, hint: str) -> None:
    """``path`` (or its nearest existing parent) is a directory we can write in."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise OcibuildError(f"{what} {path}: {probe} is not a directory", hint=hint)
    try:  # an unnamed file: nothing to clean up, and no tempfile import (start-up time)
        os.close(os.open(probe, os.O_TMPFILE | os.O_WRONLY, 0o600))
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR):  # (no O_TMPFILE there)
            raise OcibuildError(
                f"{what} {path} is not writable: {exc.strerror}", hint=hint
            ) from None
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise OcibuildError(f"{what} {path} is not writable: {exc.strerror}", hint=hint) from None


def check_setup(args: argparse.Namespace, root: str, output: Any) -> None:
    """Mistakes a user can make before anything runs: each a clear error, now."""
    check_writable_dir(root, "store directory", "give a writable one with --root or $OCIBUILD_ROOT")
    if output is not None and output.dest and output.dest != "-":
        target = (
            output.dest
            if output.type in ("oci", "local")
            else os.path.dirname(os.path.abspath(output.dest))
        )
        check_writable_dir(target, "output destination", "give a writable --output dest=PATH")
        if output.type not in ("oci", "local") and os.path.isdir(output.dest):
            raise OcibuildError(
                f"--output type={output.type}: {output.dest} is a directory",
                hint="give the path of the archive file to write",
            )
    if output is not None and output.dest == "-" and sys.stdout.isatty():
        raise OcibuildError(
            "refusing to write a tar archive to a terminal",
            hint="redirect the output (-o - > image.tar) or give -o PATH",
        )
    for path, what in ((args.iidfile, "--iidfile"), (args.metadata_file, "--metadata-file")):
        if path:
            parent = os.path.dirname(os.path.abspath(path))
            check_writable_dir(parent, what, f"give {what} a path in a writable directory")
    if args.context != "-" and not is_git_url(args.context):
        if not os.path.exists(args.context):
            raise OcibuildError(
                f"build context {args.context}: directory does not exist",
                hint="give the directory that holds the Dockerfile and the files it copies",
            )
        if not os.path.isdir(args.context):
            raise OcibuildError(
                f"build context {args.context} is a file, not a directory",
                hint="give the directory (the Dockerfile goes with -f FILE), "
                "or - to read a Dockerfile or a tar archive from standard input",
            )


def is_git_url(text: str) -> bool:
    """What docker build takes as a git context."""
    if text.startswith(("git://", "git@", "github.com/")):
        return True
    if text.startswith(("http://", "https://", "ssh://", "file://")):
        return text.partition("#")[0].endswith(".git") or text.startswith(("ssh://", "file://"))
    return False


@dataclass
class Context:
    """Where the build context is and the Dockerfile text when it came on stdin."""

    directory: str
    dockerfile_text: str | None = None


@contextlib.contextmanager
def materialize(context: str, stdin: IO[bytes] | None = None) -> Iterator[Context]:
    """``-``: a tar archive (the context) or a Dockerfile (no context) on standard input;
    a git URL: a shallow clone; else the directory itself. Temporary copies are removed."""
    if context != "-" and not is_git_url(context):
        yield Context(context)
        return
    import io
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix="ocibuild-context-")
    try:
        if context == "-":
            data = (stdin or sys.stdin.buffer).read()
            if _is_archive(data):
                from ocibuild.layers.apply import extract_archive

                extract_archive(io.BytesIO(data), tmp, "/")
                yield Context(tmp)
            else:
                yield Context(tmp, data.decode("utf-8", "surrogateescape"))
        else:
            yield Context(_git_clone(context, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _is_archive(data: bytes) -> bool:
    if data[:2] == b"\x1f\x8b" or data[:4] == b"\x28\xb5\x2f\xfd" or data[:3] == b"BZh":
        return True
    if data[:6] == b"\xfd7zXZ\x00":
        return True
    import io
    import tarfile

    padded = io.BytesIO(data[:10240] + b"\0" * 1024)
    with contextlib.suppress(tarfile.TarError), tarfile.open(fileobj=padded) as tf:
        return tf.next() is not None
    return False


def _git_clone(url: str, dest: str) -> str:
    """``URL[#REF[:SUBDIR]]`` as docker build takes it; returns the context directory."""
    import shutil
    import subprocess

    base, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    if base.startswith("github.com/"):
        base = "https://" + base
    git = shutil.which("git")
    if git is None:
        raise OcibuildError("a git context needs git", hint="install git")
    repo = os.path.join(dest, "repo")
    cmd = [git, "clone", "--quiet", "--recurse-submodules", "--depth", "1"]
    if ref:
        cmd += ["--branch", ref]
    proc = subprocess.run(
        [*cmd, "--", base, repo], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise OcibuildError(
            f"cannot clone the git context {url}: {proc.stderr.strip() or proc.returncode}",
            hint="check the URL and the branch or tag after #",
        )
    shutil.rmtree(os.path.join(repo, ".git"), ignore_errors=True)
    if not subdir:
        return repo
    inner = os.path.realpath(os.path.join(repo, subdir))
    if not inner.startswith(os.path.realpath(repo) + os.sep) or not os.path.isdir(inner):
        raise OcibuildError(f"git context {url}: no directory {subdir!r} in the repository")
    return inner


def write_results(
    args: argparse.Namespace, image_id: str, tags: Sequence[str], output: Any
) -> None:
    """``--iidfile`` and ``--metadata-file`` (buildx's keys; ``containerimage.digest``,
    the manifest's digest, when the build wrote an OCI layout)."""
    if args.iidfile:
        _write(args.iidfile, image_id)
    if args.metadata_file:
        meta: dict[str, Any] = {"containerimage.config.digest": image_id}
        if output is not None and output.type == "oci" and output.dest != "-":
            with open(os.path.join(output.dest, "index.json"), encoding="utf-8") as f:
                manifests = json.load(f).get("manifests") or []
            if manifests:
                meta["containerimage.digest"] = manifests[-1]["digest"]
        if tags:
            meta["image.name"] = ",".join(tags)
        _write(args.metadata_file, json.dumps(meta, indent=2) + "\n")


OUTPUT_WORDS = {
    "oci": "an OCI image layout",
    "oci-archive": "an OCI image archive",
    "docker-archive": "a docker archive (for docker load)",
    "tar": "a tar of the root filesystem",
    "local": "the root filesystem",
}


def describe_output(output: Any) -> str | None:
    """What ``--output`` wrote, and where (a push says so itself)."""
    if output is None or output.type not in OUTPUT_WORDS:
        return None
    what = OUTPUT_WORDS[output.type]
    if output.dest == "-":
        return f"wrote {what} to standard output"
    path = os.path.abspath(output.dest)
    return f"wrote {what} to {path} ({human_size(_disk_size(path))})"


def _disk_size(path: str) -> int:
    if not os.path.isdir(path):
        try:
            return os.lstat(path).st_size
        except OSError:
            return 0
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_size
    return total


def _write(path: str, text: str) -> None:
    write_atomic(path, text)


def make_reporter(progress: str, quiet: bool, debug: bool) -> Reporter | None:
    """-q / --progress quiet: nothing but the image ID on standard output; rawjson: events;
    None: the step lines (auto, plain, tty: the StreamReporter)."""
    if quiet:
        return QuietReporter()
    if progress == "rawjson":
        return JsonReporter(debug=debug)
    return None
