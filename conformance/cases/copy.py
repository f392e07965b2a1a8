"""COPY and ADD: sources, destinations, ownership, modes, archives, URLs."""

import bz2
import gzip
import hashlib
import io
import lzma
import subprocess
import tarfile
from pathlib import Path

from conformance.case import Case, Dir, Expect, File, Link, d, f, ln

B = "FROM {busybox}\n"
TREE = {"a.txt": "A\n", "dir/x": "X\n", "dir/sub/y": "Y\n", "one.md": "1", "two.md": "2"}
PAYLOAD = b"downloaded content\n"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in (
            ("top/file", b"in archive\n", 0o640),
            ("top/exec", b"#!\n", 0o755),
        ):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), mode, 1000, 1000, 1_600_000_000
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("top/link")
        ti.type, ti.linkname, ti.mtime = tarfile.SYMTYPE, "file", 1_600_000_000
        tf.addfile(ti)
    return buf.getvalue()


def _archive(name: str, kind: str):  # type: ignore[no-untyped-def]
    def setup(ctx: Path) -> None:
        raw = _tar_bytes()
        if kind == "gz":
            raw = gzip.compress(raw, mtime=0)
        elif kind == "bz2":
            raw = bz2.compress(raw)
        elif kind == "xz":
            raw = lzma.compress(raw)
        elif kind == "zst":
            raw = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True,
                                 check=True).stdout  # fmt: skip
        (ctx / name).write_bytes(raw)

    return setup


def _hardlinks(ctx: Path) -> None:
    (ctx / "h").mkdir()
    (ctx / "h" / "one").write_text("same\n")
    (ctx / "h" / "two").hardlink_to(ctx / "h" / "one")


