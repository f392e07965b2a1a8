"""OCI image layouts: export an image from the store, import one into it.

Export, per layer (decision: prefer the bytes we already trust):

1. the layer keeps its original blob in the requested compression -> copy it;
2. it keeps an original blob in another compression -> decompress it and recompress;
3. otherwise (a built layer) -> regenerate the tar from the layer dir with
   ``write_tree(mode="upper")`` and the SOURCE_DATE_EPOCH recorded at commit.

In cases 2 and 3 the uncompressed stream is hashed in the same pass and must equal the
stored diffID, else StoreError "layer ... is corrupt". Memory stays flat: everything streams
through :class:`DigestingSink` into a temp file that is renamed to its digest.

Import verifies every blob's digest while reading it and accepts OCI and Docker schema 2
media types; an index (index.json's own entries, or a nested one) resolves to the wanted
platform (this machine's by default).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import IO

from ocibuild.errors import ImageNotFound, OcibuildError, StoreError
from ocibuild.fs.atomic import staged_file, write_atomic
from ocibuild.image.digest import hexpart, validate_digest
from ocibuild.image.model import (
    INDEX_TYPES,
    JSON,
    LAYER_TYPES,
    MANIFEST_TYPES,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    REF_NAME,
    ImageConfig,
    canonical_json,
    descriptor,
    make_index,
    make_manifest,
)
from ocibuild.image.store import Store
from ocibuild.layers.compress import (
    MEDIA_TYPES,
    Compression,
    DigestingSink,
    Output,
    compression_of_media_type,
    open_decompressed,
)
from ocibuild.layers.tarwriter import write_tree
from ocibuild.platforms import Platform, host_platform, matches

_CHUNK = 1 << 20
_MAX_JSON = 16 << 20
_LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


# -- export -------------------------------------------------------------------------------
def export_oci_layout(
    store: Store,
    config_digest: str,
    dest_dir: str,
    *,
    ref_names: list[str],
    compression: Compression | str = "gzip",
) -> str:
    """Write the image ``config_digest`` as an OCI layout in ``dest_dir``; returns the
    manifest digest. An existing layout is extended: index entries with the same ref
    names are replaced, others kept."""
    kind = _check_compression(compression)
    manifest_digest, size = _write_image(store, config_digest, dest_dir, kind)
    write_atomic(os.path.join(dest_dir, "oci-layout"), _LAYOUT_VERSION)
    _update_index(dest_dir, manifest_digest, size, ref_names)
    return manifest_digest


def export_oci_index(
    store: Store,
    images: list[tuple[str, JSON]],
    dest_dir: str,
    *,
    ref_names: list[str],
    compression: Compression | str = "gzip",
) -> str:
    """Write several images (config digest, platform descriptor) and one OCI image index
    over them (a multi-platform image) as an OCI layout in ``dest_dir``; index.json names
    that index (with ``ref_names``), as BuildKit's multi-platform OCI export does. Returns
    the index's digest."""
    kind = _check_compression(compression)
    entries = []
    for config_digest, platform in images:
        digest, size = _write_image(store, config_digest, dest_dir, kind)
        entries.append(descriptor(MT_OCI_MANIFEST, digest, size, platform=platform))
    index_bytes = canonical_json(make_index(entries))
    index_digest = "sha256:" + hashlib.sha256(index_bytes).hexdigest()
    _write_blob(os.path.join(dest_dir, "blobs", "sha256"), index_digest, index_bytes)
    write_atomic(os.path.join(dest_dir, "oci-layout"), _LAYOUT_VERSION)
    _update_index(dest_dir, index_digest, len(index_bytes), ref_names, MT_OCI_INDEX)
    return index_digest


def _check_compression(compression: str) -> Compression:
    if compression not in ("gzip", "zstd", "none"):
        raise StoreError(f"unknown compression {compression!r}", hint="use gzip, zstd or none")
    kind: Compression = compression  # type: ignore[assignment]
    return kind


