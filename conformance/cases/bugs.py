"""One or more cases per bug of the issue "Graded by a real BuildKit" (named bugNN_...).

Each pins what BuildKit does (its golden file), whatever ocibuild does today; the open
ones are listed in ``conformance.known_differences``.
"""

from conformance.case import HEREDOC_0644, Case, Dir, Expect, File, Link, f, heredoc_files

B = "FROM {busybox}\n"
BASE = "FROM {busybox} AS base\n"
FILES = {"a.txt": "A\n", "b.txt": "B\n", "c.txt": "C\n"}
FROM_VARIABLE = (
    "the message: v0.11.6 fails to parse the stage name; current BuildKit says why (07f5b3a8d)"
)
SVC = "RUN echo 'svc:x:1500:2500:svc:/home/svc:/bin/sh' >> /etc/passwd\n"

CASES = [
    # 1 a symlink source keeps its own name, its content followed
    Case(
        "bug01_copy_symlink_source_keeps_name",
        B + "COPY link /dst/\nCOPY link /renamed\n",
        files={"real": "real content\n", "link": Link("real")},
    ),
    Case("bug01_copy_from_symlink_keeps_name", BASE + B + "COPY --from=base /bin/sh /bin/ls /t/\n"),
    Case(
        "bug01_copy_from_symlink_into_bin",
        BASE + "FROM scratch\nCOPY --from=base /bin/sh /bin/\nCOPY --from=base /bin/ls /test/\n",
        base="scratch",
        source="buildah tests/bud/dest-final-slash",
    ),
    Case(
        "bug01_copy_glob_symlinks",
        B + "COPY l* /g/\n",
        files={"real": "r\n", "l1": Link("real"), "l2": Link("real")},
    ),
    Case(
        "bug01_add_symlink_source",
        B + "ADD link /added/\n",
        files={"real": "real content\n", "link": Link("real")},
    ),
    # 2 --chown=NAME without a group: the user's primary gid from /etc/passwd
    Case("bug02_chown_name_primary_gid", B + SVC + "COPY --chown=svc a.txt /a\n", files=FILES),
    Case("bug02_chown_uid_only_gid_is_uid", B + "COPY --chown=1234 a.txt /a\n", files=FILES),
    Case(
        "bug02_chown_name_dir",
        B + SVC + "COPY --chown=svc dir /d/\nADD --chown=daemon a.txt /add\n",
        files={"dir/x": "x", "dir/y/z": "z", "a.txt": "a"},
    ),
    # 3 a RUN process has its primary gid among its supplementary groups
    Case("bug03_run_groups_include_primary", B + "USER app\nRUN id > /tmp/id\n"),
    Case("bug03_run_groups_uid_gid", B + "USER 1000:2000\nRUN id > /tmp/id\n"),
    Case("bug03_run_groups_root", B + "RUN id > /id && cat /proc/self/status | grep Groups > /g\n"),
    # 4 an unmatched wildcard copies nothing and goes on; a missing literal is an error
    Case("bug04_wildcard_unmatched_and_matched", B + "COPY nomatch* a.txt /d/\n", files=FILES),
    Case("bug04_wildcard_all_unmatched", B + "COPY nomatch* /x/\nRUN echo ok > /ok\n", files=FILES),
    Case(
        "bug04_wildcard_unmatched_scratch",
        "FROM scratch\nCOPY *foo *.txt /testdir\n",
        files=FILES,
        base="scratch",
        source="buildah tests/bud/copy-globs",
    ),
    Case(
        "bug04_missing_literal_error", B + "COPY a.txt nothere /d/\n", files=FILES, error="nothere"
    ),
    # 5 a stage FROM another stage inherits the ARGs declared there
    Case(
        "bug05_stage_inherits_args",
        BASE + 'ARG X=from-base\nENV E=$X\nFROM base\nRUN echo "[$X] [$E]" > /x\n',
    ),
    Case(
        "bug05_stage_inherits_args_build_arg",
        BASE + 'ARG X=default\nFROM base AS mid\nRUN echo "[$X]" > /mid\nFROM mid\n'
        'RUN echo "[$X]" > /last\n',
        build_args={"X": "given"},
    ),
    # 6 COPY onto a destination symlink writes through it
    Case(
        "bug06_copy_onto_symlink_file",
        B + "RUN echo old > /target && ln -s /target /link\nCOPY a.txt /link\n",
        files=FILES,
    ),
    Case(
        "bug06_copy_onto_symlink_dangling",
        B + "RUN ln -s /made/here /dangling\nCOPY a.txt /dangling\n",
        files=FILES,
    ),
    Case(
        "bug06_copy_onto_symlink_climbing",
        B + "RUN ln -s ../../../../../../climbed /up\nCOPY a.txt /up\n",
        files=FILES,
    ),
    Case(
        "bug06_copy_into_symlinked_dir",
        B + 'ENV HOME_DIR="/usr/local/hbase" CONF="/etc/hbase"\nRUN mkdir -p $HOME_DIR\n'
        "RUN ln -s $HOME_DIR $CONF\nCOPY a.txt $CONF\n",
        files=FILES,
        source="buildah tests/bud/dest-symlink",
    ),
    Case(
        "bug06_copy_into_dangling_dir_symlink",
        B + "RUN mkdir /symlink && ln -s /symlink /src && rm -rf /symlink\nCOPY a.txt /src/\n",
        files=FILES,
        source="buildah tests/bud/dest-symlink-dangling",
    ),
    # 7 a dir copied to a destination that does not exist: created 0755 root:root
    Case(
        "bug07_copy_dir_new_dest_mode",
        B + "COPY dir /new/deep/\n",
        files={"dir": Dir(0o700, 1000, 1000), "dir/f": File("f", 0o600, 1000, 1000)},
    ),
    Case(
        "bug07_copy_dir_new_dest_no_slash",
        B + "COPY dir /made\n",
        files={"dir": Dir(0o751), "dir/sub": Dir(0o700), "dir/sub/f": "f"},
    ),
    Case(
        "bug07_copy_from_dir_new_dest",
        BASE
        + "RUN mkdir -m 0700 /o && touch /o/f && chown -R 1000:2000 /o\n"
        + B
        + "COPY --from=base /o /o2\n",
    ),
    # 8 FROM scratch: the WorkingDir BuildKit writes
    Case("bug08_scratch_workdir", "FROM scratch\nCOPY a.txt /\n", files=FILES, base="scratch"),
    Case("bug08_scratch_env_only", "FROM scratch\nENV A=1\n", base="scratch"),
    # 9 .dockerignore "*" then "!src/main.py"
    Case(
        "bug09_dockerignore_reinclude_nested",
        B + "COPY src /app/src\n",
        files={
            ".dockerignore": "*\n!src/main.py\n",
            "src/main.py": "print()\n",
            "src/other.py": "x",
            "top.txt": "t",
        },
    ),
    Case(
        "bug09_dockerignore_reinclude_context_root",
        B + "COPY . /all/\n",
        files={
            ".dockerignore": "*\n!src/main.py\n",
            "src/main.py": "print()\n",
            "src/other.py": "x",
            "top.txt": "t",
        },
    ),
    # 10 COPY --from=$NAME is not expanded
    Case(
        "bug10_copy_from_variable_error",
        BASE + "RUN echo b > /b\n" + B + "ARG NAME=base\nCOPY --from=$NAME /b /b\n",
        error="variable expansion is not supported for --from",
        newer=Expect(),
        reason=FROM_VARIABLE,
    ),
    Case(
        "bug10_copy_from_variable_global_error",
        "ARG NAME=base\n" + BASE + "RUN echo b > /b\n" + B + "COPY --from=${NAME} /b /b\n",
        error="variable expansion is not supported for --from",
        newer=Expect(),
        reason=FROM_VARIABLE,
    ),
    # 11 WORKDIR keeps the path as written
    Case("bug11_workdir_trailing_slash", B + "WORKDIR /tmp/\n"),
    Case("bug11_workdir_trailing_slash_new", B + "WORKDIR /srv/app/\nRUN pwd > /pwd\n"),
    Case("bug11_workdir_dot_segments", B + "WORKDIR /a/./b/../c\n"),
    # 12 a destination like /link/.. is cleaned, not followed
    Case(
        "bug12_dest_dotdot_cleaned",
        B + "RUN mkdir -p /usr/share/deep && ln -s /usr/share/deep /link\n"
        "COPY a.txt /link/../x.txt\n",
        files=FILES,
    ),
    Case(
        "bug12_dest_dotdot_dir_cleaned",
        B + "RUN mkdir -p /usr/share/deep && ln -s /usr/share/deep /link\n"
        "COPY a.txt b.txt /link/../d/\n",
        files=FILES,
    ),
    # 13 **/** is **
    Case(
        "bug13_copy_double_globstar",
        B + "COPY dir/**/** /out/\n",
        files={"dir/x": "x", "dir/sub/y": "y", "dir/sub/deeper/z": "z"},
    ),
    Case(
        "bug13_dockerignore_double_globstar",
        B + "COPY . /ctx/\n",
        files={
            ".dockerignore": "**/**\n!keep.txt\n",
            "keep.txt": "k",
            "a/b.txt": "b",
            "drop.txt": "d",
        },
    ),
    # 14 two stages with the same name
    Case(
        "bug14_duplicate_stage_names",
        "FROM {busybox} AS x\nRUN echo 1 > /one\nFROM {busybox} AS x\nRUN echo 2 > /two\n"
        "FROM x\nRUN ls / > /tmp/ls\n",
    ),
    Case(
        "bug14_duplicate_stage_names_copy_from",
        "FROM {busybox} AS x\nRUN echo 1 > /f\nFROM {busybox} AS x\nRUN echo 2 > /f\n"
        + B
        + "COPY --from=x /f /f\n",
    ),
    # 15 COPY *.txt /dest (no slash) with several matches
    Case("bug15_copy_glob_no_trailing_slash", B + "COPY *.txt /dest\n", files=FILES),
    Case(
        "bug15_copy_glob_no_slash_scratch",
        "FROM scratch\nCOPY *.txt /testdir\n",
        files={"test1.txt": "1\n", "test2.txt": "2\n"},
        base="scratch",
        source="buildah tests/bud/copy-globs",
    ),
    Case("bug15_copy_two_files_no_slash", B + "COPY a.txt b.txt /dest\n", files=FILES),
    # 16 cache mounts differing only in uid/gid are different caches
    Case(
        "bug16_cache_mount_uid_distinct",
        B + "RUN --mount=type=cache,id=conf-bug16,target=/c,uid=1000 touch /c/x\n"
        "RUN --mount=type=cache,id=conf-bug16,target=/c,uid=2000 ls -A /c > /list\n",
    ),
    Case(
        "bug16_cache_mount_same_uid_shared",
        B + "RUN --mount=type=cache,id=conf-bug16s,target=/c,uid=1000 touch /c/x\n"
        "RUN --mount=type=cache,id=conf-bug16s,target=/c,uid=1000 ls -A /c > /list\n",
    ),
    # 17 escaped glob characters
    Case(
        "bug17_escaped_glob_chars",
        B + "COPY n\\?pe/file.txt /out/file.txt\n",
        files={"n?pe/file.txt": "escaped\n", "nope/file.txt": "other\n"},
    ),
    Case(
        "bug17_escaped_glob_brackets",
        B + "COPY \\[x\\].txt /br/\n",
        files={"[x].txt": "brackets\n", "x.txt": "plain\n"},
    ),
    # 18 bare RUN, --chown=:
    Case("bug18_bare_run", B + "RUN\n"),
    Case("bug18_chown_colon_only", B + "COPY --chown=: a.txt /a\n", files=FILES),
    Case("bug18_chown_empty", B + "COPY --chown= a.txt /a\n", files=FILES),
    Case(
        "bug18_chown_trailing_colon",
        B + "COPY --chown=app: a.txt /a\nCOPY --chown=1234: b.txt /b\nCOPY --chown=:app c.txt /c\n",
        files=FILES,
        newer=Expect(files={"/a": f("A\n", 0o644, 1000, 1000), "/b": f("B\n", 0o644, 1234, 1234)}),
        reason="v0.11.6 takes an empty group after the colon as gid 0; current BuildKit as no "
        "group: the user's primary gid, a numeric uid's own (07aa65e08)",
    ),
    # 19 COPY <<EOF rebuilt: a cache hit, the same image ID
    Case(
        "bug19_heredoc_copy_rebuild_cached",
        B + "COPY <<EOF /hello\nhello\nEOF\nRUN cat /hello > /seen\n",
        rebuild=True,
        newer=heredoc_files("/hello"),
        reason=HEREDOC_0644,
    ),
    Case("bug19_copy_rebuild_cached", B + "COPY a.txt /a\n", files=FILES, rebuild=True),
    # 21 a hardlink partner whose link count changed stays out of the layer
    Case(
        "bug21_hardlink_partner_unchanged",
        B + "RUN echo x > /a && ln /a /b\nRUN rm /b\n",
        layers=True,
    ),
    Case(
        "bug21_hardlink_add_partner",
        B + "RUN echo x > /a\nRUN ln /a /b\n",
        layers=True,
    ),
]
