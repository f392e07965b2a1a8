"""The documented Python API, called the way a script calls it: several times in one
process, with a failing build in between."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, in_child, require_root


def _build_three(good: str, bad: str, root: str) -> list[str]:
    import ocibuild
    from ocibuild.errors import OcibuildError

    options = ocibuild.Options.resolve(root=root)

    seen = []
    first = ocibuild.build(good, tags=["api-one"], options=options)
    seen.append(first.image_id)
    try:
        ocibuild.build(bad, options=options)
    except OcibuildError as exc:
        seen.append("failed: " + str(exc).splitlines()[0])
    second = ocibuild.build(good, tags=["api-two"], options=options)
    seen.append(second.image_id)
    seen.append(type(ocibuild.build).__name__)
    return seen


@pytest.mark.integration
def test_build_can_be_called_again_after_a_build_and_a_failure(tmp_path: Path) -> None:
    require_root()
    good = tmp_path / "good"
    good.mkdir()
    (good / "busybox").write_bytes(Path(BUSYBOX).read_bytes())
    (good / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Dockerfile").write_text("FROM scratch\nCOPY missing /x\n")
    first, failure, second, kind = in_child(
        _build_three, str(good), str(bad), str(tmp_path / "root")
    )
    assert first.startswith("sha256:") and first == second
    assert failure.startswith("failed: ")
    assert kind == "function"
