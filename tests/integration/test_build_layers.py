"""What ends up in the layers: whiteouts, opaque dirs, replacements, special files."""

from __future__ import annotations

import stat
import tarfile
from pathlib import Path

from tests.conftest import Layout, Ocibuild, read_layout


def build_layout(ocb: Ocibuild, context: Path, tmp_path: Path, dockerfile: str) -> Layout:
    (context / "Dockerfile").write_text(dockerfile)
    out = tmp_path / "layout"
    ocb.build(context, "--output", f"type=oci,dest={out}")
    return read_layout(out)


def members(layout: Layout, n: int) -> dict[str, tarfile.TarInfo]:
    return {m.name.rstrip("/"): m for m in layout.layer_members(n)}


def test_whiteouts_and_opaque_dirs(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    layout = build_layout(
        ocb,
        context,
        tmp_path,
        f"FROM {base_image}\n"
        "RUN mkdir -p /w/keep /w/gone /w/redo && touch /w/file /w/redo/old /w/keep/k\n"
        "RUN rm /w/file && rm -r /w/gone && rm -r /w/redo && mkdir /w/redo && touch /w/redo/new\n",
    )
    last = members(layout, len(layout.manifest["layers"]) - 1)
    assert "w/.wh.file" in last
    assert "w/.wh.gone" in last
    assert "w/redo/.wh..wh..opq" in last
    assert "w/redo/new" in last
    assert "w/keep" not in last, "an untouched dir is not in the layer"
    wh = last["w/.wh.file"]
    assert wh.isreg() and wh.size == 0
    names = [m.name.rstrip("/") for m in layout.layer_members(len(layout.manifest["layers"]) - 1)]
    for i, name in enumerate(names):
        parent = name.rpartition("/")[0]
        if parent:
            assert parent in names[:i], f"{parent} must come before {name}"


def test_type_replacements(ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path) -> None:
    layout = build_layout(
        ocb,
        context,
        tmp_path,
        f"FROM {base_image}\n"
        "RUN mkdir -p /r/dir2file && touch /r/file2dir /r/file2link && ln -s x /r/link2file\n"
        "RUN rm -r /r/dir2file && touch /r/dir2file"
        " && rm /r/file2dir && mkdir /r/file2dir && touch /r/file2dir/in"
        " && rm /r/file2link && ln -s /etc/passwd /r/file2link"
        " && rm /r/link2file && echo data > /r/link2file\n",
    )
    last = members(layout, len(layout.manifest["layers"]) - 1)
    assert last["r/dir2file"].isreg()
    assert last["r/file2dir"].isdir() and "r/file2dir/in" in last
    assert last["r/file2link"].issym() and last["r/file2link"].linkname == "/etc/passwd"
    assert last["r/link2file"].isreg() and last["r/link2file"].size == 5
    assert not any(n.startswith("r/.wh.") for n in last), "a replaced path needs no whiteout"


def test_special_files(ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path) -> None:
    layout = build_layout(
        ocb,
        context,
        tmp_path,
        f"FROM {base_image}\n"
        "RUN mkdir /s && echo x > /s/a && ln /s/a /s/hard && ln -s a /s/soft"
        " && mkfifo /s/fifo && chmod 4755 /s/a && mkdir -m 1777 /s/sticky"
        " && touch /s/gid && chown 1000:2000 /s/gid && chmod 2711 /s/gid\n",
    )
    m = members(layout, len(layout.manifest["layers"]) - 1)
    a, hard = m["s/a"], m["s/hard"]
    assert {a.type, hard.type} == {tarfile.REGTYPE, tarfile.LNKTYPE}
    link, target = (hard, a) if hard.islnk() else (a, hard)
    assert link.linkname == target.name
    assert stat.S_IMODE(target.mode) == 0o4755
    assert m["s/soft"].issym() and m["s/soft"].linkname == "a"
    assert m["s/fifo"].isfifo()
    assert stat.S_IMODE(m["s/sticky"].mode) == 0o1777
    assert stat.S_IMODE(m["s/gid"].mode) == 0o2711
    assert (m["s/gid"].uid, m["s/gid"].gid) == (1000, 2000)
    assert m["s/gid"].uname == "" and m["s/gid"].gname == ""


def test_no_mount_stubs_in_layers(ocb: Ocibuild, context: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copy("/bin/busybox", context / "busybox")
    layout = build_layout(
        ocb,
        context,
        tmp_path,
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "touch", "/made"]\n',
    )
    last = members(layout, 1)
    # no /etc/hosts, /etc/resolv.conf, /dev/pts... stubs; /proc, /sys, /dev stay as empty
    # root dirs, as in BuildKit's layer (runc makes them, they are not stubs there)
    assert sorted(last) == ["dev", "made", "proc", "sys"]
    for name in ("dev", "proc", "sys"):
        assert last[name].isdir() and stat.S_IMODE(last[name].mode) == 0o755
        assert (last[name].uid, last[name].gid) == (0, 0)


def test_metadata_only_steps_add_no_layers(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    layout = build_layout(
        ocb, context, tmp_path, f"FROM {base_image}\nENV A=1\nLABEL x=y\nRUN true\nWORKDIR /\n"
    )
    base_layers = len(ocb.config(base_image)["rootfs"]["diff_ids"])
    assert len(layout.manifest["layers"]) == base_layers
    history = layout.config["history"][-4:]
    assert [h.get("empty_layer", False) for h in history] == [True, True, True, True]
    assert len([h for h in layout.config["history"] if not h.get("empty_layer")]) == base_layers