CASES = [
    Case("copy_file_to_dir", B + "COPY a.txt /dst/\n", files=TREE),
    Case("copy_rename", B + "COPY a.txt /renamed.txt\n", files=TREE),
    Case("copy_dir_contents", B + "COPY dir /dir-contents\n", files=TREE),
    Case("copy_glob", B + "COPY *.md /docs/\nCOPY d?r/s*/y /ys/\n", files=TREE),
    Case("copy_multiple_sources", B + "COPY a.txt one.md dir /multi/\n", files=TREE),
    Case("copy_context_root", B + "COPY . /all/\n", files={**TREE, ".dockerignore": "Dockerfile"}),
    Case("copy_into_existing_dir", B + "COPY a.txt /etc\n", files=TREE),
    Case("copy_workdir_relative", B + "WORKDIR /app\nCOPY a.txt .\nCOPY dir sub/\n", files=TREE),
    Case("copy_chown_names", B + "COPY --chown=app:extra dir /owned/\n", files=TREE),
    Case("copy_chown_uid_only", B + "COPY --chown=1000 a.txt /u.txt\n", files=TREE),
    Case("copy_chown_expanded", B + "ARG U=app\nCOPY --chown=${U}:${U} a.txt /e.txt\n", files=TREE),
    Case(
        "copy_chmod_octal_files",
        B + "COPY --chmod=640 a.txt /a\nCOPY --chmod=0700 a.txt /m/\n",
        files=TREE,
        newer=Expect(modes={"/m": 0o700}),
        reason="v0.11.6 makes the dir /m the COPY creates 0755; current BuildKit gives it the "
        "octal --chmod's bits (fsutil 13604323, cd3d07569; 75c457afd)",
    ),
    Case(
        "copy_chmod_octal_dir",
        B + "COPY --chmod=0700 dir /m/\n",
        files=TREE,
        newer=Expect(modes={"/m": 0o700}),
        reason="v0.11.6 makes a destination dir it creates 0755; current BuildKit gives it "
        "an octal --chmod's mode (fsutil 13604323, cd3d07569; its testCopyChmod, 75c457afd)",
    ),
    Case(
        "copy_modes_kept",
        B + "COPY perms /perms/\n",
        files={
            "perms/private": File("p", 0o600),
            "perms/exec": File("e", 0o755),
            "perms/closed": Dir(0o700),
            "perms/closed/in": File("i", 0o444),
            "perms/owned": File("o", 0o644, 1234, 5678),
        },
    ),
    Case(
        "copy_symlinks_in_dir",
        B + "COPY tree /tree/\n",
        files={
            "tree/target": "t",
            "tree/rel": Link("target"),
            "tree/abs": Link("/etc/passwd"),
            "tree/dangling": Link("nowhere"),
        },
    ),
    Case(
        "copy_symlink_source_followed",
        B + "COPY link /followed\n",
        files={"real": "real content\n", "link": Link("real")},
    ),
    Case("copy_hardlinks", B + "COPY h /h/\n", setup=_hardlinks),
    Case("copy_dest_through_symlink", B + "RUN ln -s /opt /o\nCOPY a.txt /o/\n", files=TREE),
    Case(
        "copy_dir_mode_to_new_dest",
        B + "COPY empty /empty/\n",
        files={"empty": Dir(0o751)},
    ),
    Case("copy_overwrite_file", B + "COPY a.txt /etc/passwd\n", files=TREE),
    Case(
        "copy_from_stage_name",
        B.replace("\n", " AS build\n")
        + "RUN mkdir /out && echo built > /out/f\n"
        + B
        + "COPY --from=build /out /from-build/\n",
    ),
    Case("copy_from_stage_index", B + "RUN echo zero > /z\n" + B + "COPY --from=0 /z /z0\n"),
    Case("copy_from_image", B + "COPY --from={busybox} /etc/passwd /passwd-copy\n"),
    Case(
        "copy_from_keeps_owner",
        B.replace("\n", " AS s\n")
        + "RUN mkdir /o && touch /o/f && chown -R 1000:2000 /o\n"
        + B
        + "COPY --from=s /o /o2\n",
    ),
    Case(
        "dockerignore_rules",
        B + "COPY . /ctx/\n",
        files={
            ".dockerignore": "**/*.log\n!keep.log\nsecret*\ntmp/\n!tmp/wanted\nDockerfile\n",
            "a.log": "x",
            "keep.log": "k",
            "sub/b.log": "x",
            "secret.txt": "s",
            "tmp/junk": "j",
            "tmp/wanted": "w",
            "ok.txt": "ok",
        },
    ),
    Case("add_local_file", B + "ADD a.txt /added/\nADD dir /added-dir\n", files=TREE),
    Case("add_tar_plain", B + "ADD a.tar /x/\n", setup=_archive("a.tar", "")),
    Case("add_tar_gzip", B + "ADD a.tgz /x/\n", setup=_archive("a.tgz", "gz")),
    Case("add_tar_bzip2", B + "ADD a.tbz /x/\n", setup=_archive("a.tbz", "bz2")),
    Case("add_tar_xz", B + "ADD a.txz /x\n", setup=_archive("a.txz", "xz")),
    Case("add_tar_zstd", B + "ADD a.tar.zst /x/\n", setup=_archive("a.tar.zst", "zst")),
    Case("add_archive_named_oddly", B + "ADD data.bin /x/\n", setup=_archive("data.bin", "gz")),
    Case(
        "add_compressed_non_tar",
        B + "ADD plain.gz /p/\n",
        files={"plain.gz": gzip.compress(b"not a tar\n", mtime=0)},
    ),
    Case("add_url", B + "ADD {http}/files/payload.txt /dl/\n", http={"files/payload.txt": PAYLOAD}),
    Case("add_url_to_file", B + "ADD {http}/p.txt /renamed\n", http={"p.txt": PAYLOAD}),
    Case(
        "add_url_checksum",
        B + f"ADD --checksum=sha256:{PAYLOAD_SHA} {{http}}/c.txt /c/\n",
        http={"c.txt": PAYLOAD},
        expect=Expect(files={"/c": d(), "/c/c.txt": f(PAYLOAD, 0o600)}),
        reason="ADD --checksum is labs-only in v0.11.6 (dockerfile 1.5); stable since 11a2c6a83",
    ),
    Case(
        "copy_chmod_symbolic",
        B + "COPY --chmod=u+x,go-w a.txt /a\nCOPY --chmod=a=rX dir /d/\n",
        files={"a.txt": File("A\n", 0o666), "dir/x": File("X\n", 0o640)},
        newer=Expect(modes={"/a": 0o744, "/d/x": 0o444}),
        reason="v0.11.6 ignores a non-octal --chmod; current BuildKit applies it to what it "
        "copies (165f8b441, non-octal COPY --chmod out of labs), not to the dir /d it creates "
        "(0755: only an octal mode reaches fsutil's MkdirAll)",
    ),
    Case(
        "copy_setuid_from_context",
        B + "COPY tool /usr/bin/tool\n",
        files={"tool": File("#!/bin/sh\n", 0o4755)},
    ),
    Case(
        "copy_parents",
        B + "COPY --parents a/b/one.txt c/*.txt /p/\nCOPY --parents ./x/./y/z.txt /q/\n",
        files={"a/b/one.txt": "1", "c/two.txt": "2", "c/three.txt": "3", "x/y/z.txt": "z"},
        expect=Expect(
            files={
                "/p": d(),
                "/p/a": d(),
                "/p/a/b": d(),
                "/p/a/b/one.txt": f("1"),
                "/p/c": d(),
                "/p/c/two.txt": f("2"),
                "/p/c/three.txt": f("3"),
                "/q": d(),
                "/q/y": d(),
                "/q/y/z.txt": f("z"),
            }
        ),
        reason="COPY --parents is dockerfile 1.7 syntax: v0.11.6 (dockerfile 1.5) cannot build it",
    ),
    Case(
        "copy_exclude",
        B + "COPY --exclude=*.md --exclude=dir/sub --exclude=Dockerfile . /e/\n",
        files=TREE,
        expect=Expect(files={"/e": d(), "/e/a.txt": f("A\n"), "/e/dir": d(), "/e/dir/x": f("X\n")}),
        reason="COPY --exclude is dockerfile 1.7 syntax: v0.11.6 (dockerfile 1.5) cannot build it",
    ),
    Case(
        "copy_link",
        B + "COPY --link a.txt /linked/\nCOPY --link --chown=1000:1000 dir /ld\n",
        files=TREE,
    ),
    Case(
        "copy_link_chmod_chown_name",
        B + "COPY --link --chmod=640 --chown=app a.txt /lc\n",
        files=TREE,
        source="BuildKit copies on the stage, not on scratch, when --link has a --chmod",
    ),
    Case(
        "copy_link_chown_numeric_and_root",
        B + "COPY --link --chown=1000:root a.txt /n\nCOPY --link --chown=root dir /r/\n",
        files=TREE,
    ),
    Case(
        "copy_chmod_octal_creates_parents",
        B + "COPY --chmod=0750 a.txt /new/deep/a\n"
        "COPY --chmod=640 dir /nd\nRUN mkdir /have\nCOPY --chmod=700 a.txt /have/sub/\n",
        files=TREE,
        newer=Expect(
            modes={
                "/new": 0o750,
                "/new/deep": 0o750,
                "/nd": 0o640,
                "/have/sub": 0o700,
            }
        ),
        reason="v0.11.6 makes the dirs a COPY creates 0755; current BuildKit gives them an "
        "octal --chmod's permission bits (fsutil 13604323, cd3d07569; 75c457afd)",
    ),
    Case(
        "copy_chmod_special_bits",
        B + "COPY --chmod=1777 a.txt /st/\nCOPY --chmod=0755 suid /suid\n",
        files={"a.txt": "A\n", "suid": File("#!/bin/sh\n", 0o4755)},
        newer=Expect(modes={"/st": 0o777, "/st/a.txt": 0o1777, "/suid": 0o755}),
        reason="v0.11.6 takes only the 0777 bits of an octal --chmod and keeps the source's "
        "setuid/setgid/sticky bits; current BuildKit sets them from --chmod (fsutil "
        "7a889f53dbf6, d6d008bc8); created dirs get the 0777 bits (cd3d07569)",
    ),
    Case(
        "copy_chmod_symbolic_creates_parents",
        B + "COPY --chmod=go-r a.txt /sym/deep/a\n",
        files=TREE,
        newer=Expect(modes={"/sym/deep/a": 0o600}),
        reason="v0.11.6 ignores a non-octal --chmod; current BuildKit applies it to the file, "
        "and makes the dirs it creates 0755 (165f8b441; only an octal mode reaches MkdirAll)",
    ),
    Case(
        "copy_dir_file_onto_nested_dir_error",
        B + "RUN mkdir -p /t/sub/x/y\nCOPY dir /t\n",
        files={"dir/sub/x": "file"},
        error="cannot replace the directory /t/sub/x with a file",
    ),
    Case(
        "copy_dir_onto_nested_symlink_error",
        B + "RUN mkdir -p /t /real && ln -s /real /t/sub\nCOPY dir /t\n",
        files={"dir/sub/x": "x"},
        error="cannot copy a directory to /t/sub",
    ),
    Case(
        "copy_file_onto_file_and_link",
        B + "RUN mkdir /t && echo old > /t/a && ln -s /nowhere /t/l\nCOPY dir /t\n",
        files={"dir/a": "new", "dir/l": "was a link"},
    ),
    Case(
        "copy_link_chown_name",
        B + "COPY --link --chown=app a.txt /ld\n",
        files=TREE,
        error="cannot be looked up, a --link copy does not see the image's /etc/passwd",
    ),
    Case(
        "dockerfile_specific_dockerignore",
        B + "COPY . /ctx/\n",
        dockerfile_name="build/app.Dockerfile",
        files={
            "build/app.Dockerfile.dockerignore": "*.md\nbuild\n",
            ".dockerignore": "a.txt\n",
            "a.txt": "A\n",
            "one.md": "1",
        },
    ),
    Case(
        "copy_chown_creates_parents_owned",
        B + "COPY --chown=app a.txt /new/parent/a.txt\n",
        files=TREE,
    ),
]

_unused = (ln,)
