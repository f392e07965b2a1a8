"""``ocibuild build --isolation docker-with-fuse`` from the host, through podman.

The result lands in the host's store and outputs as a native build's: with
SOURCE_DATE_EPOCH the image ID and the OCI output's manifest digest equal those of the
host's native build of the same Dockerfile. Secrets never show in the engine's view of
the container (its command line, environment, create command) nor in the host's process
list. Bad set-ups: one clear error.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.container.conftest import Bases, Image, host_ocibuild, timed

pytestmark = pytest.mark.container
EPOCH = "1700000000"
IMAGE = "ocibuild-test:latest"
DOCKER_PROFILE = "/usr/local/share/ocibuild/seccomp/default.json"  # make setup unpacks it
SECRET = "s3cr3t-value-7c1d9e"

DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS base
ARG GREETING=unset
RUN echo "$GREETING" > /greeting && mkdir /owned && chown 1000:1000 /owned
COPY data.txt /data/

FROM base AS final
LABEL stage=final
RUN ls /data > /listing

FROM base AS other
RUN echo never > /never
"""


def write_context(ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "data.txt").write_text("payload\n")


def manifest_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    digest: str = index["manifests"][0]["digest"]
    return digest


def test_same_image_as_a_native_build(
    image: Image, bases: Bases, context: Path, tmp_path: Path, volume: str
) -> None:
    """build args, --target, -t, --output type=oci, SOURCE_DATE_EPOCH: the image in the
    host's store and the OCI output equal the native build's (both stores fresh; the
    image named by its podman ID, so not loaded from the store)."""
    write_context(context)
    common = ["--build-arg", f"BASE={bases.busybox}", "--build-arg", "GREETING=hi",
              "--target", "final", "--source-date-epoch", EPOCH]  # fmt: skip
    native_store = tmp_path / "native"
    started = time.monotonic()
    native = host_ocibuild(
        "build", *common, "-t", "dwf:native", "--output",
        f"type=oci,dest={tmp_path / 'native.oci'}", str(context), root=native_store,
    )  # fmt: skip
    timed("native build on the host", started)
    started = time.monotonic()
    inside = host_ocibuild(
        "build", "--isolation", "docker-with-fuse", *common, "-t", "dwf:engine",
        "--output", f"type=oci,dest={tmp_path / 'engine.oci'}", str(context),
        root=tmp_path / "host", env={"OCIBUILD_IMAGE": image.ref,
                                     "OCIBUILD_ENGINE_VOLUME": volume},
    )  # fmt: skip
    timed("docker-with-fuse build (image already in podman, fresh volume)", started)
    native_id = native.stdout.strip().splitlines()[-1]
    engine_id = inside.stdout.strip().splitlines()[-1]
    assert engine_id == native_id
    assert "RUN echo never" not in inside.stderr  # --target pruned the other stage
    assert manifest_digest(tmp_path / "engine.oci") == manifest_digest(tmp_path / "native.oci")
    assert "dwf" in host_ocibuild("images", root=tmp_path / "host").stdout
    inspect = host_ocibuild("inspect", "dwf:engine", root=tmp_path / "host").stdout
    assert '"stage": "final"' in inspect


def test_secrets_never_in_the_engines_view(
    podman: str, image: Image, bases: Bases, context: Path, tmp_path: Path, volume: str
) -> None:
    """Also: the image is taken from the host's store by name (ocibuild-test:latest) and
    loaded into podman, which lacks it at first."""
    subprocess.run([podman, "rmi", "-f", image.ref], capture_output=True, check=True)
    (context / "Dockerfile").write_text(
        f"FROM {bases.busybox}\n"
        f'RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" = "{SECRET}" '
        "&& echo secret-ok && sleep 4\n"
    )
    secret_file = tmp_path / "tok"
    secret_file.write_text(SECRET)
    cmd = [sys.executable, "-m", "ocibuild", "build", "--isolation", "docker-with-fuse",
           "--no-cache", "--secret", f"id=tok,src={secret_file}", str(context)]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "OCIBUILD_ROOT": str(image.store), "OCIBUILD_IMAGE": "ocibuild-test:latest",
             "OCIBUILD_ENGINE_VOLUME": volume},
    )  # fmt: skip
    seen: list[str] = []
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        ids = subprocess.run(
            [podman, "ps", "-q", "--filter", f"ancestor={image.ref}"],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        for cid in ids:
            text = subprocess.run([podman, "inspect", cid], capture_output=True, text=True)
            config = json.loads(text.stdout or "[{}]")[0].get("Config") or {}
            if "build" in (config.get("Cmd") or []):  # the build's container (not --version)
                listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True)
                seen += [text.stdout, listing.stdout]
        if seen:
            break
        time.sleep(0.2)
    _, err = proc.communicate(timeout=300)
    timed("docker-with-fuse build with a secret", started)
    assert proc.returncode == 0, err
    assert f"loading ocibuild-test:latest ({image.image_id[:19]}) into podman" in err
    assert "secret-ok" in err
    assert seen, "the build's container was never seen running"
    inspected = json.loads(seen[0])[0]
    assert inspected["Config"]["Cmd"], "podman inspect shows the command line"
    for text in seen:
        assert SECRET not in text
    assert "id=tok,src=/dev/shm/ocibuild-secrets/s0" in " ".join(inspected["Config"]["Cmd"])


