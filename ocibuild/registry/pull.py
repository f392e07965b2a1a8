"""Pull an image from a registry into the local store.

1. Resolve the manifest (an index / manifest list picks the wanted platform, default
   linux/amd64); a reference by digest is verified against the bytes received.
2. Fetch the config (size and digest verified).
3. Layers whose diffID the store has are skipped. The others download in parallel, each
   streamed to ``ROOT/registry/downloads/.part-*`` while its size and sha256 are checked
   (a body longer than the descriptor says is cut off at once); a verified blob is renamed
   to its digest there, then unpacked into the store (``Store.import_layer_blob``, which
   keeps the original compressed blob so a re-push is byte-identical). A connection that
   drops mid-blob resumes with a ``Range`` request; a pull that was interrupted resumes
   from the blobs that are complete (unpacked layers, or verified downloads).
4. Only then the config goes into the store and the name is tagged: a failed pull leaves
   no image behind (complete, verified layers stay as cache; ``gc`` drops them).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from functools import partial
from typing import Any

import requests
import urllib3.exceptions

from ocibuild._record import dataclass
from ocibuild.errors import ImageNotFound, OcibuildError, StoreError
from ocibuild.fs.atomic import staged_file, unlink_quiet
from ocibuild.image.digest import hexpart, validate_digest
from ocibuild.image.model import (
    INDEX_TYPES,
    JSON,
    LAYER_TYPES,
    MANIFEST_TYPES,
    ImageConfig,
)
from ocibuild.image.store import Store
from ocibuild.registry.client import Client, reason
from ocibuild.registry.errors import DigestMismatch, RegistryError
from ocibuild.registry.meta import RegistryMeta
from ocibuild.registry.progress import NoProgress, Progress, human_size
from ocibuild.registry.reference import Reference
from ocibuild.registry.transfer import (
    MANIFEST_ACCEPT,
    MAX_CONFIG,
    MAX_MANIFEST,
    Cancelled,
    RegistryOptions,
    check_free_space,
    connect,
    descriptor_size,
    read_limited,
    run_jobs,
    verify_bytes,
)

_CHUNK = 1 << 20
_STALE_PART = 3600.0
_STREAM_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class PullResult:
    reference: Reference
    image_id: str  # config digest
    manifest_digest: str
    layers: int
    fetched: int  # layers downloaded this time
    fetched_bytes: int


def parse_platform(text: str | None) -> tuple[str, str, str | None]:
    """``linux/amd64[/variant]`` -> (os, architecture, variant)."""
    if not text:
        return "linux", "amd64", None
    parts = text.split("/")
    if len(parts) == 1:
        return "linux", parts[0], None
    if len(parts) in (2, 3) and all(parts):
        return parts[0], parts[1], parts[2] if len(parts) == 3 else None
    raise OcibuildError(f"invalid platform {text!r}", hint="write OS/ARCH[/VARIANT]")


def _matches(desc: JSON, os_: str, arch: str, variant: str | None) -> bool:
    plat = desc.get("platform") or {}
    if plat.get("os") != os_ or plat.get("architecture") != arch:
        return False
    return variant is None or plat.get("variant") == variant


def _platform_text(desc: JSON) -> str:
    plat = desc.get("platform") or {}
    return "/".join(str(plat[k]) for k in ("os", "architecture", "variant") if plat.get(k))


def _media_type(resp: requests.Response, doc: JSON) -> str:
    header = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if header in MANIFEST_TYPES or header in INDEX_TYPES:
        return header
    if "manifests" in doc:
        return "application/vnd.oci.image.index.v1+json"
    return "application/vnd.oci.image.manifest.v1+json" if "config" in doc else header


def _get_json(
    client: Client, repo: str, ref: str, what: str, digest: str | None, size: int | None
) -> tuple[bytes, JSON, str, str]:
    resp = client.request(
        "GET",
        f"{repo}/manifests/{ref}",
        scope=f"repository:{repo}:pull",
        what=what,
        headers={"Accept": MANIFEST_ACCEPT},
        stream=True,
    )
    data = read_limited(
        resp, what, MAX_MANIFEST if size is None else size, declared=size is not None
    )
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if digest is not None:
        verify_bytes(data, digest, size, what)
    try:
        doc: Any = json.loads(data)
    except ValueError as e:
        raise RegistryError(f"{what} is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return data, doc, _media_type(resp, doc), got


def resolve_manifest(
    client: Client, ref: Reference, platform: str | None = None
) -> tuple[JSON, str]:
    """(manifest, its digest) for ``ref`` on ``platform``."""
    os_, arch, variant = parse_platform(platform)
    what = f"manifest {ref.familiar()}"
    _, doc, media, digest = _get_json(client, ref.path, ref.reference, what, ref.digest, None)
    if media in INDEX_TYPES:
        entries = [m for m in doc.get("manifests") or [] if isinstance(m, dict)]
        chosen = next((m for m in entries if _matches(m, os_, arch, variant)), None)
        if chosen is None:
            have = sorted(_platform_text(m) for m in entries)
            wanted = f"{os_}/{arch}" + (f"/{variant}" if variant else "")
            raise ImageNotFound(
                f"{ref.familiar()} has no image for {wanted}",
                hint=f"platforms it has: {', '.join(have) or 'none'}; choose with --platform",
            )
        child = validate_digest(str(chosen.get("digest")))
        size = descriptor_size(chosen, f"{what} ({child})", MAX_MANIFEST)
        _, doc, media, digest = _get_json(client, ref.path, child, f"{what} ({child})", child, size)
    if media not in MANIFEST_TYPES:
        hint = "Docker schema 1 images are not supported" if "v1+" in media else None
        raise RegistryError(f"{what}: unsupported manifest type {media!r}", hint=hint)
    return doc, digest


class _Puller:
    def __init__(
        self, store: Store, client: Client, ref: Reference, progress: Progress, cache: str
    ) -> None:
        self.store = store
        self.client = client
        self.ref = ref
        self.progress = progress
        self.cache = cache
        self.scope = f"repository:{ref.path}:pull"
        self.fetched = 0
        self.fetched_bytes = 0
        self._lock = threading.Lock()

    def blob(self, desc: JSON, what: str) -> bytes:
        """A small blob (a config) in memory: its descriptor's size, at most MAX_CONFIG."""
        digest = validate_digest(str(desc.get("digest")))
        size = descriptor_size(desc, what, MAX_CONFIG)
        resp = self.client.request(
            "GET", f"{self.ref.path}/blobs/{digest}", scope=self.scope, what=what, stream=True
        )
        data = read_limited(resp, what, size, declared=True)
        verify_bytes(data, digest, size, what)
        return data

    def download(self, desc: JSON, key: str, cancel: threading.Event) -> str:
        """A verified copy of the blob in the download cache; its path."""
        digest = validate_digest(str(desc.get("digest")))
        what = f"layer {digest}"
        size = descriptor_size(desc, what)
        final = os.path.join(self.cache, hexpart(digest))
        if os.path.isfile(final):
            return final
        check_free_space(self.cache, size, what)
        # durable, 0600: the store is private (image/store.py)
        with staged_file(self.cache, mode=0o600, prefix=".part-") as staged:
            out = staged.file
            h = hashlib.sha256()
            got = 0
            attempt = 0
            while True:
                headers = {"Range": f"bytes={got}-"} if got else None
                resp = self.client.request(
                    "GET",
                    f"{self.ref.path}/blobs/{digest}",
                    scope=self.scope,
                    what=what,
                    headers=headers,
                    stream=True,
                    expect=(200, 206),
                )
                try:
                    if got and resp.status_code == 200:  # no range support: restart
                        out.seek(0)
                        out.truncate()
                        h, got = hashlib.sha256(), 0
                    while True:
                        if cancel.is_set():
                            raise Cancelled()
                        chunk = resp.raw.read(_CHUNK, decode_content=False)
                        if not chunk:
                            break
                        got += len(chunk)
                        if 0 <= size < got:
                            raise DigestMismatch(
                                f"{what}: the registry sent more than the {size} bytes "
                                "its descriptor says",
                                hint="the registry serves corrupt content; nothing was stored",
                            )
                        h.update(chunk)
                        out.write(chunk)
                        self.progress.update(key, got)
                    break
                except _STREAM_ERRORS as e:
                    if attempt >= self.client.retries:
                        raise RegistryError(
                            f"downloading {what} from {self.client.host} failed: {reason(e)}",
                            hint="run the pull again: complete layers are kept",
                        ) from e
                    self.client.retrying(f"downloading {what}: {reason(e)}", attempt)
                    time.sleep(self.client.backoff * 2**attempt)
                    attempt += 1
                finally:
                    resp.close()
            if got != size:
                raise DigestMismatch(
                    f"{what}: received {got} bytes, its descriptor says {size}",
                    hint="the registry serves truncated content; nothing was stored",
                )
            actual = "sha256:" + h.hexdigest()
            if actual != digest:
                raise DigestMismatch(
                    f"{what}: content has digest {actual}, expected {digest}",
                    hint="the registry serves corrupt or altered content; nothing was stored",
                )
            staged.commit(final)
        with self._lock:
            self.fetched += 1
            self.fetched_bytes += got
        return final

    def layer(self, desc: JSON, diff_id: str, cancel: threading.Event) -> None:
        digest = validate_digest(str(desc.get("digest")))
        media_type = str(desc.get("mediaType", ""))
        key = digest
        label = f"{digest[7:19]}"
        size = descriptor_size(desc, f"layer {digest}")
        if self.store.has_layer(diff_id):
            self.progress.begin(key, label, size)
            self.progress.end(key, "already in the store")
            return
        if media_type not in LAYER_TYPES:
            raise RegistryError(
                f"{self.ref.familiar()}: layer {digest} has unsupported media type {media_type!r}"
            )
        self.progress.begin(key, label, size)
        cached = os.path.isfile(os.path.join(self.cache, hexpart(digest)))
        path = self.download(desc, key, cancel)
        try:
            with open(path, "rb") as f:
                got = self.store.import_layer_blob(f, media_type, digest)
        except DigestMismatch:
            raise
        except OcibuildError as e:
            unlink_quiet(path)
            raise StoreError(f"layer {digest} of {self.ref.familiar()}: {e.message}") from e
        unlink_quiet(path)
        if got != diff_id:
            self.store.remove_layer(got)
            raise DigestMismatch(
                f"layer {digest} of {self.ref.familiar()} unpacks to {got}, "
                f"the image config says {diff_id}",
                hint="the image is inconsistent; nothing was stored",
            )
        note = "complete from an earlier pull, unpacked" if cached else "downloaded, unpacked"
        self.progress.end(key, f"{note} ({human_size(size)})")


