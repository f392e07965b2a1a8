"""The local content store: blobs, unpacked layers, tags.

```
ROOT/blobs/sha256/<hex>              configs, manifests, original compressed layer blobs
ROOT/layers/<diffid-hex>/diff/       a layer in overlay lower-dir form
ROOT/layers/<diffid-hex>/layer.json  {"diff_id", "size", "blob", "source_date_epoch"}
ROOT/images.json                     {"tags": {"name:tag": "sha256:<config digest>"},
                                      "indexes": {"name:tag": "sha256:<index record>"}}
ROOT/tmp/                            scratch on the same filesystem
ROOT/lock                            flock for images.json and gc
```

The store is private to its owner (root, or the rootless user under their home): ROOT
and the dirs ocibuild makes in it are 0700, lock files, logs, records and blobs 0600. A RUN
step can leave a setuid-root file in a cache mount or a kept failure, and a config or a
log can hold a build-arg or a printed secret: no other local user may reach any of it, nor
take ROOT/lock. A looser store (made by an older ocibuild) is tightened when opened.

Every write is atomic and durable (:mod:`ocibuild.fs.atomic`): blobs go temp file -> hash
while writing -> fsync -> rename -> fsync of the dir; a layer
dir is assembled in tmp/ and renamed into ``layers/`` in one step; ``images.json`` is
rewritten through a temp file under the lock. A blob or layer that already exists is kept
(content addressed: the new copy is identical). A multi-platform build's tags also name
an index record (a blob: ``{"mediaType": MT_PLATFORM_INDEX, "manifests": [{"image":
config digest, "platform": {...}}]}``): the platforms' images are kept (gc, rmi) while it
is tagged; re-tagging the name to one image drops the record. Layer trees are not fsynced
file by file (too slow for big layers); a crash can lose a just-committed layer's data, not corrupt
the metadata that names it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, BinaryIO

from ocibuild.errors import ImageNotFound, OcibuildError, StoreError
from ocibuild.fs.atomic import StagedFile, staged_file, unlink_quiet, write_atomic
from ocibuild.image.digest import hexpart, validate_digest
from ocibuild.image.model import JSON, ImageConfig, canonical_json

_CHUNK = 1 << 20
_TMP_PREFIX = "store-"
_ID_PREFIX = re.compile(r"[0-9a-f]{12,64}")
MT_PLATFORM_INDEX = "application/vnd.ocibuild.platform-index.v1+json"


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: str) -> str:
    """``mkdir -p`` of a store dir (its own mode 0700), a looser existing one tightened;
    returns ``path``. Missing parents above it get the usual modes."""
    with suppress(FileExistsError):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        os.mkdir(path, PRIVATE_DIR)
    st = os.stat(path)
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, PRIVATE_DIR)
    return path


def open_lock_file(path: str) -> int:
    """An fd on a lock file (created 0600; an older, looser one is tightened)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, PRIVATE_FILE)
    with suppress(OSError):
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_FILE)
    return fd


def _secure_root(root: str) -> None:
    """Create the store root 0700, or tighten a looser one (saying so on stderr, once:
    the next open finds it tight)."""
    try:
        os.makedirs(os.path.dirname(root) or "/", exist_ok=True)
        os.mkdir(root, PRIVATE_DIR)
        return
    except FileExistsError:
        pass
    st = os.stat(root)
    if not st.st_mode & 0o077:
        return
    old = stat.S_IMODE(st.st_mode)
    try:
        os.chmod(root, PRIVATE_DIR)
    except PermissionError:
        print(
            f"warning: the store {root} is mode {old:04o} (other users can reach it) "
            "and is not ours to tighten; chmod 700 it",
            file=sys.stderr,
        )
        return
    for name in ("blobs", "layers", "tmp", "builds", "cache", "cache-mounts", "registry"):
        with suppress(OSError):
            if os.lstat(os.path.join(root, name)).st_mode & 0o077:
                os.chmod(os.path.join(root, name), PRIVATE_DIR, follow_symlinks=False)
    print(
        f"ocibuild: the store {root} was mode {old:04o}, open to other users; "
        f"made it {PRIVATE_DIR:04o}",
        file=sys.stderr,
    )


def normalize_tag(name: str) -> str:
    """``name`` with ``:latest`` added when it has no tag (a ``host:port/`` is no tag)."""
    if not name or "@" in name or any(c.isspace() for c in name):
        raise StoreError(f"invalid image name {name!r}", hint="use NAME or NAME:TAG")
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


