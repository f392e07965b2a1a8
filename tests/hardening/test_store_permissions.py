"""The store is private to its owner: another local user cannot list it, read a step log
or a blob, take ROOT/lock, or run a setuid file a RUN step left in a cache mount; an
older, looser store is tightened on the next open. Checked as a real second user."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, Ocibuild
from tests.isolation.conftest import USER, Builder, ensure_user, require_root

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ARG TOKEN=build-arg-secret-value
RUN --mount=type=cache,id=suid,target=/c cp /bin/busybox /c/id && chmod 4755 /c/id \\
 && echo "printed $TOKEN"
"""


@pytest.fixture
def reachable(tmp_path: Path) -> Iterator[Path]:
    """A dir the test user can reach (pytest's tmp dirs are private to root)."""
    require_root()
    ensure_user(USER, subids=True)
    path = Path(tempfile.mkdtemp(prefix="ocibuild-perm-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_user(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", USER, "--", *cmd],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        cwd="/",
    )


def build(store: Path, tmp: Path) -> tuple[str, str, str]:
    """Build DOCKERFILE into ``store``: (step log, config blob, setuid file in the cache)."""
    ctx = tmp / "ctx"
    ctx.mkdir(exist_ok=True)
    shutil.copy(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    res = Ocibuild(store).build(ctx, "-t", "perm:test")
    assert "printed build-arg-secret-value" in res.stderr
    logs = sorted((store / "builds").glob("*/steps/*.log"))
    log = next(str(p) for p in logs if b"build-arg-secret-value" in p.read_bytes())
    config = json.loads(Ocibuild(store)("inspect", "perm:test").stdout)
    blob = str(store / "blobs" / "sha256" / config["Id"].split(":", 1)[1])
    assert b"build-arg-secret-value" in Path(blob).read_bytes()
    key = hashlib.sha256(b"suid").hexdigest()[:32]
    suid = store / "cache-mounts" / key / "id"  # busybox runs the applet its name says
    assert os.stat(suid).st_mode & 0o4000 and os.stat(suid).st_uid == 0
    return log, blob, str(suid)


def user_reaches(store: Path, log: str, blob: str, suid: str) -> dict[str, bool]:
    return {
        "list": as_user("ls", str(store)).returncode == 0,
        "log": as_user("cat", log).returncode == 0,
        "blob": as_user("cat", blob).returncode == 0,
        "lock": as_user("flock", "-n", str(store / "lock"), "true").returncode == 0,
        "suid": as_user(suid).returncode == 0,
    }


def test_new_store_is_private(reachable: Path, tmp_path: Path) -> None:
    store = reachable / "store"
    log, blob, suid = build(store, tmp_path)
    assert os.stat(store).st_mode & 0o777 == 0o700
    for path in (store / "cache-mounts", store / "builds", store / "tmp", store / "blobs"):
        assert os.stat(path).st_mode & 0o077 == 0, path
    for path in (log, blob, str(store / "lock"), str(store / "gc.lock")):
        assert os.stat(path).st_mode & 0o777 == 0o600, path
    assert user_reaches(store, log, blob, suid) == dict.fromkeys(
        ("list", "log", "blob", "lock", "suid"), False
    )


def test_old_loose_store_is_tightened_on_open(reachable: Path, tmp_path: Path) -> None:
    store = reachable / "store"
    log, blob, suid = build(store, tmp_path)
    # what an older ocibuild left: every dir 0755, files 0644
    for dirpath, _dirnames, filenames in os.walk(store):
        if dirpath.startswith(str(store / "layers")):
            continue
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and path != suid:
                os.chmod(path, 0o644)
    reached = user_reaches(store, log, blob, suid)
    assert reached == dict.fromkeys(reached, True), "the test can see a loose store"
    res = Ocibuild(store)("images")
    assert f"the store {store} was mode 0755, open to other users; made it 0700" in res.stderr
    assert os.stat(store).st_mode & 0o777 == 0o700
    assert user_reaches(store, log, blob, suid) == dict.fromkeys(reached, False)
    assert "was mode" not in Ocibuild(store)("images").stderr, "said once"


def test_rootless_store_is_private(reachable: Path) -> None:
    # an ordinary user's default store ($XDG_DATA_HOME/ocibuild) is made 0700 as well
    entry = ensure_user(USER, subids=True)
    os.chown(reachable, entry.pw_uid, entry.pw_gid)
    res = Builder(USER, reachable)("images", check=False)
    assert "Traceback" not in res.stderr, res.stderr
    assert os.stat(reachable / "ocibuild").st_mode & 0o777 == 0o700, res.stderr


def test_kept_failure_is_private(reachable: Path, tmp_path: Path) -> None:
    # a failing step leaves a setuid-root file in its upper dir; --keep-failed keeps it
    store = reachable / "store"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "RUN cp /bin/busybox /id && chmod 4755 /id && exit 3\n"
    )
    res = Ocibuild(store).build(ctx, "--keep-failed", check=False)
    assert res.returncode == 1 and "the failed step is kept in" in res.stderr, res.stderr
    (kept,) = (store / "builds").glob("*/failed/step-*/upper/id")
    assert os.stat(kept).st_mode & 0o4777 == 0o4755
    parents = [p for p in kept.parents if p.is_relative_to(store) and p != store]
    for path in (store, store / "builds"):
        assert os.stat(path).st_mode & 0o077 == 0, path
    assert os.stat(parents[-2]).st_mode & 0o077 == 0, "the build's own dir"
    assert as_user(str(kept)).returncode != 0
    assert as_user("ls", str(kept.parent)).returncode != 0
