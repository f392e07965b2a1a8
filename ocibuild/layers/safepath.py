"""Path handling for archive members: names split safely, paths resolved inside a root."""

from __future__ import annotations

import os

from ocibuild.errors import LayerError
from ocibuild.fs.rootpath import secure_join


def split_member_name(name: str) -> list[str]:
    """The components of a tar member name, made relative; ``..`` raises LayerError.

    ``/a//b/./c/`` -> ``["a", "b", "c"]``; the archive root (``./``) gives ``[]``.
    """
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(
            f"archive entry {name!r} contains '..'",
            hint="the archive tries to write outside its destination; it is rejected",
        )
    return parts


def resolve_in_root(root: str, path: str) -> str:
    """The host path of ``path`` as seen from inside ``root`` (all symlinks resolved,
    missing components appended as they are); ELOOP becomes :class:`LayerError`.

    One resolver serves the whole project: :mod:`ocibuild.fs.rootpath`.
    """
    try:
        return secure_join(os.path.abspath(root), path)
    except OSError as e:
        raise LayerError(f"cannot resolve {path!r} in {root}: {e.strerror}") from e