def _write_image(
    store: Store, config_digest: str, dest_dir: str, kind: Compression
) -> tuple[str, int]:
    """The config, layers and manifest of one image into ``dest_dir``'s blobs; returns the
    manifest's (digest, size)."""
    blobs = os.path.join(dest_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    config_bytes = store.read_blob(config_digest)
    if "sha256:" + hashlib.sha256(config_bytes).hexdigest() != config_digest:
        raise StoreError(f"image config {config_digest} is corrupt in the store")
    image = store.get_image(config_digest)
    _write_blob(blobs, config_digest, config_bytes)
    layers = [_export_layer(store, d, blobs, kind) for d in image.diff_ids]
    manifest = make_manifest(descriptor(MT_OCI_CONFIG, config_digest, len(config_bytes)), layers)
    manifest_bytes = canonical_json(manifest)
    manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    _write_blob(blobs, manifest_digest, manifest_bytes)
    return manifest_digest, len(manifest_bytes)


def export_layer_blob(store: Store, diff_id: str, blobs: str, compression: Compression) -> JSON:
    """Write one layer's blob into the directory ``blobs`` (named by its hex digest) with
    the same decisions as the layout export; returns its descriptor (registry push)."""
    return _export_layer(store, diff_id, blobs, compression)


def write_layer_blob(store: Store, diff_id: str, out: Output, compression: Compression) -> JSON:
    """Write one layer's blob, made in ``compression`` (its content regenerated or
    recompressed, as the layout export does), into ``out`` (e.g. a pipe to an upload:
    nothing on disk); returns its descriptor. A content that does not hash to ``diff_id``
    raises StoreError once all is written: the reader must not commit what it received
    before this returns."""
    sink = _fill_sink(diff_id, compression, _layer_fill(store, diff_id), out)
    return descriptor(sink.media_type, sink.digest, sink.compressed_size)


def _export_layer(store: Store, diff_id: str, blobs: str, compression: Compression) -> JSON:
    info = store.layer_info(diff_id)
    blob = info.get("blob")
    media_type = MEDIA_TYPES[compression]
    if (
        isinstance(blob, dict)
        and store.has_blob(str(blob.get("digest")))
        and compression_of_media_type(str(blob.get("mediaType", ""))) == compression
    ):
        digest = validate_digest(str(blob["digest"]))
        size = _copy_blob(store.blob_path(digest), blobs, digest)
        return descriptor(media_type, digest, size)
    return _stream_layer(blobs, diff_id, compression, _layer_fill(store, diff_id))


def _layer_fill(store: Store, diff_id: str) -> Callable[[DigestingSink], None]:
    """What writes the layer's uncompressed tar into a sink: its stored blob decompressed,
    or, for a built layer, its tar regenerated from its directory."""
    info = store.layer_info(diff_id)
    blob = info.get("blob")
    if isinstance(blob, dict) and store.has_blob(str(blob.get("digest"))):
        src = store.blob_path(str(blob["digest"]))

        def recompress(sink: DigestingSink) -> None:
            with open(src, "rb") as f:
                _pump(open_decompressed(f), sink)

        return recompress
    layer_dir = store.layer_dir(diff_id)
    epoch = info.get("source_date_epoch")
    epoch = int(epoch) if epoch is not None else None

    def regenerate(sink: DigestingSink) -> None:
        write_tree(layer_dir, sink, mode="upper", source_date_epoch=epoch)

    return regenerate


def _pump(src: IO[bytes], sink: DigestingSink) -> None:
    while chunk := src.read(_CHUNK):
        sink.write(chunk)


def _stream_layer(
    blobs: str, diff_id: str, compression: Compression, fill: Callable[[DigestingSink], None]
) -> JSON:
    with staged_file(blobs, prefix=".tmp-layer-") as staged:
        sink = _fill_sink(diff_id, compression, fill, staged.file)
        staged.commit(os.path.join(blobs, hexpart(sink.digest)))
    return descriptor(sink.media_type, sink.digest, sink.compressed_size)


def _fill_sink(
    diff_id: str,
    compression: Compression,
    fill: Callable[[DigestingSink], None],
    out: Output,
) -> DigestingSink:
    """``fill`` a sink writing into ``out``; closed, its content checked against ``diff_id``."""
    sink = DigestingSink(compression, out)
    try:
        fill(sink)
    except (OSError, EOFError, ValueError) as e:
        raise StoreError(f"layer {diff_id} is corrupt: cannot read it: {e}") from e
    sink.close()
    if sink.diff_id != diff_id:
        raise StoreError(
            f"layer {diff_id} is corrupt: its content hashes to {sink.diff_id}",
            hint="remove the images that use it and rebuild or re-import them",
        )
    return sink


def _copy_blob(src: str, blobs: str, digest: str) -> int:
    dest = os.path.join(blobs, hexpart(digest))
    if os.path.exists(dest):
        return os.path.getsize(dest)
    h = hashlib.sha256()
    size = 0
    with staged_file(blobs, prefix=".tmp-blob-") as staged, open(src, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            staged.file.write(chunk)
            size += len(chunk)
        if "sha256:" + h.hexdigest() != digest:
            raise StoreError(f"blob {digest} is corrupt in the store")
        staged.commit(dest)
    return size


def _write_blob(blobs: str, digest: str, data: bytes) -> None:
    if not os.path.exists(os.path.join(blobs, hexpart(digest))):
        write_atomic(os.path.join(blobs, hexpart(digest)), data)


def _update_index(
    dest_dir: str,
    digest: str,
    size: int,
    ref_names: list[str],
    media_type: str = MT_OCI_MANIFEST,
) -> None:
    path = os.path.join(dest_dir, "index.json")
    kept: list[JSON] = []
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                old = json.load(f)
            kept = [m for m in old.get("manifests", []) if isinstance(m, dict)]
        except (OSError, ValueError, AttributeError):
            kept = []
    refs = set(ref_names)
    kept = [
        m
        for m in kept
        if (m.get("annotations") or {}).get(REF_NAME) not in refs
        and not (not ref_names and m.get("digest") == digest and not m.get("annotations"))
    ]
    new = [
        descriptor(media_type, digest, size, annotations={REF_NAME: ref}) for ref in ref_names
    ] or [descriptor(media_type, digest, size)]
    write_atomic(path, canonical_json(make_index(kept + new)))


# -- import -------------------------------------------------------------------------------
def _read_json_blob(layout_dir: str, desc: JSON) -> tuple[bytes, JSON]:
    digest = validate_digest(str(desc.get("digest")))
    path = os.path.join(layout_dir, "blobs", "sha256", hexpart(digest))
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_JSON + 1)
    except FileNotFoundError:
        raise StoreError(f"layout {layout_dir} lacks blob {digest}") from None
    if len(data) > _MAX_JSON:
        raise StoreError(f"blob {digest} in {layout_dir} is too big for a JSON document")
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise StoreError(f"blob {digest} in {layout_dir} does not match its digest")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise StoreError(f"blob {digest} in {layout_dir} is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise StoreError(f"blob {digest} in {layout_dir} is not a JSON object")
    return data, doc


def _select(layout_dir: str, entries: list[JSON], tag: str | None, platform: Platform) -> JSON:
    refs = [str((e.get("annotations") or {}).get(REF_NAME, "")) for e in entries]
    if tag is not None:
        found = [e for e, r in zip(entries, refs, strict=True) if r == tag]
        if not found:
            known = ", ".join(r for r in refs if r) or "none"
            raise ImageNotFound(
                f"no image tagged {tag!r} in OCI layout {layout_dir}",
                hint=f"ref names in the layout: {known}",
            )
        return _by_platform(layout_dir, found, platform) if len(found) > 1 else found[0]
    if len(entries) > 1 and all(e.get("platform") for e in entries):
        return _by_platform(layout_dir, entries, platform)  # index.json as a platform index
    if len(entries) != 1:
        raise StoreError(
            f"OCI layout {layout_dir} holds {len(entries)} images",
            hint="name one with oci-layout://DIR:TAG; refs: "
            + (", ".join(r for r in refs if r) or "none"),
        )
    return entries[0]


def _by_platform(layout_dir: str, entries: list[JSON], platform: Platform) -> JSON:
    for entry in entries:
        if matches(entry.get("platform") or {}, platform):
            return entry
    have = sorted({str((e.get("platform") or {}).get("architecture", "?")) for e in entries})
    raise ImageNotFound(
        f"OCI layout {layout_dir} has no {platform} image",
        hint=f"architectures it has: {', '.join(have) or 'none'}; choose with --platform",
    )


def _resolve_manifest(layout_dir: str, desc: JSON, platform: Platform, depth: int = 0) -> JSON:
    if depth > 4:
        raise StoreError(f"OCI layout {layout_dir}: indexes nested too deeply")
    _, doc = _read_json_blob(layout_dir, desc)
    media_type = desc.get("mediaType") or doc.get("mediaType")
    if media_type in INDEX_TYPES or (media_type is None and "manifests" in doc):
        entries = [m for m in doc.get("manifests", []) if isinstance(m, dict)]
        entry = _by_platform(layout_dir, entries, platform)
        return _resolve_manifest(layout_dir, entry, platform, depth + 1)
    if media_type in MANIFEST_TYPES or (media_type is None and "config" in doc):
        return doc
    raise StoreError(f"OCI layout {layout_dir}: unsupported media type {media_type!r}")


def import_oci_layout(
    store: Store, layout_dir: str, tag: str | None, platform: Platform | None = None
) -> str:
    """Import one image of an OCI layout into ``store``; returns its config digest.
    ``platform`` picks the image from an index (this machine's by default)."""
    platform = platform or host_platform()
    try:
        with open(os.path.join(layout_dir, "index.json"), "rb") as f:
            index = json.load(f)
        entries = [m for m in index["manifests"] if isinstance(m, dict)]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StoreError(
            f"{layout_dir} is not a readable OCI layout: {e}",
            hint="expected a directory with oci-layout, index.json and blobs/",
        ) from e
    manifest = _resolve_manifest(layout_dir, _select(layout_dir, entries, tag, platform), platform)
    config_desc = manifest.get("config") or {}
    config_bytes, config = _read_json_blob(layout_dir, config_desc)
    layer_descs = [d for d in manifest.get("layers") or [] if isinstance(d, dict)]
    try:
        diff_ids = ImageConfig.from_json(config).diff_ids
    except ValueError as e:
        raise StoreError(f"image in {layout_dir}: {e}") from None
    if len(diff_ids) != len(layer_descs):
        raise StoreError(
            f"image in {layout_dir}: {len(layer_descs)} layers but {len(diff_ids)} diff_ids"
        )
    for layer_desc, diff_id in zip(layer_descs, diff_ids, strict=True):
        validate_digest(diff_id)
        if store.has_layer(diff_id):
            continue
        media_type = str(layer_desc.get("mediaType", ""))
        if media_type not in LAYER_TYPES:
            raise StoreError(f"image in {layout_dir}: unsupported layer type {media_type!r}")
        digest = validate_digest(str(layer_desc.get("digest")))
        path = os.path.join(layout_dir, "blobs", "sha256", hexpart(digest))
        try:
            with open(path, "rb") as blob:
                got = store.import_layer_blob(blob, media_type, digest)
        except FileNotFoundError:
            raise StoreError(f"layout {layout_dir} lacks layer blob {digest}") from None
        except StoreError:
            raise
        except OcibuildError as e:
            raise StoreError(f"layer {digest} in {layout_dir}: {e.message}") from e
        if got != diff_id:
            raise StoreError(
                f"layer {digest} in {layout_dir} unpacks to {got}, the config says {diff_id}"
            )
    return store.put_blob(config_bytes)
