"""--cache-to / --cache-from type=registry: two stores (two "machines") share step results
through a real docker-registry on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cache.conftest import trace
from tests.conftest import BUSYBOX, Ocibuild, Result, require_root
from tests.registry.server import PASSWORD, USER, Registry

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY app.txt /app/
RUN echo RUN-OUTPUT-ONE && cat /app/app.txt > /app/copy
ENV MODE=prod
RUN echo RUN-OUTPUT-TWO && echo two > /app/two
"""

MULTI = """\
FROM scratch AS tools
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM tools AS builder
RUN echo BUILDER-RAN && echo built > /artifact

FROM tools
COPY --from=builder /artifact /artifact
RUN echo FINAL-RAN && cat /artifact > /final
"""


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require_root()
    r = Registry(tmp_path_factory.mktemp("cachereg"), htpasswd=False)
    r.start()
    try:
        yield r
    finally:
        r.stop()


def context(path: Path, dockerfile: str) -> Path:
    path.mkdir()
    shutil.copy(BUSYBOX, path / "busybox")
    (path / "app.txt").write_text("hello from the context\n")
    (path / "Dockerfile").write_text(dockerfile)
    return path


def cached(result: Result) -> int:
    """How many steps the build took from the cache (its summary line)."""
    found = re.search(r"(\d+) steps cached", result.stderr)
    assert found, result.stderr
    return int(found.group(1))


def layers(store: Path) -> set[str]:
    return {"sha256:" + p.name for p in (store / "layers").iterdir()}


