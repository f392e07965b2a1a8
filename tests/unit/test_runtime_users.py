"""runtime/users.py: USER resolution against the image's passwd/group (no privileges)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocibuild.errors import OcibuildError
from ocibuild.runtime.users import ResolvedUser, resolve_owner, resolve_user

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment
app:x:1000:1000:app:/home/app:/bin/sh
nohome:x:1001:1001::
broken line
"""
GROUP = """\
root:x:0:
app:x:1000:
staff:x:50:app,other
wheel:x:10: app
"""


@pytest.fixture
def root(tmp_path: Path) -> str:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return str(tmp_path)


# The primary gid always leads the supplementary gids: BuildKit v0.11.6 (observed: `id`
# in a RUN prints groups=GID,...; executor/oci/user.go ensureAdditionalGids).
@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", ResolvedUser(0, 0, (0,), "/", "root")),
        ("root", ResolvedUser(0, 0, (0,), "/root", "root")),
        ("app", ResolvedUser(1000, 1000, (1000, 50, 10), "/home/app", "app")),
        ("1000", ResolvedUser(1000, 1000, (1000, 50, 10), "/home/app", "app")),
        ("app:staff", ResolvedUser(1000, 50, (50,), "/home/app", "app")),
        ("app:50", ResolvedUser(1000, 50, (50,), "/home/app", "app")),
        ("app:77", ResolvedUser(1000, 77, (77,), "/home/app", "app")),
        ("1000:staff", ResolvedUser(1000, 50, (50,), "/home/app", "app")),
        ("1000:1000", ResolvedUser(1000, 1000, (1000,), "/", "1000")),
        ("root:root", ResolvedUser(0, 0, (0,), "/", "root")),
        ("4242", ResolvedUser(4242, 0, (0,), "/", "")),
        ("4242:staff", ResolvedUser(4242, 50, (50,), "/", "")),
        ("nohome", ResolvedUser(1001, 1001, (1001,), "/", "nohome")),
    ],
)
def test_forms(root: str, user: str, expected: ResolvedUser) -> None:
    assert resolve_user(root, user) == expected


def test_unknown_user_message(root: str) -> None:
    with pytest.raises(OcibuildError) as info:
        resolve_user(root, "ghost")
    assert info.value.message == "unable to find user ghost: no matching entries in passwd file"


def test_unknown_group_message(root: str) -> None:
    with pytest.raises(OcibuildError, match="unable to find group nogroup: no matching"):
        resolve_user(root, "app:nogroup")


@pytest.mark.parametrize("user", ["4294967295", "0:4294967295", "app:99999999999"])
def test_ids_out_of_range(root: str, user: str) -> None:
    with pytest.raises(OcibuildError, match="out of range"):
        resolve_user(root, user)


def test_missing_files(tmp_path: Path) -> None:
    assert resolve_user(str(tmp_path), "1234") == ResolvedUser(1234, 0, (0,), "/", "")
    with pytest.raises(OcibuildError, match="unable to find user app"):
        resolve_user(str(tmp_path), "app")


def test_symlinked_passwd_resolves_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    host = tmp_path / "host-passwd"
    host.write_text("evil:x:0:0::/:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to(str(host))
    with pytest.raises(OcibuildError, match="unable to find user evil"):
        resolve_user(str(root), "evil")
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("../../../../../../host-passwd")
    (root / "host-passwd").write_text("img:x:5:6::/img:/bin/sh\n")
    assert resolve_user(str(root), "img") == ResolvedUser(5, 6, (6,), "/img", "img")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("app", (1000, 1000)),
        ("1000", (1000, 1000)),
        ("root", (0, 0)),
        ("4242", (4242, 4242)),  # a numeric uid is also the gid (BuildKit's readUser)
        ("app:staff", (1000, 50)),
        ("4242:77", (4242, 77)),
        # names the image lacks (BuildKit's readUser, v0.11.6 and current): no error
        ("ghost", (0, 0)),  # an unknown user is uid 0, gid 0
        ("ghost:staff", (0, 50)),
        ("app:ghosts", (1000, 1000)),  # an unknown group keeps the user's gid
        ("4242:ghosts", (4242, 4242)),
        ("root:ghosts", (0, 0)),
        ("1000", (1000, 1000)),
    ],
)
def test_resolve_owner_file_op_rules(root: str, spec: str, expected: tuple[int, int]) -> None:
    assert resolve_owner(root, spec) == expected


def test_resolve_owner_names_by_name_only(root: str) -> None:
    """A user name is matched by name, never by uid: "1000" is numeric, "app" a name;
    a passwd file missing altogether makes every name uid 0."""
    assert resolve_owner(root, "nohome") == (1001, 1001)
    assert resolve_owner(root, "1001:wheel") == (1001, 10)
    assert resolve_owner(str(Path(root) / "etc"), "app:staff") == (0, 0)


def test_unknown_owner_names(root: str) -> None:
    from ocibuild.runtime.users import unknown_owner_names

    assert unknown_owner_names(root, "app:staff") == []
    assert unknown_owner_names(root, "1234:5") == []
    found = unknown_owner_names(root, "ghost:ghosts")
    assert [x.split()[1] for x in found] == ["'ghost'", "'ghosts'"]
