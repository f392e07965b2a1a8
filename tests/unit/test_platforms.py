"""Platform names (normalised as containerd does), the predefined ARGs a plan carries,
and the binfmt_misc check, read from a registry directory laid out as the kernel's."""

from __future__ import annotations

import platform as _platform
from pathlib import Path

import pytest

from ocibuild.dockerfile.parser import parse
from ocibuild.errors import OcibuildError
from ocibuild.plan import make_plan
from ocibuild.platforms import (
    Platform,
    host_platform,
    matches,
    parse_platform,
    parse_platforms,
    runnable_problem,
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/amd64/v1", Platform("linux", "amd64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("arm64", Platform("linux", "arm64")),
        ("Linux/ARM64", Platform("linux", "arm64")),
    ],
)
def test_platform_names_are_normalised(text: str, want: Platform) -> None:
    assert parse_platform(text) == want


@pytest.mark.parametrize(
    "text", ["", "linux/", "/amd64", "a/b/c/d", "linux/..", "linux/a b", "linux/arm64/../x"]
)
def test_a_bad_platform_is_a_clear_error(text: str) -> None:
    with pytest.raises(OcibuildError, match="invalid platform") as info:
        parse_platform(text)
    assert info.value.hint is not None and "OS/ARCH" in info.value.hint


def test_platform_lists_split_on_commas_and_drop_duplicates() -> None:
    got = parse_platforms(["linux/amd64,linux/arm64", "linux/aarch64", " linux/arm/v7 "])
    assert [str(p) for p in got] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]


def test_descriptor_matching_normalises_both_sides() -> None:
    assert matches(
        {"os": "linux", "architecture": "arm64", "variant": "v8"}, Platform("linux", "arm64")
    )
    assert matches(
        {"os": "linux", "architecture": "arm", "variant": "v7"}, Platform("linux", "arm", "v7")
    )
    assert not matches(
        {"os": "linux", "architecture": "arm", "variant": "v6"}, Platform("linux", "arm", "v7")
    )
    assert not matches({"os": "linux", "architecture": "amd64"}, Platform("linux", "arm64"))
    assert not matches({}, Platform("linux", "amd64"))


def test_plan_carries_target_and_build_platform_args() -> None:
    df = parse("ARG G=$TARGETARCH-$BUILDARCH\nFROM --platform=$BUILDPLATFORM scratch\n")
    plan = make_plan(df, {}, platform=Platform("linux", "arm", "v7"))
    host = host_platform()
    assert plan.platform_args["TARGETPLATFORM"] == "linux/arm/v7"
    assert (plan.platform_args["TARGETARCH"], plan.platform_args["TARGETVARIANT"]) == ("arm", "v7")
    assert plan.platform_args["BUILDPLATFORM"] == str(host)
    assert plan.global_args["G"] == f"arm-{host.architecture}"
    native = make_plan(df, {})
    assert native.platform_args["TARGETPLATFORM"] == str(host)


def _binfmt(tmp_path: Path, entries: dict[str, str]) -> Path:
    (tmp_path / "register").write_text("")
    (tmp_path / "status").write_text("enabled\n")
    for name, text in entries.items():
        (tmp_path / name).write_text(text)
    return tmp_path


QEMU_ENTRY = (
    "{state}\ninterpreter /usr/libexec/qemu-binfmt/riscv64-binfmt-P\nflags: {flags}\n"
    "offset 0\nmagic 7f454c46\nmask ffffffff\n"
)


@pytest.mark.skipif(_platform.machine() != "x86_64", reason="an amd64 host is assumed")
def test_emulator_checks(tmp_path: Path) -> None:
    target = Platform("linux", "riscv64")
    assert runnable_problem(Platform("linux", "amd64"), str(tmp_path / "none")) is None
    assert runnable_problem(Platform("linux", "386"), str(tmp_path / "none")) is None
    problem = runnable_problem(target, str(tmp_path / "none"))
    assert problem is not None and "binfmt_misc is not mounted" in problem[0]
    assert "mount -t binfmt_misc" in problem[1]
    (tmp_path / "e").mkdir()
    empty = _binfmt(tmp_path / "e", {})
    problem = runnable_problem(target, str(empty))
    assert problem == (
        "platform linux/riscv64 needs the emulator qemu-riscv64: none is registered",
        problem[1],
    )
    assert "qemu-user-static" in problem[1]
    (tmp_path / "d").mkdir()
    disabled = _binfmt(
        tmp_path / "d", {"qemu-riscv64": QEMU_ENTRY.format(state="disabled", flags="P")}
    )
    problem = runnable_problem(target, str(disabled))
    assert problem is not None and "disabled" in problem[0]
    assert problem[1] == "enable it: update-binfmts --enable qemu-riscv64"
    (tmp_path / "p").mkdir()
    no_fix = _binfmt(
        tmp_path / "p", {"qemu-riscv64": QEMU_ENTRY.format(state="enabled", flags="P")}
    )
    problem = runnable_problem(target, str(no_fix))
    assert problem is not None and "fix-binary" in problem[0]
    (tmp_path / "f").mkdir()
    good = _binfmt(tmp_path / "f", {"qemu-riscv64": QEMU_ENTRY.format(state="enabled", flags="PF")})
    assert runnable_problem(target, str(good)) is None
    problem = runnable_problem(Platform("windows", "amd64"), str(good))
    assert problem is not None and "only linux images" in problem[0]


def test_a_build_arg_overrides_a_predefined_arg_in_global_scope() -> None:
    # BuildKit v0.11.6 (observed, --build-arg TARGETARCH=foo): `ARG G=$TARGETARCH` -> foo;
    # the target platform itself is unchanged
    df = parse("ARG G=$TARGETARCH\nFROM scratch\n")
    plan = make_plan(df, {"TARGETARCH": "foo"}, platform=Platform("linux", "arm64"))
    assert plan.global_args["G"] == "foo"
    assert plan.platform_args["TARGETARCH"] == "arm64"
