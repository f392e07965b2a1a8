"""Typed instructions from Dockerfile text, and the `ocibuild parse` outputs."""

from __future__ import annotations

import json

import pytest

from ocibuild.dockerfile.instructions import (
    Arg,
    Cmd,
    Command,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Flag,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from ocibuild.dockerfile.parser import dump_buildkit, go_duration, parse, to_json
from ocibuild.errors import DockerfileError


def one(line: str) -> Instruction:
    """The instruction ``line`` parses to, after a FROM."""
    df = parse(f"FROM scratch\n{line}\n")
    assert len(df.instructions) == 2
    return df.instructions[1]


def test_from_forms() -> None:
    df = parse("ARG V=1\nFROM --platform=$BUILDPLATFORM alpine:$V AS Build-1\nFROM build-1\n")
    arg, first, second = df.instructions
    assert isinstance(arg, Arg) and arg.args == (("V", "1"),)
    assert isinstance(first, From)
    assert first.image == "alpine:$V"
    assert first.stage_name == "build-1"
    assert first.flags == (Flag("platform", "$BUILDPLATFORM"),)
    assert first.flag("platform") == Flag("platform", "$BUILDPLATFORM")
    assert isinstance(second, From) and second.stage_name is None
    assert first.pos.line == 2 and first.pos.file == "Dockerfile"
    assert first.original == "FROM --platform=$BUILDPLATFORM alpine:$V AS Build-1"


def test_from_as_is_case_insensitive() -> None:
    inst = parse("from a as b\n").instructions[0]
    assert isinstance(inst, From) and inst.keyword == "FROM" and inst.stage_name == "b"


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("RUN echo hi", Command(("echo hi",), False)),
        ('RUN ["echo", "hi"]', Command(("echo", "hi"), True)),
        ('RUN   [ "a" , "b c" ]  ', Command(("a", "b c"), True)),
        ('RUN ["echo", "hi"', Command(('["echo", "hi"',), False)),  # not JSON: shell form
        ("RUN [echo]", Command(("[echo]",), False)),
        ("RUN ['echo']", Command(("['echo']",), False)),
        ('RUN ["a", NaN]', Command(('["a", NaN]',), False)),
        ('RUN ["a"] && b', Command(('["a"] && b',), False)),
        ('RUN ["\\u0041\\n"]', Command(("A\n",), True)),
        ("RUN echo $HOME 'quoted' \"x\"", Command(("echo $HOME 'quoted' \"x\"",), False)),
    ],
)
def test_json_versus_shell_form(line: str, command: Command) -> None:
    inst = one(line)
    assert isinstance(inst, Run)
    assert inst.command == command


def test_cmd_entrypoint_empty_and_exec() -> None:
    cmd = one('CMD ["--help"]')
    assert isinstance(cmd, Cmd) and cmd.command == Command(("--help",), True)
    ep = one("ENTRYPOINT []")
    assert isinstance(ep, Entrypoint) and ep.command == Command((), True)
    ep = one("ENTRYPOINT /bin/sh -c 'exec x'")
    assert isinstance(ep, Entrypoint) and ep.command == Command(("/bin/sh -c 'exec x'",), False)


def test_run_flags() -> None:
    inst = one(
        "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=s "
        "--network=none --security=insecure pip install x"
    )
    assert isinstance(inst, Run)
    assert inst.flag_values("mount") == ["type=cache,target=/root/.cache", "type=secret,id=s"]
    assert inst.flag("network") == Flag("network", "none")
    assert inst.command == Command(("pip install x",), False)
    # typed at parse time: one field per flag, words still unexpanded
    assert [m.fields for m in inst.mounts] == [
        (("type", "cache"), ("target", "/root/.cache")),
        (("type", "secret"), ("id", "s")),
    ]
    assert inst.network == "none" and inst.security == "insecure"
    bare = one("RUN true")
    assert isinstance(bare, Run)
    assert bare.mounts == () and bare.network is None and bare.security is None


