""".dockerignore matching, with moby/patternmatcher's own test tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocibuild.dockerfile.ignore import IgnoreMatcher, clean, find_ignore_file, load_patterns
from ocibuild.errors import DockerfileError


def matcher(*patterns: str) -> IgnoreMatcher:
    return IgnoreMatcher(load_patterns("\n".join(patterns)))


# patternmatcher's TestMatches (MatchesOrParentMatches): pattern, path, excluded
SINGLE = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "file/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**", "dir/file/", True),
    ("**/", "dir/file/", True),
    ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
]


@pytest.mark.parametrize(("pattern", "path", "excluded"), SINGLE)
def test_patternmatcher_table(pattern: str, path: str, excluded: bool) -> None:
    assert matcher(pattern).matches(path) is excluded


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["**", "!util/docker/web"], "util/docker/web/foo", False),
        (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
        (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3-py3-none-any.whl", False),
        (["*.go", "!fileutils.go"], "fileutils.go", False),
        (["!fileutils.go", "*.go"], "fileutils.go", True),
        (["docs", "!docs/README.md"], "docs/README.md", False),
        (["docs/", "!docs/README.md"], "docs/README.md", False),
        (["docs/*", "!docs/README.md"], "docs/README.md", False),
        (["docs", "!docs/README.md"], "docs/other.md", True),
        (["*"], "fileutils.go", True),
        ([], "any/path", False),
    ],
)
def test_last_match_wins(patterns: list[str], path: str, excluded: bool) -> None:
    assert matcher(*patterns).matches(path) is excluded


# Go's filepath.Match cases (patternmatcher's TestMatch): pattern, name, match, error
GO_MATCH = [
    ("abc", "abc", True, False),
    ("*", "abc", True, False),
    ("*c", "abc", True, False),
    ("a*", "a", True, False),
    ("a*", "abc", True, False),
    ("a*", "ab/c", True, False),
    ("a*/b", "abc/b", True, False),
    ("a*/b", "a/c/b", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False, False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True, False),
    ("a*b?c*x", "abxbbxdbxebxczzy", False, False),
    ("ab[c]", "abc", True, False),
    ("ab[^c]", "abc", False, False),
    ("ab[^e-g]", "abc", True, False),
    ("a\\*b", "ab", False, False),
    ("a?b", "a☺b", True, False),
    ("a???b", "a☺b", False, False),
    ("[a-ζ]*", "α", True, False),
    ("*[a-ζ]", "A", False, False),
    ("a?b", "a/b", False, False),
    ("a*b", "a/b", False, False),
    ("[\\]a]", "]", True, False),
    ("[\\-]", "-", True, False),
    ("[x\\-]", "-", True, False),
    ("[x\\-]", "z", False, False),
    ("[\\-x]", "a", False, False),
    ("[]a]", "]", False, True),
    ("[-]", "-", False, True),
    ("[x-]", "x", False, True),
    ("[-x]", "x", False, True),
    ("\\", "a", False, True),
    ("[a-b-c]", "a", False, True),
    ("[", "a", False, True),
    ("[^", "a", False, True),
    ("[^bc", "a", False, True),
    ("a[", "a", False, True),
    ("*x", "xxx", True, False),
]


@pytest.mark.parametrize(("pattern", "name", "match", "error"), GO_MATCH)
def test_go_filepath_match_table(pattern: str, name: str, match: bool, error: bool) -> None:
    if error:
        with pytest.raises(DockerfileError, match="syntax error in pattern"):
            load_patterns(pattern)
    else:
        assert matcher(pattern).matches(name) is match


def test_dockerignore_file_syntax() -> None:
    text = (
        "\ufeff# comment\r\n"
        "  # not a comment: leading blanks\n"
        "\n"
        "/abs/path\n"
        "./rel/path/\n"
        "  spaced  \n"
        "! keep/me\n"
        "a/../b\n"
    )
    patterns = load_patterns(text)
    assert [(p.pattern, p.exclusion, p.line) for p in patterns] == [
        ("# not a comment: leading blanks", False, 2),
        ("abs/path", False, 4),
        ("rel/path", False, 5),
        ("spaced", False, 6),
        ("keep/me", True, 7),
        ("b", False, 8),
    ]
    m = IgnoreMatcher(patterns)
    assert m.matches("abs/path/file")
    assert m.matches("/abs/path")
    assert m.matches("./rel/path/x/y")
    assert not m.matches("keep/me")
    assert m.matches("b/c")
    assert not m.matches(".")
    assert not m.matches("")


def test_lone_exclamation_is_an_error_with_position() -> None:
    with pytest.raises(DockerfileError) as info:
        load_patterns("a\n!\n", name="ctx/.dockerignore")
    err = info.value
    assert err.message == 'illegal exclusion pattern: "!"'
    assert err.pos is not None and (err.pos.file, err.pos.line) == ("ctx/.dockerignore", 2)
    assert "ctx/.dockerignore:2" in err.format()


def test_parent_directory_match_excludes_children() -> None:
    m = matcher("node_modules", "*/build")
    assert m.matches("node_modules/a/b/c.js")
    assert m.matches("pkg/build/out.o")
    assert not m.matches("pkg/src/build.c")


def test_could_include_children() -> None:
    m = matcher("docs", "!docs/keep.md", "vendor", "build/**", "!**/important", "cache", "*/tmp")
    assert m.could_include_children("docs")  # an exception reaches inside
    assert m.could_include_children("vendor")  # !**/important could match below
    assert m.could_include_children("src")  # not excluded at all
    assert m.could_include_children(".")
    m = matcher("vendor", "cache", "!docs/keep.md", "!src/*.go")
    assert not m.could_include_children("vendor")
    assert not m.could_include_children("cache/sub")
    assert m.could_include_children("docs")
    m = matcher("*", "!src")
    assert m.could_include_children("src")
    assert not m.could_include_children("other")
    m = matcher("*", "!*/keep")
    assert m.could_include_children("anything")


def test_clean_is_go_path_clean() -> None:
    assert clean("") == "."
    assert clean("a//b/./c/..") == "a/b"
    assert clean("//a") == "/a"
    assert clean("/../a") == "/a"
    assert clean("../../a") == "../../a"
    assert clean("a/") == "a"


def test_find_ignore_file(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dockerfile = tmp_path / "build" / "app.Dockerfile"
    dockerfile.parent.mkdir()
    dockerfile.write_text("FROM a\n")
    assert find_ignore_file(str(ctx), str(dockerfile)) is None
    (ctx / ".dockerignore").write_text("x\n")
    assert find_ignore_file(str(ctx), str(dockerfile)) == str(ctx / ".dockerignore")
    assert find_ignore_file(str(ctx)) == str(ctx / ".dockerignore")
    specific = tmp_path / "build" / "app.Dockerfile.dockerignore"
    specific.write_text("y\n")
    assert find_ignore_file(str(ctx), str(dockerfile)) == str(specific)
