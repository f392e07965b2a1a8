"""Read an OCI image layout: flatten its layers into one filesystem model; write one.

The model maps a path (no leading ``/``) to an :class:`Entry` holding what the suite
compares: type, mode (special bits included), uid, gid, content digest, link target and
xattrs. mtimes are left out on purpose.

File contents are normalised before hashing in one way: BuildKit v0.11.6 injects
``OTEL_*`` and ``TRACEPARENT`` variables into every RUN environment (a tracing detail, not
a Dockerfile semantic), so lines of the form ``[export |declare -x ]OTEL_...=...`` or
``TRACEPARENT=...`` are dropped from any file that holds them (both builders alike).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}  # fmt: skip


@dataclass(frozen=True)
class Entry:
    type: str
    mode: int
    uid: int
    gid: int
    digest: str = ""  # sha256 of the content (files); device numbers for devices
    link: str = ""  # symlink target
    xattrs: tuple[tuple[str, str], ...] = ()
    text: str | None = field(default=None, compare=False)  # small UTF-8 contents, shown
    size: int = field(default=0, compare=False)  # file size

    def describe(self) -> str:
        text = f"{self.type} {self.mode:04o} {self.uid}:{self.gid}"
        if self.digest:
            text += f" {self.digest[:19]}"
        if self.text is not None:
            text += f" {self.text[:40]!r}"
        if self.link:
            text += f" -> {self.link}"
        if self.xattrs:
            text += f" xattrs={dict(self.xattrs)}"
        return text


@dataclass
class Image:
    files: dict[str, Entry] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the whole image config JSON
    layers: list[list[str]] = field(default_factory=list)  # each layer's entry names


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / digest.split(":", 1)[0] / digest.split(":", 1)[1]


def _open_layer(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if head == b"\x28\xb5\x2f\xfd":
        out = subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True)
        return io.BytesIO(out.stdout)
    return open(path, "rb")


TRACING = re.compile(rb"^(?:export |declare -x )?(?:OTEL_[A-Z_]*|TRACEPARENT)=.*(?:\n|$)", re.M)
INLINE = 256  # contents up to this size (UTF-8 text) are kept inline for reading


def normalise_content(data: bytes) -> bytes:
    """``data`` without BuildKit's injected tracing variables (see the module docstring)."""
    if b"OTEL_" in data or b"TRACEPARENT" in data:
        return TRACING.sub(b"", data)
    return data


def file_entry(
    data: bytes, mode: int, uid: int, gid: int, xattrs: tuple[tuple[str, str], ...] = ()
) -> Entry:
    """The entry of a regular file holding ``data`` (normalised)."""
    data = normalise_content(data)
    text = None
    if len(data) <= INLINE:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = None
    digest = hashlib.sha256(data).hexdigest()
    return Entry("file", mode, uid, gid, digest, xattrs=xattrs, text=text, size=len(data))


def _norm(name: str) -> str:
    return os.path.normpath("/" + name).lstrip("/")


def read_image(layout: Path, arch: str = "") -> Image:
    """The first image of the layout, or (``arch``) that architecture's from its index."""
    index = json.loads((layout / "index.json").read_text())
    desc = index["manifests"][0]
    manifest = json.loads(_blob(layout, desc["digest"]).read_text())
    if "manifests" in manifest:  # an index inside
        entries = manifest["manifests"]
        if arch:
            entries = [e for e in entries if (e.get("platform") or {}).get("architecture") == arch]
            if not entries:
                raise ValueError(f"{layout}: no {arch} image in its index")
        manifest = json.loads(_blob(layout, entries[0]["digest"]).read_text())
    image = Image(config=json.loads(_blob(layout, manifest["config"]["digest"]).read_text()))
    for layer in manifest.get("layers") or []:
        with _open_layer(_blob(layout, layer["digest"])) as stream:
            image.layers.append(_apply(image.files, stream))
    return image


def _apply(files: dict[str, Entry], stream: IO[bytes]) -> list[str]:
    """Apply one layer to ``files``; the layer's entry names (sorted)."""
    seen_in_layer: set[str] = set()
    names: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        for m in tf:
            path = _norm(m.name)
            if not path:
                continue
            names.append(path)
            parent, base = os.path.split(path)
            if base == ".wh..wh..opq":
                prefix = parent + "/" if parent else ""
                for key in [k for k in files if k.startswith(prefix) and k not in seen_in_layer]:
                    del files[key]
                continue
            if base.startswith(".wh."):
                gone = os.path.join(parent, base[4:])
                for key in [k for k in files if k == gone or k.startswith(gone + "/")]:
                    del files[key]
                continue
            xattrs = tuple(
                sorted(
                    (k[len("SCHILY.xattr.") :], v)
                    for k, v in m.pax_headers.items()
                    if k.startswith("SCHILY.xattr.")
                )
            )
            seen_in_layer.add(path)
            if m.islnk():
                target = files.get(_norm(m.linkname))
                if target is not None:
                    files[path] = target
                continue
            kind = TYPES.get(m.type)
            if kind is None:
                continue
            digest = link = ""
            if kind == "file":
                f = tf.extractfile(m)
                entry = file_entry(f.read() if f else b"", m.mode & 0o7777, m.uid, m.gid, xattrs)
            elif kind == "symlink":
                link = m.linkname
            elif kind in ("char", "block"):
                digest = f"{m.devmajor}:{m.devminor}"
            if path in files and kind != "dir" and files[path].type == "dir":
                for key in [k for k in files if k.startswith(path + "/")]:
                    del files[key]
            if kind != "file":
                entry = Entry(kind, m.mode & 0o7777, m.uid, m.gid, digest, link, xattrs)
            files[path] = entry
    return sorted(names)


# -- writing a layout from a root directory (the base images) ----------------------------


def write_layout(dest: Path, layer_tar: Path, config: dict[str, Any], tag: str) -> None:
    """An OCI layout with one uncompressed layer and ``config`` (rootfs filled in)."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with open(layer_tar, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    layer_digest = "sha256:" + h.hexdigest()
    os.replace(layer_tar, blobs / h.hexdigest())
    config = dict(config)
    config["rootfs"] = {"type": "layers", "diff_ids": [layer_digest]}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _put(blobs, config_bytes, "application/vnd.oci.image.config.v1+json"),
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": (blobs / h.hexdigest()).stat().st_size,
            }
        ],
    }
    mdesc = _put(blobs, json.dumps(manifest).encode(), manifest["mediaType"])
    mdesc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))


def _put(blobs: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}
