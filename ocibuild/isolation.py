"""Isolation modes: how RUN steps are sandboxed and whether the build enters a user namespace.

* ``oci``: root, the OCI runtime (runc, crun) runs each step;
* ``native-chroot``: no runtime, ocibuild's own sandbox (:mod:`ocibuild.runtime.native`);
  as an ordinary user it runs inside the same user namespace as native-rootless;
* ``native-rootless``: an ordinary user; the build re-executes itself in a user namespace
  mapped with newuidmap/newgidmap from /etc/subuid and /etc/subgid (uid 0 inside = the
  user, 1.. = the subordinate ranges), mounts overlay there (``userxattr``) and runs the
  runtime rootless. Without ranges (or without newuidmap) the mapping is the user alone
  (setgroups denied), said once;
* ``auto``: root → oci (native-chroot without a runtime); anyone else → native-rootless
  (native-chroot without a runtime). ``--debug`` says what was picked and why.

The user-namespace entry is a re-execution: ``python -m ocibuild.isolation`` unshares the
user namespace, waits until the parent wrote its maps, then calls ``main(argv)`` of the
entry module the caller named (the CLI passes ``ocibuild.cli``): this module never
imports the command line that uses it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence

from ocibuild import _native, _record, doctor
from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError
from ocibuild.fs.idmap import in_user_namespace, newidmap_args, read_subids
from ocibuild.observe.log import Reporter
from ocibuild.options import Options, default_root
from ocibuild.runtime import native
from ocibuild.storage import driver

ENV_USER = "OCIBUILD_ROOTLESS_USER"
ENV_UID = "OCIBUILD_ROOTLESS_UID"
ENV_GID = "OCIBUILD_ROOTLESS_GID"


@dataclass(frozen=True)
class Decision:
    isolation: str  # oci | native-chroot | native-rootless
    runtime: str  # the runtime binary, or "native-chroot"
    rootless: bool
    why: str


def outer_identity() -> tuple[str, int, int]:
    """(login, uid, gid) of the user who started the build (outside any user namespace)."""
    if ENV_UID in os.environ:
        return (
            os.environ.get(ENV_USER, ""),
            int(os.environ[ENV_UID]),
            int(os.environ.get(ENV_GID, "0")),
        )
    uid, gid = os.getuid(), os.getgid()
    return doctor.login_of(uid), uid, gid


def decide(options: Options) -> Decision:
    """Pick the isolation mode from ``options``, who runs and what the machine has."""
    rootless = in_user_namespace()
    runtime = options.runtime
    has_runtime = shutil.which(runtime) is not None
    who = "inside the build's user namespace" if rootless else "running as root"
    if not rootless and os.geteuid() != 0:
        raise OcibuildError(
            "an ordinary user builds inside a user namespace",
            hint="use the ocibuild command (it enters one), or call "
            "ocibuild.isolation.reexec_in_user_namespace() first",
        )
    mode = options.isolation
    if mode == "docker-with-fuse":
        raise OcibuildError(
            "--isolation docker-with-fuse runs `ocibuild build` in a container; this command "
            "runs natively",
            hint="use --isolation auto",
        )
    if mode == "auto":
        if not has_runtime:
            return Decision(
                "native-chroot",
                native.NAME,
                rootless,
                f"{who}; {runtime} is not installed, so the native sandbox runs the steps",
            )
        picked = "native-rootless" if rootless else "oci"
        return Decision(picked, runtime, rootless, f"{who}; {runtime} found")
    if mode == "native-chroot":
        return Decision(mode, native.NAME, rootless, f"asked for; {who}")
    if mode == "oci" and rootless:
        raise OcibuildError(
            "--isolation oci needs root", hint="use --isolation native-rootless or auto"
        )
    return Decision(mode, runtime, rootless, f"asked for; {who}")


def resolve(options: Options, reporter: Reporter, scratch: str) -> Options:
    """The concrete options a build runs with: isolation, sandbox and storage driver.

    Runs the checks the mode needs and raises with the fix when one fails; probes kernel
    overlay (falling back to fuse-overlayfs). Needs the private mount namespace entered.
    """
    decision = decide(options)
    reporter.debug(f"isolation: {options.isolation} -> {decision.isolation} ({decision.why})")
    login, uid, gid = outer_identity()
    needs = doctor.Needs(
        rootless=decision.rootless,
        runtime=None if decision.runtime == native.NAME else decision.runtime,
        storage_driver=options.storage_driver,
        user=login,
        uid=uid,
        gid=gid,
    )
    failure = doctor.first_failure(needs)
    if failure is not None:
        raise OcibuildError(failure.message(), hint=failure.fix or None)
    storage = options.storage_driver
    if storage == "overlay":
        why_not = driver.probe_kernel_overlay(scratch)
        if why_not:
            fuse = doctor.check_fuse(_record.replace(needs, storage_driver="fuse-overlayfs"))
            if fuse.ok:
                storage = "fuse-overlayfs"
                reporter.debug(f"storage: overlay -> fuse-overlayfs (kernel overlay: {why_not})")
            else:  # the last resort: full copies, slower, but a build (a container's case)
                storage = "vfs"
                reporter.debug(
                    f"storage: overlay -> vfs (kernel overlay: {why_not}; fuse-overlayfs: "
                    f"{fuse.detail}, fix: {fuse.fix})"
                )
        else:
            opts = driver.kernel_overlay_opts()
            reporter.debug("storage: overlay -> kernel overlayfs" + (f" ({opts})" if opts else ""))
    else:
        reporter.debug(f"storage: {storage} (asked for)")
    return _record.replace(
        options, isolation=decision.isolation, runtime=decision.runtime, storage_driver=storage
    )


# -- entering the user namespace -----------------------------------------------------------


def needs_user_namespace(isolation: str) -> bool:
    """Whether this process must re-execute itself in a user namespace first."""
    if in_user_namespace() or isolation == "docker-with-fuse":
        return False
    return os.geteuid() != 0 or isolation == "native-rootless"


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def write_maps(pid: int, warn: Callable[[str], None]) -> None:
    """Map the child's user namespace: the user as 0, then its subordinate ranges."""
    login, uid, gid = doctor.login_of(os.getuid()), os.getuid(), os.getgid()
    uids = read_subids("/etc/subuid", login, uid)
    gids = read_subids("/etc/subgid", login, uid)
    tools = shutil.which("newuidmap") and shutil.which("newgidmap")
    import subprocess  # (here and below: a build in this process never needs it)

    if uids and gids and tools:
        for tool, own, ranges in (("newuidmap", uid, uids), ("newgidmap", gid, gids)):
            cmd = [tool, str(pid), *newidmap_args(own, ranges)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise OcibuildError(
                    f"{' '.join(cmd)} failed: {proc.stderr.strip()}",
                    hint="check /etc/subuid and /etc/subgid (`ocibuild doctor`)",
                )
        return
    why = (
        "newuidmap/newgidmap are not installed"
        if not tools
        else (f"{login} has no ranges in /etc/subuid and /etc/subgid")
    )
    warn(
        f"{why}: using a single-id mapping (only uid/gid 0 inside the build); "
        "steps that use other ids fail"
    )
    _write(f"/proc/{pid}/setgroups", "deny")
    _write(f"/proc/{pid}/uid_map", f"0 {uid} 1\n")
    _write(f"/proc/{pid}/gid_map", f"0 {gid} 1\n")


def reexec_in_user_namespace(
    entry: str,
    argv: Sequence[str] | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> int:
    """Run ``entry.main(argv)`` (argv: default this process's) in a new user namespace.

    Returns the child's exit status (the caller exits with it). The store defaults to
    the user's own ($XDG_DATA_HOME/ocibuild), decided out here where the uid is real.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    env.setdefault("OCIBUILD_ROOT", default_root(env))
    env[ENV_USER] = doctor.login_of(os.getuid())
    env[ENV_UID] = str(os.getuid())
    env[ENV_GID] = str(os.getgid())
    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    fds = [str(to_parent_w), str(to_child_r)]
    cmd = [sys.executable, "-m", "ocibuild.isolation", *fds, entry, *args]
    import subprocess

    proc = subprocess.Popen(cmd, env=env, pass_fds=(to_parent_w, to_child_r))
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child gets the terminal's
    old_term = signal.signal(signal.SIGTERM, lambda s, f: proc.send_signal(s))
    try:
        os.close(to_parent_w)
        os.close(to_child_r)
        with os.fdopen(to_parent_r, "rb") as r, os.fdopen(to_child_w, "wb") as w:
            if r.read(1) == b"u":
                try:
                    write_maps(proc.pid, warn or (lambda text: None))
                except BaseException:
                    proc.kill()
                    raise
                w.write(b"k")
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _child(argv: Sequence[str]) -> int:
    to_parent, from_parent = int(argv[0]), int(argv[1])
    _native.set_pdeathsig(signal.SIGKILL)  # the process the user sees dies: so do we
    try:
        _native.unshare(_native.CLONE_NEWUSER)
    except OSError as exc:
        detail, fix = doctor.userns_diagnosis(exc.errno or 0)
        print(f"error: cannot create a user namespace: {detail}", file=sys.stderr)
        print(f"hint: {fix}", file=sys.stderr)
        return 1
    os.write(to_parent, b"u")
    os.close(to_parent)
    with os.fdopen(from_parent, "rb") as f:
        if f.read(1) != b"k":
            return 1
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    main: Callable[[list[str]], int] = importlib.import_module(argv[2]).main
    return main(list(argv[3:]))


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
