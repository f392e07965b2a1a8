"""Rootless specifics: the store, the single-id fallback, unmapped ids, doctor, --debug."""

from __future__ import annotations

import os
from pathlib import Path

from tests.isolation.conftest import Builder


def test_rootless_store_is_the_users(matrix_context: Path, rootless_builder: Builder) -> None:
    ctx = str(matrix_context)
    run = rootless_builder("build", "--debug", "-f", f"{ctx}/Dockerfile.base", ctx)
    assert (rootless_builder.store / "ocibuild" / "images.json").exists() or (
        rootless_builder.store / "ocibuild" / "layers"
    ).is_dir()
    assert "isolation: auto -> native-rootless" in run.stderr
    assert "storage: overlay -> kernel overlayfs (userxattr,volatile)" in run.stderr


def test_single_id_fallback_and_unmapped_id(
    matrix_context: Path, single_id_builder: Builder
) -> None:
    ctx = str(matrix_context)
    base = single_id_builder("build", "-q", "-t", "b", "-f", f"{ctx}/Dockerfile.base", ctx)
    assert base.stderr.count("single-id mapping") == 1
    df = Path(ctx) / "Dockerfile.unmapped"
    df.write_text("FROM b\nRUN id -u > /ok\nUSER 1000\nRUN true\n")
    os.chmod(df, 0o644)
    run = single_id_builder("build", "-f", str(df), ctx, check=False)
    assert run.returncode == 1
    assert "uid 1000 is not mapped in the build's user namespace (mapped: 0)" in run.stderr
    assert "usermod --add-subuids" in run.stderr


def test_doctor_lists_fixes(rootless_builder: Builder, root_builder: Builder) -> None:
    run = rootless_builder("doctor", "--storage-driver", "fuse-overlayfs")
    assert "rootless build as ocbiso" in run.stdout
    assert "[  ok] subordinate ids" in run.stdout
    assert "[  ok] fuse-overlayfs" in run.stdout  # /dev/fuse opened up by the fixture
    missing = root_builder("doctor", "--runtime", "/nonexistent/runc", check=False)
    assert missing.returncode == 1
    assert "[FAIL] runc: /nonexistent/runc is not installed" in missing.stdout
    assert "fix: apt-get install -y runc" in missing.stdout


def test_build_fails_early_with_doctors_message(
    matrix_context: Path, root_builder: Builder
) -> None:
    ctx = str(matrix_context)
    run = root_builder(
        "build", "--runtime", "/nonexistent/crun", "--isolation", "oci",
        "-f", f"{ctx}/Dockerfile.base", ctx, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert "error: crun: /nonexistent/crun is not installed" in run.stderr
    assert "apt-get install -y crun" in run.stderr
