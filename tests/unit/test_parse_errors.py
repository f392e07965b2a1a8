"""Malformed Dockerfiles: the message, the position and the instruction a user sees."""

from __future__ import annotations

import pytest

from ocibuild.dockerfile.parser import parse
from ocibuild.errors import DockerfileError

NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"
TWO_ARGS = "requires at least two arguments, but only one was provided"

# (source, message fragment, line, instruction)
CASES: list[tuple[str, str, int, str | None]] = [
    ("", "file with no instructions", 1, None),
    ("# only a comment\n\n", "file with no instructions", 2, None),
    ("ARG a\n", "dockerfile contains no stages to build", 1, "ARG"),
    ("RUN echo\nFROM a\n", "no build stage in current context", 1, "RUN"),
    ("ARG v\nENV a=b\nFROM a\n", "no build stage in current context", 2, "ENV"),
    ("FROM a\nFOO bar\n", "unknown instruction: FOO", 2, None),
    ("FROM a\nRUNN x\n", "unknown instruction: RUNN", 2, None),
    ("FROM a\nrun x\ncopyy a b\n", "unknown instruction: copyy", 3, None),
    ('FROM a\nRUN ["a", 1]\n', NOT_STRINGS, 2, "RUN"),
    ('FROM a\nCMD ["a", null]\n', NOT_STRINGS, 2, "CMD"),
    ('FROM a\nCOPY ["a", ["b"]]\n', NOT_STRINGS, 2, "COPY"),
    ("FROM a\nENTRYPOINT [true]\n", NOT_STRINGS, 2, "ENTRYPOINT"),
    ('FROM a\nHEALTHCHECK CMD ["a", {}]\n', NOT_STRINGS, 2, "HEALTHCHECK"),
    ("FROM\n", "FROM requires either one or three arguments", 1, "FROM"),
    ("FROM a b\n", "FROM requires either one or three arguments", 1, "FROM"),
    ("FROM a AS\n", "FROM requires either one or three arguments", 1, "FROM"),
    ("FROM a FOO b\n", "FROM requires either one or three arguments", 1, "FROM"),
    ("FROM a AS 1abc\n", 'invalid name for build stage: "1abc"', 1, "FROM"),
    ("FROM a AS b$c\n", 'invalid name for build stage: "b$c"', 1, "FROM"),
    ("FROM a\nCOPY a\n", "COPY " + TWO_ARGS, 2, "COPY"),
    ("FROM a\nADD\n", "ADD " + TWO_ARGS, 2, "ADD"),
    ('FROM a\nCOPY ["a"]\n', "COPY " + TWO_ARGS, 2, "COPY"),
    (
        "FROM a\nCOPY <<EOF <<EOF2\nx\nEOF\ny\nEOF2\n",
        "COPY cannot accept a heredoc as a destination",
        2,
        "COPY",
    ),
    ("FROM a\nENV\n", "ENV requires at least one argument", 2, "ENV"),
    ("FROM a\nENV a\n", "ENV must have two arguments", 2, "ENV"),
    ("FROM a\nENV a=b c\n", """Syntax error - can't find = in "c". Must be""", 2, "ENV"),
    ("FROM a\nENV =b\n", "ENV names can not be blank", 2, "ENV"),
    ("FROM a\nLABEL\n", "LABEL requires at least one argument", 2, "LABEL"),
    ("FROM a\nLABEL a\n", "LABEL must have two arguments", 2, "LABEL"),
    ("FROM a\nARG\n", "ARG requires at least one argument", 2, "ARG"),
    ("FROM a\nARG =x\n", "ARG names can not be blank", 2, "ARG"),
    ("FROM a\nWORKDIR\n", "WORKDIR requires exactly one argument", 2, "WORKDIR"),
    ("FROM a\nUSER\n", "USER requires exactly one argument", 2, "USER"),
    ("FROM a\nSTOPSIGNAL\n", "STOPSIGNAL requires exactly one argument", 2, "STOPSIGNAL"),
    ("FROM a\nMAINTAINER\n", "MAINTAINER requires exactly one argument", 2, "MAINTAINER"),
    ("FROM a\nEXPOSE\n", "EXPOSE requires at least one argument", 2, "EXPOSE"),
    ("FROM a\nVOLUME\n", "VOLUME requires at least one argument", 2, "VOLUME"),
    ('FROM a\nVOLUME ["/a", " "]\n', "VOLUME specified can not be an empty string", 2, "VOLUME"),
    ("FROM a\nSHELL /bin/sh -c\n", "SHELL requires the arguments to be in JSON form", 2, "SHELL"),
    ("FROM a\nSHELL []\n", "SHELL requires at least one argument", 2, "SHELL"),
    ("FROM a\nHEALTHCHECK\n", "HEALTHCHECK requires at least one argument", 2, "HEALTHCHECK"),
    ("FROM a\nHEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments", 2, "HEALTHCHECK"),
    (
        "FROM a\nHEALTHCHECK CONNECT tcp\n",
        'Unknown type "CONNECT" in HEALTHCHECK (try CMD)',
        2,
        "HEALTHCHECK",
    ),
    ("FROM a\nHEALTHCHECK CMD\n", "Missing command after HEALTHCHECK CMD", 2, "HEALTHCHECK"),
    ("FROM a\nHEALTHCHECK CMD []\n", "Missing command after HEALTHCHECK CMD", 2, "HEALTHCHECK"),
    (
        "FROM a\nHEALTHCHECK --interval=5 CMD x\n",
        'time: missing unit in duration "5"',
        2,
        "HEALTHCHECK",
    ),
    (
        "FROM a\nHEALTHCHECK --timeout=5y CMD x\n",
        'time: unknown unit "y" in duration "5y"',
        2,
        "HEALTHCHECK",
    ),
    (
        "FROM a\nHEALTHCHECK --interval=1us CMD x\n",
        'Interval "interval" cannot be less than 1ms',
        2,
        "HEALTHCHECK",
    ),
    (
        "FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
        "--retries cannot be negative (-1)",
        2,
        "HEALTHCHECK",
    ),
    (
        "FROM a\nHEALTHCHECK --retries=x CMD x\n",
        'strconv.ParseInt: parsing "x": invalid syntax',
        2,
        "HEALTHCHECK",
    ),
    ("FROM a\nHEALTHCHECK --foo=1 CMD x\n", "unknown flag: foo", 2, "HEALTHCHECK"),
    ("FROM a\nONBUILD\n", "ONBUILD requires at least one argument", 2, "ONBUILD"),
    (
        "FROM a\nONBUILD ONBUILD RUN x\n",
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        2,
        "ONBUILD",
    ),
    ("FROM a\nONBUILD FROM b\n", "FROM isn't allowed as an ONBUILD trigger", 2, "ONBUILD"),
    (
        "FROM a\nONBUILD maintainer me\n",
        "MAINTAINER isn't allowed as an ONBUILD trigger",
        2,
        "ONBUILD",
    ),
    ("FROM a\nONBUILD FOO x\n", "unknown instruction: FOO", 2, "ONBUILD"),
    ("FROM a\nONBUILD COPY x\n", "COPY " + TWO_ARGS, 2, "ONBUILD"),
    # a bare RUN builds (BuildKit v0.11.6: /bin/sh -c ""); RUN [] does not
    ("FROM a\nRUN []\n", "RUN [] has no command (arguments are required)", 2, "RUN"),
    ("FROM a\nRUN --foo=bar x\n", "unknown flag: foo", 2, "RUN"),
    ("FROM a\nRUN --mout=type=cache x\n", "unknown flag: mout", 2, "RUN"),
    (
        "FROM a\nCOPY --link=maybe a b\n",
        "expecting boolean value for flag link, not: maybe",
        2,
        "COPY",
    ),
    ("FROM a\nCOPY --link= a b\n", "missing a value on flag: link", 2, "COPY"),
    ("FROM a\nCOPY --from a b\n", "missing a value on flag: from", 2, "COPY"),
    ("FROM a\nCOPY --from=x --from=y a b\n", "duplicate flag specified: from", 2, "COPY"),
    ("FROM a\nADD --from=x a b\n", "unknown flag: from", 2, "ADD"),
    ("FROM --platform a\n", "missing a value on flag: platform", 1, "FROM"),
    ("FROM a\nENV --x=1 a=b\n", "unknown flag: x", 2, "ENV"),
    ("FROM a\nWORKDIR --x /a\n", "unknown flag: x", 2, "WORKDIR"),
    ("FROM a\nCMD --help\n", "unknown flag: help", 2, "CMD"),
    ("# escape=x\nFROM a\n", "invalid escape token 'x' does not match ` or \\", 1, None),
    ("# escape=`\n# escape=`\nFROM a\n", "only one escape parser directive can be used", 2, None),
    ("FROM a\nRUN <<EOF\necho\n", "unterminated heredoc", 2, "RUN"),
    ("FROM a\nCOPY <<EOF /x\n", "unterminated heredoc", 2, "COPY"),
    ("FROM a\nRUN a \\\n  b\nBAD x\n", "unknown instruction: BAD", 4, None),
    ("FROM a\nCOPY \\\n  # comment\n  onlyone\n", "COPY " + TWO_ARGS, 2, "COPY"),
]


