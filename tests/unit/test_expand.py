"""Word expansion against BuildKit's own tables (tests/data/spec) and extra cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocibuild.dockerfile.expand import expand_word, expand_words, process
from ocibuild.errors import ExpansionError

SPEC = Path(__file__).resolve().parent.parent / "data" / "spec"
ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_rows() -> list[object]:
    """Rows of envVarTest, read as BuildKit's lex_test.go reads them."""
    rows: list[object] = []
    text = (SPEC / "envVarTest").read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        parts = line.split("|")
        assert len(parts) == 3, f"envVarTest:{number}: {line!r}"
        platform, source, expected = (p.strip() for p in parts)
        assert platform in ("A", "U", "W")
        marks = [pytest.mark.skip(reason="windows-only row")] if platform == "W" else []
        rows.append(pytest.param(source, expected, id=f"L{number}", marks=marks))
    return rows


def _words_rows() -> list[object]:
    """Rows of wordsTest; ``ENV k=v`` lines add to the environment of later rows."""
    rows: list[object] = []
    env: dict[str, str] = {}
    text = (SPEC / "wordsTest").read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            key, _, value = line[3:].lstrip(" ").partition("=")
            env[key] = value
            continue
        parts = line.split("|")
        assert len(parts) == 2, f"wordsTest:{number}: {line!r}"
        source = parts[0].strip()
        expected = parts[1].lstrip(" ").split(",")
        rows.append(pytest.param(source, dict(env), expected, id=f"L{number}"))
    return rows


ENV_VAR_ROWS = _env_var_rows()
WORDS_ROWS = _words_rows()


def test_tables_were_read() -> None:
    assert len(ENV_VAR_ROWS) > 200
    assert len(WORDS_ROWS) == 24


@pytest.mark.parametrize(("source", "expected"), ENV_VAR_ROWS)
def test_env_var_table(source: str, expected: str) -> None:
    if expected == "error":
        with pytest.raises(ExpansionError):
            expand_word(source, ENV_VAR_ENV)
    else:
        assert expand_word(source, ENV_VAR_ENV) == expected


@pytest.mark.parametrize(("source", "env", "expected"), WORDS_ROWS)
def test_words_table(source: str, env: dict[str, str], expected: list[str]) -> None:
    try:
        result = expand_words(source, env)
    except ExpansionError:
        result = ["error"]
    assert result == expected


# BuildKit's TestProcessWithMatches and TestShellParserMandatoryEnvVars cases.
@pytest.mark.parametrize(
    ("word", "env", "expected"),
    [
        ("x ${UNUSED}", {}, "x "),
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
        ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
        ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
        ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
        ("${FOO?aaa}", {"FOO": "xxx"}, "xxx"),
        ("${BAR?bbb}", {"BAR": ""}, ""),
        ("${FOO:?aaa}", {"FOO": "xxx"}, "xxx"),
        ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
        ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
        ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
        ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
        ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
        ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
        ("${FOO##}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
        ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
        ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
        ("${FOO%}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO%y*}", {"FOO": "xxyy"}, "xxy"),
        ("${FOO%%y*}", {"FOO": "xxyy"}, "xx"),
        ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
            "/foo.*/*.txt - /foo..*.txt",
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
            "/tmp/bar.txt - /bar.txt",
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
            "/foo/b/c.txt - /foo/c.txt",
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT}",
            {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
            "https://google.de",
        ),
        ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
        ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
        ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO///}", {}, ""),
        ("${FOO//*/z}", {"FOO": "abc"}, "z"),  # Go: no empty match right after a match
        ("${FOO//b/[\\$0]}", {"FOO": "abcb"}, "a[\\b]c[\\b]"),  # Go template: $0 = match
        ("${VAR:?message here$ARG}", {"VAR": "plain", "ARG": "x"}, "plain"),
        ("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}, ""),
        ("a\\\\b", {}, "a\\b"),
    ],
)
def test_process_word_cases(word: str, env: dict[str, str], expected: str) -> None:
    assert expand_word(word, env) == expected


@pytest.mark.parametrize(
    ("word", "env", "message"),
    [
        ("${BAZ?ccc}", {}, "BAZ: ccc"),
        ("${BAR:?bbb}", {"BAR": ""}, "BAR: bbb"),
        ("${BAZ:?}", {"BAZ": ""}, "BAZ: is not allowed to be empty"),
        ("${BAZ:?}", {}, "BAZ: is not allowed to be unset"),
        ("${BAZ?}", {}, "BAZ: is not allowed to be unset"),
        ("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"}, "message herex"),
        ("${VAR?message here$ARG}", {"ARG": "x"}, "message herex"),
        ("${FOO=aaa}", {"FOO": "xxx"}, "unsupported modifier (=)"),
        ("${FOO=:aaa}", {"FOO": "xxx"}, "unsupported modifier"),
        ("${FOO=}", {}, "unsupported modifier"),
        ("${FOO//ww}", {"FOO": "xxyy"}, "missing '/' in ${}"),
        ("${FOO//}", {"FOO": "xxyy"}, "missing '/'"),
        ("${FOO#\\x}", {"FOO": "x"}, "invalid escape '\\x'"),
        ("${}", {}, "bad substitution"),
        ("${abc", {}, "unsupported modifier"),
        ("${abc:-x", {}, "missing '}'"),
        ('"abc', {}, "matching double-quote"),
        ("'abc", {}, "matching single-quote"),
    ],
)
def test_process_word_errors(word: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        expand_word(word, env)
    assert message in info.value.message
    assert info.value.message.startswith("failed to process ")


def test_backtick_escape() -> None:
    env = {"A": "x"}
    assert expand_word("a`$A", env, "`") == "a$A"
    assert expand_word("a\\$A", env, "`") == "a\\x"
    assert expand_word('"a`"b"', env, "`") == 'a"b'
    assert expand_words("a` b c", env, "`") == ["a b", "c"]


def test_words_split_unquoted_expansion_but_not_quoted() -> None:
    env = {"V": " a  b "}
    assert expand_words("x${V}y", env) == ["x", "a", "b", "y"]
    assert expand_words('x"${V}"y', env) == ["x a  b y"]
    assert expand_words("'' \"\"", env) == []
    assert expand_word("p  q", env) == "p  q"


def test_raw_modes_used_for_heredoc_detection() -> None:
    result = process(
        "RUN cat <<'EOF' $X \\n", {}, raw_quotes=True, raw_escapes=True, skip_unset=True
    )
    assert result.words == ["RUN", "cat", "<<'EOF'", "$X", "\\n"]
    assert process("${X:-y}", {}, skip_unset=True).word == "${X:-y}"
    assert process("${X/a/b}", {}, skip_unset=True).word == "${X/a/b}"
    assert process("${X}", {}, skip_unset=True).word == "${X}"
