"""Metadata, ARG, stage, heredoc, mount, ONBUILD, WORKDIR and RUN cases adapted from
BuildKit's Dockerfile integration tests (frontend/dockerfile/*_test.go) and buildah's
tests/bud contexts: their Dockerfiles, made to write what they assert into the image."""

from conformance.case import HEREDOC_0644, Case, Expect, f, heredoc_files

B = "FROM {busybox}\n"
T = "buildkit frontend/dockerfile/"
BUD = "buildah tests/bud/"
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CASES = [
    # -- args (dockerfile_args_test.go, buildah arg-scope) --------------------------------
    Case(
        "arg_global_default_in_stage",
        "ARG tag=latest\nARG other\n" + B + 'ARG tag\nARG other=x\nRUN echo "$tag $other" > /o\n',
        source=T + "dockerfile_args_test.go testGlobalArg",
    ),
    Case(
        "arg_global_error_expansion",
        'ARG FOO=${FOO:?"custom error"}\n' + B,
        error="custom error",
        source=T + "dockerfile_args_test.go testGlobalArgErrors",
        expect=Expect(),
        reason="v0.11.6 ignores errors in global ARG expansion; current BuildKit reports "
        "them (32bce82a7)",
    ),
    Case(
        "arg_default_expansion_error",
        B + 'ARG FOO\nARG BAR=${FOO:?"foo missing"}\n',
        error="foo missing",
        source=T + "dockerfile_args_test.go testArgDefaultExpansion",
    ),
    Case(
        "arg_default_expansion_ok",
        B + 'ARG FOO\nARG BAR=${FOO:?"foo missing"}\nRUN echo $BAR > /bar\n',
        build_args={"FOO": "given"},
        source=T + "dockerfile_args_test.go testArgDefaultExpansion",
    ),
    Case(
        "arg_multi_args",
        B + "ARG FOO=bar BAR=${FOO}baz\nENV FOOBAR=$FOO$BAR\nARG A B=b C=\n"
        'RUN echo "[$A$B$C]" > /abc\n',
        source=T + "dockerfile_args_test.go testMultiArgs",
    ),
    Case(
        "arg_quoted_meta_args",
        'ARG a1="box"\nARG a2="$a1-foo"\nARG a3="$a2-bar"\nARG a4="$a3-baz"\n'
        + B
        + "ARG a4\nRUN echo $a4 > /out\n",
        source=T + "dockerfile_args_test.go testQuotedMetaArgs",
    ),
    Case(
        "arg_default_env_with_args",
        B + "ARG my_arg\nENV my_arg=${my_arg:-def_val}\nRUN echo $my_arg > /out\n",
        build_args={"my_arg": "override"},
        source=T + "dockerfile_args_test.go testDefaultEnvWithArgs",
    ),
    Case(
        "arg_empty_string_in_env",
        B + "ARG FOO\nARG BAR=\nRUN env | grep -E '^(FOO|BAR)=' | sort > /env.txt; true\n",
        source=T + "dockerfile_args_test.go testEmptyStringArgInEnv",
    ),
    Case(
        "env_empty_formatting",
        B + 'ENV FOO=""\nENV BAR=\nENV BAZ=" "\n',
        source=T + "dockerfile_args_test.go testEnvEmptyFormatting",
    ),
    Case(
        "arg_mixed_defaults",
        B + 'ARG a b=set\nRUN echo "$a" "$b" > /out.txt\n',
        source=BUD + "arg-scope",
    ),
    Case(
        "arg_from_global_redeclared",
        "ARG BASE={busybox} BUSY=busybox\nFROM $BASE\nARG BUSY\nRUN echo $BUSY > /busy.txt\n",
        source=BUD + "arg-scope",
    ),
    Case(
        "arg_stage_overrides_header",
        "ARG V=header\n" + B + "ARG V=stage\nRUN echo $V > /v\n",
        build_args={"V": "cli"},
        source=BUD + "arg-scope",
    ),
    Case(
        "arg_dupe_arg_env_name",
        B + "ARG FOO=bar\nARG WEBROOT=https://example.org/\n"
        'ENV WEBROOT="$WEBROOT$FOO"\nRUN echo "${WEBROOT}" > /w\n',
        source=BUD + "dupe-arg-env-name",
    ),
    Case(
        "arg_leading_args_env",
        "ARG VERSION=latest\nARG FOO=bar\n" + B + "ENV FOO $FOO\nRUN echo $FOO $VERSION > /o\n",
        source=BUD + "leading-args",
    ),
    Case(
        "arg_env_precedence_cli",
        B + "ENV a=b\nRUN echo a=$a E=$E > /one\nENV E=E\nRUN echo a=$a E=$E > /two\n",
        build_args={"E": "cli"},
        source=BUD + "env",
    ),
    Case(
        "arg_builtin_build_args_not_in_image",
        B + 'ARG HTTP_PROXY\nRUN echo "$HTTP_PROXY" > /p\n',
        build_args={"HTTP_PROXY": "http://127.0.0.1:3128"},
    ),
    Case(
        "arg_undeclared_build_arg_ignored",
        B + 'RUN echo "[$NOTDECLARED]" > /n\n',
        build_args={"NOTDECLARED": "x"},
    ),
    Case(
        "arg_in_copy_chown_chmod",
        B + "ARG U=1000 M=0751\nCOPY --chown=$U --chmod=$M a /a\n",
        files={"a": "a"},
        newer=Expect(modes={"/a": 0o751}),
        reason="v0.11.6 does not expand ARGs in --chmod (ignores it); current BuildKit does "
        "(its testCopyChmod, footer)",
    ),
    # -- metadata (dockerfile_core_test.go, dockerfile_cmd_test.go) -----------------------
    Case(
        "expose_expansion",
        B + 'ARG PORTS="3000 4000/udp"\nEXPOSE $PORTS\nEXPOSE 5000\n',
        source=T + "dockerfile_core_test.go testExposeExpansion",
    ),
    Case(
        "dockerfile_lowercase",
        'from {busybox}\nrun echo lower > /l\nenv A=1\ncmd ["true"]\n',
        source=T + "dockerfile_core_test.go testDockerfileLowercase",
    ),
    Case(
        "labels_forms",
        B + 'LABEL foo=bar\nLABEL "quoted key"="quoted value" unquoted=v\nLABEL foo=baz\n',
        source=T + "dockerfile_core_test.go testLabels",
    ),
    Case(
        "user_whoami",
        B + "USER daemon\nRUN whoami > /tmp/who\nUSER root\nRUN whoami > /who2\n",
        source=T + "dockerfile_core_test.go testUser",
    ),
    Case(
        "user_numeric_unknown",
        B + "USER 4321:4321\nRUN id > /tmp/id\n",
        source=T + "dockerfile_core_test.go testUser",
    ),
    Case(
        "user_additional_gids",
        B + "RUN echo 'extra2:x:3000:app' >> /etc/group\nUSER app\nRUN id -G > /tmp/gids\n",
        source=T + "dockerfile_core_test.go testUserAdditionalGids",
    ),
    Case(
        "cmd_shell_after_shell",
        B + 'SHELL ["/bin/sh", "-xc"]\nCMD echo hi\nENTRYPOINT echo ep\n',
        source=T + "dockerfile_cmd_test.go testCmdShell",
    ),
    Case(
        "default_shell_and_path_scratch",
        "FROM scratch\nENV A=1\nCMD echo\n",
        base="scratch",
        source=T + "dockerfile_cmd_test.go testDefaultShellAndPath",
    ),
    Case(
        "invalid_json_commands",
        B + 'CMD ["echo", "hi"\n',
        source=T + "dockerfile_cmd_test.go testInvalidJSONCommands",
    ),
    Case(
        "invalid_instruction_error",
        B + "FNORD a b c\n",
        error="unknown instruction",
        source=T + "dockerfile_cmd_test.go testDockerfileInvalidInstruction",
    ),
    Case("cmd_empty_array", B + "CMD []\n"),
    Case("entrypoint_empty_array", B + 'ENTRYPOINT []\nCMD ["x"]\n'),
    Case("entrypoint_then_cmd_kept", B + 'CMD ["a"]\nENTRYPOINT ["b"]\n'),
    Case("cmd_inherited_from_stage", 'FROM {busybox} AS s\nCMD ["x"]\nFROM s\nENV A=1\n'),
    Case("env_multiline_quotes", B + 'ENV A=\'single $X\' B="double\\"q" C=a\\ b\\ c\n'),
    Case("env_overrides_base_path", B + 'ENV PATH=/custom\nRUN echo "$PATH" > /p\n'),
    Case("env_reference_unset", B + "ENV A=${UNSET}x B=${UNSET:-d}\n"),
    Case("label_empty_value", B + 'LABEL empty="" spaced=" "\n'),
    Case("user_with_group_name", B + "USER app:extra\nRUN id > /tmp/id\n"),
    Case("user_expanded", B + "ARG WHO=app\nUSER $WHO\n"),
    Case("volume_json_and_existing", B + 'RUN mkdir /data && echo x > /data/x\nVOLUME ["/data"]\n'),
    Case(
        "volume_then_run_writes",
        B + "VOLUME /vol/subvol\nRUN mkdir -p /vol/subvol && echo in > /vol/subvol/f\n",
        source=BUD + "volume-perms",
    ),
    Case(
        "volume_ownership_kept",
        B + "RUN mkdir -p /vol/subvol && chown app:extra /vol/subvol\nVOLUME /vol/subvol\n"
        "RUN touch /test\n",
        source=BUD + "volume-ownership",
    ),
    Case("stopsignal_rtmin", B + "STOPSIGNAL SIGRTMIN+3\n"),
    Case("stopsignal_expanded", B + "ARG SIG=SIGTERM\nSTOPSIGNAL $SIG\n"),
    Case("healthcheck_interval_only", B + "HEALTHCHECK --interval=5s CMD true\n"),
    Case(
        "healthcheck_exec_form",
        B + 'HEALTHCHECK --retries=2 --timeout=3s CMD ["wget", "-q", "localhost"]\n',
    ),
    Case("healthcheck_none", B + "HEALTHCHECK NONE\n"),
    Case("maintainer_only", B + "MAINTAINER The Maintainer\n"),
    Case("workdir_env_expansion", B + "ENV BASE=/opt\nWORKDIR $BASE/app\nWORKDIR sub\n"),
    # -- workdir (dockerfile_workdir_test.go, buildah workdir-*) -------------------------
    Case(
        "workdir_creates_dir",
        B + "WORKDIR /mydir\nWORKDIR sub/deep\n",
        source=T + "dockerfile_workdir_test.go testWorkdirCreatesDir",
    ),
    Case(
        "workdir_user",
        B + "USER app\nWORKDIR /mydir\nRUN touch file\n",
        source=T + "dockerfile_workdir_test.go testWorkdirUser",
    ),
    Case(
        "workdir_exists_keeps_owner",
        B + "RUN mkdir -m 0700 /mydir && chown 1000:2000 /mydir\nUSER 1234\nWORKDIR /mydir\n",
        source=T + "dockerfile_workdir_test.go testWorkdirExists",
    ),
    Case(
        "workdir_user_home",
        B + "USER app\nWORKDIR /home/app/public\nRUN touch foobar\n",
        source=BUD + "workdir-user",
    ),
    Case(
        "workdir_symlink_target",
        B + "RUN mkdir -p /var/lib/tempest && ln -sf /var/lib/tempest /tempest\n"
        "WORKDIR /tempest\nRUN touch here\n",
        source=BUD + "workdir-symlink",
    ),
    Case("workdir_no_run_no_dir_scratch", "FROM scratch\nWORKDIR /w\n", base="scratch"),
    # -- stages (dockerfile_multistage_test.go) -------------------------------------------
    Case(
        "multistage_implicit_from",
        B + "COPY --from={busybox} /etc/group /group-copy\n",
        source=T + "dockerfile_multistage_test.go testMultiStageImplicitFrom",
    ),
    Case(
        "multistage_case_insensitive",
        "FROM {busybox} AS STAge0\nRUN echo foo > /foo\nFROM {busybox} AS staGE1\n"
        "COPY --from=staGE0 /foo /foo\nFROM stage1\nRUN cat /foo > /bar\n",
        source=T + "dockerfile_multistage_test.go testMultiStageCaseInsensitive",
    ),
    Case(
        "multistage_out_of_order_error",
        "FROM {busybox} AS target\nCOPY --from=build /foo /\nFROM {busybox} AS build\n"
        "RUN echo foo > /foo\n",
        target="target",
        error="build",
        source=T + "dockerfile_multistage_test.go testOutOfOrderStage",
    ),
    Case(
        "multistage_empty_stages_error",
        "ARG foo=bar\n",
        error="contains no stages to build",
        expect=Expect(),
        reason="v0.11.6's daemon panics on it (index out of range in lastTarget); current "
        'BuildKit: "dockerfile contains no stages to build" (262634c8f)',
        source=T + "dockerfile_multistage_test.go testEmptyStages",
    ),
    Case(
        "multistage_target_name_arg",
        "FROM {busybox} AS first\nRUN echo first > /f\nFROM {busybox} AS second\nRUN echo s > /s\n",
        target="first",
        source=T + "dockerfile_args_test.go testTargetStageNameArg",
    ),
    Case(
        "multistage_copy_from_index_chain",
        B
        + "RUN echo 0 > /0\n"
        + B
        + "RUN echo 1 > /1\n"
        + B
        + "COPY --from=0 /0 /zero\nCOPY --from=1 /1 /one\n",
    ),
    Case(
        "stage_from_scratch_copy_from",
        "FROM {busybox} AS b\nRUN echo x > /x\nFROM scratch\nCOPY --from=b /x /x\n",
        base="scratch",
    ),
    # -- heredocs (dockerfile_heredoc_test.go) -----------------------------------------------
    Case(
        "heredoc_copy_special_symbols",
        'FROM scratch\nCOPY <<EOF quotefile\n"quotes in file"\nEOF\nCOPY <<EOF slashfile1\n\\\n'
        "EOF\nCOPY <<EOF slashfile2\n\\\\\nEOF\nCOPY <<EOF slashfile3\n\\$\nEOF\n"
        'COPY <<"EOF" rawslashfile1\n\\\nEOF\nCOPY <<"EOF" rawslashfile2\n\\\\\nEOF\n'
        'COPY <<"EOF" rawslashfile3\n\\$\nEOF\n',
        base="scratch",
        source=T + "dockerfile_heredoc_test.go testCopyHeredocSpecialSymbols",
        newer=heredoc_files(
            "/quotefile",
            "/slashfile1",
            "/slashfile2",
            "/slashfile3",
            "/rawslashfile1",
            "/rawslashfile2",
            "/rawslashfile3",
        ),
        reason=HEREDOC_0644,
    ),
    Case(
        "heredoc_run_shebang_awk",
        B + 'WORKDIR /dest\nRUN <<EOF\n#!/usr/bin/awk -f\nBEGIN {\n\tprint "hello" >> "./out1"\n'
        '\tprint "world" >> "./out1"\n}\nEOF\n',
        source=T + "dockerfile_heredoc_test.go testRunShebangHeredoc",
    ),
    Case(
        "heredoc_run_complex",
        B + "WORKDIR /dest\nRUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \\\n"
        "\tcat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2\nhello WORLD\nEOF1\nHELLO world\n"
        "EOF2\nRUN <<EOF 3<<IN1 4<<IN2 awk -f -\nBEGIN {\n\twhile ((getline line < "
        '"/proc/self/fd/3") > 0)\n\t\tprint tolower(line) > "./fd3"\n\twhile ((getline line '
        '< "/proc/self/fd/4") > 0)\n\t\tprint toupper(line) > "./fd4"\n}\nEOF\nhello WORLD\n'
        "IN1\nHELLO world\nIN2\n",
        source=T + "dockerfile_heredoc_test.go testRunComplexHeredoc",
    ),
    Case(
        "heredoc_run_basic",
        B + "RUN <<EOF\necho hello > /hello\necho world >> /hello\nEOF\n",
        source=T + "dockerfile_heredoc_test.go testRunBasicHeredoc",
    ),
    Case(
        "heredoc_run_fake",
        B + "RUN echo '<<EOF' > /fake && echo 'EOF' >> /fake\n",
        source=T + "dockerfile_heredoc_test.go testRunFakeHeredoc",
    ),
    Case(
        "heredoc_indent",
        B + "COPY <<EOF /a\n\tfoo\nEOF\nCOPY <<-EOF /b\n\tfoo\n\t\tbar\n\tEOF\n"
        "RUN <<-EOF\n\techo indented > /c\n\tEOF\n",
        source=T + "dockerfile_heredoc_test.go testHeredocIndent",
        newer=heredoc_files("/a", "/b"),
        reason=HEREDOC_0644,
    ),
    Case(
        "heredoc_var_substitution",
        B + "ARG name=world\nENV who=env\nCOPY <<EOF /a\nhello $name $who ${who}\nEOF\n"
        "COPY <<'EOF' /b\nhello $name\nEOF\nRUN <<EOF\necho \"$name $who\" > /c\nEOF\n",
        source=T + "dockerfile_heredoc_test.go testHeredocVarSubstitution",
        newer=heredoc_files("/a", "/b"),
        reason=HEREDOC_0644,
    ),
    Case(
        "heredoc_onbuild",
        "FROM {busybox} AS p\nONBUILD RUN <<EOF\necho onbuild > /ob\nEOF\nFROM p\n",
        source=T + "dockerfile_heredoc_test.go testOnBuildHeredoc",
    ),
    Case(
        "heredoc_copy_to_workdir",
        B + "WORKDIR /w\nCOPY <<EOF rel\nr\nEOF\n",
        newer=heredoc_files("/w/rel"),
        reason=HEREDOC_0644,
    ),
    Case("heredoc_copy_chmod", B + "COPY --chmod=0600 <<EOF /secret\ns\nEOF\n"),
    # -- mounts (dockerfile_mount_test.go) ---------------------------------------------------
    Case(
        "mount_tmpfs_not_kept",
        B + "RUN --mount=target=/mytmp,type=tmpfs touch /mytmp/foo\n"
        "RUN [ ! -f /mytmp/foo ] && echo gone > /gone\n",
        source=T + "dockerfile_mount_test.go testMountTmpfs",
    ),
    Case(
        "mount_cache_user_mode",
        B + "RUN --mount=type=cache,target=/mycache,uid=1001,gid=1002,mode=0751 "
        'stat -c "%u %g %f" /mycache > /st\n',
        source=T + "dockerfile_mount_test.go testCacheMountUser",
    ),
    Case(
        "mount_rw_cache",
        B + "RUN --mount=type=cache,target=/mycache,id=conf-rw echo foo > /mycache/foo && "
        "cat /mycache/foo > /got\n",
        source=T + "dockerfile_mount_test.go testMountRWCache",
    ),
    Case(
        "mount_env_var_target",
        B + "ENV SOME_PATH=/mnt/data\nRUN --mount=target=$SOME_PATH,source=d "
        "cat $SOME_PATH/x > /out\n",
        files={"d/x": "x\n"},
        source=T + "dockerfile_mount_test.go testMountEnvVar",
    ),
    Case(
        "mount_arg_source",
        B + "ARG SRC=d\nRUN --mount=type=bind,source=$SRC,target=/m cat /m/x > /out\n",
        files={"d/x": "x\n"},
        source=T + "dockerfile_mount_test.go testMountArg",
    ),
    Case(
        "mount_from_stage_arg_error",
        "FROM {busybox} AS s\nRUN echo s > /s\n" + B + "ARG FROM=s\n"
        "RUN --mount=from=$FROM,target=/m cat /m/s > /o\n",
        error="from",
        source=T + "dockerfile_mount_test.go testMountFromError",
    ),
    Case(
        "mount_tmpfs_size",
        B + "RUN --mount=type=tmpfs,target=/dev/shm,size=128m grep /dev/shm /proc/mounts | "
        "grep -o 'size=[0-9a-z]*' > /tmpfssize\n",
        source=T + "dockerfile_mount_test.go testMountTmpfsSize",
    ),
    Case(
        "mount_duplicate_target",
        B + "RUN --mount=type=tmpfs,target=/t --mount=type=tmpfs,target=/t true\n",
        source=T + "dockerfile_mount_test.go testMountDuplicate",
    ),
    Case(
        "mount_cache_nested",
        B + "RUN --mount=type=cache,target=/foo/bar --mount=type=cache,target=/foo/bar/baz "
        "echo 1 > /one\n",
        source=T + "dockerfile_mount_test.go testCacheMountParallel",
    ),
    Case(
        "mount_bind_readonly_write_fails",
        B + "RUN --mount=type=bind,source=d,target=/m sh -c 'echo x > /m/new' 2>/dev/null; "
        "test ! -e /m/new && echo ro > /ro\n",
        files={"d/x": "x\n"},
    ),
    Case(
        "mount_invalid_type_error",
        B + "RUN --mount=type=nope,target=/x true\n",
        error="nope",
        source=T + "dockerfile_mount_test.go testMountInvalid",
    ),
    Case(
        "mount_bind_default_context_root",
        B + "RUN --mount=target=/ctx cat /ctx/f > /out\n",
        files={"f": "from-root\n"},
        source=T + "dockerfile_mount_test.go testMountContext",
    ),
    # -- onbuild (dockerfile_onbuild_test.go) ---------------------------------------------
    Case(
        "onbuild_cleared",
        "FROM {busybox} AS p\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\n"
        "FROM p AS c\nFROM c\nRUN cat /out/foo > /seen\n",
        source=T + "dockerfile_onbuild_test.go testOnBuildCleared",
    ),
    Case(
        "onbuild_with_child_stage",
        "FROM {busybox} AS p\nONBUILD RUN echo hi > /hi\nFROM p AS child\n"
        + B
        + "COPY --from=child /hi /hi\n",
        source=T + "dockerfile_onbuild_test.go testOnBuildWithChildStage",
    ),
    Case(
        "onbuild_inherited_stage_run",
        "FROM {busybox} AS base\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\n"
        "FROM base AS child\nRUN echo -n 22 >> /out/foo\nFROM child\nRUN cat /out/foo > /r\n",
        source=T + "dockerfile_onbuild_test.go testOnBuildInheritedStageRun",
    ),
    Case(
        "onbuild_copy_from_stage",
        "FROM {busybox} AS src\nRUN echo src > /src\nFROM {busybox} AS p\n"
        "ONBUILD COPY --from=src /src /got\nFROM p\n",
        source=T + "dockerfile_onbuild_test.go testOnBuildNewDeps",
        expect=Expect(files={"/got": f("src\n")}),
        reason="v0.11.6 cannot resolve a stage named by an inherited ONBUILD COPY --from; "
        "current BuildKit can (4cf7a1a0d)",
    ),
    Case(
        "onbuild_run_mount_from_stage",
        "FROM {busybox} AS src\nRUN echo src > /src\nFROM {busybox} AS p\n"
        "ONBUILD RUN --mount=from=src,target=/m cat /m/src > /got\nFROM p\n",
        source=T + "dockerfile_onbuild_test.go testOnBuildNamedContext (RUN --mount=from)",
        expect=Expect(files={"/got": f("src\n")}),
        reason="v0.11.6 cannot resolve a stage named by an inherited ONBUILD RUN "
        "--mount=from; current BuildKit can (4cf7a1a0d)",
    ),
    Case(
        "onbuild_with_cache_mount",
        "FROM {busybox} AS p\nONBUILD RUN --mount=type=cache,target=/c,id=conf-ob "
        "echo ob > /c/x && cat /c/x > /ob\nFROM p\n",
        source=T + "dockerfile_onbuild_test.go testOnBuildWithCacheMount",
    ),
    Case(
        "onbuild_env_label", "FROM {busybox} AS p\nONBUILD ENV OB=1\nONBUILD LABEL ob=yes\nFROM p\n"
    ),
    # -- run ---------------------------------------------------------------------------------
    Case("run_exit_code_error", B + "RUN sh -c 'exit 42'\n", error="42", source=BUD + "exit42"),
    Case("run_env_visible", B + 'ENV E1=one\nRUN echo "$E1" > /e1 && env | grep -c ^E1= > /n\n'),
    Case("run_pwd_default", B + "RUN pwd > /pwd\n"),
    Case("run_env_dump", B + "ENV A=1\nRUN env | sort > /env && export -p | sort > /exported\n"),
    Case("run_env_dump_user", B + "USER app\nWORKDIR /tmp\nRUN env | sort > /tmp/env\n"),
    Case("run_umask", B + "RUN umask > /umask && touch /made && mkdir /madedir\n"),
    Case("run_home_unknown_user", B + 'USER 4321\nRUN echo "$HOME" > /tmp/home\n'),
    Case("run_path_default_scratch_like", B + 'ENV PATH=\nRUN ["/bin/busybox", "env"]\n'),
    Case("run_shell_sees_build_arg_not_env", B + "ARG A=1\nRUN echo $A > /a\nENV B=$A\n"),
    Case(
        "run_exec_form_no_shell_expansion",
        B + 'ENV X=1\nRUN ["/bin/sh", "-c", "echo $X > /x"]\nRUN ["/bin/echo", "$X"]\n',
    ),
    Case("run_chmod_dir_in_base", B + "RUN chmod 0700 /tmp && chown app /home\n"),
    Case("run_symlink_replace_dir", B + "RUN rm -rf /opt && ln -s /tmp /opt\n"),
    Case("run_rename_dir", B + "RUN mkdir -p /x/y && echo f > /x/y/f\nRUN mv /x /z\n"),
    Case("run_touch_existing_no_change", B + "RUN cat /etc/passwd > /dev/null\n"),
    Case("run_write_same_content", B + "RUN cp /etc/group /tmp/g && cp /tmp/g /etc/group\n"),
    Case("run_xattr_user", B + "RUN touch /x && setfattr -n user.k -v v /x 2>/dev/null; true\n"),
    Case(
        "run_proc_self_groups",
        B + "USER 1000:1000\nRUN grep -E '^(Uid|Gid|Groups)' "
        "/proc/self/status | tr -s '\\t ' ' ' > /tmp/status\n",
        source=BUD + "supplemental-groups",
    ),
    Case("run_hostname_file_untouched", B + "RUN echo content > /tmp/c\n"),
    Case("run_dev_null_usable", B + "RUN echo x > /dev/null && ls /dev/null > /devnull\n"),
    Case("run_after_user_root_again", B + "USER app\nUSER root\nRUN id -u > /u\n"),
    Case(
        "debian_apt_sources_untouched",
        "FROM {debian}\nRUN echo 'APT::Install-Recommends \"0\";' > /etc/apt/apt.conf.d/99norec\n",
        base="debian",
    ),
    Case(
        "debian_useradd_system",
        "FROM {debian}\nRUN groupadd -g 777 grp && mkdir /srv/x && chgrp grp /srv/x && "
        "chmod 2770 /srv/x\n",
        base="debian",
    ),
    Case(
        "debian_user_groups_from_group_file",
        "FROM {debian}\nUSER daemon\nRUN id > /tmp/id\n",
        base="debian",
    ),
    Case(
        "debian_copy_chown_name",
        "FROM {debian}\nCOPY --chown=www-data a /srv/a\nCOPY --chown=nobody:nogroup a /srv/b\n",
        files={"a": "a"},
        base="debian",
    ),
]
