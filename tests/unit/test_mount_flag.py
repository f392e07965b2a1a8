"""RUN --mount: the one parser (fields at parse time, a typed spec after expansion)."""

from __future__ import annotations

import pytest

from ocibuild.dockerfile.mounts import parse_mount_flag, resolve_mount
from ocibuild.errors import DockerfileError


def test_fields_are_kept_unexpanded_and_from_is_found() -> None:
    flag = parse_mount_flag("type=bind,from=build,source=$S,ro")
    assert flag.fields == (("type", "bind"), ("from", "build"), ("source", "$S"), ("ro", None))
    assert flag.from_ == "build" and flag.from_refs == ("build",)


def test_resolve_expands_and_types() -> None:
    spec = resolve_mount(
        parse_mount_flag("type=cache,target=cache,id=$ID,mode=0700,uid=5,sharing=locked"),
        lambda w: "k" if w == "$ID" else w,
        "/work",
    )
    assert spec.type == "cache" and spec.target == "/work/cache" and spec.id == "k"
    assert (spec.mode, spec.uid, spec.sharing) == (0o700, 5, "locked")
    secret = resolve_mount(parse_mount_flag("type=secret,id=tok"), lambda w: w, "/")
    assert secret.target == "/run/secrets/tok" and not secret.required
    tmp = resolve_mount(parse_mount_flag("type=tmpfs,target=/t,size=64m"), lambda w: w, "/")
    assert tmp.size == 64 << 20


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("type=bogus,target=/x", "unsupported mount type 'bogus'"),
        ("type=cache", "mount type 'cache' requires a target"),
        ("type=bind,target=/x,Color=red", "unexpected key 'color' in 'Color=red'"),
        ("type=bind,target=/x,ro=maybe", "invalid value for ro: maybe"),
        ("type=cache,target=/x,sharing=all", "unsupported sharing value 'all'"),
        ("type=tmpfs,target=/x,source=a", "tmpfs mounts take no source or from"),
        ("type=bind,target", "invalid field 'target' must be a key=value pair"),
    ],
)
def test_invalid_mounts_are_refused_with_the_reason(raw: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        resolve_mount(parse_mount_flag(raw), lambda w: w, "/")
    assert info.value.message == message and info.value.pos is None