@pytest.mark.parametrize(("src", "message", "line", "instruction"), CASES)
def test_parse_error(src: str, message: str, line: int, instruction: str | None) -> None:
    with pytest.raises(DockerfileError) as info:
        parse(src)
    err = info.value
    assert message in err.message
    assert err.pos is not None
    assert err.pos.file == "Dockerfile"
    assert err.pos.line == line
    assert err.pos.end_line >= err.pos.line
    assert err.instruction == instruction
    assert err.source is not None
    text = err.format()
    assert text.startswith(f"Dockerfile:{line}: ")
    assert message in text


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_unknown_instruction_hint_and_source() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nRUNN echo hi\n", name="app/Dockerfile")
    err = info.value
    assert err.hint == "did you mean RUN?"
    assert err.source == "RUNN echo hi"
    assert err.format() == (
        "app/Dockerfile:2: unknown instruction: RUNN\n  | RUNN echo hi\nhint: did you mean RUN?"
    )


def test_unknown_flag_hints() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nRUN --mout=type=cache x\n")
    assert info.value.hint == "did you mean --mount?"
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nWORKDIR --x /a\n")
    assert info.value.hint == "WORKDIR takes no flags"


def test_multi_line_error_shows_all_lines() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nCOPY \\\n  # comment\n  onlyone\nRUN x\n")
    err = info.value
    assert err.pos is not None and (err.pos.line, err.pos.end_line) == (2, 4)
    assert err.source == "COPY \\\n  # comment\n  onlyone"
    assert err.hint and "COPY src /dest" in err.hint


def test_json_error_hint() -> None:
    with pytest.raises(DockerfileError) as info:
        parse('FROM a\nCMD ["a", 1]\n')
    assert info.value.hint is not None and "quote every element" in info.value.hint


def test_errors_come_in_file_order() -> None:
    # the bad instruction on line 2 is reported before the unterminated heredoc later on
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nFOO\nRUN <<EOF\n")
    assert info.value.message == "unknown instruction: FOO"
