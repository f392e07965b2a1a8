"""What a user reads when something goes wrong, and the housekeeping commands."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import Ocibuild


def _no_empty_hint(stderr: str) -> None:
    for line in stderr.splitlines():
        assert line.strip() not in ("hint:",), stderr


def test_unknown_target_suggests_the_stage(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image} AS builder\nRUN touch {context}/ran\nFROM {base_image}\n"
    )
    r = ocb.build(context, "--target", "buidler", check=False)
    assert r.returncode == 1
    assert "target stage 'buidler' could not be found" in r.stderr
    assert "hint: did you mean --target builder?" in r.stderr
    assert "[1/" not in r.stderr
    _no_empty_hint(r.stderr)


def test_copy_from_typo_is_caught_before_the_first_step(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image} AS builder\nRUN echo slow-step\n"
        f"FROM {base_image}\nCOPY --from=buidler /etc/passwd /p\n"
    )
    r = ocb.build(context, check=False)
    assert r.returncode == 1
    assert "Dockerfile:4: COPY: --from=buidler: no stage named 'buidler'" in r.stderr
    assert "hint: did you mean --from=builder?" in r.stderr
    assert "[1/" not in r.stderr and "slow-step" not in r.stderr  # nothing ran
    _no_empty_hint(r.stderr)


def test_failed_run_suggests_keep_failed(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo failing; exit 3\n")
    r = ocb.build(context, check=False)
    assert r.returncode == 1
    assert "exit code: 3" in r.stderr
    assert "hint: rerun with --keep-failed" in r.stderr
    assert "--bundle" not in r.stderr and str(ocb.root) + "/tmp" not in r.stderr
    assert "hint: the full output is kept: `ocibuild logs " in r.stderr
    _no_empty_hint(r.stderr)
    # the next attempt does not claim a cached result "is gone": there never was one
    again = ocb.build(context, check=False)
    assert "the last build of this step failed" in again.stderr
    assert "cached result is gone" not in again.stderr


def test_copy_source_excluded_by_dockerignore(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "secret.txt").write_text("x")
    (context / ".dockerignore").write_text("secret.txt\n")
    (context / "Dockerfile").write_text(f"FROM {base_image}\nCOPY secret.txt /\n")
    r = ocb.build(context, check=False)
    assert r.returncode == 1
    assert "COPY: source 'secret.txt' is excluded by .dockerignore" in r.stderr


def test_source_date_epoch_change_reads_plainly(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo {context.name}-epoch\n")
    ocb.build(context)
    r = ocb.build(context, env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert "SOURCE_DATE_EPOCH set to 1700000000 (was unset)" in r.stderr
    assert "None" not in r.stderr


def test_prune_all_clears_cache_mounts_and_reads_well(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN --mount=type=cache,target=/cache,id=prune-test "
        "echo kept > /cache/file\n"
    )
    ocb.build(context, "--no-cache")
    mounts = Path(ocb.root) / "cache-mounts"
    assert any(p.is_dir() for p in mounts.iterdir())
    r = ocb("prune", "--cache-mounts")
    assert "removed cache mount " in r.stdout
    assert "scratc " not in r.stdout
    assert not any(p.is_dir() for p in mounts.iterdir())


def test_images_json_and_save(ocb: Ocibuild, base_image: str, tmp_path: Path) -> None:
    docs = json.loads(ocb("images", "--format", "json").stdout)
    entry = next(d for d in docs if base_image in d["names"])
    assert entry["id"].startswith("sha256:") and entry["size"] > 0
    out = tmp_path / "base.tar"
    ocb("save", base_image, "-o", str(out))
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [base_image]
    proc = subprocess.run(
        [sys.executable, "-m", "ocibuild", "save", "--format", "oci-archive", base_image],
        capture_output=True,
        env={"OCIBUILD_ROOT": str(ocb.root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tf:
        assert "index.json" in tf.getnames()
    r = ocb("save", "no-such-image", "-o", str(tmp_path / "x.tar"), check=False)
    assert r.returncode == 1 and not (tmp_path / "x.tar").exists()


def test_unused_build_args_warned_but_not_a_global_arg_used_by_from(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "Dockerfile").write_text("ARG BASE=scratch\nFROM $BASE\nRUN true\n")
    r = ocb.build(context, "--build-arg", f"BASE={base_image}", "--build-arg", "NOPE=1")
    assert "warning: build-args NOPE were not consumed" in r.stderr, r.stderr
    assert "BASE" not in r.stderr.split("warning: build-args", 1)[1].splitlines()[0]
