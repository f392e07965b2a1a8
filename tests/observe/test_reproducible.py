"""``ocibuild build --check-reproducible``."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from pathlib import Path

from tests.conftest import BUSYBOX, REPO, Ocibuild
from tests.registry.server import Registry

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


def _put_pretty_copy(registry: Registry, repo: str, tag: str, new_tag: str) -> str:
    """Re-push ``repo:tag`` as ``repo:new_tag`` with its config re-encoded the way other
    tools write it (indented, not canonical JSON): a new config digest, the same layers.
    Returns the new config's digest."""
    base = f"http://{registry.host}/v2/{repo}"
    mt = "application/vnd.oci.image.manifest.v1+json"
    req = urllib.request.Request(f"{base}/manifests/{tag}", headers={"Accept": mt})
    with urllib.request.urlopen(req, timeout=30) as resp:
        manifest = json.loads(resp.read())
    with urllib.request.urlopen(f"{base}/blobs/{manifest['config']['digest']}", timeout=30) as r:
        config = json.loads(r.read())
    pretty = json.dumps(config, indent=3).encode()
    digest = "sha256:" + hashlib.sha256(pretty).hexdigest()
    start = urllib.request.Request(f"{base}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(start, timeout=30) as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry.host}{location}"
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{sep}digest={digest}",
        method="PUT",
        data=pretty,
        headers={"Content-Type": "application/octet-stream"},
    )
    urllib.request.urlopen(put, timeout=30).close()
    manifest["config"] = {**manifest["config"], "digest": digest, "size": len(pretty)}
    put = urllib.request.Request(
        f"{base}/manifests/{new_tag}",
        method="PUT",
        data=json.dumps(manifest).encode(),
        headers={"Content-Type": mt},
    )
    urllib.request.urlopen(put, timeout=30).close()
    return digest


def test_a_base_pulled_from_a_registry(
    ocb: Ocibuild, base_image: str, context: Path, registry: Registry
) -> None:
    ocb("push", "-q", base_image, f"{registry.host}/repro/base:canonical")
    digest = _put_pretty_copy(registry, "repro/base", "canonical", "pretty")
    ref = f"{registry.host}/repro/base:pretty"
    # the pulled config is kept byte for byte: the image ID is its digest
    assert ocb("pull", "-q", ref).stdout.strip().splitlines()[-1] == digest
    (context / "Dockerfile").write_text(f"FROM {ref}\nRUN echo built > /built\n")
    out = ocb.build(context, "--check-reproducible", "--source-date-epoch", EPOCH)
    verdict = out.stdout.strip().splitlines()[-1]
    assert verdict.startswith("reproducible: both builds gave sha256:"), out.stderr
    image = ocb.build(context, env={"SOURCE_DATE_EPOCH": EPOCH}).image_id
    assert f"gave {image} " in verdict
