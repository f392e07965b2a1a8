"""COPY and ADD cases adapted from BuildKit's Dockerfile integration tests
(frontend/dockerfile/dockerfile_copy_test.go, dockerfile_add_test.go) and buildah's
tests/bud contexts: their Dockerfiles, made to write what they assert into the image."""

import io
import tarfile
from pathlib import Path

from conformance.case import Case, Dir, Expect, File, Link, d, f

B = "FROM {busybox}\n"
CHMOD_CHECKED = (
    "v0.11.6 ignores an invalid --chmod; current BuildKit rejects it (6fddb5dc8, "
    '"Check the validity of the chmod option arguments for COPY and ADD")'
)
BK = "buildkit frontend/dockerfile/dockerfile_copy_test.go "
BA = "buildkit frontend/dockerfile/dockerfile_add_test.go "
BUD = "buildah tests/bud/"


def _tar(entries: list[tuple[str, bytes | None, int]], *, dirs: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.mode = 1_600_000_000, mode
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _write(name: str, data: bytes):  # type: ignore[no-untyped-def]
    def setup(ctx: Path) -> None:
        (ctx / name).write_bytes(data)

    return setup


NO_PARENTS = _tar([("a/b/c/file", b"deep\n", 0o644), ("top", b"t\n", 0o600)])
TWO_TARS = _tar([("one/f", b"1\n", 0o644)]), _tar([("two/g", b"2\n", 0o644)])


def _two_tars(ctx: Path) -> None:
    (ctx / "x1.tar").write_bytes(TWO_TARS[0])
    (ctx / "x2.tar").write_bytes(TWO_TARS[1])


def _hardlinks(ctx: Path) -> None:
    (ctx / "h").mkdir()
    (ctx / "h" / "one").write_text("same\n")
    (ctx / "h" / "two").hardlink_to(ctx / "h" / "one")


CASES = [
    Case(
        "copy_chown_existing_dir",
        "FROM {busybox} AS source\nRUN touch /file && chown 100:200 /file && mkdir -p "
        "/dir/subdir && touch /dir/subdir/nestedfile && chown 100:200 /dir && chown 101:201 "
        "/dir/subdir && chown 102:202 /dir/subdir/nestedfile\n"
        "FROM {busybox}\nRUN mkdir -p /existingdir/existingsubdir && touch "
        "/existingdir/existingfile && chown 500:600 /existingdir && chown 501:601 "
        "/existingdir/existingsubdir /existingdir/existingfile\n"
        "COPY --from=source /file .\nCOPY --from=source /dir /dir\n"
        "COPY --from=source /dir/. /existingdir\n",
        source=BK + "testCopyChownExistingDir",
    ),
    Case(
        "copy_chown_existing_dir_chowned",
        "FROM {busybox} AS source\nRUN touch /file && chown 100:200 /file && mkdir -p "
        "/dir/subdir && touch /dir/subdir/nestedfile && chown 100:200 /dir\n"
        "FROM {busybox}\nRUN mkdir -p /existingdir/existingsubdir && chown 500:600 /existingdir\n"
        "COPY --from=source --chown=300:400 /file .\n"
        "COPY --from=source --chown=300:400 /dir /dir\n"
        "COPY --from=source --chown=300:400 /dir/. /existingdir\n",
        source=BK + "testCopyChownExistingDir",
    ),
    Case(
        "copy_chown_create_dest",
        B + "ARG group\nENV owner user01\n"
        "RUN echo 'user:x:1100:1100::/home/user:/bin/sh' >> /etc/passwd && "
        "echo 'user01:x:1101:1101::/home/user01:/bin/sh' >> /etc/passwd && "
        "echo 'user:x:1100:' >> /etc/group && echo 'user01:x:1101:' >> /etc/group\n"
        "COPY --chown=user:user a.txt /dest\nCOPY --chown=${owner}:${group} a.txt /dest01\n",
        files={"a.txt": "a"},
        build_args={"group": "user"},
        source=BK + "testCopyChownCreateDest",
    ),
    Case(
        "copy_chown_variants",
        B + "ENV owner 1000\nCOPY --chown=daemon foo /\nCOPY --chown=1000:nobody bar /baz\n"
        "ARG group\nCOPY --chown=${owner}:${group} foo /foobis\n",
        files={"foo": "foo-contents", "bar/sub": "sub-contents"},
        build_args={"group": "nogroup"},
        source=BK + "testCopyChown",
    ),
    Case(
        "copy_chmod_variants",
        B + "COPY --chmod=0644 foo /\nCOPY --chmod=777 bar /baz\nCOPY --chmod=0 foo /foobis\n"
        "COPY --chmod=777 foo /parent/foo\nCOPY --chmod=770 foo /parent/sub/foo\n"
        "ARG mode\nCOPY --chmod=${mode} foo /footer\n",
        files={"foo": File("foo-contents", 0o600), "bar/sub": "sub-contents"},
        build_args={"mode": "755"},
        source=BK + "testCopyChmod",
        newer=Expect(
            modes={"/baz": 0o777, "/parent": 0o777, "/parent/sub": 0o770, "/footer": 0o755}
        ),
        reason="v0.11.6 neither expands ARGs in --chmod nor gives an octal --chmod to the "
        "dirs a COPY creates; current BuildKit does both (fsutil 13604323, cd3d07569; its "
        "testCopyChmod, 75c457afd)",
    ),
    Case(
        "copy_invalid_chmod",
        "FROM scratch\nCOPY --chmod=64a foo /\n",
        files={"foo": "x"},
        base="scratch",
        error="64a",
        source=BK + "testCopyInvalidChmod",
        expect=Expect(),
        reason=CHMOD_CHECKED,
    ),
    Case(
        "copy_link_dot_dest",
        B + "WORKDIR /var/www\nCOPY --link testfile .\n",
        files={"testfile": "contents0"},
        source=BK + "testCopyLinkDotDestDir",
    ),
    Case(
        "copy_link_empty_dest",
        B + 'WORKDIR /var/www\nENV empty=""\nCOPY --link testfile $empty\n',
        files={"testfile": "contents0"},
        source=BK + "testCopyLinkEmptyDestDir",
    ),
    Case(
        "copy_empty_dest_dir",
        B + 'ENV empty=""\nWORKDIR /w\nCOPY testfile $empty\n',
        files={"testfile": "contents0"},
        source=BK + "testEmptyDestDir",
    ),
    Case(
        "copy_preserve_dest_dir_slash",
        B + "COPY testfile /sample/\nCOPY testfile /sample2\n",
        files={"testfile": "contents0"},
        source=BK + "testPreserveDestDirSlash",
    ),
    Case(
        "copy_var_substitution",
        B + "ENV FOO bar\nCOPY $FOO baz\nCOPY ${FOO} /q/\n",
        files={"bar": "bar-contents"},
        source=BK + "testCopyVarSubstitution",
    ),
    Case(
        "copy_wildcards",
        B + "COPY *.go /gofiles/\nCOPY f*.go foo2.go /\nCOPY sub/* /subdest/\n"
        "COPY sub/*/dir /subdest2/\nCOPY sub/d[0-9]* /digits/\n",
        files={
            "foo.go": "foo-contents",
            "bar.go": "bar-contents",
            "foo2.go": "foo2",
            "sub/dir/foo": "foo-contents",
            "sub/d1/dir/x": "x",
            "sub/z": "z",
        },
        source=BK + "testCopyWildcards",
    ),
    Case(
        "copy_wildcard_dir_match",
        B + "COPY d* /out/\n",
        files={"dir1/a": "a", "dir2/b": "b", "dfile": "f"},
        source=BK + "testCopyWildcards",
    ),
    Case(
        "copy_relative",
        B + "WORKDIR /test1\nWORKDIR test2\nCOPY foo ./\nWORKDIR /test3\nCOPY foo .\n"
        "COPY foo ../test4/\nCOPY foo sub/\nCOPY foo ./sub2/renamed\n",
        files={"foo": "hello"},
        source=BK + "testCopyRelative",
    ),
    Case(
        "copy_unicode_path",
        B + "COPY foo.txt /é/\nCOPY 中文.txt /中/\nCOPY ä.txt /a-umlaut\n",
        files={"foo.txt": "f", "中文.txt": "zh", "ä.txt": "ae"},
        expect=Expect(
            files={
                "/é": d(),
                "/é/foo.txt": f("f"),
                "/中": d(),
                "/中/中文.txt": f("zh"),
                "/a-umlaut": f("ae"),
            }
        ),
        reason="v0.11.6 cannot send non-ASCII context paths (gRPC header error); fixed in "
        "9d491e781 (filesync: fix handling non-ascii in file paths)",
        source=BK + "testCopyUnicodePath",
    ),
    Case(
        "copy_override_files",
        B + "COPY sub/dir1 /dest\nCOPY sub2/dir1 /dest\n",
        files={
            "sub/dir1/dir2/foo": "foo-contents",
            "sub2/dir1/dir2/foo": "foo2-contents",
            "sub2/dir1/extra": "e",
        },
        source=BK + "testCopyOverrideFiles",
    ),
    Case(
        "copy_through_symlink_context",
        B + "COPY link/foo .\nCOPY link/ /via-link/\n",
        files={"sub/foo": "contents", "link": Link("sub")},
        source=BK + "testCopyThroughSymlinkContext",
    ),
    Case(
        "copy_through_symlink_multistage",
        "FROM {busybox} AS build\nRUN mkdir -p /out/sub && echo data > /out/sub/foo && "
        "ln -s /out/sub /sub\n" + B + "COPY --from=build /sub/foo .\n"
        "COPY --from=build /sub /sub-dir\n",
        source=BK + "testCopyThroughSymlinkMultiStage",
    ),
    Case(
        "copy_follow_all_symlinks",
        B + "COPY foo /\nCOPY foo /sub/\n",
        files={"bar": "bar-contents", "foo": Link("symlink"), "symlink": Link("bar")},
        source=BK + "testCopyFollowAllSymlinks",
    ),
    Case(
        "copy_symlinks_in_tree",
        B + "COPY sub/l* /alllinks/\nCOPY sub /subcopy/\n",
        files={
            "sub/foo": "foo",
            "sub/l0": Link("foo"),
            "sub/lfile": Link("l0"),
            "sub/ldir": Link("../sub"),
        },
        source=BK + "testCopySymlinks",
    ),
    Case(
        "copy_from_stage_scoped_arg",
        "FROM {busybox} AS build\nRUN echo build >> /variant\nFROM build AS dev\n"
        "RUN echo build:dev >> /variant\nFROM build AS staging\n"
        'RUN echo build:staging >> /variant\nFROM {busybox}\nARG VARIANT="staging"\n'
        'COPY --from="${VARIANT}" /variant /variant\n',
        error="variable expansion is not supported for --from",
        source=BUD + "copy-from-stage-scoped-arg",
    ),
    Case(
        "copy_workdir_absolute_dest",
        "FROM scratch\nWORKDIR /subdir\nCOPY file1.txt /\nCOPY file2.txt /subdir\n",
        files={"file1.txt": "1", "file2.txt": "2"},
        base="scratch",
        source=BUD + "copy-workdir",
    ),
    Case(
        "copy_workdir_same_dir",
        B + "WORKDIR /subdir\nCOPY file1.txt /subdir\n",
        files={"file1.txt": "1"},
        source=BUD + "copy-workdir",
    ),
    Case(
        "copy_create_relative_path",
        B + "COPY distutils.cfg lib/custom/distutils.cfg\n",
        files={"distutils.cfg": "[install]\n"},
        source=BUD + "copy-create-relative-path",
    ),
    Case(
        "copy_create_absolute_path",
        B + "COPY distutils.cfg /usr/lib/python3.4/distutils/distutils.cfg\n",
        files={"distutils.cfg": "[install]\n"},
        source=BUD + "copy-create-absolute-path",
    ),
    Case(
        "add_create_relative_path",
        B + "WORKDIR /w\nADD distutils.cfg lib/custom/distutils.cfg\n",
        files={"distutils.cfg": "[install]\n"},
        source=BUD + "add-create-relative-path",
    ),
    Case(
        "copy_envvar_in_source",
        B + "ENV VERSION=0.0.1\nCOPY file-${VERSION}.txt /\n",
        files={"file-0.0.1.txt": "v"},
        source=BUD + "copy-envvar",
    ),
    Case(
        "copy_root_dest",
        B + "COPY distutils.cfg /\n",
        files={"distutils.cfg": "c"},
        source=BUD + "copy-root",
    ),
    Case(
        "copy_hardlinks_twice",
        "FROM scratch\nCOPY . .\nCOPY . .\n",
        base="scratch",
        setup=_hardlinks,
        source=BUD + "hardlink",
    ),
    Case(
        "copy_workdir_symlink",
        B + "RUN mkdir -p /var/lib/tempest && ln -sf /var/lib/tempest /tempest\n"
        "WORKDIR /tempest\nCOPY f ./f\n",
        files={"f": "f"},
        source=BUD + "workdir-symlink",
    ),
    Case(
        "copy_workdir_dangling_symlink",
        B + "RUN ln -sf /var/lib/tempest /tempest\nWORKDIR /tempest/lowerdir\n"
        "COPY f ./f\nCOPY f /tempest/f2\n",
        files={"f": "f"},
        source=BUD + "workdir-symlink",
    ),
    Case(
        "copy_from_image_by_ref_dir",
        B + "COPY --from={busybox} /etc /etc-copy\n",
    ),
    Case(
        "copy_from_stage_relative_source",
        "FROM {busybox} AS base\nWORKDIR /foo\nCOPY a /\n" + B + "COPY --from=base a .\n",
        files={"a": "a"},
        source="buildkit frontend/dockerfile/dockerfile_workdir_test.go "
        "testWorkdirCopyIgnoreRelative",
    ),
    Case(
        "copy_dot_dest",
        B + "WORKDIR /w\nCOPY a.txt .\nCOPY dir ./\n",
        files={"a.txt": "a", "dir/x": "x"},
    ),
    Case(
        "copy_file_onto_dir_error",
        B + "RUN mkdir -p /d/a.txt/x\nCOPY a.txt /d/\n",
        files={"a.txt": "a"},
        error="cannot replace the directory /d/a.txt with a file",
    ),
    Case(
        "copy_dir_onto_file",
        B + "RUN mkdir /d && echo x > /d/x\nCOPY dir /d\n",
        files={"dir/x/y": "y"},
        error="cannot copy a directory to /d/x: it exists and is not a directory",
    ),
    Case("copy_empty_dir", B + "COPY empty /e/\nCOPY empty /e2\n", files={"empty": Dir()}),
    Case(
        "copy_special_modes",
        B + "COPY . /m/\n",
        files={
            ".dockerignore": "Dockerfile\n",
            "sgid": Dir(0o2775),
            "sticky": Dir(0o1777),
            "ro": File("r", 0o444),
            "x": File("x", 0o711),
        },
    ),
    Case(
        "copy_symlink_abs_source_error",
        B + "COPY labs /x\n",
        files={"labs": Link("/etc/passwd")},
        error="",
    ),
    Case(
        "copy_dockerfile_itself",
        "FROM scratch\nCOPY Dockerfile /Dockerfile.copy\n",
        base="scratch",
    ),
    Case(
        "copy_backslash_space_error",
        B + 'COPY ["a b.txt", "/with space/"]\nCOPY c\\ d.txt /e/\n',
        files={"a b.txt": "ab", "c d.txt": "cd"},
        error="",
    ),
    Case(
        "copy_json_form",
        B + 'COPY ["a.txt", "b.txt", "/json/"]\n',
        files={"a.txt": "a", "b.txt": "b"},
    ),
    Case(
        "copy_glob_question_and_class",
        B + "COPY ?.txt [ab]*.md /g/\n",
        files={"a.txt": "a", "bb.txt": "b", "a1.md": "1", "c1.md": "c"},
    ),
    Case(
        "copy_chown_uid_gid_numbers",
        B + "COPY --chown=1234:5678 dir /o/\n",
        files={"dir/x": "x", "dir/y/z": "z"},
    ),
    Case("copy_chown_group_name_only", B + "COPY --chown=0:extra a.txt /a\n", files={"a.txt": "a"}),
    Case(
        "copy_chown_unknown_group",
        B + "COPY --chown=app:nogrouphere a.txt /a\n",
        files={"a.txt": "a"},
    ),
    Case("copy_into_root_dot", B + "COPY dir/ /\n", files={"dir/newtop": "t", "dir/etc/x": "x"}),
    Case(
        "add_archive_implied_parent",
        B + "ADD a.tar /x/\n",
        setup=_write("a.tar", NO_PARENTS),
        source=BA + "testDockerfileAddArchiveWithImpliedParentDir",
    ),
    Case(
        "add_archive_through_absolute_symlink",
        B + "RUN mkdir /real && ln -s /real /link\nADD a.tar /link/\n",
        setup=_write("a.tar", NO_PARENTS),
        source=BA + "testDockerfileAddArchiveThroughAbsoluteSymlink",
    ),
    Case(
        "add_archive_wildcard",
        B + "ADD *.tar /dest/\n",
        setup=_two_tars,
        source=BA + "testDockerfileAddArchiveWildcard",
    ),
    Case(
        "add_archive_to_file_name",
        B + "ADD a.tar /archive-dest\n",
        setup=_write("a.tar", NO_PARENTS),
        source=BA + "testDockerfileAddArchive",
    ),
    Case(
        "add_chown_expand",
        B + "ARG group\nENV owner 1000\nADD --chown=${owner}:${group} foo /\n",
        files={"foo": "foo-contents"},
        build_args={"group": "2000"},
        source=BA + "testDockerfileAddChownExpand",
    ),
    Case(
        "add_url_chmod",
        B + "ADD --chmod=0755 {http}/script /script\nADD --chmod=0400 {http}/script /d/\n",
        http={"script": b"#!/bin/sh\necho hi\n"},
        source=BA + "testAddURLChmod",
        newer=Expect(modes={"/d": 0o400}),
        reason="v0.11.6 makes the dir /d the ADD creates 0755; current BuildKit gives it the "
        "octal --chmod's bits (fsutil 13604323, cd3d07569; 75c457afd)",
    ),
    Case(
        "add_url_in_dir_dest",
        B + "WORKDIR /w\nADD {http}/path/to/name.txt .\nADD {http}/path/to/name.txt sub/\n",
        http={"path/to/name.txt": b"named\n"},
        source=BA + "testDockerfileADDFromURL",
    ),
    Case(
        "add_url_not_extracted",
        B + "ADD {http}/a.tar /dl/\n",
        http={"a.tar": NO_PARENTS},
    ),
    Case(
        "add_invalid_chmod",
        B + "ADD --chmod=10000 foo /\n",
        files={"foo": "x"},
        error="10000",
        source=BA + "testAddInvalidChmod",
        expect=Expect(),
        reason=CHMOD_CHECKED,
    ),
    Case(
        "add_chown_archive",
        B + "ADD --chown=1:2 a.tar /x/\n",
        setup=_write("a.tar", NO_PARENTS),
        source=BA + "testDockerfileAddChownArchive",
    ),
]
