"""runtime/network.py: the build's network namespace (real namespaces, in a forked child)."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from ocibuild.errors import OcibuildError
from ocibuild.runtime import network
from tests.conftest import in_child


def test_route_message_is_a_prohibit_route() -> None:
    msg = network.route_message("169.254.0.0/16", seq=7)
    length, kind, flags, seq, _pid = struct.unpack("IHHII", msg[:16])
    assert (length, kind, seq) == (len(msg), 24, 7)  # RTM_NEWROUTE
    assert flags & 1 and flags & 0x400  # NLM_F_REQUEST, NLM_F_CREATE
    family, dst_len, _, _, table, _, _, rtype, _ = struct.unpack("BBBBBBBBI", msg[16:28])
    assert (family, dst_len, table, rtype) == (socket.AF_INET, 16, 254, 8)  # RTN_PROHIBIT
    assert msg[-4:] == socket.inet_aton("169.254.0.0")


def test_slirp_command() -> None:
    argv = network.slirp_command("/s/netns", 5, 6)
    assert argv[0] == "slirp4netns" and argv[-2:] == ["/s/netns", "tap0"]
    for flag in ("--configure", "--disable-host-loopback", "--netns-type=path"):
        assert flag in argv
    assert "--ready-fd=5" in argv and "--exit-fd=6" in argv


def _needs_root_and_slirp() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network and mount namespaces)")
    if shutil.which("slirp4netns") is None:
        pytest.skip("slirp4netns is not installed (make setup installs it)")


def _bring_up(scratch: str) -> dict[str, object]:
    net = network.BuildNetwork(scratch)
    path = net.netns()
    assert net.netns() == path  # made once
    ip = shutil.which("ip") or "ip"
    show = subprocess.run(
        ["nsenter", f"--net={path}", ip, "-4", "-o", "addr"], capture_output=True, text=True
    )
    routes = subprocess.run(
        ["nsenter", f"--net={path}", ip, "route"], capture_output=True, text=True
    )
    net.close()
    return {"addr": show.stdout, "routes": routes.stdout, "gone": not os.path.exists(path)}


def test_build_network_up_and_down(tmp_path: Path) -> None:
    _needs_root_and_slirp()
    if shutil.which("nsenter") is None:
        pytest.skip("nsenter is not installed")
    out = in_child(_bring_up, str(tmp_path))
    assert "tap0" in str(out["addr"]) and "10.0.2.100/24" in str(out["addr"])
    assert "default via 10.0.2.2 dev tap0" in str(out["routes"])
    assert "prohibit 169.254.0.0/16" in str(out["routes"])
    assert out["gone"] is True  # the namespace file is unmounted and removed
    assert os.listdir(tmp_path) == []


def _without_slirp(scratch: str) -> str:
    os.environ["PATH"] = "/nonexistent"
    net = network.BuildNetwork(scratch)
    try:
        net.netns()
    except OcibuildError as exc:
        return f"{exc.message} | {exc.hint}"
    finally:
        net.close()
    return "no error"


def test_missing_slirp4netns_is_a_clear_error(tmp_path: Path) -> None:
    text = in_child(_without_slirp, str(tmp_path))
    assert "slirp4netns is not installed" in text and "--network=host" in text
