"""The installed ocibuild's version (``ocibuild --version``, build records)."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("ocibuild")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"
