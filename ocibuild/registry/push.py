"""Push an image from the local store to a registry.

Per layer (in parallel), cheapest first:

1. its blob digest is known without compressing anything: the original blob of a pulled
   or imported layer in the wanted compression, or a built layer ocibuild compressed
   before (``meta.compressed``) -> ``HEAD`` it; the registry has it: done;
2. a repository on the same registry is known to hold it -> cross-repository mount
   (``POST .../blobs/uploads/?mount=DIGEST&from=REPO``); 201: done, 202: upload into the
   session the registry opened;
3. otherwise the blob is made and uploaded at the same time (a built layer:
   ``write_tree`` -> ``DigestingSink`` (gzip on worker threads, both hashes on threads of
   their own) -> an in-memory pipe -> one chunked ``PATCH``, then ``PUT ?digest=`` once
   the digest is known; nothing is written to disk). When the registry does not take the
   streamed body, the blob is made into a temp file (``export_layer_blob``) and uploaded
   whole, with retries: ``POST``, then one ``PUT ...?digest=`` with the whole body.

Then the config, and the manifest last: a registry never shows a manifest whose blobs are
not all there. Built layers are compressed deterministically (see ``layers.compress``), so
the same image and compression always give the same manifest digest. A failed upload is
restarted from a fresh upload session (with backoff); blobs already pushed stay and are
skipped by the next attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import IO
from urllib.parse import quote

from ocibuild._record import dataclass, field
from ocibuild.errors import StoreError
from ocibuild.image.digest import hexpart, validate_digest
from ocibuild.image.layout import export_layer_blob, write_layer_blob
from ocibuild.image.model import (
    JSON,
    MT_OCI_CONFIG,
    MT_OCI_MANIFEST,
    canonical_json,
    descriptor,
    make_manifest,
)
from ocibuild.image.store import Store
from ocibuild.layers.compress import MEDIA_TYPES, Compression, compression_of_media_type
from ocibuild.registry.client import Client
from ocibuild.registry.errors import RegistryError, Unreachable
from ocibuild.registry.meta import RegistryMeta
from ocibuild.registry.progress import NoProgress, Progress, human_size
from ocibuild.registry.reference import Reference
from ocibuild.registry.transfer import RegistryOptions, connect, run_jobs, verify_bytes

_CHUNK = 1 << 20


@dataclass
class PushResult:
    reference: Reference
    manifest_digest: str
    manifest_size: int
    actions: dict[str, str] = field(default_factory=dict)  # blob digest -> what was done


class _ProgressReader:
    """A file body for requests: exact length, progress on every read."""

    def __init__(self, f: IO[bytes], size: int, progress: Progress, key: str) -> None:
        self._f = f
        self._size = size
        self._done = 0
        self._progress = progress
        self._key = key

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        # 1 MiB whatever the caller asks (http.client asks 8 KiB): fewer reads and sends
        data = self._f.read(_CHUNK if n is None or n < 0 else max(n, _CHUNK))
        self._done += len(data)
        self._progress.update(self._key, self._done)
        return data


class _Pipe:
    """The compressed bytes of one layer, from the thread making them to the upload, in
    memory: at most ``depth`` chunks wait (the maker blocks, nothing goes to disk). Once
    the upload gives up (:meth:`abandon`) the maker's writes are dropped so it can finish
    and report its digest or its error."""

    def __init__(self, depth: int = 16) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(depth)
        self._abandoned = threading.Event()
        self._opened = False

    def _put(self, item: bytes | None) -> None:
        while not self._abandoned.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def write(self, data: bytes | bytearray | memoryview) -> int:
        # DigestingSink hands out bytes it never touches again; anything else is copied
        self._put(data if isinstance(data, bytes) else bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """The end of the stream (the maker is done, or failed)."""
        self._put(None)

    def abandon(self) -> None:
        self._abandoned.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._q.get_nowait()

    def body(self, progress: Progress, key: str, cancel: threading.Event) -> Iterator[bytes]:
        """The chunks, as they come, for the one request that may read them: a resend
        (after a 401 or a retry) cannot replay a pipe and fails, the caller falls back."""
        if self._opened:
            raise RegistryError("the streamed upload cannot be sent twice")
        self._opened = True
        return self._chunks(progress, key, cancel)

    def _chunks(self, progress: Progress, key: str, cancel: threading.Event) -> Iterator[bytes]:
        done = 0
        while True:
            if cancel.is_set():
                raise RegistryError("push cancelled")
            try:
                chunk = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            if chunk is None:
                return
            done += len(chunk)
            progress.update(key, done)
            yield chunk


def _compression(name: str) -> Compression:
    if name not in MEDIA_TYPES:
        raise StoreError(f"unknown compression {name!r}", hint="use gzip, zstd or none")
    return name


class _Pusher:
    def __init__(
        self,
        store: Store,
        client: Client,
        ref: Reference,
        compression: Compression,
        progress: Progress,
    ) -> None:
        self.store = store
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.compression = compression
        self.progress = progress
        self.meta = RegistryMeta(store)
        self.scope = f"repository:{ref.path}:pull,push"
        self.actions: dict[str, str] = {}
        self._lock = threading.Lock()

    def _done(self, digest: str, key: str, action: str) -> None:
        with self._lock:
            self.actions[digest] = action
        self.progress.end(key, action)

    def exists(self, digest: str) -> bool:
        resp = self.client.request(
            "HEAD",
            f"{self.repo}/blobs/{digest}",
            scope=self.scope,
            what=f"blob {digest}",
            expect=(200, 404),
        )
        resp.close()
        return resp.status_code == 200

    def mount(self, digest: str) -> tuple[str | None, str | None]:
        """(source repo, None) when mounted; (None, upload URL) when the registry
        opened an upload instead; (None, None) when there is nothing to mount from."""
        prefix = self.ref.domain + "/"
        for source in reversed(self.meta.sources(digest)):
            if not source.startswith(prefix) or source == self.ref.name:
                continue
            src_repo = source[len(prefix) :]
            resp = self.client.request(
                "POST",
                f"{self.repo}/blobs/uploads/?mount={quote(digest)}&from={quote(src_repo)}",
                scope=self.scope,
                what=f"mount of {digest} from {src_repo}",
                expect=(201, 202),
            )
            resp.close()
            if resp.status_code == 201:
                return src_repo, None
            return None, self.client.location(resp)
        return None, None

    def upload(self, digest: str, size: int, src: str | bytes, key: str, url: str | None) -> None:
        attempt = 0
        while True:
            try:
                self._upload_once(digest, size, src, key, url)
                return
            except Unreachable as e:
                if attempt >= self.client.retries:
                    raise
                self.client.retrying(f"uploading {digest[:19]}: {e.message}", attempt)
                time.sleep(self.client.backoff * 2**attempt)
                attempt += 1
                url = None  # the old session may hold part of the body: start afresh

    def _upload_once(
        self, digest: str, size: int, src: str | bytes, key: str, url: str | None
    ) -> None:
        what = f"upload of {digest}"
        if url is None:
            resp = self.client.request(
                "POST",
                f"{self.repo}/blobs/uploads/",
                scope=self.scope,
                what=what,
                expect=(202,),
                retry=False,
            )
            resp.close()
            url = self.client.location(resp)
        put = url + ("&" if "?" in url else "?") + "digest=" + quote(digest)
        headers = {"Content-Type": "application/octet-stream"}
        opened: list[IO[bytes]] = []

        def reader() -> _ProgressReader:  # a fresh reader per attempt (a 401 resends)
            assert not isinstance(src, bytes)
            f = open(src, "rb")  # noqa: SIM115 - closed below
            opened.append(f)
            return _ProgressReader(f, size, self.progress, key)

        try:
            resp = self.client.request(
                "PUT",
                put,
                scope=self.scope,
                what=what,
                headers=headers,
                body=src if isinstance(src, bytes) else reader,
                expect=(201,),
                retry=False,
            )
        finally:
            for f in opened:
                f.close()
        resp.close()

    def layer(self, diff_id: str, cancel: threading.Event) -> JSON:
        info = self.store.layer_info(diff_id)
        blob = info.get("blob")
        media = MEDIA_TYPES[self.compression]
        known: JSON | None = None
        path: str | None = None
        if (
            isinstance(blob, dict)
            and self.store.has_blob(str(blob.get("digest")))
            and compression_of_media_type(str(blob.get("mediaType", ""))) == self.compression
        ):
            digest = validate_digest(str(blob["digest"]))
            path = self.store.blob_path(digest)
            known = descriptor(media, digest, os.path.getsize(path))
        if known is None:
            known = self.meta.compressed(diff_id, self.compression)
        key = diff_id
        label = diff_id[7:19]
        tmp: str | None = None
        try:
            if known is not None:
                self.progress.begin(key, label, int(known["size"]))
                if self._skip(known, key):
                    return known
            if path is None:
                # no blob file to send (a built layer, or another compression):
                # compress and upload at the same time
                streamed = self._stream(diff_id, key, label, known, cancel)
                if streamed is not None:
                    return streamed
                if cancel.is_set():  # another layer failed: no second try
                    raise RegistryError("push cancelled")
                # the registry did not take the streamed body: make the blob, then
                # upload it whole (with retries)
                tmp = self.store.tmpdir("push-")
                made = export_layer_blob(self.store, diff_id, tmp, self.compression)
                path = os.path.join(tmp, hexpart(str(made["digest"])))
                if known is None or made["digest"] != known["digest"]:
                    known = made
                    self.progress.begin(key, label, int(made["size"]))
                    if self._skip(made, key):
                        return made
            if cancel.is_set():
                raise RegistryError("push cancelled")
            if known is None:  # path is a store blob only when known was set with it
                raise StoreError(f"layer {diff_id}: no blob to push")
            digest, size = str(known["digest"]), int(known["size"])
            _, url = self.mount(digest)
            self.upload(digest, size, path, key, url)
            self._done(digest, key, f"uploaded ({human_size(size)})")
            return known
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def _stream(
        self, diff_id: str, key: str, label: str, known: JSON | None, cancel: threading.Event
    ) -> JSON | None:
        """Upload the layer's blob while it is being made: ``write_layer_blob`` writes it
        into a :class:`_Pipe` on one thread, and one ``PATCH`` sends what comes out of the
        pipe (chunked), then ``PUT ?digest=`` closes the upload once the digest is known
        and the content checked. The descriptor, or None when the registry did not take
        the streamed body (the caller then makes the blob first and uploads it whole,
        with retries)."""
        made: list[JSON] = []
        failed: list[BaseException] = []
        pipe = _Pipe()

        def export() -> None:
            try:
                made.append(write_layer_blob(self.store, diff_id, pipe, self.compression))
            except BaseException as exc:  # re-raised in the pushing thread
                failed.append(exc)
            finally:
                pipe.close()

        worker = threading.Thread(target=export, name=f"compress-{label}", daemon=True)
        worker.start()
        if known is None:
            self.progress.begin(key, label, 0)
        url: str | None = None
        try:
            resp = self.client.request(
                "POST",
                f"{self.repo}/blobs/uploads/",
                scope=self.scope,
                what=f"upload of layer {label}",
                expect=(202,),
                retry=False,
            )
            resp.close()
            url = self.client.location(resp)
            resp = self.client.request(
                "PATCH",
                url,
                scope=self.scope,
                what=f"upload of layer {label}",
                headers={"Content-Type": "application/octet-stream"},
                body=lambda: pipe.body(self.progress, key, cancel),
                expect=(202,),
                retry=False,
            )
            resp.close()
            url = self.client.location(resp)
        except (RegistryError, OSError):
            pipe.abandon()
            self._drop_upload(url)
            url = None
        worker.join()
        if failed:
            self._drop_upload(url)
            raise failed[0]
        desc = made[0]
        self.meta.record_compressed(diff_id, self.compression, desc)
        if url is None:
            return None
        digest = str(desc["digest"])
        resp = self.client.request(
            "PUT",
            url + ("&" if "?" in url else "?") + "digest=" + quote(digest),
            scope=self.scope,
            what=f"upload of {digest}",
            headers={"Content-Type": "application/octet-stream"},
            body=b"",
            expect=(201,),
            retry=False,
        )
        resp.close()
        self._done(digest, key, f"uploaded while compressing ({human_size(int(desc['size']))})")
        return desc

    def _drop_upload(self, url: str | None) -> None:
        """Cancel an upload session that will not be completed (best effort)."""
        if url is None:
            return
        with contextlib.suppress(RegistryError, OSError):
            self.client.request(
                "DELETE", url, scope=self.scope, what="upload", expect=(204, 404), retry=False
            ).close()

    def _skip(self, desc: JSON, key: str) -> bool:
        digest = str(desc["digest"])
        if self.exists(digest):
            self._done(digest, key, "already in the registry")
            return True
        source, url = self.mount(digest)
        if source is not None:
            self._done(digest, key, f"mounted from {source}")
            return True
        if url is not None:  # the registry opened an upload: do not leave it dangling
            self.client.request(
                "DELETE", url, scope=self.scope, what="upload", expect=(204, 404), retry=False
            ).close()
        return False

    def small(self, data: bytes, digest: str, key: str) -> None:
        self.progress.begin(key, key, len(data))
        if self.exists(digest):
            self._done(digest, key, "already in the registry")
            return
        self.upload(digest, len(data), data, key, None)
        self._done(digest, key, "uploaded")


def push(
    store: Store,
    image_id: str,
    ref: Reference,
    *,
    compression: str = "gzip",
    ropts: RegistryOptions | None = None,
    progress: Progress | None = None,
) -> PushResult:
    """Push the image ``image_id`` (config digest) as ``ref`` (a tag; ``latest`` if none)."""
    with store.in_use():  # its layers stay while their tars are regenerated and sent
        return _push(store, image_id, ref, compression=compression, ropts=ropts, progress=progress)


def put_manifest(client: Client, ref: Reference, body: bytes, media_type: str, what: str) -> str:
    """PUT ``body`` (a manifest or an image index, ``what`` names it in messages) under
    ``ref``'s tag; returns its digest, checked against the one the registry answers."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    resp = client.request(
        "PUT",
        f"{ref.path}/manifests/{ref.tag}",
        scope=f"repository:{ref.path}:pull,push",
        what=f"{what} {ref.familiar()}",
        headers={"Content-Type": media_type},
        body=body,
        expect=(201,),
    )
    resp.close()
    answered = resp.headers.get("Docker-Content-Digest")
    if answered and answered != digest:
        raise RegistryError(
            f"{client.host} stored the {what} of {ref.familiar()} as {answered}, "
            f"ocibuild sent {digest}"
        )
    return digest