class Store:
    """A local image store rooted at ``root`` (created on first use)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.blobs = os.path.join(self.root, "blobs", "sha256")
        self.layers = os.path.join(self.root, "layers")
        self.tmp = os.path.join(self.root, "tmp")
        self.images_file = os.path.join(self.root, "images.json")
        self._gc_lock = os.path.join(self.root, "gc.lock")
        try:
            _secure_root(self.root)
        except OSError as e:
            raise StoreError(
                f"cannot open the store {self.root}: {e.strerror}",
                hint="pass --root (or set OCIBUILD_ROOT to) a directory you own",
            ) from None
        for path in (os.path.dirname(self.blobs), self.blobs, self.layers, self.tmp):
            if not os.path.isdir(path):
                private_dir(path)

    # -- locking and scratch ---------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive flock on ROOT/lock (not re-entrant)."""
        fd = open_lock_file(os.path.join(self.root, "lock"))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Held (shared) by every build, run, pull and push while it lives: ``gc`` only
        collects when nobody holds it, so it never removes a layer a build is about to
        use or a temp file a pull is writing. A dead holder's lock is free at once."""
        fd = open_lock_file(self._gc_lock)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def tmpdir(self, prefix: str = "tmp-") -> str:
        """A fresh directory in ROOT/tmp (same filesystem as the store)."""
        import tempfile  # (a store that is only read never needs it)

        return tempfile.mkdtemp(prefix=_TMP_PREFIX + prefix, dir=self.tmp)

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, hexpart(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.isfile(self.blob_path(digest))

    def read_blob(self, digest: str) -> bytes:
        try:
            with open(self.blob_path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None

    def put_blob(self, data: bytes) -> str:
        """Store ``data``; returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest):
            write_atomic(
                self.blob_path(digest),
                data,
                mode=PRIVATE_FILE,
                tmp_dir=self.tmp,
                prefix=_TMP_PREFIX + "blob-",
            )
        return digest

    def put_blob_stream(
        self, stream: BinaryIO, expected_digest: str | None = None
    ) -> tuple[str, int]:
        """Store a stream; (digest, size). A digest mismatch raises and leaves nothing."""
        with self._staged_blob() as staged:
            digest, size = self._stage_blob(staged, stream, expected_digest)
            staged.commit(self.blob_path(digest), replace=False)
        return digest, size

    def _staged_blob(self) -> AbstractContextManager[StagedFile]:
        """A temp file in ``tmp/`` that becomes a blob (fs/atomic.py: durable)."""
        return staged_file(self.tmp, mode=PRIVATE_FILE, prefix=_TMP_PREFIX + "blob-")

    @staticmethod
    def _stage_blob(staged: StagedFile, stream: BinaryIO, expected: str | None) -> tuple[str, int]:
        """Copy ``stream`` into ``staged`` while hashing it; (digest, size). A digest other
        than ``expected`` raises."""
        if expected is not None:
            validate_digest(expected)
        h = hashlib.sha256()
        size = 0
        while chunk := stream.read(_CHUNK):
            h.update(chunk)
            staged.file.write(chunk)
            size += len(chunk)
        staged.file.flush()
        digest = "sha256:" + h.hexdigest()
        if expected is not None and digest != expected:
            raise StoreError(
                f"digest mismatch: expected {expected}, content is {digest}",
                hint="the source is corrupt or was modified while being read",
            )
        return digest, size

    def remove_blob(self, digest: str) -> None:
        unlink_quiet(self.blob_path(digest))

    # -- layers ----------------------------------------------------------------------------
    def _layer_root(self, diff_id: str) -> str:
        return os.path.join(self.layers, hexpart(diff_id))

    def has_layer(self, diff_id: str) -> bool:
        return os.path.isfile(os.path.join(self._layer_root(diff_id), "layer.json"))

    def layer_dir(self, diff_id: str) -> str:
        """The ``diff`` dir (overlay lower-dir form) of a stored layer."""
        if not self.has_layer(diff_id):
            raise StoreError(
                f"layer {diff_id} is not in the store",
                hint="rebuild or re-import the image that uses it",
            )
        return os.path.join(self._layer_root(diff_id), "diff")

    def lower_dirs(self, diff_ids: Sequence[str]) -> list[str]:
        """The layers' dirs as overlay lower dirs, top-most first; a layer repeated lower
        down is shadowed, so it is dropped."""
        out: list[str] = []
        for diff_id in reversed(diff_ids):
            path = self.layer_dir(diff_id)
            if path not in out:
                out.append(path)
        return out

    def layer_info(self, diff_id: str) -> JSON:
        try:
            with open(os.path.join(self._layer_root(diff_id), "layer.json"), "rb") as f:
                info: JSON = json.load(f)
        except FileNotFoundError:
            raise StoreError(f"layer {diff_id} is not in the store") from None
        return info

    def commit_layer_dir(
        self,
        src_dir: str,
        diff_id: str,
        size: int,
        blob: JSON | None = None,
        *,
        source_date_epoch: int | None = None,
    ) -> str:
        """Move ``src_dir`` into the store as layer ``diff_id``; returns its ``diff`` path.

        ``source_date_epoch`` must be the value the diffID was computed with: export
        regenerates the tar with it. If the layer exists already, ``src_dir`` is removed.
        """
        final = self._layer_root(diff_id)
        if self.has_layer(diff_id):
            shutil.rmtree(src_dir, ignore_errors=True)
            return os.path.join(final, "diff")
        staging = self.tmpdir("layer-")
        try:
            try:
                os.rename(src_dir, os.path.join(staging, "diff"))
            except OSError as e:
                hint = "the store's tmp/ must be on the same filesystem as the upper dir"
                raise StoreError(f"cannot move {src_dir} into the store: {e}", hint=hint) from e
            info = {
                "diff_id": diff_id,
                "size": size,
                "blob": blob,
                "source_date_epoch": source_date_epoch,
            }
            write_atomic(
                os.path.join(staging, "layer.json"), canonical_json(info), mode=PRIVATE_FILE
            )
            try:
                os.rename(staging, final)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                shutil.rmtree(staging, ignore_errors=True)  # committed meanwhile by another
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return os.path.join(final, "diff")

    def import_layer_blob(self, stream: BinaryIO, media_type: str, expected_digest: str) -> str:
        """Store a compressed layer blob and unpack it as a layer; returns its diffID.

        All or nothing: on any failure neither the blob nor the layer is left behind.
        """
        staging = self.tmpdir("unpack-")
        published = False
        try:
            with self._staged_blob() as staged:
                digest, size = self._stage_blob(staged, stream, expected_digest)
                diff = os.path.join(staging, "diff")
                os.mkdir(diff)
                from ocibuild.layers.apply import unpack_layer  # tar + decompressors: lazily

                with open(staged.tmp, "rb") as f:
                    unpacked = unpack_layer(f, diff)
                if self.has_layer(unpacked.diff_id):
                    return unpacked.diff_id
                published = staged.commit(self.blob_path(digest), replace=False)
            blob = {"digest": digest, "mediaType": media_type, "size": size}
            self.commit_layer_dir(diff, unpacked.diff_id, unpacked.size, blob)
            return unpacked.diff_id
        except BaseException:
            if published:
                self.remove_blob(digest)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def remove_layer(self, diff_id: str) -> None:
        """Drop a layer (renamed away first, so a half-removed layer is never visible)."""
        path = self._layer_root(diff_id)
        if not os.path.isdir(path):
            return
        trash = self.tmpdir("trash-")
        os.rename(path, os.path.join(trash, "layer"))
        shutil.rmtree(trash, ignore_errors=True)

    # -- configs and tags ------------------------------------------------------------------
    def put_image(self, image: ImageConfig) -> str:
        """Store an image config (its canonical JSON); the digest is the image ID."""
        return self.put_blob(image.to_bytes())

    def get_image(self, config_digest: str) -> ImageConfig:
        """The image config ``config_digest`` as the model (:class:`ImageConfig`)."""
        config = self.get_config(config_digest)
        try:
            return ImageConfig.from_json(config)
        except ValueError as e:
            raise StoreError(f"image config {config_digest}: {e}") from None

    def get_config(self, config_digest: str) -> JSON:
        try:
            config: Any = json.loads(self.read_blob(config_digest))
        except StoreError:
            raise ImageNotFound(f"image {config_digest} is not in the store") from None
        except ValueError as e:
            raise StoreError(f"image config {config_digest} is not valid JSON: {e}") from e
        if not isinstance(config, dict):
            raise StoreError(f"image config {config_digest} is not a JSON object")
        return config

    def _read_doc(self) -> tuple[dict[str, str], dict[str, str]]:
        """images.json: (tags, indexes)."""
        try:
            with open(self.images_file, "rb") as f:
                data: Any = json.load(f)
        except FileNotFoundError:
            return {}, {}
        except ValueError as e:
            raise StoreError(f"{self.images_file} is corrupt: {e}") from e
        tags = data.get("tags") if isinstance(data, dict) else None
        if not isinstance(tags, dict):
            raise StoreError(f"{self.images_file} has no 'tags' object")
        indexes = data.get("indexes", {})
        if not isinstance(indexes, dict):
            raise StoreError(f"{self.images_file}: 'indexes' is not an object")
        return (
            {str(k): str(v) for k, v in tags.items()},
            {str(k): str(v) for k, v in indexes.items() if k in tags},
        )

    def _read_tags(self) -> dict[str, str]:
        return self._read_doc()[0]

    def _write_tags(self, tags: dict[str, str], indexes: dict[str, str] | None = None) -> None:
        """Rewrite images.json (caller holds the lock); index records of names no longer
        tagged are dropped; ``indexes`` None keeps the current ones."""
        if indexes is None:
            indexes = self._read_doc()[1]
        doc: dict[str, Any] = {"tags": tags}
        kept = {k: v for k, v in indexes.items() if k in tags}
        if kept:
            doc["indexes"] = kept
        write_atomic(self.images_file, canonical_json(doc) + b"\n",
                     mode=PRIVATE_FILE)  # fmt: skip

    # -- multi-platform index records ------------------------------------------------------
    def put_index(self, images: list[tuple[str, dict[str, str]]], names: list[str]) -> str:
        """Record the multi-platform image over ``images`` ((config digest, platform)
        each, all in the store) under ``names`` (which keep naming the image they name);
        returns the record's digest."""
        for config_digest, _ in images:
            if not self.has_blob(validate_digest(config_digest)):
                raise ImageNotFound(f"image {config_digest} is not in the store")
        record = {"mediaType": MT_PLATFORM_INDEX,
                  "manifests": [{"image": d, "platform": dict(p)} for d, p in images]}  # fmt: skip
        digest = self.put_blob(canonical_json(record))
        with self.lock():
            tags, indexes = self._read_doc()
            for name in names:
                key = normalize_tag(name)
                if key not in tags:
                    raise ImageNotFound(f"no image tagged {key!r}")
                indexes[key] = digest
            self._write_tags(tags, indexes)
        return digest

    def index_of(self, name: str) -> list[tuple[str, dict[str, str]]] | None:
        """The platforms' images ((config digest, platform) each) a multi-platform name
        records, or None when ``name`` names a single image (or is an ID)."""
        try:
            key = normalize_tag(name)
        except StoreError:
            return None
        digest = self._read_doc()[1].get(key)
        return None if digest is None else self._index_images(digest)

    def _index_images(self, digest: str) -> list[tuple[str, dict[str, str]]]:
        try:
            record: Any = json.loads(self.read_blob(digest))
            return [(str(m["image"]), dict(m["platform"])) for m in record["manifests"]]
        except (StoreError, ValueError, KeyError, TypeError) as e:
            raise StoreError(f"index record {digest} (in {self.images_file}) is unreadable: "
                             f"{e}") from e  # fmt: skip

    def indexes(self) -> dict[str, list[tuple[str, dict[str, str]]]]:
        """Every multi-platform name -> its platforms' images."""
        return {k: self._index_images(d) for k, d in self._read_doc()[1].items()}

    def _used_images(self) -> set[str]:
        """Config digests kept: tagged, or a platform of a tagged index (lock held)."""
        tags, indexes = self._read_doc()
        used = set(tags.values())
        for digest in set(indexes.values()):
            with suppress(OcibuildError):
                used.update(d for d, _ in self._index_images(digest))
        return used

    def tags(self) -> dict[str, str]:
        """All tags: ``name:tag`` -> config digest."""
        return self._read_tags()

    def tag(self, name: str, config_digest: str) -> None:
        """Point ``name`` at one image (a multi-platform record it had is dropped)."""
        validate_digest(config_digest)
        if not self.has_blob(config_digest):
            raise ImageNotFound(f"image {config_digest} is not in the store")
        with self.lock():
            tags, indexes = self._read_doc()
            key = normalize_tag(name)
            tags[key] = config_digest
            indexes.pop(key, None)
            self._write_tags(tags, indexes)

    def untag(self, name: str) -> str:
        """Remove one tag; returns the config digest it pointed to."""
        with self.lock():
            tags = self._read_tags()
            digest = tags.pop(normalize_tag(name), None)
            if digest is None:
                raise ImageNotFound(f"no image tagged {normalize_tag(name)!r}")
            self._write_tags(tags)
        return digest

    def resolve(self, name_or_id: str) -> str:
        """Config digest for a tag (``:latest`` by default), a full id or an id prefix."""
        if name_or_id.startswith("sha256:"):
            digest = validate_digest(name_or_id)
            if self.has_blob(digest):
                return digest
            raise ImageNotFound(f"no image with id {name_or_id}")
        tags = self._read_tags()
        try:
            tagged = tags.get(normalize_tag(name_or_id))
        except StoreError:
            tagged = None
        if tagged is not None:
            return tagged
        if _ID_PREFIX.fullmatch(name_or_id):
            if len(name_or_id) == 64 and self.has_blob("sha256:" + name_or_id):
                return "sha256:" + name_or_id
            found = {d for d in tags.values() if hexpart(d).startswith(name_or_id)}
            if len(found) == 1:
                return found.pop()
            if len(found) > 1:
                raise ImageNotFound(
                    f"image id prefix {name_or_id!r} is ambiguous",
                    hint="give more digits of the id",
                )
        raise ImageNotFound(
            f"no image {name_or_id!r} in the store",
            hint="'ocibuild images' lists the images; use NAME[:TAG], an id or id prefix "
            "(at least 12 hex digits)",
        )

    def list_images(self) -> list[tuple[list[str], str, str, int]]:
        """(tags, config digest, created, uncompressed size) per tagged image."""
        by_digest: dict[str, list[str]] = {}
        for name, digest in self._read_tags().items():
            by_digest.setdefault(digest, []).append(name)
        out = []
        for digest, names in by_digest.items():
            try:
                image = self.get_image(digest)
            except OcibuildError:
                continue
            size = 0
            for diff_id in image.diff_ids:
                with suppress(OcibuildError):
                    size += int(self.layer_info(diff_id).get("size") or 0)
            out.append((sorted(names), digest, image.created, size))
        out.sort(key=lambda item: item[0])
        return out

    def remove_image(self, name: str) -> str:
        """Untag ``name`` (all tags when it is an id); drop the config once untagged."""
        digest = self.resolve(name)
        with self.lock():
            tags = self._read_tags()
            try:
                key: str | None = normalize_tag(name)
            except StoreError:
                key = None
            if key in tags:
                del tags[key]
            else:
                tags = {k: v for k, v in tags.items() if v != digest}
            self._write_tags(tags)
            if digest not in self._used_images():
                self.remove_blob(digest)
        return digest

    def gc(self, *, tmp_age: float = 3600.0) -> list[str]:
        """Remove layers no tagged image uses (and their blobs); returns their diffIDs.

        Also removes store temp entries older than ``tmp_age`` seconds. Refuses (with
        StoreError) while anyone holds :meth:`in_use`.
        """
        removed = []
        gc_fd = open_lock_file(self._gc_lock)
        try:
            fcntl.flock(gc_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(gc_fd)
            raise StoreError(
                "the store is in use by a running build, run, pull or push: "
                "unused layers were not collected",
                hint="run `ocibuild prune --all` again when it has finished",
            ) from None
        try:
            with self.lock():
                used: set[str] = set()
                for digest in self._used_images():
                    try:
                        used.update(self.get_image(digest).diff_ids)
                    except OcibuildError:
                        continue
                for name in os.listdir(self.layers):
                    diff_id = "sha256:" + name
                    if diff_id in used or not _ID_PREFIX.fullmatch(name) or len(name) != 64:
                        continue
                    blob = None
                    with suppress(OcibuildError):
                        blob = (self.layer_info(diff_id).get("blob") or {}).get("digest")
                    self.remove_layer(diff_id)
                    if isinstance(blob, str):
                        self.remove_blob(validate_digest(blob))
                    removed.append(diff_id)
                now = time.time()
                for name in os.listdir(self.tmp):
                    path = os.path.join(self.tmp, name)
                    if name.startswith(_TMP_PREFIX) and now - os.lstat(path).st_mtime > tmp_age:
                        if os.path.isdir(path) and not os.path.islink(path):
                            shutil.rmtree(path, ignore_errors=True)
                        else:
                            unlink_quiet(path)
        finally:
            os.close(gc_fd)
        return sorted(removed)
