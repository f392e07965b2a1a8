"""``--isolation docker-with-fuse``: the build runs in the ocibuild image through docker or
podman, and its result lands in the host's store as if built natively.

The host command starts one container of ``$OCIBUILD_IMAGE`` (default ``ocibuild:latest``,
the image ``make image`` builds from the repository's Dockerfile; loaded into the engine
from the host's store when the engine lacks it) with the flags an unprivileged build
needs inside (:func:`run_flags`): ``/dev/fuse`` and ``/dev/net/tun``, the seccomp profile
of :func:`seccomp_profile` (Docker's default plus the namespace and mount calls), an
unmasked /proc (a user namespace mounts a fresh /proc only where no path of it is
masked), and the host's network. In it, the user ``build`` runs ``ocibuild build`` in
native-rootless mode against a store in a named volume (``$OCIBUILD_ENGINE_VOLUME``,
default ``ocibuild-store``: its step cache survives the container), the context and the
Dockerfile mounted read-only. Secrets travel as a tar on the container's standard input
into a tmpfs of the container (never on the engine's command line or in its environment
listing). The image comes back as an uncompressed OCI archive on the container's
standard output, is imported into the host's store (same config digest, so the same
image ID as a native build of the same Dockerfile and SOURCE_DATE_EPOCH), tagged, then
exported or pushed by the host as ``--output``/``--push`` say.

``python -m ocibuild.engine seccomp-profile [FILE]`` writes the container profile.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError
from ocibuild.observe.log import Reporter
from ocibuild.options import Options

if TYPE_CHECKING:
    from ocibuild.image.store import Store

MODE = "docker-with-fuse"
ENGINES = ("podman", "docker")
DEFAULT_IMAGE = "ocibuild:latest"
DEFAULT_VOLUME = "ocibuild-store"
STORE_IN_IMAGE = "/home/build/.local/share/ocibuild"  # the image's VOLUME (Dockerfile)
CONTEXT_IN_IMAGE = "/ocibuild/context"
DOCKERFILE_IN_IMAGE = "/ocibuild/dockerfile"
SECRETS_IN_IMAGE = "/dev/shm/ocibuild-secrets"  # a tmpfs of the container
PROFILE_NAME = "ocibuild-in-container.json"

# What Docker's default profile refuses without CAP_SYS_ADMIN (or altogether) and an
# unprivileged build needs: user and mount namespaces (clone/unshare with namespace
# flags, setns), mounts (the legacy and the new mount API: overlay, fuse-overlayfs,
# the runtime's /proc, /dev, /sys), pivot_root and chroot into the root filesystem,
# the runtime's session keyring (keyctl) and the step's hostname. The RUN steps
# themselves still get Docker's default profile from ocibuild, inside.
SECCOMP_ALLOW = (
    "chroot", "clone", "fsconfig", "fsmount", "fsopen", "fspick", "keyctl", "mount",
    "mount_setattr", "move_mount", "open_tree", "pivot_root", "setdomainname",
    "sethostname", "setns", "umount", "umount2", "unshare",
)  # fmt: skip
SECCOMP_COMMENT = (
    "ocibuild: user namespaces, mounts and pivot_root for an unprivileged build inside "
    "the container (ocibuild/engine.py)"
)


# -- the seccomp profile ---------------------------------------------------------------------


def seccomp_profile(default: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Docker's default profile (the one RUN steps get, see
    :mod:`ocibuild.runtime.seccomp`) with one more rule: :data:`SECCOMP_ALLOW`
    unconditionally allowed. Everything else stays as Docker has it."""
    if default is None:
        from ocibuild.runtime.seccomp import default_profile

        default = default_profile()
    profile = copy.deepcopy(dict(default))
    rule = {
        "names": list(SECCOMP_ALLOW),
        "action": "SCMP_ACT_ALLOW",
        "args": [],
        "comment": SECCOMP_COMMENT,
        "includes": {},
        "excludes": {},
    }
    profile["syscalls"] = [*profile.get("syscalls", []), rule]
    return profile


def write_seccomp_profile(path: str) -> str:
    """Write :func:`seccomp_profile` to ``path`` (atomically, mode 0644); returns it."""
    text = json.dumps(seccomp_profile(), indent=1, sort_keys=True) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".seccomp-", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