def _push(
    store: Store,
    image_id: str,
    ref: Reference,
    *,
    compression: str,
    ropts: RegistryOptions | None,
    progress: Progress | None,
) -> PushResult:
    if ref.digest:
        raise RegistryError(
            f"cannot push to a digest reference {ref.familiar()}",
            hint="push to NAME:TAG; the registry computes the digest",
        )
    ref = ref if ref.tag else ref.with_tag("latest")
    ropts = ropts or RegistryOptions()
    progress = progress or NoProgress()
    kind = _compression(compression)
    config_bytes = store.read_blob(image_id)
    verify_bytes(config_bytes, image_id, None, f"image config {image_id} in the store")
    diff_ids = store.get_image(image_id).diff_ids
    for diff_id in diff_ids:
        store.layer_dir(diff_id)  # every layer present before anything is sent
    client = connect(ref, ropts)
    client.on_retry = progress.note
    pusher = _Pusher(store, client, ref, kind, progress)
    progress.note(f"pushing {ref.familiar()}: {len(diff_ids)} layers ({compression})")
    tasks: list[Callable[[threading.Event], JSON | None]] = [
        partial(pusher.layer, d) for d in diff_ids
    ]
    tasks.append(lambda _cancel: pusher.small(config_bytes, image_id, "config"))
    layer_descs = [d for d in run_jobs(tasks, ropts.jobs) if d is not None]  # config: None
    manifest = make_manifest(descriptor(MT_OCI_CONFIG, image_id, len(config_bytes)), layer_descs)
    manifest_bytes = canonical_json(manifest)
    manifest_digest = put_manifest(client, ref, manifest_bytes, MT_OCI_MANIFEST, "manifest")
    digests = [str(d["digest"]) for d in layer_descs] + [image_id]
    pusher.meta.record_sources(digests, ref.name)
    pusher.meta.record_ref([str(ref), f"{ref.name}@{manifest_digest}"], image_id, manifest_digest)
    progress.note(f"pushed {ref.familiar()}@{manifest_digest}")
    return PushResult(ref, manifest_digest, len(manifest_bytes), dict(pusher.actions))