def _clean_stale(cache: str) -> None:
    now = time.time()
    for name in os.listdir(cache):
        path = os.path.join(cache, name)
        try:
            if name.startswith(".part-") and now - os.lstat(path).st_mtime > _STALE_PART:
                unlink_quiet(path)
        except OSError:
            continue


def pull(
    store: Store,
    ref: Reference,
    *,
    platform: str | None = None,
    ropts: RegistryOptions | None = None,
    progress: Progress | None = None,
) -> PullResult:
    """Pull ``ref`` into ``store``, tag it (``name:tag``); returns what was pulled."""
    with store.in_use():  # `prune --all` waits for us, never takes our temp files
        return _pull(store, ref, platform=platform, ropts=ropts, progress=progress)


def _pull(
    store: Store,
    ref: Reference,
    *,
    platform: str | None,
    ropts: RegistryOptions | None,
    progress: Progress | None,
) -> PullResult:
    ropts = ropts or RegistryOptions()
    progress = progress or NoProgress()
    client = connect(ref, ropts)
    client.on_retry = progress.note
    manifest, manifest_digest = resolve_manifest(client, ref, platform)
    meta = RegistryMeta(store)
    cache = os.path.join(meta.dir, "downloads")
    os.makedirs(cache, exist_ok=True)
    _clean_stale(cache)
    puller = _Puller(store, client, ref, progress, cache)
    config_desc = manifest.get("config") or {}
    config_digest = validate_digest(str(config_desc.get("digest")))
    config_bytes = puller.blob(config_desc, f"config of {ref.familiar()}")
    try:
        config: Any = json.loads(config_bytes)
    except ValueError as e:
        raise RegistryError(f"the config of {ref.familiar()} is not JSON: {e}") from e
    try:
        image = ImageConfig.from_json(config)
    except ValueError as e:
        raise RegistryError(f"the config of {ref.familiar()}: {e}") from None
    layers = [d for d in manifest.get("layers") or [] if isinstance(d, dict)]
    diff_ids = [validate_digest(d) for d in image.diff_ids]
    if len(diff_ids) != len(layers):
        raise RegistryError(
            f"{ref.familiar()}: the manifest lists {len(layers)} layers, "
            f"the config {len(diff_ids)} diff_ids"
        )
    sizes = [descriptor_size(d, f"layer {d.get('digest')}") for d in layers]
    missing = [
        size
        for d, size, diff_id in zip(layers, sizes, diff_ids, strict=True)
        if not store.has_layer(diff_id)
        and not os.path.isfile(os.path.join(cache, hexpart(str(d.get("digest")))))
    ]
    # checked before the first byte: an absurd size is refused, not half downloaded
    check_free_space(cache, sum(missing), f"{ref.familiar()}: {len(missing)} layers to download")
    progress.note(
        f"pulling {ref.familiar()} ({manifest_digest[:19]}): {len(layers)} layers, "
        f"{human_size(sum(sizes))}"
    )
    tasks = [partial(puller.layer, d, i) for d, i in zip(layers, diff_ids, strict=True)]
    run_jobs(tasks, ropts.jobs)
    image_id = store.put_blob(config_bytes)
    if image_id != config_digest:  # verified above; belt and braces
        raise DigestMismatch(f"config of {ref.familiar()} changed while being stored")
    names = [f"{ref.name}@{manifest_digest}"]
    if ref.digest:
        names.append(f"{ref.name}@{ref.digest}")
    if ref.tag and not ref.digest:
        names.append(f"{ref.name}:{ref.tag}")
    meta.record_ref(names, image_id, manifest_digest)
    meta.record_sources([str(d.get("digest")) for d in layers] + [image_id], ref.name)
    if ref.local_tag and not ref.digest:
        store.tag(ref.local_tag, image_id)
    return PullResult(
        ref, image_id, manifest_digest, len(layers), puller.fetched, puller.fetched_bytes
    )


def find_local(store: Store, ref: Reference) -> str | None:
    """The config digest of ``ref`` in the local store, or None."""
    if ref.digest:
        entry = RegistryMeta(store).lookup_ref(f"{ref.name}@{ref.digest}")
        config = str((entry or {}).get("config", ""))
        return config if config and store.has_blob(config) else None
    for name in {ref.local_tag, str(ref)}:
        if not name:
            continue
        try:
            return store.resolve(name)
        except ImageNotFound:
            continue
    return None
