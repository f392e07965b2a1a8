"""Unprivileged builds inside the ocibuild image under podman, as the user ``build``.

The container gets only ``--device /dev/fuse``, the shipped seccomp profile and an
unmasked /proc (``--security-opt unmask=/proc/*``: a user namespace mounts a fresh /proc
only where nothing of the container's /proc is masked); the build's RUN steps use the
container's network (``ocibuild build --network host``) since /dev/net/tun is not passed.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.container.conftest import Bases, Image, podman_run, timed

pytestmark = pytest.mark.container
STORE = "/home/build/.local/share/ocibuild"
DOCKER_PROFILE = "/usr/local/share/ocibuild/seccomp/default.json"  # make setup unpacks it


def flags(profile: Path, volume: str | None = None, *, fuse: bool = True) -> list[str]:
    out = ["--security-opt", f"seccomp={profile}", "--security-opt", "unmask=/proc/*"]
    if fuse:
        out += ["--device", "/dev/fuse"]
    if volume:
        out += ["-v", f"{volume}:{STORE}"]
    return out


def write_context(ctx: Path, base: str) -> None:
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\n"
        "RUN echo hello > /greeting && id -u > /uid && mkdir -p /owned "
        "&& chown 1000:1000 /owned\n"
        "COPY data.txt /data.txt\n"
    )
    (ctx / "data.txt").write_text("payload\n")


def test_image_has_ocibuild_for_user_build(podman: str, image: Image) -> None:
    started = time.monotonic()
    proc = podman_run(
        podman,
        [],
        image.ref,
        ["sh", "-c", "id -un; ocibuild --version; grep '^build:' /etc/subuid /etc/subgid; "
         "getcap /usr/bin/newuidmap /usr/bin/newgidmap; which runc crun fuse-overlayfs"],
    )  # fmt: skip
    timed("image contents check", started)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "build"
    assert lines[1].startswith("ocibuild ")
    assert "/etc/subuid:build:100000:65536" in lines
    assert "/etc/subgid:build:100000:65536" in lines
    assert "/usr/bin/newuidmap cap_setuid=ep" in lines
    assert any(line.endswith("/fuse-overlayfs") for line in lines)
    config = json.loads(
        subprocess.run(
            [podman, "image", "inspect", image.ref], capture_output=True, text=True, check=True
        ).stdout
    )[0]["Config"]
    assert config["User"] == "build"
    assert STORE in config["Volumes"]


def test_build_inside_as_build_user(
    podman: str, image: Image, bases: Bases, profile: Path, volume: str, context: Path
) -> None:
    """native-rootless, kernel overlay (it mounts in the container's user namespace here),
    both explained by --debug; the store lives in the volume: a second container hits."""
    write_context(context, bases.busybox)
    mount = ["-v", f"{context}:/context:ro"]
    cmd = ["ocibuild", "build", "--debug", "--network", "host", "/context"]
    started = time.monotonic()
    first = podman_run(podman, flags(profile, volume) + mount, image.ref, cmd)
    timed("in-container build (cold)", started)
    assert first.returncode == 0, first.stderr
    assert "isolation: auto -> native-rootless" in first.stderr
    assert "storage: overlay -> kernel overlayfs (userxattr" in first.stderr
    image_id = first.stdout.strip().splitlines()[-1]
    assert image_id.startswith("sha256:")
    started = time.monotonic()
    second = podman_run(podman, flags(profile, volume) + mount, image.ref, cmd)
    timed("in-container build (cached, new container, same volume)", started)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == image_id
    assert second.stderr.count("-> HIT") == 2
    # what the image holds, seen by a RUN of a build on top of it (same volume's store)
    (context / "Dockerfile").write_text(
        f"FROM {image_id}\nRUN cat /greeting /uid /data.txt && stat -c '%u:%g' /owned\n"
    )
    show = podman_run(podman, flags(profile, volume) + mount, image.ref, cmd)
    assert show.returncode == 0, show.stderr
    assert "  hello\n  0\n  payload\n  1000:1000\n" in show.stderr


def test_fuse_overlayfs_then_vfs_when_kernel_overlay_cannot_mount(
    podman: str, image: Image, bases: Bases, profile: Path, context: Path
) -> None:
    """A store on the container's own overlay root: kernel overlay cannot use it as an
    upper dir, so auto takes fuse-overlayfs; without /dev/fuse, vfs."""
    write_context(context, bases.busybox)
    mount = ["-v", f"{context}:/context:ro"]
    cmd = ["ocibuild", "build", "--debug", "--network", "host", "--root",
           "/home/build/store", "--source-date-epoch", "1700000000", "/context"]  # fmt: skip
    started = time.monotonic()
    with_fuse = podman_run(podman, flags(profile) + mount, image.ref, cmd)
    timed("in-container build on the overlay root, with /dev/fuse", started)
    started = time.monotonic()
    without = podman_run(podman, flags(profile, fuse=False) + mount, image.ref, cmd)
    timed("in-container build on the overlay root, without /dev/fuse", started)
    if "storage: overlay -> kernel overlayfs" in with_fuse.stderr:
        pytest.skip("kernel overlay mounts over the container's overlay root on this kernel")
    assert with_fuse.returncode == 0, with_fuse.stderr
    assert "storage: overlay -> fuse-overlayfs (kernel overlay: " in with_fuse.stderr
    assert without.returncode == 0, without.stderr
    assert "storage: overlay -> vfs (kernel overlay: " in without.stderr
    assert "fix: --device /dev/fuse" in without.stderr
    # every driver gives the same image
    assert with_fuse.stdout.split()[-1] == without.stdout.split()[-1]


def test_doctor_inside_names_the_engine_flags(podman: str, image: Image, profile: Path) -> None:
    """No /dev/fuse, Docker's default seccomp profile, a masked /proc: each FAIL or warn
    names the podman flag that fixes it; with the right flags: ready."""
    started = time.monotonic()
    docker_default = ["--security-opt", f"seccomp={DOCKER_PROFILE}"]
    bad = podman_run(podman, docker_default, image.ref, ["ocibuild", "doctor"], timeout=120)
    good = podman_run(podman, flags(profile), image.ref, ["ocibuild", "doctor"], timeout=120)
    timed("doctor inside, twice", started)
    assert bad.returncode == 1
    out = bad.stdout
    assert "running inside podman" in out
    assert "/dev/fuse: missing" in out and "fix: --device /dev/fuse" in out
    assert "a seccomp filter refuses it" in out
    assert "fix: --security-opt seccomp=ocibuild-in-container.json" in out
    assert "fix: --security-opt unmask=/proc/*" in out
    assert "fix: --device /dev/net/tun, or build with --network host" in out
    assert good.returncode == 0, good.stdout
    assert "result: ready" in good.stdout


def test_default_seccomp_profile_is_one_clear_error(
    podman: str, image: Image, bases: Bases, context: Path
) -> None:
    """Docker's default profile (what `make setup` unpacks, the engines' default) refuses
    unshare: the build stops at once, naming the fix."""
    write_context(context, bases.busybox)
    started = time.monotonic()
    proc = podman_run(
        podman,
        [
            "--device",
            "/dev/fuse",
            "--security-opt",
            f"seccomp={DOCKER_PROFILE}",
            "--security-opt",
            "unmask=/proc/*",
            "-v",
            f"{context}:/context:ro",
        ],
        image.ref,
        ["ocibuild", "build", "/context"],
        timeout=120,
    )
    timed("build under the default seccomp profile", started)
    assert proc.returncode == 1
    err = proc.stderr
    assert err.count("error:") == 1, err
    assert "cannot create a user namespace" in err and "seccomp filter refuses it" in err
    assert "hint: --security-opt seccomp=ocibuild-in-container.json" in err
    assert "Traceback" not in err


def test_masked_proc_is_one_clear_error(
    podman: str, image: Image, bases: Bases, profile: Path, context: Path
) -> None:
    """Without the unmask (podman's default seccomp profile, which allows unshare), the
    build fails before its first step, naming the flag."""
    write_context(context, bases.busybox)
    started = time.monotonic()
    proc = podman_run(
        podman,
        ["--device", "/dev/fuse", "-v", f"{context}:/context:ro"],
        image.ref,
        ["ocibuild", "build", "--network", "host", "/context"],
        timeout=120,
    )  # fmt: skip
    timed("build with a masked /proc", started)
    assert proc.returncode == 1
    assert proc.stderr.count("error:") == 1, proc.stderr
    assert "cannot mount /proc for the build" in proc.stderr
    assert "podman --security-opt unmask=/proc/*" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "[1/" not in proc.stderr  # before the first step