# -- the engine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """A docker or podman command line that answers."""

    path: str
    kind: str  # "podman" or "docker"

    def cmd(self, *args: str) -> list[str]:
        return [self.path, *args]


def _probe(path: str, kind: str) -> tuple[bool, str]:
    field = "{{.Server.Version}}" if kind == "docker" else "{{.Client.Version}}"
    try:
        proc = subprocess.run(
            [path, "version", "--format", field],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return False, lines[-1] if lines else f"exit status {proc.returncode}"
    return True, proc.stdout.strip()


def find_engine(env: Mapping[str, str] | None = None) -> Engine:
    """``$OCIBUILD_CONTAINER_ENGINE`` (docker, podman or a path), else podman, else docker;
    the engine must answer ``version`` (docker: its daemon runs)."""
    env = os.environ if env is None else env
    chosen = env.get("OCIBUILD_CONTAINER_ENGINE", "").strip()
    candidates = [chosen] if chosen else list(ENGINES)
    problems = []
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            problems.append(f"{name} is not installed")
            continue
        kind = "docker" if "docker" in os.path.basename(path) else "podman"
        ok, said = _probe(path, kind)
        if ok:
            return Engine(path, kind)
        problems.append(f"{name} does not answer: {said}")
    raise OcibuildError(
        f"--isolation {MODE} needs a container engine: " + "; ".join(problems),
        hint="install podman (apt-get install -y podman) or start a Docker daemon; "
        "OCIBUILD_CONTAINER_ENGINE=docker|podman|PATH chooses one",
    )


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled", encoding="ascii") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def run_flags(engine: Engine, profile: str) -> list[str]:
    """What an unprivileged build inside the ocibuild image needs from the engine."""
    flags = ["--device", "/dev/fuse", "--security-opt", f"seccomp={profile}"]
    if os.path.exists("/dev/net/tun"):  # RUN steps' own network (slirp4netns)
        flags += ["--device", "/dev/net/tun"]
    # a user namespace may mount /proc only where no path of the container's /proc is
    # masked or read-only (the kernel's mount_too_revealing)
    if engine.kind == "podman":
        flags += ["--security-opt", "unmask=/proc/*"]
    else:
        flags += ["--security-opt", "systempaths=unconfined"]
    if apparmor_enabled():  # the engines' default AppArmor profile denies mount
        flags += ["--security-opt", "apparmor=unconfined"]
    return flags


def profile_path(store_root: str) -> str:
    """The container profile, written into the store's directory (regenerated each time
    from the default profile, so it follows a newer Docker profile)."""
    return write_seccomp_profile(os.path.join(store_root, "engine", PROFILE_NAME))


# -- the image -------------------------------------------------------------------------------


def _engine_has(engine: Engine, ref: str) -> bool:
    proc = subprocess.run(
        engine.cmd("image", "inspect", "--format", "{{.Id}}", ref),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode == 0


def ensure_image(engine: Engine, store: Store, name: str, reporter: Reporter) -> str:
    """The reference to run: the image ``name`` of the host's store (by ID, loaded into
    the engine when missing there), else ``name`` as the engine knows it."""
    from ocibuild.errors import StoreError

    try:
        image_id = store.resolve(name)
    except (StoreError, OcibuildError):
        image_id = None
    if image_id is None:
        if _engine_has(engine, name):
            return name
        raise OcibuildError(
            f"the ocibuild image {name!r} is neither in the store {store.root} nor in "
            f"{engine.kind}",
            hint="build it with `make image` (ocibuild:latest), or set OCIBUILD_IMAGE to an "
            "image with ocibuild in it",
        )
    ref = image_id if engine.kind == "docker" else image_id.removeprefix("sha256:")
    if _engine_has(engine, ref):
        return ref
    reporter.info(f"loading {name} ({image_id[:19]}) into {engine.kind}")
    _load(engine, store, image_id, name)
    if not _engine_has(engine, ref):
        raise OcibuildError(f"{engine.kind} load of {name} did not give image {image_id}")
    return ref


def _load(engine: Engine, store: Store, image_id: str, name: str) -> None:
    from ocibuild.image.archive import export_docker_archive

    work = store.tmpdir("engine-load-")
    try:
        archive = os.path.join(work, "image.tar")
        export_docker_archive(store, image_id, archive, repo_tags=[name])
        proc = subprocess.run(
            engine.cmd("load", "-i", archive),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise OcibuildError(
                f"{engine.kind} load of {name} failed: {proc.stderr.strip()}",
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _safe(ref: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in ref)


def check_image(engine: Engine, ref: str, name: str) -> None:
    """One clear error when the image has no ocibuild on its PATH."""
    proc = subprocess.run(
        engine.cmd("run", "--rm", "--network", "none", ref, "ocibuild", "--version"),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0 or not proc.stdout.startswith("ocibuild "):
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
        raise OcibuildError(
            f"the image {name!r} cannot run ocibuild ({engine.kind} said: {said[0]})",
            hint="use the image the repository's Dockerfile makes (`make image`), or set "
            "OCIBUILD_IMAGE to one with ocibuild on its PATH",
        )


# -- the build -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the host passes into the container."""

    context: str
    dockerfile: str | None  # a path on the host, or None (CONTEXT/Dockerfile)
    build_args: Mapping[str, str]
    target: str | None
    platform: str | None
    labels: Mapping[str, str]
    secrets: Mapping[str, bytes]  # id -> value (read on the host)
    passthrough: Sequence[str]  # flags given to the inner ocibuild verbatim
    compression: str = "gzip"


def inner_command(req: Request, has_dockerfile: bool) -> list[str]:
    """The in-container ``ocibuild build`` (no secret value in it, ever)."""
    argv = ["ocibuild", "build", "--root", STORE_IN_IMAGE, "--isolation", "auto"]
    if has_dockerfile:
        argv += ["-f", f"{DOCKERFILE_IN_IMAGE}/Dockerfile"]
    for key, value in req.build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    if req.target:
        argv += ["--target", req.target]
    if req.platform:
        argv += ["--platform", req.platform]
    for key, value in req.labels.items():
        argv += ["--label", f"{key}={value}"]
    for index, secret_id in enumerate(sorted(req.secrets)):
        argv += ["--secret", f"id={secret_id},src={SECRETS_IN_IMAGE}/s{index}"]
    argv += list(req.passthrough)
    if not os.path.exists("/dev/net/tun") and not any(
        a.startswith("--network") for a in req.passthrough
    ):
        argv += ["--network=host"]  # no tun device to pass in: the container's network
    # compressed as the host's export would be: a pulled base layer keeps its registry
    # blob and the host store keeps what came back, so a re-export is byte-identical
    argv += ["--compression", req.compression, "--output", "type=oci-archive,dest=-"]
    return [*argv, CONTEXT_IN_IMAGE]


def _secrets_tar(secrets: Mapping[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for index, secret_id in enumerate(sorted(secrets)):
            data = secrets[secret_id]
            info = tarfile.TarInfo(f"s{index}")
            info.size, info.mode = len(data), 0o600
            tf.addfile(info, io.BytesIO(data))
    return raw.getvalue()


# unpacks the secrets from standard input into a tmpfs, then runs the build
_SECRETS_SCRIPT = (
    f'umask 077 && mkdir -p {SECRETS_IN_IMAGE} && tar -xf - -C {SECRETS_IN_IMAGE} && exec "$@"'
)


def container_command(
    engine: Engine,
    image: str,
    req: Request,
    profile: str,
    volume: str,
    epoch: int | None,
) -> list[str]:
    """The engine's ``run`` command line."""
    argv = engine.cmd("run", "--rm", "--network", "host", *run_flags(engine, profile))
    argv += ["-v", f"{volume}:{STORE_IN_IMAGE}"]
    argv += ["-v", f"{os.path.abspath(req.context)}:{CONTEXT_IN_IMAGE}:ro"]
    if req.dockerfile:
        argv += ["-v", f"{os.path.abspath(req.dockerfile)}:{DOCKERFILE_IN_IMAGE}/Dockerfile:ro"]
    if epoch is not None:
        argv += ["-e", f"SOURCE_DATE_EPOCH={epoch}"]
    if req.secrets:
        argv += ["-i"]
    argv += ["--user", "build", image]
    inner = inner_command(req, req.dockerfile is not None)
    if req.secrets:
        return [*argv, "sh", "-c", _SECRETS_SCRIPT, "sh", *inner]
    return [*argv, *inner]


def run_in_container(
    engine: Engine,
    image: str,
    req: Request,
    *,
    profile: str,
    volume: str,
    epoch: int | None,
    archive: IO[bytes],
    reporter: Reporter,
) -> None:
    """Run the build; the OCI archive it writes to standard output goes to ``archive``.
    Its step lines go to this process's standard error as they come."""
    argv = container_command(engine, image, req, profile, volume, epoch)
    reporter.debug("engine: " + " ".join(argv))
    stdin = _secrets_tar(req.secrets) if req.secrets else None
    proc = subprocess.run(
        argv,
        input=stdin,
        stdout=archive,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise OcibuildError(
            f"the build inside the {engine.kind} container failed (exit status "
            f"{proc.returncode}; its error is above)",
            hint=f"the container was: {' '.join(argv[:4])} ... {image}; `ocibuild doctor` "
            "inside the image says what the container lacks",
        )


def extract_layout(archive: str, dest: str) -> None:
    """Unpack an OCI archive: plain files and directories only, every name inside
    ``dest`` (Python 3.11.2, Debian's, has no extraction filters yet)."""
    os.makedirs(dest, mode=0o700, exist_ok=True)
    with tarfile.open(archive) as tf:
        for member in tf:
            parts = member.name.split("/")
            if member.name.startswith("/") or ".." in parts:
                raise tarfile.TarError(f"unsafe name {member.name!r}")
            target = os.path.join(dest, *[p for p in parts if p not in ("", ".")])
            if member.isdir():
                os.makedirs(target, mode=0o700, exist_ok=True)
            elif member.isfile():
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                source = tf.extractfile(member)
                assert source is not None
                with source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            else:
                raise tarfile.TarError(f"unexpected entry {member.name!r} (type {member.type!r})")


def import_archive(store: Store, archive: str) -> str:
    """The image of an OCI archive, imported into ``store``; returns its ID."""
    from ocibuild.image.layout import import_oci_layout

    work = store.tmpdir("engine-import-")
    try:
        layout = os.path.join(work, "layout")
        extract_layout(archive, layout)
        return str(import_oci_layout(store, layout, None))
    except tarfile.TarError as exc:
        raise OcibuildError(
            f"the build inside the container gave no OCI archive ({exc})",
            hint="the image's ocibuild may be too old: rebuild it with `make image`",
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_secrets(options: Options) -> dict[str, bytes]:
    """Every ``--secret``'s value, read here on the host (file or environment)."""
    out = {}
    for secret_id, secret in options.secrets.items():
        if secret.kind == "env":
            value = os.environ.get(secret.source)
            if value is None:
                raise OcibuildError(
                    f"--secret id={secret_id}: the environment variable {secret.source} is not set"
                )
            out[secret_id] = value.encode()
        else:
            try:
                with open(secret.source, "rb") as f:
                    out[secret_id] = f.read()
            except OSError as exc:
                raise OcibuildError(
                    f"--secret id={secret_id}: cannot read {secret.source}: {exc.strerror}"
                ) from None
    return out


def build(
    req: Request,
    options: Options,
    reporter: Reporter,
    env: Mapping[str, str] | None = None,
    *,
    store_mode: str = "direct",
) -> tuple[str, str | None]:
    """Build ``req`` in the ocibuild image. Returns (image ID, the OCI archive's path or
    None). ``store_mode``: ``direct`` imports the image into the host's store
    (``options.root``) here, ``userns`` in the user's user namespace (an ordinary user's
    store holds other ids' files only there), ``none`` keeps only the archive (kept in
    the store's scratch space: the caller writes the outputs from it and removes it).
    Tags and outputs are the caller's (as for a native build)."""
    from ocibuild.image.store import Store

    env = os.environ if env is None else env
    engine = find_engine(env)
    store = Store(options.root)
    name = env.get("OCIBUILD_IMAGE") or DEFAULT_IMAGE
    image = ensure_image(engine, store, name, reporter)
    # once per image ID and engine (a container start each); a name may move: always
    checked = os.path.join(options.root, "engine", f"checked-{engine.kind}-{_safe(image)}")
    if image == name or not os.path.exists(checked):
        check_image(engine, image, name)
    profile = profile_path(options.root)
    if image != name:
        with open(checked, "w", encoding="ascii"):
            pass
    volume = env.get("OCIBUILD_ENGINE_VOLUME") or DEFAULT_VOLUME
    reporter.debug(f"isolation: {MODE} through {engine.path}, image {name} ({image})")
    work = store.tmpdir("engine-out-")
    path = os.path.join(work, "image.tar")
    try:
        with open(path, "wb") as archive:
            run_in_container(
                engine,
                image,
                req,
                profile=profile,
                volume=volume,
                epoch=options.source_date_epoch,
                archive=archive,
                reporter=reporter,
            )
        if store_mode == "none":
            return archive_image_id(path), path
        if store_mode == "userns":
            return import_in_user_namespace(path, options.root), None
        return import_archive(store, path), None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if store_mode != "none":
            shutil.rmtree(work, ignore_errors=True)


def archive_image_id(archive: str) -> str:
    """The config digest (image ID) of the one image of an OCI archive."""
    with tarfile.open(archive) as tf:

        def read(name: str) -> Any:
            member = tf.extractfile(name)
            if member is None:
                raise OcibuildError(f"the container's OCI archive lacks {name}")
            return json.load(member)

        try:
            index = read("index.json")
            manifest = read("blobs/sha256/" + index["manifests"][0]["digest"].split(":", 1)[1])
            return str(manifest["config"]["digest"])
        except (KeyError, IndexError, ValueError) as exc:
            raise OcibuildError(f"the container's OCI archive is not readable: {exc}") from None


def import_in_user_namespace(archive: str, root: str) -> str:
    """:func:`import_archive` run by ``python -m ocibuild.engine import`` re-executed in
    the user's user namespace (as a rootless build's store is written)."""
    from ocibuild import isolation

    idfile = os.path.join(os.path.dirname(archive), "image-id")
    rc = isolation.reexec_in_user_namespace("ocibuild.engine", ["import", archive, root, idfile])
    if rc != 0:
        raise OcibuildError("importing the container's image into the store failed (above)")
    with open(idfile, encoding="ascii") as f:
        return f.read().strip()


def store_mode() -> str:
    """How the image reaches this process's store (see :func:`build`)."""
    from ocibuild.fs.idmap import in_user_namespace

    if os.geteuid() == 0 or in_user_namespace():
        return "direct"
    from ocibuild import doctor

    return "userns" if doctor.probe_userns() == 0 else "none"


def fallback_reason(isolation: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """Why this build runs in a container: ``asked for``, or (``auto``) what stops the
    native modes here while an engine answers; None: build natively."""
    env = os.environ if env is None else env
    wanted = isolation or env.get("OCIBUILD_ISOLATION") or "auto"
    if wanted == MODE:
        return "asked for"
    if wanted != "auto":
        return None
    if sys.platform != "linux":
        blocker = f"this is {sys.platform}, not Linux"
    elif os.geteuid() == 0:
        return None  # root builds natively (oci, else native-chroot)
    else:
        from ocibuild import doctor
        from ocibuild.fs.idmap import in_user_namespace

        if in_user_namespace():
            return None
        code = doctor.probe_userns()
        if code == 0:
            return None
        blocker = doctor.userns_diagnosis(code)[0]
    try:
        engine = find_engine(env)
    except OcibuildError:
        return None  # the native mode's own error says what is missing
    return f"native builds cannot run here ({blocker}); {engine.kind} can run the build"


def doctor_findings(root: str, env: Mapping[str, str] | None = None) -> list[Any]:
    """What ``--isolation docker-with-fuse`` needs: an engine that answers, the image (in
    the store or the engine), and Docker's default profile to derive the seccomp one."""
    from ocibuild.doctor import Finding
    from ocibuild.image.store import Store

    env = os.environ if env is None else env
    try:
        engine = find_engine(env)
    except OcibuildError as exc:
        return [Finding("container engine", False, exc.message, exc.hint or "", True)]
    found = [Finding("container engine", True, f"{engine.kind} ({engine.path})")]
    name = env.get("OCIBUILD_IMAGE") or DEFAULT_IMAGE
    try:
        image_id = Store(root).resolve(name) if os.path.isdir(root) else None
    except OcibuildError:
        image_id = None
    if image_id is not None:
        found.append(Finding("ocibuild image", True, f"{name} in the store ({image_id[:19]})"))
    elif _engine_has(engine, name):
        found.append(Finding("ocibuild image", True, f"{name} in {engine.kind}"))
    else:
        found.append(
            Finding(
                "ocibuild image",
                False,
                f"{name} is neither in the store {root} nor in {engine.kind}",
                "make image (or set OCIBUILD_IMAGE)",
                True,
            )
        )
    try:
        seccomp_profile()
        found.append(Finding("seccomp profile", True, "derived from Docker's default profile"))
    except OcibuildError as exc:
        found.append(Finding("seccomp profile", False, exc.message, exc.hint or "", True))
    return found


# -- the command line's part -----------------------------------------------------------------

# build flags passed to the inner build verbatim (name -> takes a value)
_PASSED = {
    "no_cache": "--no-cache",
    "network": "--network",
    "pull": "--pull",
    "debug": "--debug",
    "quiet": "--quiet",
    "storage_driver": "--storage-driver",
    "runtime": "--runtime",
}
_REPEATED = {
    "no_cache_filter": "--no-cache-filter",
    "cache_from": "--cache-from",
    "cache_to": "--cache-to",
    "add_host": "--add-host",
    "ulimit": "--ulimit",
}
# flags of the host's build that have no meaning (yet) inside the container
_REFUSED = {
    "ssh": "--ssh",
    "build_context": "--build-context",
    "keep_failed": "--keep-failed",
    "keep_bundles": "--keep-bundles",
    "check_reproducible": "--check-reproducible",
    "trace": "--trace",
    "report": "--report",
    "explain": "--explain",
}


def request_from_args(args: argparse.Namespace, options: Options, context: str) -> Request:
    """The container's part of ``ocibuild build ARGS`` (the rest stays on the host)."""
    for attr, flag in _REFUSED.items():
        if getattr(args, attr, None):
            raise OcibuildError(
                f"{flag} is not available with --isolation {MODE}",
                hint="build natively (--isolation auto) to use it",
            )
    platforms = [p for item in args.platform for p in item.split(",") if p.strip()]
    if len(platforms) > 1:
        raise OcibuildError(
            f"--isolation {MODE} builds one platform at a time",
            hint="give one --platform, or build natively",
        )
    passthrough: list[str] = []
    for attr, flag in _PASSED.items():
        value = getattr(args, attr, None)
        if value is True:
            passthrough.append(flag)
        elif isinstance(value, str) and value:
            passthrough.append(f"{flag}={value}")
    for attr, flag in _REPEATED.items():
        for value in getattr(args, attr, None) or []:
            passthrough.append(f"{flag}={value}")
    if args.progress not in (None, "auto"):
        passthrough.append(f"--progress={args.progress}")
    if args.shm_size:
        passthrough.append(f"--shm-size={args.shm_size}")
    if args.tls_verify is not None:
        passthrough.append(f"--tls-verify={'true' if args.tls_verify else 'false'}")
    dockerfile = args.file
    if dockerfile == "-":
        raise OcibuildError(
            f"--isolation {MODE}: -f - (a Dockerfile on standard input) is not passed into "
            "the container",
            hint="write the Dockerfile to a file and give -f FILE",
        )
    return Request(
        context=context,
        dockerfile=os.path.abspath(dockerfile) if dockerfile else None,
        build_args=dict(args.build_arg),
        target=args.target,
        platform=platforms[0] if platforms else None,
        labels=dict(item.split("=", 1) if "=" in item else (item, "") for item in args.label),
        secrets=read_secrets(options),
        passthrough=passthrough,
        compression=options.compression,
    )


def main(argv: Sequence[str]) -> int:
    """``python -m ocibuild.engine seccomp-profile [FILE]`` (and the internal ``import``
    that :func:`import_in_user_namespace` re-executes)."""
    parser = argparse.ArgumentParser(prog="python -m ocibuild.engine")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seccomp-profile", help="write the in-container seccomp profile")
    p.add_argument("file", nargs="?", help="default: standard output")
    i = sub.add_parser("import", help="(internal) import an OCI archive into a store")
    i.add_argument("archive")
    i.add_argument("root")
    i.add_argument("idfile")
    args = parser.parse_args(argv)
    try:
        if args.command == "import":
            from ocibuild.image.store import Store

            image_id = import_archive(Store(args.root), args.archive)
            with open(args.idfile, "w", encoding="ascii") as f:
                f.write(image_id)
        elif args.file:
            write_seccomp_profile(args.file)
        else:
            json.dump(seccomp_profile(), sys.stdout, indent=1, sort_keys=True)
            sys.stdout.write("\n")
    except OcibuildError as exc:
        print(f"error: {exc.format()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
