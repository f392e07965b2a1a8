"""The local content store: blobs, layers, tags, atomicity."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from ocibuild.errors import ImageNotFound, LayerError, StoreError
from ocibuild.image.model import ImageConfig, canonical_json, format_created
from ocibuild.image.store import Store, normalize_tag
from ocibuild.layers.compress import DigestingSink
from ocibuild.layers.diff import digest_upper
from ocibuild.layers.tarwriter import write_tree


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def leftovers(store: Store) -> list[str]:
    return sorted(os.listdir(store.tmp))


def test_layout_created(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    for sub in ("blobs/sha256", "layers", "tmp"):
        assert (tmp_path / "root" / sub).is_dir()
    assert store.tags() == {}


def test_blobs(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    digest = store.put_blob(b"hello")
    assert digest == sha(b"hello") and store.has_blob(digest)
    assert store.read_blob(digest) == b"hello"
    assert store.put_blob(b"hello") == digest
    got = store.put_blob_stream(io.BytesIO(b"x" * 3_000_000), sha(b"x" * 3_000_000))
    assert got == (sha(b"x" * 3_000_000), 3_000_000)
    # private to the store owner: a config blob may hold build args
    assert oct(os.stat(store.blob_path(digest)).st_mode & 0o777) == "0o600"
    assert leftovers(store) == []
    with pytest.raises(StoreError, match="missing"):
        store.read_blob(sha(b"nope"))


def test_digest_mismatch_leaves_nothing(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    before = sorted(os.listdir(store.blobs))
    with pytest.raises(StoreError, match="digest mismatch"):
        store.put_blob_stream(io.BytesIO(b"evil"), sha(b"good"))
    assert sorted(os.listdir(store.blobs)) == before and leftovers(store) == []
    with pytest.raises(StoreError, match="invalid digest"):
        store.put_blob_stream(io.BytesIO(b"x"), "sha256:../../etc")


def make_upper(base: Path, name: str, content: bytes) -> Path:
    upper = base / name
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "f").write_bytes(content)
    return upper


def test_commit_layer_dir(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    upper = make_upper(Path(store.tmpdir("up-")), "upper", b"one")
    digest = digest_upper(str(upper), 100)
    path = store.commit_layer_dir(str(upper), digest.diff_id, digest.size, source_date_epoch=100)
    assert not upper.exists()
    assert path == store.layer_dir(digest.diff_id)
    assert (Path(path) / "d" / "f").read_bytes() == b"one"
    info = store.layer_info(digest.diff_id)
    assert info == {
        "diff_id": digest.diff_id,
        "size": digest.size,
        "blob": None,
        "source_date_epoch": 100,
    }
    # Same layer again: the new dir is dropped, the stored one kept.
    again = make_upper(Path(store.tmpdir("up-")), "upper", b"one")
    assert store.commit_layer_dir(str(again), digest.diff_id, digest.size) == path
    assert not again.exists()
    assert store.layer_info(digest.diff_id)["source_date_epoch"] == 100
    with pytest.raises(StoreError, match="not in the store"):
        store.layer_dir(sha(b"other"))


def gz_layer(tmp_path: Path, content: bytes) -> tuple[bytes, str]:
    tree = make_upper(tmp_path, "tree-" + sha(content)[7:15], content)
    out = io.BytesIO()
    sink = DigestingSink("gzip", out)
    write_tree(str(tree), sink, mode="upper", source_date_epoch=None)
    sink.close()
    return out.getvalue(), sink.diff_id


def test_import_layer_blob(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    blob, diff_id = gz_layer(tmp_path, b"payload")
    mt = "application/vnd.oci.image.layer.v1.tar+gzip"
    got = store.import_layer_blob(io.BytesIO(blob), mt, sha(blob))
    assert got == diff_id and store.has_layer(diff_id) and store.has_blob(sha(blob))
    info = store.layer_info(diff_id)
    assert info["blob"] == {"digest": sha(blob), "mediaType": mt, "size": len(blob)}
    assert (Path(store.layer_dir(diff_id)) / "d" / "f").read_bytes() == b"payload"
    assert leftovers(store) == []


def test_import_layer_blob_all_or_nothing(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    blob, _ = gz_layer(tmp_path, b"payload")
    mt = "application/vnd.oci.image.layer.v1.tar+gzip"
    with pytest.raises(StoreError, match="digest mismatch"):
        store.import_layer_blob(io.BytesIO(blob), mt, sha(b"something else"))
    broken = gzip.compress(b"this is not a tar archive at all" * 100)
    with pytest.raises(LayerError):
        store.import_layer_blob(io.BytesIO(broken), mt, sha(broken))
    assert os.listdir(store.blobs) == [] and os.listdir(store.layers) == []
    assert leftovers(store) == []


def put_image(store: Store, created: int, diff_ids: list[str] | None = None) -> str:
    return store.put_image(ImageConfig(created=format_created(created), diff_ids=diff_ids or []))


def test_tags_resolve_and_remove(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    a, b = put_image(store, 1), put_image(store, 2)
    assert store.get_config(a)["created"] == "1970-01-01T00:00:01Z"
    assert store.get_image(a).created == "1970-01-01T00:00:01Z"
    assert store.read_blob(a) == canonical_json(store.get_config(a))
    store.tag("app", a)
    store.tag("localhost:5000/app:v2", b)
    store.tag("other", a)
    assert json.loads((tmp_path / "images.json").read_text())["tags"]["app:latest"] == a
    assert store.resolve("app") == a == store.resolve("app:latest")
    assert store.resolve("localhost:5000/app:v2") == b
    assert store.resolve(a) == a and store.resolve(a[7:19]) == a and store.resolve(a[7:]) == a
    with pytest.raises(ImageNotFound, match="no image 'nope'") as err:
        store.resolve("nope")
    assert err.value.hint
    with pytest.raises(ImageNotFound):
        store.resolve("sha256:" + "0" * 64)
    with pytest.raises(ImageNotFound):
        store.tag("x", "sha256:" + "0" * 64)
    listed = store.list_images()
    assert listed[0][:2] == (["app:latest", "other:latest"], a)
    assert listed[1][:3] == (["localhost:5000/app:v2"], b, "1970-01-01T00:00:02Z")
    assert store.remove_image("app") == a
    assert store.has_blob(a)  # still tagged "other"
    store.remove_image("other")
    assert not store.has_blob(a)
    store.untag("localhost:5000/app:v2")
    with pytest.raises(ImageNotFound):
        store.untag("localhost:5000/app:v2")
    assert [n for n in os.listdir(tmp_path) if n.startswith(".images")] == []


def test_ambiguous_prefix(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    one, two = "sha256:" + "ab" * 6 + "1" * 52, "sha256:" + "ab" * 6 + "2" * 52
    (tmp_path / "images.json").write_text(json.dumps({"tags": {"x:1": one, "y:1": two}}))
    with pytest.raises(ImageNotFound, match="ambiguous"):
        store.resolve("ab" * 6)
    assert store.resolve("ab" * 6 + "1") == one
    with pytest.raises(ImageNotFound):
        store.resolve("abab")  # too short for an id prefix, and no such tag


def test_gc_removes_unreferenced_layers(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    blob, used = gz_layer(tmp_path, b"used")
    store.import_layer_blob(
        io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+gzip", sha(blob)
    )
    orphan_blob, orphan = gz_layer(tmp_path, b"orphan")
    store.import_layer_blob(
        io.BytesIO(orphan_blob), "application/vnd.oci.image.layer.v1.tar+gzip", sha(orphan_blob)
    )
    store.tag("img", put_image(store, 5, [used]))
    assert store.gc() == [orphan]
    assert store.has_layer(used) and not store.has_layer(orphan)
    assert store.has_blob(sha(blob)) and not store.has_blob(sha(orphan_blob))
    assert store.list_images()[0][3] == store.layer_info(used)["size"]


def test_normalize_tag() -> None:
    assert normalize_tag("a") == "a:latest"
    assert normalize_tag("host:5000/a") == "host:5000/a:latest"
    assert normalize_tag("a:1") == "a:1"
    with pytest.raises(StoreError):
        normalize_tag("a@sha256:00")
