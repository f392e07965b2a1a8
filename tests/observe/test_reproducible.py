"""``ocibuild build --check-reproducible``."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import BUSYBOX, REPO, Ocibuild

EPOCH = "1700000000"


def test_the_hello_example_is_reproducible(ocb: Ocibuild, tmp_path: Path) -> None:
    ctx = tmp_path / "hello"
    shutil.copytree(REPO / "examples" / "hello", ctx)
    shutil.copy(BUSYBOX, ctx / "busybox")
    out = ocb.build(ctx, "--check-reproducible", "--source-date-epoch", EPOCH)
    verdict = out.stdout.strip().splitlines()[-1]
    assert verdict.startswith("reproducible: both builds gave sha256:")
    assert verdict.endswith(f"(SOURCE_DATE_EPOCH={EPOCH})")
    # ... and it is the image an ordinary build with that epoch gives.
    image = ocb.build(ctx, env={"SOURCE_DATE_EPOCH": EPOCH}).image_id
    assert f"gave {image} " in verdict


def test_a_run_writing_the_date_is_named(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN mkdir /out && echo stable > /out/a\n"
        "RUN date +%s > /out/built-at && echo ok > /out/b && sleep 1\nCMD cat /out/a\n"
    )
    out = ocb.build(context, "--check-reproducible", check=False, env={"SOURCE_DATE_EPOCH": EPOCH})
    assert out.returncode == 1
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("not reproducible: build 1 gave sha256:")
    assert lines[0].endswith(f"(SOURCE_DATE_EPOCH={EPOCH})")
    assert lines[1:] == [
        "first differing layer: layer 5, made by step 3 (line 3): "
        "RUN date +%s > /out/built-at && echo ok > /out/b && sleep 1",
        "first differing files (build 1 -> build 2):",
        "  C /out/built-at  content differs (same size, 11 B)",
    ]
    assert "Traceback" not in out.stderr
