"""Property tests over the untrusted-input readers: only our own errors come out."""

from __future__ import annotations

import io
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardening.fuzz import target_expand, target_ignore, target_layer, target_parser

KEYWORDS = [
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "LABEL",
    "ONBUILD",
    "HEALTHCHECK",
    "SHELL",
    "CMD",
    "ENTRYPOINT",
    "WORKDIR",
    "USER",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
]
PIECES = st.sampled_from(
    [
        *KEYWORDS,
        " ",
        "\\",
        "\n",
        "\\\n",
        "#",
        "<<EOF",
        "EOF",
        '"',
        "'",
        "[",
        "]",
        ",",
        "=",
        "$",
        "${",
        "}",
        ":-",
        "--from=",
        "--mount=type=",
        "# escape=`",
        "`",
        "\t",
        "\r\n",
        "\ufeff",
        "AS",
        "x",
        "/",
    ]
)
DOCKERFILE = st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=40).map("".join)
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(DOCKERFILE)
def test_parser_only_raises_dockerfile_errors(text: str) -> None:
    target_parser(text.encode("utf-8", "surrogateescape"))


@FAST
@given(
    st.lists(
        st.sampled_from(
            [
                "$",
                "{",
                "}",
                ":",
                "-",
                "+",
                "?",
                "#",
                "%",
                "/",
                "\\",
                "'",
                '"',
                "a",
                "X",
                "PWD",
                " ",
                "*",
                "`",
            ]
        ),
        max_size=30,
    ).map("".join)
)
def test_expander_only_raises_expansion_errors(word: str) -> None:
    target_expand(word.encode())


@FAST
@given(
    st.lists(
        st.sampled_from(["*", "**", "?", "[", "]", "!", "/", "a", "b", "\\", "^", "-", "\n", "."]),
        max_size=25,
    ).map("".join),
    st.lists(st.sampled_from(["a", "b", "/", "."]), max_size=8).map("".join),
)
def test_ignore_matching_never_crashes(patterns: str, path: str) -> None:
    target_ignore(f"{patterns}\0{path}".encode())


def _tar_of(names: list[tuple[str, int, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, link in names:
            info = tarfile.TarInfo(name)
            info.type = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE][kind]
            info.linkname = link
            tf.addfile(info, io.BytesIO(b"") if kind == 0 else None)
    return buf.getvalue()


NAME = st.lists(
    st.sampled_from(["a", "b", "..", ".", "/", ".wh.", ".wh..wh..opq", "c"]), min_size=1, max_size=6
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(NAME, st.integers(0, 3), NAME), max_size=8),
    st.binary(max_size=64),
    st.integers(0, 4096),
)
def test_layer_reader_only_raises_layer_errors(
    entries: list[tuple[str, int, str]], noise: bytes, cut: int
) -> None:
    data = _tar_of(entries)
    target_layer(data)
    target_layer(data[:cut] + noise)
