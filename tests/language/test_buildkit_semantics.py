"""Builder semantics as the real BuildKit shows them.

Every expectation here was observed by building the same Dockerfile with BuildKit v0.11.6
(buildctl, dockerfile frontend 1.5, runc worker, overlayfs snapshotter; base images from a
local registry) and reading its OCI export (layer listings with owners and modes, config).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Ocibuild

BOB = (
    "RUN echo 'bob:x:1001:2000:bob:/home/bob:/bin/sh' >> /etc/passwd"
    " && echo 'more:x:3000:bob' >> /etc/group\n"
)


def write(ctx: Path, dockerfile: str, **files: str) -> None:
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, content in files.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def stat_lines(ocb: Ocibuild, image: str, *paths: str) -> list[str]:
    out = ocb.run(image, "stat", "-c", "%u:%g %a %F %n", *paths).stdout
    return out.splitlines()


def cat(ocb: Ocibuild, image: str, *paths: str) -> str:
    return ocb.run(image, "cat", *paths).stdout


def steps(stderr: str) -> list[tuple[str, str]]:
    """(step line, its cache verdict) for each step of a build's output."""
    out: list[tuple[str, str]] = []
    for line in stderr.splitlines():
        if line.startswith("["):
            out.append((line, ""))
        elif out and not out[-1][1] and ("HIT" in line or "MISS" in line):
            out[-1] = (out[-1][0], "HIT" if "HIT" in line else "MISS")
    return out