def test_flag_values_lose_their_quotes_and_double_dash_ends_flags() -> None:
    inst = one('RUN --mount="type=bind,target=/a b" -- --not-a-flag')
    assert isinstance(inst, Run)
    assert inst.flags == (Flag("mount", "type=bind,target=/a b"),)
    assert inst.command.args == ("--not-a-flag",)


def test_copy_and_add() -> None:
    inst = one("COPY --from=build --chown=1:2 --chmod=644 --link a b* /dst/")
    assert isinstance(inst, Copy) and inst.keyword == "COPY"
    assert inst.sources == ("a", "b*")
    assert inst.dest == "/dst/"
    assert inst.flag("link") == Flag("link", None)
    assert inst.flag("chown") == Flag("chown", "1:2")
    assert not inst.json_form
    add = one('ADD ["a b", "c", "/d e/"]')
    assert isinstance(add, Copy) and add.keyword == "ADD"
    assert add.sources == ("a b", "c") and add.dest == "/d e/" and add.json_form
    add = one("ADD --checksum=sha256:abc --keep-git-dir=true https://x/y.tar /z")
    assert isinstance(add, Copy) and add.flag("keep-git-dir") == Flag("keep-git-dir", "true")
    assert add.checksum == "sha256:abc" and add.keep_git_dir and add.unpack is None


def test_copy_flags_are_typed_fields() -> None:
    inst = one("COPY --from=build --chown=$U:2 --chmod=644 --link --parents=false "
               "--exclude=*.o --exclude=x a /dst/")  # fmt: skip
    assert isinstance(inst, Copy)
    assert (inst.from_, inst.chown, inst.chmod) == ("build", "$U:2", "644")
    assert inst.link and not inst.parents and inst.exclude == ("*.o", "x")
    plain = one("COPY a /b")
    assert isinstance(plain, Copy)
    assert plain.from_ is None and plain.chown is None and not plain.link
    assert plain.exclude == () and plain.unpack is None


def test_env_and_label_pairs_keep_quotes() -> None:
    inst = one("ENV a=1 b=\"two words\" c='x' d=e\\ f empty=")
    assert isinstance(inst, Env)
    assert inst.pairs == (
        ("a", "1"),
        ("b", '"two words"'),
        ("c", "'x'"),
        ("d", "e\\ f"),
        ("empty", ""),
    )
    legacy = one("ENV PATH /usr/local/bin:$PATH  and more")
    assert isinstance(legacy, Env) and legacy.pairs == (("PATH", "/usr/local/bin:$PATH  and more"),)
    label = one('LABEL "com.example.vendor"="ACME" version=1.0 multi="a \\\n  b"')
    assert isinstance(label, Label)
    assert label.pairs == (
        ('"com.example.vendor"', '"ACME"'),
        ("version", "1.0"),
        ("multi", '"a   b"'),
    )


def test_arg_several_per_line() -> None:
    inst = one('ARG a b=2 c="x y" d=')
    assert isinstance(inst, Arg)
    assert inst.args == (("a", None), ("b", "2"), ("c", '"x y"'), ("d", ""))


def test_single_value_instructions() -> None:
    wd = one("WORKDIR /path with spaces/$X")
    assert isinstance(wd, Workdir) and wd.path == "/path with spaces/$X"
    user = one("USER app:app")
    assert isinstance(user, User) and user.user == "app:app"
    sig = one("STOPSIGNAL SIGKILL")
    assert isinstance(sig, StopSignal) and sig.signal == "SIGKILL"
    maint = one("MAINTAINER Jane Doe <jane@example.com>")
    assert isinstance(maint, Maintainer) and maint.name == "Jane Doe <jane@example.com>"


def test_expose_volume_shell() -> None:
    expose = one("EXPOSE 80 443/tcp  53/udp")
    assert isinstance(expose, Expose) and expose.ports == ("80", "443/tcp", "53/udp")
    vol = one("VOLUME /a /b")
    assert isinstance(vol, Volume) and vol.paths == ("/a", "/b") and not vol.json_form
    vol = one('VOLUME [" /data "]')
    assert isinstance(vol, Volume) and vol.paths == ("/data",) and vol.json_form
    shell = one('SHELL ["powershell", "-command"]')
    assert isinstance(shell, Shell) and shell.args == ("powershell", "-command")


