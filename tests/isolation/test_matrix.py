"""One Dockerfile across {root, rootless} x {overlay, fuse-overlayfs, vfs} x {runc, crun,
native-chroot}: every cell must give the same image digest (SOURCE_DATE_EPOCH is set)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from tests.isolation.conftest import Builder

DRIVERS = ("overlay", "fuse-overlayfs", "vfs")
SANDBOXES = ("runc", "crun", "native-chroot")


def cell_args(driver: str, sandbox: str) -> list[str]:
    args = ["build", "-q", "--no-cache", "--storage-driver", driver]
    if sandbox == "native-chroot":
        args += ["--isolation", "native-chroot"]
    else:
        args += ["--runtime", sandbox]
    return args


def why_not(sandbox: str, driver: str) -> str | None:
    if sandbox != "native-chroot" and shutil.which(sandbox) is None:
        return f"{sandbox} is not installed"
    if driver == "fuse-overlayfs" and shutil.which("fuse-overlayfs") is None:
        return "fuse-overlayfs is not installed"
    return None


def test_matrix_same_digest(
    matrix_context: Path, root_builder: Builder, rootless_builder: Builder, shared_dir: Path
) -> None:
    ctx = str(matrix_context)
    results: dict[tuple[str, str, str], str] = {}
    for who, builder in (("root", root_builder), ("rootless", rootless_builder)):
        builder("build", "-q", "-t", "mxbase", "-f", f"{ctx}/Dockerfile.base", ctx)
        for driver in DRIVERS:
            for sandbox in SANDBOXES:
                reason = why_not(sandbox, driver)
                if reason:
                    results[(who, driver, sandbox)] = "skipped: " + reason
                    continue
                run = builder(*cell_args(driver, sandbox), "-f", f"{ctx}/Dockerfile", ctx)
                results[(who, driver, sandbox)] = run.image_id
    lines = [f"{'':10}{'':16}" + "".join(f"{s:>16}" for s in SANDBOXES)]
    for who in ("root", "rootless"):
        for driver in DRIVERS:
            cells = [results[(who, driver, s)] for s in SANDBOXES]
            shown = [c[7:19] if c.startswith("sha256:") else c for c in cells]
            lines.append(f"{who:10}{driver:16}" + "".join(f"{c:>16}" for c in shown))
    print("\n" + "\n".join(lines))
    built = {v for v in results.values() if v.startswith("sha256:")}
    skipped = {k: v for k, v in results.items() if not v.startswith("sha256:")}
    assert len(built) == 1, "\n".join(lines)
    if skipped:
        pytest.skip(f"same digest in every cell built; not built: {skipped}")

    # What the image holds (read from the rootless store's export: container ids).
    out = rootless_builder.store / "matrix-oci"  # writable by the test user
    rootless_builder(
        "build", "-q", "--output", f"type=oci,dest={out}", "-f", f"{ctx}/Dockerfile", ctx
    )
    entries = _layer_entries(out)
    assert entries["w/u/userfile"].uid == 1000  # created by USER 1000 inside a RUN
    assert entries["w/u/f"].uid == 1000 and entries["w/u"].gid == 1000  # COPY --chown
    assert entries["w/a"].mode & 0o4000 and entries["w/g"].mode & 0o2000
    assert entries["w/a"].pax_headers.get("SCHILY.xattr.user.test") == "hello"
    assert entries["w/fifo"].isfifo()
    assert entries["w/h2"].islnk() and entries["w/h2"].linkname == "w/h1"
    assert "w/.wh.del" in entries and "w/.wh.gone" in entries
    assert "w/d/.wh..wh..opq" in entries


def test_matrix_run_over_scratch_same_digest(
    matrix_context: Path, root_builder: Builder, rootless_builder: Builder
) -> None:
    """A RUN over an image without /proc, /sys, /dev: BuildKit's layer keeps them (runc
    makes them), as empty 0755 root dirs. ocibuild makes them itself before any sandbox
    starts, so every cell gives the same digest, and the layer holds them."""
    ctx = str(matrix_context)
    results: dict[tuple[str, str, str], str] = {}
    for who, builder in (("root", root_builder), ("rootless", rootless_builder)):
        for driver in DRIVERS:
            for sandbox in SANDBOXES:
                if why_not(sandbox, driver):
                    continue
                run = builder(*cell_args(driver, sandbox), "-f", f"{ctx}/Dockerfile.base", ctx)
                results[(who, driver, sandbox)] = run.image_id
    assert results and len(set(results.values())) == 1, results
    out = rootless_builder.store / "scratch-run-oci"
    rootless_builder(
        "build", "-q", "--output", f"type=oci,dest={out}", "-f", f"{ctx}/Dockerfile.base", ctx
    )
    entries = _layer_entries(out)
    for name in ("proc", "sys", "dev"):
        entry = entries[name]
        assert entry.isdir() and (entry.mode, entry.uid, entry.gid) == (0o755, 0, 0), name
    assert not [n for n in entries if n.startswith(("proc/", "sys/", "dev/", "etc/hosts"))]


def _layer_entries(layout: Path) -> dict[str, tarfile.TarInfo]:
    import json

    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    entries: dict[str, tarfile.TarInfo] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"][7:]) as tf:
            for member in tf:
                entries[member.name] = member
    return entries
