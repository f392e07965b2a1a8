"""The installed ocibuild's version (``ocibuild --version``, build records).

Every build records the version, so it is read from the installed distribution's
``METADATA`` directly (a directory listing per ``sys.path`` entry and one small file):
``importlib.metadata`` costs tens of milliseconds of imports (email, zipfile, ...) per
start, a large part of a fully cached rebuild. It stays the fallback.
"""

from __future__ import annotations

import functools
import os
import sys

NAME = "ocibuild"


@functools.cache
def version() -> str:
    found = _from_dist_info()
    if found is not None:
        return found
    from importlib import metadata

    try:
        return metadata.version(NAME)
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


def _from_dist_info() -> str | None:
    """The ``Version:`` of the first ``ocibuild-*.dist-info`` on ``sys.path`` (the one
    importlib.metadata would find), or None."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not (name.startswith(NAME + "-") and name.endswith(".dist-info")):
                continue
            if name.split("-")[0].lower() != NAME:
                continue
            try:
                with open(os.path.join(entry, name, "METADATA"), encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("Version:"):
                            return line.split(":", 1)[1].strip()
                        if not line.strip():
                            break  # end of the headers
            except OSError:
                continue
    return None
