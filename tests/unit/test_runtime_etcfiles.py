"""runtime/etcfiles.py and bundle.py: generated /etc files and config.json."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from ocibuild.runtime import bundle, etcfiles


def test_hosts_like_buildkit() -> None:
    assert etcfiles.hosts_content() == (
        "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    text = etcfiles.hosts_content("box", [("10.0.0.5", "db")])
    assert text.splitlines()[0] == "127.0.0.1\tlocalhost box"
    assert text.endswith("10.0.0.5\tdb\n")
    assert etcfiles.hostname_content("box") == "box\n"


def test_host_network_keeps_host_resolv_conf() -> None:
    host = "search lan\nnameserver 127.0.0.53\noptions edns0\n"
    assert etcfiles.resolv_conf_content(host, "host") == host


def test_isolated_network_drops_loopback_nameservers() -> None:
    host = "search lan\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nnameserver ::1\n"
    assert etcfiles.resolv_conf_content(host, "none") == "search lan\nnameserver 10.1.1.1\n"


def test_fallback_to_public_dns_when_none_remain() -> None:
    out = etcfiles.resolv_conf_content("search lan\nnameserver 127.0.0.1", "none")
    assert out == (
        "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        "nameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n"
    )
    # Host networking with no nameserver at all gets the same fallback (BuildKit).
    assert etcfiles.nameservers(etcfiles.resolv_conf_content("", "host"))[:2] == [
        "8.8.8.8",
        "8.8.4.4",
    ]


def test_private_network_uses_the_slirp_forwarder_only_when_needed() -> None:
    host = "search lan\nnameserver 127.0.0.53\nnameserver 10.1.1.1\n"
    assert etcfiles.resolv_conf_content(host, "private") == "search lan\nnameserver 10.1.1.1\n"
    loopback_only = "search lan\nnameserver 127.0.0.53\nnameserver ::1\n"
    out = etcfiles.resolv_conf_content(loopback_only, "private")
    assert out == "search lan\nnameserver 10.0.2.3\n"
    assert etcfiles.resolv_conf_content("", "private") == "nameserver 10.0.2.3\n"


def test_write_etc_files(tmp_path: Path) -> None:
    files = bundle.write_etc_files(str(tmp_path), hostname="h", host_resolv="nameserver 1.1.1.1\n")
    assert set(files) == {"/etc/hosts", "/etc/resolv.conf"}
    assert Path(files["/etc/resolv.conf"]).read_text() == "nameserver 1.1.1.1\n"
    assert "localhost h\n" in Path(files["/etc/hosts"]).read_text()
    assert stat.S_IMODE(os.stat(files["/etc/hosts"]).st_mode) == 0o644
    with_name = bundle.write_etc_files(str(tmp_path), include_hostname=True, host_resolv="")
    assert Path(with_name["/etc/hostname"]).read_text() == "buildkitsandbox\n"


def test_write_bundle_is_atomic_json(tmp_path: Path) -> None:
    path = bundle.write_bundle(str(tmp_path / "b"), {"ociVersion": "1.0.2", "z": 1, "a": 2})
    assert path == str(tmp_path / "b" / "config.json")
    assert json.loads(Path(path).read_text()) == {"ociVersion": "1.0.2", "z": 1, "a": 2}
    assert os.listdir(tmp_path / "b") == ["config.json"]  # no temp file left
    bundle.write_bundle(str(tmp_path / "b"), {"ociVersion": "1.0.2"})
    assert json.loads(Path(path).read_text()) == {"ociVersion": "1.0.2"}
