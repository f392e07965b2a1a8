"""What ocibuild remembers about registries, in ``ROOT/registry/meta.json``.

* ``refs``: ``host/repo:tag`` and ``host/repo@digest`` -> {"config", "manifest"}: a
  digest reference pulled once resolves locally (``--pull=missing``) without a tag;
* ``sources``: blob digest -> ``host/repo`` it was pulled from or pushed to (newest
  last, a few per blob): push offers a cross-repository mount from one of them;
* ``compressed``: ``diffID/compression`` -> the blob's digest, size and media type when
  ocibuild compressed a built layer: a later push asks the registry for that digest
  before compressing anything.

Rewritten atomically under ``ROOT/registry/lock``; losing it only costs speed.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ocibuild.fs.atomic import write_atomic
from ocibuild.image.model import JSON, canonical_json
from ocibuild.image.store import Store, open_lock_file, private_dir

_MAX_SOURCES = 8


class RegistryMeta:
    def __init__(self, store: Store) -> None:
        self.dir = os.path.join(store.root, "registry")
        private_dir(self.dir)
        self.file = os.path.join(self.dir, "meta.json")

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        fd = open_lock_file(os.path.join(self.dir, "lock"))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            yield data
            write_atomic(self.file, canonical_json(data), mode=0o600)
        finally:
            os.close(fd)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.file, "rb") as f:
                data: Any = json.load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _section(self, name: str) -> dict[str, Any]:
        section = self._read().get(name)
        return section if isinstance(section, dict) else {}

    # -- refs --------------------------------------------------------------------------
    def record_ref(self, refs: list[str], config: str, manifest: str) -> None:
        with self._locked() as data:
            section = data.setdefault("refs", {})
            for ref in refs:
                section[ref] = {"config": config, "manifest": manifest}

    def lookup_ref(self, ref: str) -> JSON | None:
        entry = self._section("refs").get(ref)
        return entry if isinstance(entry, dict) else None

    # -- blob sources ------------------------------------------------------------------
    def record_sources(self, digests: list[str], repo: str) -> None:
        with self._locked() as data:
            section = data.setdefault("sources", {})
            for digest in digests:
                repos = [r for r in section.get(digest, []) if r != repo] + [repo]
                section[digest] = repos[-_MAX_SOURCES:]

    def sources(self, digest: str) -> list[str]:
        repos = self._section("sources").get(digest, [])
        return [str(r) for r in repos] if isinstance(repos, list) else []

    # -- compressed blobs of built layers ----------------------------------------------
    def record_compressed(self, diff_id: str, compression: str, desc: JSON) -> None:
        with self._locked() as data:
            data.setdefault("compressed", {})[f"{diff_id}/{compression}"] = desc

    def compressed(self, diff_id: str, compression: str) -> JSON | None:
        entry = self._section("compressed").get(f"{diff_id}/{compression}")
        return entry if isinstance(entry, dict) else None
