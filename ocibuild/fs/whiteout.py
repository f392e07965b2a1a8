"""Whiteouts, opaque markers and which extended attributes travel in a layer (pure, no I/O).

Two forms of the same information exist:

* the OCI/AUFS *tar form*: a deleted ``X`` is an empty file ``.wh.X``; a directory whose
  lower contents are hidden holds an empty file ``.wh..wh..opq``;
* the overlayfs *lower/upper-dir form*: a deleted ``X`` is a character device 0/0 named
  ``X``; an opaque directory carries the xattr ``trusted.overlay.opaque=y`` (or
  ``user.overlay.opaque=y`` when mounted with ``userxattr``; fuse-overlayfs uses
  ``user.fuseoverlayfs.opaque``).

Extended attributes kept in layers (decision, following moby/containerd, whose tar writers
read only ``security.capability``, plus ``user.*`` which BuildKit's fsutil carries):

* ``security.capability`` (file capabilities; ``setcap`` in a RUN must survive);
* ``user.*`` except overlay's and fuse-overlayfs's internal ``user.overlay.*`` /
  ``user.fuseoverlayfs.*``.

Dropped: every other ``security.*`` (``security.selinux`` labels belong to the host policy,
``security.ima``/``security.evm`` signatures are host-specific), ``trusted.*`` (overlay
bookkeeping and other privileged metadata) and ``system.*`` (POSIX ACLs, which Docker and
containerd do not carry either).
"""

from __future__ import annotations

from typing import Final

WHITEOUT_PREFIX: Final = ".wh."
WHITEOUT_PREFIX_B: Final = b".wh."
OPAQUE_MARKER: Final = ".wh..wh..opq"
OPAQUE_MARKER_B: Final = b".wh..wh..opq"

OPAQUE_XATTR: Final = "trusted.overlay.opaque"
OPAQUE_XATTRS: Final = (
    "trusted.overlay.opaque",
    "user.overlay.opaque",
    "user.fuseoverlayfs.opaque",
)
# Kernel >= 6.7 may also express a whiteout as a regular file carrying this xattr.
WHITEOUT_XATTRS: Final = ("trusted.overlay.whiteout", "user.overlay.whiteout")

REDIRECT_XATTRS: Final = ("trusted.overlay.redirect", "user.overlay.redirect")
METACOPY_XATTRS: Final = ("trusted.overlay.metacopy", "user.overlay.metacopy")
UNSUPPORTED_XATTRS: Final = frozenset(REDIRECT_XATTRS + METACOPY_XATTRS)
UNSUPPORTED_MESSAGE: Final = (
    "upper dir uses redirect_dir/metacopy; mount overlay with redirect_dir=off,metacopy=off"
)

INTERNAL_PREFIXES: Final = ("trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.")
KEPT_SECURITY: Final = frozenset({"security.capability"})


def is_internal_xattr(name: str) -> bool:
    """True for overlayfs / fuse-overlayfs bookkeeping attributes."""
    return name.startswith(INTERNAL_PREFIXES)


def is_kept_xattr(name: str) -> bool:
    """True when the attribute is written into layer tars (see the module docstring)."""
    if name in KEPT_SECURITY:
        return True
    return name.startswith("user.") and not is_internal_xattr(name)


def is_opaque_value(value: bytes) -> bool:
    """Overlay treats only the value ``y`` as opaque (``x`` marks a merge-dir whiteout set)."""
    return value == b"y"


def is_whiteout_name(name: str) -> bool:
    """True for ``.wh.X`` and ``.wh..wh..opq`` base names."""
    return name.startswith(WHITEOUT_PREFIX)


def whiteout_name(name: str) -> str:
    """``X`` -> ``.wh.X``."""
    return WHITEOUT_PREFIX + name


def whiteout_target(name: str) -> str:
    """``.wh.X`` -> ``X`` (the caller has checked :func:`is_whiteout_name`)."""
    return name[len(WHITEOUT_PREFIX) :]


def is_whiteout_device(mode_is_chr: bool, rdev_major: int, rdev_minor: int) -> bool:
    """Overlay marks a deleted entry with a character device numbered 0/0."""
    return mode_is_chr and rdev_major == 0 and rdev_minor == 0