def test_symlink_source_keeps_its_own_name(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6: `COPY --from=base /bin/sh /out/` gives /out/sh (busybox's
    # content), `COPY link.txt /c/` gives /c/link.txt holding real.txt's content.
    write(
        context,
        f"FROM {base_image} AS base\n"
        f"FROM {base_image}\n"
        "COPY --from=base /bin/sh /out/\n"
        "COPY link.txt /c/\n"
        "COPY link.txt /c2\n"
        "COPY l*.txt /g/\n",
        **{"real.txt": "hello\n"},
    )
    (context / "link.txt").symlink_to("real.txt")
    ocb.build(context, "-t", "bk-symsrc")
    listing = ocb.run("bk-symsrc", "sh", "-c", "ls /out /c /g").stdout.split()
    assert listing == ["/c:", "link.txt", "/g:", "link.txt", "/out:", "sh"]
    assert stat_lines(ocb, "bk-symsrc", "/out/sh", "/c/link.txt", "/c2") == [
        "0:0 755 regular file /out/sh",
        "0:0 644 regular file /c/link.txt",
        "0:0 644 regular file /c2",
    ]
    assert cat(ocb, "bk-symsrc", "/c/link.txt", "/c2", "/g/link.txt") == "hello\n" * 3
    assert ocb.run("bk-symsrc", "/out/sh", "-c", "echo ran").stdout == "ran\n"


def test_chown_user_takes_its_primary_group(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6 (readUser): --chown=bob -> bob's passwd uid:gid (1001:2000);
    # --chown=1001 -> 1001:1001 even though passwd gives uid 1001 the group 2000.
    write(
        context,
        f"FROM {base_image}\n{BOB}"
        "COPY --chown=bob f /a\n"
        "COPY --chown=1001 f /b\n"
        "COPY --chown=app f /c\n"
        "COPY --chown=bob:more f /e\n",
        f="hi\n",
    )
    ocb.build(context, "-t", "bk-chown")
    assert stat_lines(ocb, "bk-chown", "/a", "/b", "/c", "/e") == [
        "1001:2000 644 regular file /a",
        "1001:1001 644 regular file /b",
        "1000:1000 644 regular file /c",
        "1001:3000 644 regular file /e",
    ]


def test_run_groups_always_hold_the_primary_gid(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # BuildKit v0.11.6 prepends the primary gid to the supplementary groups
    # (ensureAdditionalGids): `id` prints it under groups= for every USER form.
    write(
        context,
        f"FROM {base_image}\n{BOB}"
        "RUN id > /tmp/root\n"
        "USER bob\nRUN id > /tmp/bob\n"
        "USER app\nRUN id > /tmp/app\n"
        "USER 4242\nRUN id > /tmp/4242\n"
        "USER bob:more\nRUN id > /tmp/bobmore\n"
        "USER 1001:1001\nRUN id > /tmp/ids\n",
    )
    ocb.build(context, "-t", "bk-groups")
    out = cat(ocb, "bk-groups", *(f"/tmp/{n}" for n in ("root", "bob", "app", "4242")))
    out += cat(ocb, "bk-groups", "/tmp/bobmore", "/tmp/ids")
    assert out.splitlines() == [
        "uid=0(root) gid=0(root) groups=0(root)",
        "uid=1001(bob) gid=2000(extra) groups=2000(extra),3000(more)",
        "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)",
        "uid=4242 gid=0(root) groups=0(root)",
        "uid=1001(bob) gid=3000(more) groups=3000(more)",
        "uid=1001(bob) gid=1001 groups=1001",
    ]


def test_unmatched_wildcard_copies_nothing(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6: a wildcard matching nothing is skipped, even when it is the only
    # source (the step still succeeds); a missing literal source fails the build.
    write(
        context,
        f"FROM {base_image}\n"
        "COPY *.nomatch a.txt /x/\n"
        "COPY *.nomatch /y/\n"
        "COPY *.nomatch nothere*/ /z/\n",
        **{"a.txt": "a\n"},
    )
    ocb.build(context, "-t", "bk-nomatch")
    assert ocb.run("bk-nomatch", "ls", "/x").stdout == "a.txt\n"
    assert ocb.run("bk-nomatch", "ls", "-d", "/y", "/z", check=False).returncode != 0
    # cached: the second build hits every step
    again = ocb.build(context, "-t", "bk-nomatch")
    assert [v for _, v in steps(again.stderr)[1:]] == ["HIT"] * 3

    write(context, f"FROM {base_image}\nCOPY *.nomatch missing.txt /x/\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1
    assert "source 'missing.txt' not found in the build context" in res.stderr
    assert "Traceback" not in res.stderr


def test_destination_symlinks_are_written_through(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # BuildKit v0.11.6 resolves the destination inside the root: the link stays, the
    # file lands where it points; a dangling link's target (and its parents, 0755) is
    # created; a link climbing above / is clamped at /.
    write(
        context,
        f"FROM {base_image}\n"
        "RUN mkdir -p /real /realdir && ln -s /real/file /flink && ln -s /realdir /dlink"
        " && ln -s /nowhere/deep/x /dangling && ln -s ../../../../realdir /climb\n"
        "COPY f.txt /flink\n"
        "COPY f.txt /dlink\n"
        "COPY f.txt /dangling\n"
        "COPY g.txt /climb/\n",
        **{"f.txt": "f\n", "g.txt": "g\n"},
    )
    ocb.build(context, "-t", "bk-destlink")
    out = ocb.run(
        "bk-destlink",
        "sh",
        "-c",
        "for l in /flink /dlink /dangling /climb; do readlink $l; done; "
        "cat /real/file /realdir/f.txt /nowhere/deep/x /realdir/g.txt; "
        "stat -c '%u:%g %a %n' /nowhere /nowhere/deep",
    ).stdout
    assert out.splitlines() == [
        "/real/file",
        "/realdir",
        "/nowhere/deep/x",
        "../../../../realdir",
        "f",
        "f",
        "f",
        "g",
        "0:0 755 /nowhere",
        "0:0 755 /nowhere/deep",
    ]


def test_new_destination_dir_is_0755_root(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6: a destination dir that does not exist is made 0755, owned by
    # --chown (else root), whatever the source dir's mode and owner (also with --from);
    # subdirs keep their own mode. An octal --chmod applies to the contents and, in
    # current BuildKit (fsutil 13604323, cd3d07569; v0.11.6 made it 0755), to the dir
    # the COPY creates too.
    src = context / "src"
    (src / "sub").mkdir(parents=True)
    (src / "s.txt").write_text("s\n")
    (src / "sub" / "t.txt").write_text("t\n")
    src.chmod(0o700)
    (src / "sub").chmod(0o750)
    os.chown(src, 1234, 5678)
    write(
        context,
        f"FROM {base_image} AS st\n"
        "RUN mkdir -p /d/sub && echo x > /d/sub/x && chown -R 1000:1000 /d && chmod 700 /d\n"
        f"FROM {base_image}\n"
        "COPY --from=st /d /fromst\n"
        "COPY src /newdir\n"
        "COPY --chown=app src /newdir2\n"
        "COPY --chmod=700 src /newdir3\n"
        "COPY src /deep/er/newdir4\n",
    )
    ocb.build(context, "-t", "bk-newdir")
    paths = ["/newdir", "/newdir/sub", "/newdir2", "/newdir2/sub", "/newdir2/s.txt"]
    paths += ["/newdir3", "/newdir3/sub", "/newdir3/s.txt", "/deep/er"]
    paths += ["/fromst", "/fromst/sub", "/fromst/sub/x"]
    assert stat_lines(ocb, "bk-newdir", *paths) == [
        "0:0 755 directory /newdir",
        "0:0 750 directory /newdir/sub",
        "1000:1000 755 directory /newdir2",
        "1000:1000 750 directory /newdir2/sub",
        "1000:1000 644 regular file /newdir2/s.txt",
        "0:0 700 directory /newdir3",
        "0:0 700 directory /newdir3/sub",
        "0:0 700 regular file /newdir3/s.txt",
        "0:0 755 directory /deep/er",
        "0:0 755 directory /fromst",  # --from keeps owners, but not for the new dir
        "1000:1000 755 directory /fromst/sub",
        "1000:1000 644 regular file /fromst/sub/x",
    ]


def test_dockerignore_reincluded_file_in_ignored_dir(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # BuildKit v0.11.6: with `*` then `!src/main.py`, `COPY src /app/src` copies
    # /app/src/main.py (and `COPY . /all/` gives /all/src/main.py only).
    write(
        context,
        f"FROM {base_image}\nCOPY src /app/src\nCOPY . /all/\n",
        **{"src/main.py": "m\n", "src/other.py": "o\n", "src/sub/t.py": "t\n", "x": "x\n"},
    )
    (context / ".dockerignore").write_text("*\n!src/main.py\n")
    ocb.build(context, "-t", "bk-ignore")
    out = ocb.run("bk-ignore", "find", "/app", "/all").stdout.split()
    assert out == ["/app", "/app/src", "/app/src/main.py", "/all", "/all/src", "/all/src/main.py"]


def test_link_dotdot_destination_is_cleaned(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6: `/l/..` (l -> /a/b) is cleaned to `/` before it is resolved.
    write(
        context,
        f"FROM {base_image}\n"
        "RUN mkdir -p /a/b && ln -s /a/b /l\n"
        "COPY f.txt /l/..\n"
        "COPY src /l/../srcdir\n",
        **{"f.txt": "f\n", "src/s.txt": "s\n"},
    )
    ocb.build(context, "-t", "bk-dotdot")
    assert cat(ocb, "bk-dotdot", "/f.txt", "/srcdir/s.txt") == "f\ns\n"
    assert ocb.run("bk-dotdot", "ls", "-A", "/a").stdout == "b\n"


def test_wildcard_matches_onto_a_file_destination(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # BuildKit v0.11.6: `COPY ?.txt /dest` (no trailing slash) copies each match onto
    # /dest in turn: /dest is a file holding the last match; `/dest2/` gets them all.
    # Two literal sources and no slash: no "must end with a /" error in BuildKit (v0.11.6
    # and today), the last source wins too.
    write(
        context,
        f"FROM {base_image}\nCOPY ?.txt /dest\nCOPY ?.txt /dest2/\nCOPY 2.txt 1.txt /dest3\n",
        **{"1.txt": "1\n", "2.txt": "2\n", "f.txt": "f\n"},
    )
    ocb.build(context, "-t", "bk-multi")
    assert stat_lines(ocb, "bk-multi", "/dest", "/dest3") == [
        "0:0 644 regular file /dest",
        "0:0 644 regular file /dest3",
    ]
    assert cat(ocb, "bk-multi", "/dest", "/dest3") == "f\n1\n"
    assert ocb.run("bk-multi", "ls", "/dest2").stdout.split() == ["1.txt", "2.txt", "f.txt"]


def test_escaped_wildcard_source(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6: the backslash is consumed by word expansion, so `n\?pe` is the
    # pattern `n?pe`: it matches n?pe and nope, each copied onto `/out/file.txt`, which
    # ends up the file holding the last match (nope's).
    write(
        context,
        f"FROM {base_image}\nCOPY n\\?pe/file.txt /out/file.txt\nCOPY a\\*b /ab\n",
        **{"n?pe/file.txt": "q\n", "nope/file.txt": "nope\n", "a*b/s.txt": "star\n"},
    )
    ocb.build(context, "-t", "bk-escaped")
    assert stat_lines(ocb, "bk-escaped", "/out/file.txt") == ["0:0 644 regular file /out/file.txt"]
    assert cat(ocb, "bk-escaped", "/out/file.txt", "/ab/s.txt") == "nope\nstar\n"


def test_cache_mount_owner_is_part_of_its_identity(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # BuildKit v0.11.6: a cache mount with uid/gid/mode is a different cache from the
    # same id without them (or with other values); uid alone means gid 0.
    write(
        context,
        f"FROM {base_image}\n"
        "RUN --mount=type=cache,target=/c,id=bk-owner touch /c/plain\n"
        "RUN --mount=type=cache,target=/c,id=bk-owner,uid=1000,gid=1000 touch /c/owned\n"
        "RUN --mount=type=cache,target=/c,id=bk-owner,uid=1000,gid=1000"
        " ls /c > /o1 && stat -c '%u:%g %a' /c >> /o1\n"
        "RUN --mount=type=cache,target=/c,id=bk-owner ls /c > /o2 && stat -c '%u:%g %a' /c >> /o2\n"
        "RUN --mount=type=cache,target=/c,id=bk-owner,uid=0 ls /c > /o3"
        " && stat -c '%u:%g %a' /c >> /o3\n"
        "RUN --mount=type=cache,target=/c,id=bk-owner,uid=1000 ls /c > /o4"
        " && stat -c '%u:%g %a' /c >> /o4\n",
    )
    ocb.build(context, "--no-cache", "-t", "bk-cachemount")
    assert cat(ocb, "bk-cachemount", "/o1", "/o2", "/o3", "/o4").splitlines() == [
        "owned",
        "1000:1000 755",
        "plain",
        "0:0 755",
        "0:0 755",
        "1000:0 755",
    ]


def test_heredoc_copy_is_cached(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit caches COPY <<EOF like any file op: a rebuild runs nothing and gives the
    # same image; a changed ARG the heredoc expands is a miss.
    write(
        context,
        f"FROM {base_image}\nARG NAME=world\n"
        "COPY <<EOF /hello.txt\nhello ${NAME}\nEOF\n"
        "RUN cat /hello.txt > /copy.txt\n",
    )
    first = ocb.build(context, "-t", "bk-heredoc")
    second = ocb.build(context, "-t", "bk-heredoc")
    assert second.image_id == first.image_id
    assert [v for _, v in steps(second.stderr)[1:]] == ["HIT"] * 3
    third = ocb.build(context, "--build-arg", "NAME=you", "-t", "bk-heredoc")
    assert [v for _, v in steps(third.stderr)[1:]] == ["MISS"] * 3
    assert cat(ocb, "bk-heredoc", "/copy.txt") == "hello you\n"


def test_file_steps_do_not_depend_on_unused_args(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # BuildKit v0.11.6: with --build-arg X=1 then X=2, WORKDIR and COPY are CACHED,
    # both RUNs rerun (ARGs are in every RUN's environment).
    write(
        context,
        f"FROM {base_image}\nARG X\nWORKDIR /w\nCOPY f.txt /w/\n"
        "RUN echo hi > /hi\nRUN echo $X > /x\n",
        **{"f.txt": "f\n"},
    )
    ocb.build(context, "--build-arg", "X=1", "-t", "bk-args")
    out = ocb.build(context, "--build-arg", "X=2", "-t", "bk-args")
    verdicts = [(line.split("] ", 1)[1], v) for line, v in steps(out.stderr)[1:]]
    assert verdicts == [
        ("ARG X", "MISS"),
        ("WORKDIR /w", "HIT"),
        ("COPY f.txt /w/", "HIT"),
        ("RUN echo hi > /hi", "MISS"),
        ("RUN echo $X > /x", "MISS"),
    ]
    assert cat(ocb, "bk-args", "/x") == "2\n"


@pytest.mark.parametrize("source", ["context", "stage"])
def test_same_content_rewrite_is_not_a_change(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path, source: str
) -> None:
    # BuildKit v0.11.6's overlay differ leaves out what is the same as below: copying a
    # file again onto itself (same content, mode, owner, times) gives an empty layer.
    from_flag = "--from=src " if source == "stage" else ""
    write(
        context,
        f"FROM {base_image} AS src\nCOPY f.txt /f.txt\n"
        f"FROM {base_image}\nCOPY f.txt /f.txt\nCOPY {from_flag}f.txt /f.txt\n",
        **{"f.txt": "f\n"},
    )
    out = ocb.build(context, "--no-cache", "-t", "bk-same")
    assert out.stderr.count("no changes") == 1, out.stderr


def test_workdir_owner_follows_file_op_rules(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6 creates WORKDIR with the USER as a file-op owner (readUser):
    # USER 1001 -> 1001:1001 (not passwd's group 2000), USER bob -> 1001:2000,
    # USER 4242 (no passwd entry) -> 4242:4242.
    write(
        context,
        f"FROM {base_image}\n{BOB}"
        "USER 1001\nWORKDIR /wd1\n"
        "USER bob\nWORKDIR /wd2/sub\n"
        "USER 4242\nWORKDIR /wd3\n"
        "USER bob:more\nWORKDIR /wd4\n",
    )
    ocb.build(context, "-t", "bk-workdir")
    assert stat_lines(ocb, "bk-workdir", "/wd1", "/wd2", "/wd2/sub", "/wd3", "/wd4") == [
        "1001:1001 755 directory /wd1",
        "1001:2000 755 directory /wd2",
        "1001:2000 755 directory /wd2/sub",
        "4242:4242 755 directory /wd3",
        "1001:3000 755 directory /wd4",
    ]
