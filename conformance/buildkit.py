"""The real BuildKit as the reference builder, and the local registry it pulls bases from.

BuildKit cannot read a base image from a local OCI layout in its Dockerfile frontend
(v0.11.6), so the conformance bases (``conformance.bases``) are pushed, digests
preserved, to a docker-registry on 127.0.0.1:5000 (started here when nothing answers
there; buildkitd.toml marks that address as plain http) and named by digest:
``FROM 127.0.0.1:5000/conformance/busybox@sha256:...``. ocibuild reads the same layout
directly, so both builders start from byte-identical bases.

Environment: ``OCIBUILD_BUILDCTL`` (default /tmp/buildkit-ref/bk-bin/buildctl) and
``OCIBUILD_BUILDKIT_ADDR`` (default unix:///tmp/buildkit-ref/bk.sock).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from conformance.bases import CACHE

BUILDCTL = os.environ.get("OCIBUILD_BUILDCTL", "/tmp/buildkit-ref/bk-bin/buildctl")
ADDR = os.environ.get("OCIBUILD_BUILDKIT_ADDR", "unix:///tmp/buildkit-ref/bk.sock")
REGISTRY = "127.0.0.1:5000"


def buildkit_available() -> str | None:
    """None when a BuildKit daemon answers; otherwise why not."""
    if not Path(BUILDCTL).exists():
        return f"no buildctl at {BUILDCTL} (set OCIBUILD_BUILDCTL)"
    proc = subprocess.run([BUILDCTL, "--addr", ADDR, "debug", "workers"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    if proc.returncode != 0:
        return f"BuildKit at {ADDR} does not answer: {proc.stderr.strip()[-200:]}"
    return None


def _registry_answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def ensure_registry() -> None:
    """A docker-registry on 127.0.0.1:5000 (reused when one answers; left running)."""
    if _registry_answers():
        return
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed (Debian package docker-registry)")
    work = CACHE / "registry"
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        f"http:\n  addr: {REGISTRY}\n"
    )
    with open(work / "registry.log", "ab") as log:
        subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log,
                         start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _registry_answers():
            return
        time.sleep(0.2)
    raise RuntimeError(f"docker-registry did not answer on {REGISTRY}; see {work}/registry.log")


def manifest_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    digest: str = index["manifests"][0]["digest"]
    return digest


def push_base(name: str, layout: Path, tag: str) -> str:
    """Push ``layout`` (digests preserved) and return its by-digest reference."""
    ensure_registry()
    digest = manifest_digest(layout)
    ref = f"{REGISTRY}/conformance/{name}@{digest}"
    check = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                           capture_output=True)  # fmt: skip
    if check.returncode != 0:
        subprocess.run(
            ["skopeo", "copy", "-q", "--all", "--preserve-digests", "--dest-tls-verify=false",
             f"oci:{layout}:{tag}", f"docker://{REGISTRY}/conformance/{name}:{tag}"],
            check=True, capture_output=True,
        )  # fmt: skip
    return ref


def build(context: Path, dockerfile: Path, out_dir: Path, *, build_args: dict[str, str],
          target: str | None, secrets: dict[str, Path], timeout: int = 600,
          platform: str = "") -> tuple[Path | None, str]:  # fmt: skip
    """Build with BuildKit; the unpacked OCI layout (or None) and the build log.
    ``platform``: ``--opt platform=...`` (several: one multi-platform index)."""
    tar = out_dir.with_suffix(".tar")
    cmd = [BUILDCTL, "--addr", ADDR, "build", "--progress", "plain",
           "--frontend", "dockerfile.v0", "--local", f"context={context}",
           "--local", f"dockerfile={dockerfile.parent}", "--opt", f"filename={dockerfile.name}",
           "--output", f"type=oci,dest={tar}"]  # fmt: skip
    for k, v in build_args.items():
        cmd += ["--opt", f"build-arg:{k}={v}"]
    if target:
        cmd += ["--opt", f"target={target}"]
    if platform:
        cmd += ["--opt", f"platform={platform}"]
    for sid, path in secrets.items():
        cmd += ["--secret", f"id={sid},src={path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        if any(text in proc.stderr for text in DAEMON_GONE):
            raise DaemonError(f"BuildKit stopped answering: {error_message(proc.stderr)}")
        return None, proc.stderr
    out_dir.mkdir(parents=True)
    with tarfile.open(tar) as tf:
        tf.extractall(out_dir, filter="tar")
    tar.unlink()
    return out_dir, proc.stderr


DAEMON_GONE = ("listing workers", "connection refused", "error reading from server",
               "code = Unavailable", "failed to receive status")  # fmt: skip


class DaemonError(RuntimeError):
    """BuildKit itself is not answering (not a result of the case)."""


def error_message(log: str) -> str:
    """BuildKit's error line(s) from a failed build's log (``error: failed to solve: ...``)."""
    lines = [line for line in log.strip().splitlines() if line.startswith("error:")]
    text = lines[-1] if lines else log.strip().splitlines()[-1] if log.strip() else ""
    for prefix in ("error: ", "failed to solve: "):
        text = text.removeprefix(prefix)
    return normalise_error(text)


def normalise_error(text: str) -> str:
    """Without what changes from run to run: snapshot ids and daemon temp dirs."""
    text = re.sub(r"ref [\w-]+::\w+", "ref <ref>", text)
    return re.sub(r"/\S*/(?:cachemounts/buildkit|buildkit-mount)\d+", "<mount>", text)