def get_json(url: str, accept: str = "") -> dict[str, Any]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def test_empty_store_gets_every_step_from_the_registry(reg: Registry, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", DOCKERFILE)
    ref = f"{reg.host}/cache/app:buildcache"
    a, b = Ocibuild(tmp_path / "a"), Ocibuild(tmp_path / "b")

    first = a.build(ctx, "-t", "app", "--cache-to", f"type=registry,ref={ref}")
    assert "\n  RUN-OUTPUT-ONE\n" in first.stderr
    assert f"cache: exported 6 steps and 5 layers (5 uploaded) to {ref}" in first.stderr

    # What the registry holds: one OCI manifest, our config blob, annotated layers.
    manifest = get_json(
        f"http://{reg.host}/v2/cache/app/manifests/buildcache",
        "application/vnd.oci.image.manifest.v1+json",
    )
    assert manifest["config"]["mediaType"] == "application/vnd.ocibuild.cache.config.v1+json"
    assert [d["mediaType"] for d in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 5
    diff_ids = [d["annotations"]["containerd.io/uncompressed"] for d in manifest["layers"]]
    assert diff_ids == a.config("app")["rootfs"]["diff_ids"]
    config = get_json(f"http://{reg.host}/v2/cache/app/blobs/{manifest['config']['digest']}")
    assert len(config["entries"]) == 6

    second = b.build(
        ctx, "-t", "app", "--cache-from", f"type=registry,ref={ref}", "--trace", str(tmp_path / "t")
    )
    assert second.image_id == first.image_id
    out = second.stderr
    assert "\n  RUN-OUTPUT-ONE\n" not in out and "\n  RUN-OUTPUT-TWO\n" not in out
    assert cached(second) == 6
    assert "(0 new layers, 6 steps cached)" in out
    steps = [r for r in trace(tmp_path / "t") if not r["instruction"].startswith("FROM")]
    assert [r["cache"] for r in steps] == ["hit"] * 6
    assert layers(tmp_path / "b") == set(diff_ids)
    assert b.run("app", "cat", "/app/copy", "/app/two").stdout == "hello from the context\ntwo\n"

    # The entries were copied into b's own index: the registry is not needed any more.
    reg.stop()
    try:
        third = b.build(ctx, "--cache-from", f"type=registry,ref={ref}")
    finally:
        reg.start()
    assert third.image_id == first.image_id
    assert cached(third) == 6
    assert "warning" not in third.stderr


def test_only_the_layers_of_hit_steps_are_downloaded(reg: Registry, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", DOCKERFILE)
    ref = f"{reg.host}/cache/partial:c"
    a, b = Ocibuild(tmp_path / "a"), Ocibuild(tmp_path / "b")
    a.build(ctx, "-t", "app", "--cache-to", f"type=registry,ref={ref}")
    built = a.config("app")["rootfs"]["diff_ids"]

    # b's context differs in app.txt: COPY app.txt and everything after it miss.
    (ctx / "app.txt").write_text("changed\n")
    result = b.build(ctx, "-t", "app", "--cache-from", ref)  # bare REF = type=registry
    out = result.stderr
    assert cached(result) == 2  # COPY busybox, RUN --install
    assert out.count("cache: layer ") == 2
    assert "\n  RUN-OUTPUT-ONE\n" in out and "\n  RUN-OUTPUT-TWO\n" in out
    assert set(built[:2]) <= layers(tmp_path / "b")
    # nothing else came from the registry: b's store holds exactly its image's layers
    # (a later step may rebuild a layer identical to one in the cache: same diffID)
    assert layers(tmp_path / "b") == set(b.config("app")["rootfs"]["diff_ids"])
    assert b.run("app", "cat", "/app/copy").stdout == "changed\n"


def test_mode_min_exports_the_target_stage_only_and_max_every_stage(
    reg: Registry, tmp_path: Path
) -> None:
    ctx = context(tmp_path / "ctx", MULTI)
    a = Ocibuild(tmp_path / "a")
    env = {"SOURCE_DATE_EPOCH": "0"}  # reproducible layers: a rebuilt stage matches
    built = a.build(
        ctx,
        "--cache-to",
        f"type=registry,ref={reg.host}/cache/multi:min",
        "--cache-to",
        f"type=registry,ref={reg.host}/cache/multi:max,mode=max,compression=zstd",
        env=env,
    )
    assert "to " + f"{reg.host}/cache/multi:max (mode=max)" in built.stderr

    b = Ocibuild(tmp_path / "b")
    result = b.build(ctx, "--cache-from", f"type=registry,ref={reg.host}/cache/multi:max", env=env)
    assert result.image_id == built.image_id
    assert "\n  BUILDER-RAN\n" not in result.stderr and "\n  FINAL-RAN\n" not in result.stderr
    assert cached(result) == 5

    # min: only the target stage's steps are in the cache: the other stages run again
    # (with SOURCE_DATE_EPOCH they give the same layers), then the target's steps,
    # keyed on those results, hit.
    c = Ocibuild(tmp_path / "c")
    result = c.build(ctx, "--cache-from", f"type=registry,ref={reg.host}/cache/multi:min", env=env)
    assert "\n  BUILDER-RAN\n" in result.stderr
    assert "\n  FINAL-RAN\n" not in result.stderr
    assert cached(result) == 2
    assert result.image_id == built.image_id


def test_missing_or_unreachable_cache_refs_are_warnings(reg: Registry, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", DOCKERFILE)
    a = Ocibuild(tmp_path / "a")
    result = a.build(
        ctx,
        "--cache-from",
        f"type=registry,ref={reg.host}/cache/none:nothing",
        "--cache-from",
        "type=registry,ref=127.0.0.1:9/cache/down:x",
    )
    assert "\n  RUN-OUTPUT-ONE\n" in result.stderr
    assert f"warning: --cache-from {reg.host}/cache/none:nothing: " in result.stderr
    assert "warning: --cache-from 127.0.0.1:9/cache/down:x: cannot reach" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--cache-to", "type=local,dest=/tmp/x", "--cache-to type=local is not supported"),
        ("--cache-to", "type=registry", "has no ref="),
        ("--cache-to", "type=registry,ref=h:5000/a:b,mode=all", "unknown mode 'all'"),
        ("--cache-from", "type=registry,ref=h:5000/a:b,colour=red", "unknown key 'colour'"),
    ],
)
def test_bad_cache_specs_fail_before_the_build(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    require_root()
    ctx = context(tmp_path / "ctx", DOCKERFILE)
    result = Ocibuild(tmp_path / "a").build(ctx, flag, value, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "[2/7]" not in result.stderr


def test_registry_with_credentials(tmp_path: Path) -> None:
    require_root()
    work = tmp_path / "authreg"
    work.mkdir()
    r = Registry(work, htpasswd=True)
    r.start()
    try:
        env = {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
        ctx = context(tmp_path / "ctx", DOCKERFILE)
        a, b = Ocibuild(tmp_path / "a"), Ocibuild(tmp_path / "b")
        a("login", "-u", USER, "-p", PASSWORD, r.host, env=env)
        ref = f"type=registry,ref={r.host}/private/cache:1"
        first = a.build(ctx, "--cache-to", ref, env=env)
        second = b.build(ctx, "--cache-from", ref, env=env)
        assert second.image_id == first.image_id
        assert cached(second) == 6
    finally:
        r.stop()
