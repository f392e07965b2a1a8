"""``ocibuild.build_platforms`` from Python: the multi-platform build the command line uses."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_child

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the expected values are for an amd64 machine"
)


def _build(ctx: str, root: str, out: str) -> dict[str, Any]:
    import ocibuild
    from ocibuild.image.store import Store

    options = ocibuild.Options.resolve(root=root)
    result = ocibuild.build_platforms(
        ctx,
        platforms=["linux/amd64", "linux/arm64"],
        tags=["api:multi"],
        output=ocibuild.Output("oci", out),
        options=options,
    )
    index = Store(root).index_of("api:multi")
    return {"id": result.image_id, "tags": result.tags, "index": index}


def test_build_platforms_from_python(multi_registry: str, context: Path, tmp_path: Path) -> None:
    (context / "Dockerfile").write_text(f"FROM {multi_registry}\nRUN uname -m > /arch\n")
    out = tmp_path / "out"
    got = in_child(_build, str(context), str(tmp_path / "root"), str(out))
    assert got["tags"] == ["api:multi"]
    (amd, amd_platform), (arm, arm_platform) = got["index"]
    assert got["id"] == amd and arm != amd
    assert (amd_platform["architecture"], arm_platform["architecture"]) == ("amd64", "arm64")
    (top,) = json.loads((out / "index.json").read_text())["manifests"]
    assert top["mediaType"] == "application/vnd.oci.image.index.v1+json"