def test_no_engine_is_one_clear_error(image: Image, context: Path) -> None:
    write_context(context)
    proc = host_ocibuild(
        "build", "--isolation", "docker-with-fuse", str(context), root=image.store,
        env={"OCIBUILD_CONTAINER_ENGINE": "no-such-engine"}, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("error:") == 1, proc.stderr
    assert "needs a container engine: no-such-engine is not installed" in proc.stderr
    assert "hint: install podman" in proc.stderr


def test_image_without_ocibuild_is_one_clear_error(
    podman: str, bases: Bases, context: Path, tmp_path: Path
) -> None:
    """An image of the host's store without ocibuild: loaded into podman, then refused."""
    store = tmp_path / "store"
    host_ocibuild("pull", bases.busybox, root=store)
    write_context(context)
    started = time.monotonic()
    proc = host_ocibuild(
        "build", "--isolation", "docker-with-fuse", str(context), root=store,
        env={"OCIBUILD_IMAGE": bases.busybox}, check=False, timeout=120,
    )  # fmt: skip
    timed("docker-with-fuse with an image without ocibuild", started)
    assert proc.returncode == 1
    assert proc.stderr.count("error:") == 1, proc.stderr
    assert f"the image '{bases.busybox}' cannot run ocibuild" in proc.stderr
    assert "make image" in proc.stderr
    missing = host_ocibuild(
        "build", "--isolation", "docker-with-fuse", str(context), root=store,
        env={"OCIBUILD_IMAGE": "nowhere:1"}, check=False, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "is neither in the store" in missing.stderr


def test_through_docker(
    dockerd: dict[str, str], image: Image, bases: Bases, context: Path, tmp_path: Path
) -> None:
    """OCIBUILD_CONTAINER_ENGINE=docker: Debian's dockerd, the image loaded into it from
    the host's store (docker's flag for /proc is systempaths=unconfined); same image."""
    write_context(context)
    common = ["--build-arg", f"BASE={bases.busybox}", "--source-date-epoch", EPOCH]
    native = host_ocibuild("build", *common, str(context), root=tmp_path / "native")
    started = time.monotonic()
    inside = host_ocibuild(
        "build", "--isolation", "docker-with-fuse", *common, str(context), root=image.store,
        env={**dockerd, "OCIBUILD_CONTAINER_ENGINE": "docker",
             "OCIBUILD_IMAGE": "ocibuild-test:latest"},
    )  # fmt: skip
    timed("docker-with-fuse through dockerd (image loaded into docker)", started)
    assert "into docker" in inside.stderr
    assert inside.stdout.split()[-1] == native.stdout.split()[-1]


def test_auto_falls_back_where_native_cannot_run(
    podman: str,
    dockerd: dict[str, str],
    image: Image,
    bases: Bases,
    context: Path,
    tmp_path: Path,
    volume: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CI job's container: Docker's default seccomp profile refuses user namespaces,
    a docker socket and CLI are mounted in (the docker-outside-of-docker set-up). There
    `ocibuild build` (auto) says that native builds cannot run and why, builds through
    docker, and gives the image the host's native build gives. Without a user namespace
    the container's own store cannot hold the image: the OCI archive output is written
    from the inner build's archive."""
    import shutil

    from ocibuild.engine import Engine, ensure_image
    from ocibuild.image.store import Store
    from ocibuild.observe.log import SilentReporter

    write_context(context)
    common = ["--build-arg", f"BASE={bases.busybox}", "--source-date-epoch", EPOCH]
    native = host_ocibuild(
        "build", *common, "--output", f"type=oci-archive,dest={tmp_path / 'native.tar'}",
        str(context), root=tmp_path / "native",
    )  # fmt: skip
    with tarfile.open(tmp_path / "native.tar") as tf:
        native_index = tf.extractfile("index.json").read().decode()  # type: ignore[union-attr]
    for key, value in dockerd.items():
        monkeypatch.setenv(key, value)
    docker = shutil.which("docker")
    assert docker is not None
    ensure_image(Engine(docker, "docker"), Store(str(image.store)), IMAGE, SilentReporter())
    sock = dockerd["DOCKER_HOST"].removeprefix("unix://")
    Path(sock).chmod(0o666)  # the test's own daemon: reachable by `build` (uid 1000)
    started = time.monotonic()
    proc = subprocess.run(
        [podman, "run", "--rm", "--network", "host", "--device", "/dev/fuse",
         "--security-opt", f"seccomp={DOCKER_PROFILE}", "--security-opt", "unmask=/proc/*",
         "-v", f"{docker}:/usr/local/bin/docker:ro", "-v", f"{sock}:/run/docker.sock",
         "-e", "DOCKER_HOST=unix:///run/docker.sock", "-e", f"OCIBUILD_IMAGE={IMAGE}",
         "-v", f"{volume}:/home/build/.local/share/ocibuild",
         "-v", f"{context}:{context}:ro", image.ref, "sh", "-c",
         'ocibuild build "$@" && tar -xOf /tmp/out.tar index.json', "sh", *common,
         "--output", "type=oci-archive,dest=/tmp/out.tar", str(context)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    timed("auto's fallback to docker-with-fuse from a container", started)
    assert proc.returncode == 0, proc.stderr
    assert "isolation: auto -> docker-with-fuse: native builds cannot run here" in proc.stderr
    assert "a seccomp filter refuses it" in proc.stderr
    assert "docker can run the build" in proc.stderr
    image_id, index = proc.stdout.split("\n", 1)
    assert image_id == native.stdout.split()[-1]
    assert (
        json.loads(index)["manifests"][0]["digest"]
        == json.loads(native_index)["manifests"][0]["digest"]
    )


def test_ordinary_user_gets_the_image_in_their_store(
    dockerd: dict[str, str],
    image: Image,
    bases: Bases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ordinary user with access to the docker socket: the image is imported into
    their own store in their user namespace (files owned by other ids), tagged there."""
    import os
    import shutil
    import tempfile

    from hardening import modes
    from ocibuild.engine import Engine, ensure_image
    from ocibuild.image.store import Store
    from ocibuild.observe.log import SilentReporter

    try:
        user = modes.ensure_user()
        python, extra = modes.python_for_others()
    except modes.Unavailable as exc:
        pytest.skip(str(exc))
    for key, value in dockerd.items():
        monkeypatch.setenv(key, value)
    docker = shutil.which("docker")
    assert docker is not None
    ensure_image(Engine(docker, "docker"), Store(str(image.store)), IMAGE, SilentReporter())
    sock = dockerd["DOCKER_HOST"].removeprefix("unix://")
    Path(sock).chmod(0o666)
    work = Path(tempfile.mkdtemp(prefix="ocibuild-dwf-user-", dir="/var/tmp"))
    try:
        os.chmod(work, 0o755)
        ctx = work / "ctx"
        ctx.mkdir()
        write_context(ctx)
        for path in (ctx, ctx / "Dockerfile", ctx / "data.txt"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        data = work / "data"
        data.mkdir()
        os.chown(data, user.pw_uid, user.pw_gid)
        common = ["--build-arg", f"BASE={bases.busybox}", "--source-date-epoch", EPOCH]
        native = host_ocibuild("build", *common, str(ctx), root=tmp_path / "native")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.pw_dir,
               "XDG_DATA_HOME": str(data), "OCIBUILD_IMAGE": IMAGE,
               "OCIBUILD_CONTAINER_ENGINE": "docker", **dockerd, **extra}  # fmt: skip
        run = ["runuser", "-u", user.pw_name, "--", "env",
               *[f"{k}={v}" for k, v in env.items()], python, "-m", "ocibuild"]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.run(
            [*run, "build", "--isolation", "docker-with-fuse", "-t", "mine:1", *common,
             str(ctx)],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        timed("docker-with-fuse as an ordinary user (import in the user namespace)", started)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-1] == native.stdout.split()[-1]
        listing = subprocess.run(
            [*run, "images"], capture_output=True, text=True, timeout=120
        )  # fmt: skip
        assert "mine" in listing.stdout, listing.stderr
        owned = subprocess.run(
            [*run, "run", "--rm", "mine:1", "stat", "-c", "%u:%g", "/owned"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert owned.stdout.strip() == "1000:1000", owned.stderr
    finally:
        subprocess.run(["rm", "-rf", str(work)], capture_output=True)
