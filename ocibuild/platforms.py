"""Target platforms: parsing (as containerd normalises them), this machine's platform, and
whether a platform's programs can run here (natively or through a binfmt_misc emulator).

With QEMU's user-mode emulators registered in binfmt_misc with the fix-binary flag (``F``,
as Debian's qemu-user-static and binfmt-support do), the kernel runs a foreign binary
through the emulator it opened at registration: nothing has to be bound into the rootfs,
and RUN works the same in every runtime (runc, crun, native chroot).
"""

from __future__ import annotations

import os
import re

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError

BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
_WORD = re.compile(r"[a-z0-9][a-z0-9._-]*")

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}

# GOARCH -> QEMU's name for the emulator (qemu-NAME in binfmt_misc)
QEMU_NAMES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "arm",
    "386": "i386",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64le": "mips64el",
    "mips64": "mips64",
    "loong64": "loongarch64",
}

# what a kernel of one architecture runs natively besides its own
_NATIVE_EXTRA = {"amd64": ("386",), "arm64": ("arm",)}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def descriptor(self) -> dict[str, str]:
        """The ``platform`` object of an index entry (and the config's fields)."""
        doc = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            doc["variant"] = self.variant
        return doc

    def args(self, prefix: str) -> dict[str, str]:
        """``TARGET``/``BUILD`` + PLATFORM, OS, ARCH, VARIANT, as BuildKit sets them."""
        return {
            f"{prefix}PLATFORM": str(self),
            f"{prefix}OS": self.os,
            f"{prefix}ARCH": self.architecture,
            f"{prefix}VARIANT": self.variant,
        }


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` (or just ``arch``) -> a normalised :class:`Platform`, as
    containerd's platforms.Normalize: x86_64 is amd64, aarch64 is arm64 (its v8 dropped),
    a bare arm is arm/v7."""
    raw = text.strip()
    parts = raw.lower().split("/")
    if len(parts) == 1 and parts[0]:
        parts = ["linux", parts[0]]
    if len(parts) not in (2, 3) or not all(_WORD.fullmatch(p) for p in parts):
        raise OcibuildError(
            f"invalid platform {text!r}", hint="write OS/ARCH[/VARIANT], e.g. linux/arm64"
        )
    os_, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else ""
    if arch == "armel":
        variant = variant or "v6"
    elif arch == "armhf":
        variant = variant or "v7"
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64" and variant in ("v8", "8"):
        variant = ""
    elif arch == "arm":
        variant = {"": "v7", "5": "v5", "6": "v6", "7": "v7", "8": "v8"}.get(variant, variant)
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(os_, arch, variant)


def parse_platforms(values: list[str] | tuple[str, ...]) -> list[Platform]:
    """``--platform`` values (repeatable, comma-separated) -> platforms, duplicates dropped."""
    out: list[Platform] = []
    for item in values:
        for word in item.split(","):
            if word.strip():
                plat = parse_platform(word)
                if plat not in out:
                    out.append(plat)
    return out


def host_platform() -> Platform:
    """This machine's platform (what BUILDPLATFORM says)."""
    machine = os.uname().machine.lower()
    arch = _ARCH_ALIASES.get(machine, machine)
    if machine.startswith("armv"):
        return Platform("linux", "arm", "v" + machine[4])
    return Platform("linux", arch)


@dataclass(frozen=True)
class Emulator:
    name: str  # the binfmt_misc entry (qemu-aarch64)
    interpreter: str
    enabled: bool
    fix_binary: bool


def find_emulator(arch: str, binfmt_dir: str = BINFMT_DIR) -> Emulator | None:
    """The binfmt_misc entry that runs ``arch`` (a GOARCH) binaries, if any is registered."""
    qemu = QEMU_NAMES.get(arch, arch)
    for name in (f"qemu-{qemu}", f"qemu-{qemu}-static", f"buildkit-qemu-{qemu}"):
        try:
            with open(os.path.join(binfmt_dir, name), encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        interpreter = ""
        flags = ""
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "interpreter":
                interpreter = value.strip()
            elif key == "flags:":
                flags = value.strip()
        return Emulator(name, interpreter, "enabled" in lines, "F" in flags)
    return None


def _in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _binfmt_mounted(binfmt_dir: str) -> bool:
    return os.path.exists(os.path.join(binfmt_dir, "register"))


def runnable_problem(target: Platform, binfmt_dir: str = BINFMT_DIR) -> tuple[str, str] | None:
    """None when ``target``'s programs run here; else (what is missing, how to fix it)."""
    host = host_platform()
    if target.os != "linux":
        return (
            f"platform {target}: only linux images can be built (RUN needs a Linux kernel)",
            "give a linux/ARCH platform",
        )
    if target.architecture == host.architecture or target.architecture in _NATIVE_EXTRA.get(
        host.architecture, ()
    ):
        return None
    if target.architecture not in QEMU_NAMES:
        return (
            f"platform {target}: unknown architecture {target.architecture!r}",
            "use one of: " + ", ".join(f"linux/{arch}" for arch in QEMU_NAMES),
        )
    qemu = QEMU_NAMES[target.architecture]
    install = (
        "install Debian's qemu-user-static and binfmt-support (apt-get install "
        "qemu-user-static binfmt-support), which register the emulators with the "
        "fix-binary flag"
    )
    if not _binfmt_mounted(binfmt_dir) and binfmt_dir == BINFMT_DIR and _in_user_namespace():
        # the rootless re-execution (ocibuild.isolation) has a /proc of its own without the
        # registry (mounting one here would make an empty registry for this namespace): the
        # check made before entering it (cli build) stands; the kernel still uses the
        # initial namespace's emulators here
        return None
    if not _binfmt_mounted(binfmt_dir):
        return (
            f"platform {target} needs the emulator qemu-{qemu}, but binfmt_misc is not "
            f"mounted at {binfmt_dir}",
            f"mount it (mount -t binfmt_misc binfmt_misc {binfmt_dir}), then "
            f"`update-binfmts --enable qemu-{qemu}`; if no emulator is installed, {install}",
        )
    emulator = find_emulator(target.architecture, binfmt_dir)
    if emulator is None:
        return (f"platform {target} needs the emulator qemu-{qemu}: none is registered", install)
    if not emulator.enabled:
        return (
            f"platform {target}: the emulator {emulator.name} is registered but disabled",
            f"enable it: update-binfmts --enable {emulator.name}",
        )
    if not emulator.fix_binary:
        return (
            f"platform {target}: the emulator {emulator.name} is registered without the "
            "fix-binary flag (F), so it cannot run inside a container's root",
            f"re-register it with flags F (Debian's qemu-user-static does: {install})",
        )
    return None


def check_runnable(target: Platform) -> None:
    """Raise a clear error when ``target``'s programs cannot run on this machine."""
    problem = runnable_problem(target)
    if problem is not None:
        raise OcibuildError(problem[0], hint=problem[1])


def platform_of(doc: dict[str, object]) -> Platform | None:
    """The normalised platform of an index entry's ``platform`` object (or of an image
    config's architecture/os/variant); None when it names none."""
    os_ = doc.get("os")
    arch = doc.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        return None
    variant = doc.get("variant")
    text = f"{os_}/{arch}" + (f"/{variant}" if isinstance(variant, str) and variant else "")
    try:
        return parse_platform(text)
    except OcibuildError:
        return None


def matches(doc: dict[str, object], wanted: Platform) -> bool:
    """True when ``doc`` (a descriptor's platform, or a config) is for ``wanted``."""
    have = platform_of(doc)
    if have is None:
        return False
    if have.os != wanted.os or have.architecture != wanted.architecture:
        return False
    return not wanted.variant or have.variant == wanted.variant