def test_healthcheck() -> None:
    none = one("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.command is None
    hc = one("HEALTHCHECK --interval=5s --timeout=3s --retries=3 CMD /check.sh --quiet")
    assert isinstance(hc, Healthcheck)
    assert hc.command == Command(("/check.sh --quiet",), False)
    assert [f.name for f in hc.flags] == ["interval", "timeout", "retries"]
    hc = one('HEALTHCHECK --start-period=1m30s cmd ["curl", "-f", "http://x/"]')
    assert isinstance(hc, Healthcheck) and hc.command == Command(("curl", "-f", "http://x/"), True)


def test_go_durations() -> None:
    assert go_duration("1m30s") == 90.0
    assert go_duration("250ms") == 0.25
    assert go_duration("0") == 0.0
    assert go_duration("1.5h") == 5400.0
    with pytest.raises(ValueError, match="missing unit"):
        go_duration("5")


def test_onbuild() -> None:
    inst = one("ONBUILD RUN --mount=type=cache,target=/x make")
    assert isinstance(inst, Onbuild)
    assert isinstance(inst.trigger, Run)
    assert inst.trigger.flag_values("mount") == ["type=cache,target=/x"]
    assert inst.trigger.command == Command(("make",), False)
    assert inst.trigger_text == "RUN --mount=type=cache,target=/x make"
    copy = one("onbuild COPY . /app")
    assert isinstance(copy, Onbuild) and isinstance(copy.trigger, Copy)
    assert copy.trigger.dest == "/app"


def test_onbuild_heredoc_trigger_text() -> None:
    df = parse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n")
    inst = df.instructions[1]
    assert isinstance(inst, Onbuild)
    assert inst.trigger_text == "RUN <<EOF\necho hi\nEOF"
    assert isinstance(inst.trigger, Run)
    assert inst.trigger.heredocs == (Heredoc("EOF", "echo hi\n", True, False),)


def test_heredoc_instructions() -> None:
    df = parse(
        "FROM a\n"
        "RUN <<EOF\nset -e\necho $HOME\nEOF\n"
        "RUN <<-'SCRIPT' bash\n\techo '$x'\n\tSCRIPT\n"
        'COPY <<one <<"two" /etc/\n1\none\n2 $x\ntwo\n'
        "RUN python3 <<EOF > out\nprint(1)\nEOF\n"
    )
    run1, run2, copy, run3 = df.instructions[1:]
    assert isinstance(run1, Run) and run1.command == Command(("<<EOF",), False)
    assert run1.heredocs == (Heredoc("EOF", "set -e\necho $HOME\n", True, False),)
    assert (run1.pos.line, run1.pos.end_line) == (2, 5)
    assert isinstance(run2, Run) and run2.command.args == ("<<-'SCRIPT' bash",)
    assert run2.heredocs == (Heredoc("SCRIPT", "echo '$x'\n", False, True),)
    assert isinstance(copy, Copy)
    assert copy.sources == ("<<one", '<<"two"') and copy.dest == "/etc/"
    assert copy.heredocs == (
        Heredoc("one", "1\n", True, False),
        Heredoc("two", "2 $x\n", False, False),
    )
    assert isinstance(run3, Run) and run3.heredocs[0].content == "print(1)\n"
    assert (run3.pos.line, run3.pos.end_line) == (14, 16)


def test_backtick_escape_affects_words_and_continuations() -> None:
    df = parse("# escape=`\nFROM mcr.microsoft.com/windows\nENV a=x` y `\n  b=c:\\dir\n")
    env = df.instructions[1]
    assert df.escape == "`"
    assert isinstance(env, Env) and env.pairs == (("a", "x` y"), ("b", "c:\\dir"))


def test_crlf_bom_and_positions() -> None:
    df = parse("\ufeffFROM a\r\n\r\nRUN a \\\r\n  b\r\nCMD c\r\n", name="sub/Dockerfile.x")
    run, cmd = df.instructions[1:]
    assert isinstance(run, Run) and run.command.args == ("a   b",)
    assert (run.pos.file, run.pos.line, run.pos.end_line) == ("sub/Dockerfile.x", 3, 4)
    assert cmd.pos.line == 5
    assert df.lines[0] == "FROM a"


def test_escaped_backslash_ends_the_line() -> None:
    df = parse("FROM a\nRUN echo \\\\\nRUN next\n")
    assert [i.original for i in df.instructions] == ["FROM a", "RUN echo \\\\", "RUN next"]


def test_directives_recorded() -> None:
    df = parse("# syntax=docker/dockerfile:1.7\n# check=error=true\nFROM a\n")
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "check": "error=true"}
    assert df.escape == "\\"


