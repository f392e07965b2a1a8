"""Shared test helpers: run the real CLI, read OCI layouts, probe capabilities."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BUSYBOX = "/bin/busybox"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (overlay mounts and runc as root)")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make setup installs it)")
    return path


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def image_id(self) -> str:
        return self.stdout.strip().splitlines()[-1]


class Ocibuild:
    """The real command line, run as a subprocess against one store."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> Result:
        cmd = [sys.executable, "-m", "ocibuild", *args]
        full_env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        full_env.update({"OCIBUILD_ROOT": str(self.root), **(env or {})})
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ocibuild {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return result

    def build(self, context: Path, *args: str, **kw: Any) -> Result:
        return self(*("build", *args, str(context)), **kw)

    def run(self, image: str, *cmd: str, **kw: Any) -> Result:
        return self("run", "--rm", image, *cmd, **kw)

    def config(self, image: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self("inspect", image).stdout)
        return data


@dataclass
class Layout:
    """An exported OCI image layout, read back."""

    path: Path
    index: dict[str, Any]
    manifest: dict[str, Any]
    manifest_digest: str
    config: dict[str, Any]

    def blob(self, digest: str) -> Path:
        return self.path / "blobs" / "sha256" / digest.split(":", 1)[1]

    def layer_members(self, n: int) -> list[tarfile.TarInfo]:
        with tarfile.open(self.blob(self.manifest["layers"][n]["digest"])) as tf:
            return tf.getmembers()

    def layer_file(self, n: int, name: str) -> bytes:
        with tarfile.open(self.blob(self.manifest["layers"][n]["digest"])) as tf:
            f = tf.extractfile(name)
            assert f is not None
            return f.read()


def read_layout(path: Path) -> Layout:
    index = json.loads((path / "index.json").read_text())
    desc = index["manifests"][0]
    mpath = path / "blobs" / "sha256" / desc["digest"].split(":", 1)[1]
    manifest = json.loads(mpath.read_text())
    cpath = path / "blobs" / "sha256" / manifest["config"]["digest"].split(":", 1)[1]
    return Layout(path, index, manifest, desc["digest"], json.loads(cpath.read_text()))


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("store")
    yield root


@pytest.fixture(scope="session")
def ocb(store_root: Path) -> Ocibuild:
    require_root()
    return Ocibuild(store_root)


BASE_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp /root /usr/bin && chmod 1777 /tmp \\
 && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd \\
 && echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd \\
 && echo 'root:x:0:' > /etc/group \\
 && echo 'app:x:1000:' >> /etc/group \\
 && echo 'extra:x:2000:app' >> /etc/group
"""


@pytest.fixture(scope="session")
def base_image(ocb: Ocibuild, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox image (tag base:test) every build test starts FROM."""
    ctx = tmp_path_factory.mktemp("basectx")
    shutil.copy(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text(BASE_DOCKERFILE)
    ocb.build(ctx, "-t", "base:test")
    return "base:test"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    return ctx


def mountinfo_mentions(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a forked child (its own mounts and namespaces stay there);
    return its result or fail with its traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            payload = pickle.dumps(("ok", fn(*args)))
        except BaseException:
            payload = pickle.dumps(("err", traceback.format_exc()))
        with os.fdopen(w, "wb") as f:
            f.write(payload)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    if status == "err":
        pytest.fail(f"child failed:\n{value}")
    return value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test is `unit` (tests/unit: no root, no runtime, no mounts) or `integration`
    (everything else: root, real runtimes, mounts, registries): `make unit` and
    `make integration` select on these."""
    unit_dir = REPO / "tests" / "unit"
    for item in items:
        is_unit = Path(str(item.fspath)).is_relative_to(unit_dir)
        item.add_marker(pytest.mark.unit if is_unit else pytest.mark.integration)
