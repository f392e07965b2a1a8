"""Logical lines, directives, continuations and heredocs (BuildKit's parser.Parse rules)."""

from __future__ import annotations

import pytest

from ocibuild.dockerfile.lexer import heredocs_from_line, lex, parse_heredoc
from ocibuild.errors import DockerfileError, ExpansionError


def texts(src: str) -> list[str]:
    return [ll.text for ll in lex(src).logical]


def spans(src: str) -> list[tuple[int, int]]:
    return [(ll.start_line, ll.end_line) for ll in lex(src).logical]


def test_comments_and_blank_lines_are_dropped() -> None:
    src = "# hello\n\nFROM a\n   # indented comment\n\nRUN x\n"
    assert texts(src) == ["FROM a", "RUN x"]
    assert spans(src) == [(3, 3), (6, 6)]


def test_leading_whitespace_of_first_line_is_stripped() -> None:
    assert texts("   FROM a\n\tRUN  x  \n") == ["FROM a", "RUN  x  "]


def test_continuation_joins_lines_keeping_their_whitespace() -> None:
    src = "FROM a\nRUN echo a \\\n    b \\\n  c\n"
    assert texts(src) == ["FROM a", "RUN echo a     b   c"]
    assert spans(src) == [(1, 1), (2, 4)]


def test_trailing_blanks_after_the_escape_still_continue() -> None:
    assert texts("RUN a \\  \t\nb\n") == ["RUN a b"]


def test_comments_and_empty_lines_inside_a_continuation() -> None:
    # BuildKit's TestParseWarnsOnEmptyContinutationLine
    src = (
        "\nFROM alpine:3.6\n\nRUN something \\\n\n    following \\\n\n    more\n\n"
        "RUN another \\\n\n    thing\nRUN non-indented \\\n# this is a comment\n"
        "   after-comment\n\nRUN indented \\\n    # this is an indented comment\n"
        "    comment\n\t"
    )
    logical = lex(src).logical
    assert [ll.text for ll in logical] == [
        "FROM alpine:3.6",
        "RUN something     following     more",
        "RUN another     thing",
        "RUN non-indented    after-comment",
        "RUN indented     comment",
    ]
    assert [ll.empty_continuation for ll in logical] == [False, True, True, False, False]
    assert (logical[1].start_line, logical[1].end_line) == (4, 8)


def test_continuation_at_end_of_file_ends_the_instruction() -> None:
    assert texts("FROM a\nRUN echo hi \\") == ["FROM a", "RUN echo hi "]
    assert texts("FROM a\nRUN echo hi \\\n\n# c\n") == ["FROM a", "RUN echo hi "]


def test_escaped_backslash_at_end_of_line_is_not_a_continuation() -> None:
    assert texts("RUN echo \\\\\nRUN next\n") == ["RUN echo \\\\", "RUN next"]


def test_lone_escape_on_a_line() -> None:
    assert texts("RUN a \\\n\\\nb\n") == ["RUN a b"]


def test_backtick_escape_directive() -> None:
    src = "# escape=`\nFROM windows\nRUN dir c:\\ `\n    /s\nRUN a \\\nRUN b\n"
    lexed = lex(src)
    assert lexed.escape == "`"
    assert lexed.directives == {"escape": "`"}
    assert [ll.text for ll in lexed.logical] == [
        "FROM windows",
        "RUN dir c:\\     /s",
        "RUN a \\",
        "RUN b",
    ]


def test_directives_are_case_insensitive_and_spaced() -> None:
    lexed = lex("# SYNTAX = docker/dockerfile:1 \n#Escape=\\\n# check=skip=all\nFROM a\n")
    assert lexed.directives == {
        "syntax": "docker/dockerfile:1",
        "escape": "\\",
        "check": "skip=all",
    }


@pytest.mark.parametrize(
    "src",
    [
        "FROM a\n# escape=`\nRUN a `\nb\n",  # after an instruction
        "# a comment\n# escape=`\nRUN a `\nb\n",  # after a comment
        "\n# escape=`\nRUN a `\nb\n",  # after a blank line
        "# unknown=1\n# escape=`\nRUN a `\nb\n",  # after an unknown directive
    ],
)
def test_directives_only_at_the_top(src: str) -> None:
    lexed = lex(src)
    assert lexed.escape == "\\"
    assert "escape" not in lexed.directives
    assert [ll.text for ll in lexed.logical][-2:] == ["RUN a `", "b"]


def test_crlf_and_bom() -> None:
    src = "\ufeff# escape=`\r\nFROM a\r\nRUN x `\r\n  y\r\n"
    lexed = lex(src)
    assert lexed.escape == "`"
    assert [ll.text for ll in lexed.logical] == ["FROM a", "RUN x   y"]
    assert lexed.lines == ("# escape=`", "FROM a", "RUN x `", "  y")


def test_crlf_heredoc_terminator() -> None:
    (run,) = lex("RUN <<EOF\r\nhi\r\nEOF\r\n").logical
    assert run.heredocs[0].content == "hi\r\n"