def test_to_json() -> None:
    df = parse("FROM a AS b\nCOPY --link x /y\nONBUILD RUN z\n")
    data = to_json(df)
    json.dumps(data)  # serialisable
    assert data[0] == {
        "keyword": "FROM",
        "line": 1,
        "end_line": 1,
        "original": "FROM a AS b",
        "flags": [],
        "image": "a",
        "stage_name": "b",
    }
    assert data[1]["flags"] == [{"name": "link", "value": None}]
    assert data[1]["sources"] == ["x"]
    trigger = data[2]["trigger"]
    assert isinstance(trigger, dict) and trigger["command"] == {"args": ["z"], "exec_form": False}


def test_dump_buildkit_is_the_parser_only() -> None:
    # BuildKit's parser.Parse accepts what its instruction layer later refuses: a bare
    # HEALTHCHECK, unknown flags, CMD before FROM; `ocibuild build` still refuses them.
    text = 'CMD --doit [ "a" ]\nHEALTHCHECK\nCOPY --user=me foo /tmp/\nFROM a\n'
    assert dump_buildkit(text).splitlines() == [
        '(cmd ["--doit"] "a")',
        "(healthcheck)",
        '(copy ["--user=me"] "foo" "/tmp/")',
        '(from "a")',
    ]
    with pytest.raises(DockerfileError, match="unknown flag: doit"):
        parse(text)
    with pytest.raises(DockerfileError, match="no build stage in current context"):
        parse("CMD a\nFROM a\n")
    with pytest.raises(DockerfileError, match="HEALTHCHECK requires at least one argument"):
        parse("FROM a\nHEALTHCHECK\n")


def test_dump_buildkit_parser_errors_have_positions() -> None:
    with pytest.raises(DockerfileError) as info:
        dump_buildkit("FROM a\n\nENV PATH\n", "Df")
    assert info.value.message == "ENV must have two arguments"
    assert info.value.pos is not None and (info.value.pos.file, info.value.pos.line) == ("Df", 3)
    with pytest.raises(DockerfileError, match="file with no instructions"):
        dump_buildkit("# only a comment\n")


def test_dump_buildkit_forms() -> None:
    # BuildKit v0.11.6's nodes: ENV/LABEL pairs without the separator node later
    # versions add (its testfiles/env/result).
    text = (
        "FROM --platform=linux/amd64 busybox AS x\n"
        'ENV k=v\nENV legacy value here\nLABEL a="b c"\n'
        'RUN echo hi\nRUN ["echo", "hi"]\nONBUILD RUN echo "hi"\nARG a b=c\n'
        'COPY --link a\tb /c\nEXPOSE 80 90\nUSER u\nSHELL ["sh", "-c"]\n'
    )
    parse(text)  # valid for the instruction layer too
    assert dump_buildkit(text).splitlines() == [
        '(from ["--platform=linux/amd64"] "busybox" "AS" "x")',
        '(env "k" "v")',
        '(env "legacy" "value here")',
        '(label "a" "\\"b c\\"")',
        '(run "echo hi")',
        '(run "echo" "hi")',
        '(onbuild (run "echo \\"hi\\""))',
        '(arg "a" "b=c")',
        '(copy ["--link"] "a" "b" "/c")',
        '(expose "80" "90")',
        '(user "u")',
        '(shell "sh" "-c")',
    ]
