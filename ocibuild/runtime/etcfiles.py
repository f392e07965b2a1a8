"""Contents of the /etc files a build step sees: hosts, resolv.conf, hostname.

Follows BuildKit (executor/oci/hosts.go, resolvconf.go): the hosts file names the sandbox
hostname on the 127.0.0.1 line; with host networking resolv.conf is the host's as is
(unless it lists no nameserver at all); otherwise loopback nameservers are dropped and,
when none remain, slirp4netns' DNS forwarder (the build's private network, ``private``)
or Docker's public fallbacks (``none``) are added. The text functions are pure;
:func:`host_resolv_conf` is the one reader of the host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

DEFAULT_HOSTNAME = "buildkitsandbox"

HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLVED_CONF = "/run/systemd/resolve/resolv.conf"

# Docker's libnetwork/resolvconf defaults when no usable nameserver remains.
DEFAULT_IPV4_DNS = ("8.8.8.8", "8.8.4.4")
DEFAULT_IPV6_DNS = ("2001:4860:4860::8888", "2001:4860:4860::8844")
SLIRP_DNS = "10.0.2.3"  # slirp4netns' forwarder to the host's resolvers

Network = Literal["host", "none", "private"]

_NAMESERVER = re.compile(r"^\s*nameserver\s+(\S+)\s*$", re.MULTILINE)
_LOCALHOST_NS = re.compile(
    r"^\s*nameserver\s*((127\.([0-9]{1,3}\.){2}[0-9]{1,3})|(::1))\s*$\n?", re.MULTILINE
)


def hosts_content(hostname: str = DEFAULT_HOSTNAME, extra: Sequence[tuple[str, str]] = ()) -> str:
    """/etc/hosts: localhost lines (with the hostname) plus ``(ip, host)`` extras."""
    text = f"127.0.0.1\tlocalhost {hostname or DEFAULT_HOSTNAME}\n"
    text += "::1\tlocalhost ip6-localhost ip6-loopback\n"
    for ip, host in extra:
        text += f"{ip}\t{host}\n"
    return text


def hostname_content(hostname: str = DEFAULT_HOSTNAME) -> str:
    return f"{hostname or DEFAULT_HOSTNAME}\n"


def nameservers(resolv: str) -> list[str]:
    return _NAMESERVER.findall(resolv)


def filter_resolv_conf(
    resolv: str, *, ipv6: bool = True, fallback: Sequence[str] | None = None
) -> str:
    """Docker's FilterResolvDNS: drop loopback nameservers, add ``fallback`` (default:
    Docker's public resolvers) if none remain."""
    text = _LOCALHOST_NS.sub("", resolv)
    if not nameservers(text):
        defaults = tuple(fallback) if fallback is not None else DEFAULT_IPV4_DNS
        if fallback is None and ipv6:
            defaults += DEFAULT_IPV6_DNS
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(f"nameserver {ns}\n" for ns in defaults)
    return text


def resolv_conf_content(host_resolv: str, network: Network = "host") -> str:
    """The step's resolv.conf from the host's text (BuildKit's GetResolvConf policy; the
    private network reaches the host's resolvers through slirp4netns' forwarder)."""
    if network == "host" and nameservers(host_resolv):
        return host_resolv
    if network == "private":
        return filter_resolv_conf(host_resolv, fallback=(SLIRP_DNS,))
    return filter_resolv_conf(host_resolv)


def _only_resolved_stub(text: str) -> bool:
    ns = nameservers(text)
    return bool(ns) and all(n == "127.0.0.53" for n in ns)


def host_resolv_conf(network: Network = "host") -> str:
    """Read the host's resolv.conf ("" when missing).

    Without host networking, a systemd-resolved stub (127.0.0.53 only) is replaced by the
    upstream list in /run/systemd/resolve/resolv.conf, as Docker does.
    """
    try:
        with open(HOST_RESOLV_CONF, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    if network != "host" and _only_resolved_stub(text):
        try:
            with open(SYSTEMD_RESOLVED_CONF, encoding="utf-8", errors="surrogateescape") as f:
                return f.read()
        except FileNotFoundError:
            pass
    return text