def test_heredocs_buildkit_table() -> None:
    # BuildKit's TestParseExtractsHeredoc
    src = """
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<X <<Y /dest
Y
X
X
Y
\t"""
    got = [
        [(h.name, h.content, h.expand, h.chomp, h.fd) for h in ll.heredocs]
        for ll in lex(src).logical[1:]
    ]
    assert got == [
        [],  # ENV
        [],  # RUN ls
        [],  # USER <<INVALID
        [],  # INVALID
        [("EMPTY", "", True, False, 0)],
        [("EMPTY2", "", True, False, 3)],
        [],  # RUN "<<NOHEREDOC"
        [("INDENT", "\tfoo\n\tbar\n", True, False, 0)],
        [("UNINDENT", "\tbaz\n\tquux\n", True, True, 0)],
        [("UNINDENT2", "\tbaz\n\tquux\n", True, True, 0)],
        [("EXPAND", "\texpand $NAME\n", True, True, 0)],
        [("NOEXPAND", "\tdon't expand $NAME\n", False, True, 0)],
        [("COPY", "echo hello world\necho foo bar\n", True, False, 0)],
        [
            (
                "COMMENT",
                "# internal comment\necho hello world\necho foo bar # trailing comment\n",
                True,
                False,
                0,
            )
        ],
        [("MOUNT", "echo hello\n", True, False, 0)],
        [("FILE1", "content 1\n", True, False, 0), ("FILE2", "content 2\n", True, False, 0)],
        [("X", "Y\n", True, False, 0), ("Y", "X\n", True, False, 0)],
    ]


def test_heredoc_positions_and_chomp() -> None:
    lexed = lex("FROM a\nRUN <<-EOF sh\n\techo hi\n\t\tdeep\n\tEOF\nRUN next\n")
    run = lexed.logical[1]
    assert (run.start_line, run.text_end_line, run.end_line) == (2, 2, 5)
    assert run.text == "RUN <<-EOF sh"
    assert run.heredocs[0].chomped() == "echo hi\ndeep\n"
    assert lexed.logical[2].start_line == 6


def test_quoted_delimiters_turn_expansion_off() -> None:
    for word in ("<<'EOF'", '<<"EOF"', "<<-'EOF'", '<<E"O"F'):
        doc = parse_heredoc(word)
        assert doc is not None and doc.name == "EOF" and not doc.expand, word
    doc = parse_heredoc("<<EOF")
    assert doc is not None and doc.expand


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "a<<EOF"])
def test_not_heredocs(word: str) -> None:
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_invalid_heredoc_words(word: str) -> None:
    with pytest.raises(ExpansionError):
        parse_heredoc(word)


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("RUN <<EOF", ["EOF"]),
        ("RUN <<-EOF", ["EOF"]),
        ("RUN <<'EOF'", ["EOF"]),
        ("RUN 4<<EOF", ["EOF"]),
        ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]),
        ("RUN '<<EOF'", []),
        ('RUN "<<EOF"', []),
        ("RUN cat <<EOF > /x", ["EOF"]),
    ],
)
def test_heredocs_from_line(line: str, names: list[str]) -> None:
    assert [h.name for h in heredocs_from_line(line)] == names


def test_no_heredocs_in_json_form_or_other_instructions() -> None:
    src = 'RUN ["<<EOF"]\nCOPY ["<<EOF", "/x"]\nUSER <<EOF\nEOF\n'
    assert [ll.heredocs for ll in lex(src).logical] == [(), (), (), ()]


def test_onbuild_heredoc() -> None:
    (ll,) = lex("ONBUILD RUN <<EOF\necho hi\nEOF\n").logical
    assert ll.heredocs[0].content == "echo hi\n"
    assert ll.end_line == 3


def test_heredoc_after_continuation() -> None:
    (ll,) = lex("RUN \\\n  <<EOF cat\nbody\nEOF\n").logical
    assert ll.text == "RUN   <<EOF cat"
    assert [h.content for h in ll.heredocs] == ["body\n"]


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError) as info:
        lex("FROM a\nRUN <<EOF\necho\n")
    err = info.value
    assert err.message == "unterminated heredoc"
    assert err.pos is not None and (err.pos.line, err.pos.end_line) == (2, 3)
    assert "Dockerfile:2" in err.format()
    assert err.source == "RUN <<EOF"
    assert err.instruction == "RUN"


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ("# escape=x\nFROM a\n", "invalid escape token 'x' does not match ` or \\"),
        ("# escape=`\n# escape=\\\nFROM a\n", "only one escape parser directive can be used"),
        ("# syntax=a\n# SYNTAX=b\nFROM a\n", "only one syntax parser directive can be used"),
    ],
)
def test_directive_errors(src: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        lex(src)
    assert info.value.message == message
    assert info.value.pos is not None and info.value.pos.file == "Dockerfile"
