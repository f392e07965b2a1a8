"""Layers applied inside a user namespace (rootless): device nodes are dropped, whiteouts
and opaque dirs take the forms an unprivileged overlay mount reads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import io, json, os, sys, tarfile
from ocibuild.layers.apply import apply_layer
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tf:
    for name, typ in (("dev/null", tarfile.CHRTYPE), ("dev/sda", tarfile.BLKTYPE),
                      (".wh.gone", tarfile.REGTYPE), ("d/", tarfile.DIRTYPE),
                      ("d/.wh..wh..opq", tarfile.REGTYPE), ("f", tarfile.REGTYPE)):
        ti = tarfile.TarInfo(name); ti.type = typ; ti.devmajor, ti.devminor = 1, 3
        tf.addfile(ti, io.BytesIO(b"") if typ == tarfile.REGTYPE else None)
dest = sys.argv[1]
apply_layer(io.BytesIO(buf.getvalue()), dest)
out = {}
for root, dirs, files in os.walk(dest):
    for n in dirs + files:
        p = os.path.join(root, n); st = os.lstat(p)
        out[os.path.relpath(p, dest)] = [st.st_mode >> 12, st.st_rdev,
                                         sorted(os.listxattr(p, follow_symlinks=False))]
print(json.dumps(out))
"""


def test_apply_in_user_namespace(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    dest = tmp_path / "layer"
    dest.mkdir()
    res = subprocess.run(
        [unshare, "-Ur", sys.executable, "-c", SCRIPT, str(dest)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert "dev/null" not in found and "dev/sda" not in found, "device nodes are dropped"
    assert found["gone"][:2] == [0o02, 0], "a whiteout is a 0/0 character device"
    assert found["d"][2] == ["user.fuseoverlayfs.opaque", "user.overlay.opaque"]
    assert found["f"][0] == 0o10
