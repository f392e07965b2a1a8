"""Multi-platform index records in the store (images.json "indexes")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocibuild.errors import ImageNotFound, StoreError
from ocibuild.image.model import ImageConfig
from ocibuild.image.store import Store

AMD = {"architecture": "amd64", "os": "linux"}
ARM = {"architecture": "arm64", "os": "linux"}


def _two(store: Store) -> tuple[str, str]:
    return (
        store.put_image(ImageConfig.from_json({**AMD, "rootfs": {"diff_ids": []}})),
        store.put_image(ImageConfig.from_json({**ARM, "rootfs": {"diff_ids": []}})),
    )


def test_index_recorded_under_tagged_names(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    amd, arm = _two(store)
    store.tag("app", amd)
    store.put_index([(amd, AMD), (arm, ARM)], ["app"])
    assert store.index_of("app:latest") == [(amd, AMD), (arm, ARM)]
    assert store.index_of(amd) is None  # an ID names one image
    assert store.indexes() == {"app:latest": [(amd, AMD), (arm, ARM)]}
    assert store.resolve("app") == amd  # the name still names this machine's image
    store.tag("other", amd)  # other tags keep the record
    assert store.index_of("app") is not None
    store.tag("app", arm)  # re-tagged to one image: the record goes
    assert store.index_of("app") is None
    assert "indexes" not in json.loads((tmp_path / "images.json").read_text())


def test_index_needs_the_images_and_the_names(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    amd, arm = _two(store)
    with pytest.raises(ImageNotFound, match="no image tagged 'app:latest'"):
        store.put_index([(amd, AMD), (arm, ARM)], ["app"])
    store.tag("app", amd)
    missing = "sha256:" + "0" * 64
    with pytest.raises(ImageNotFound, match="is not in the store"):
        store.put_index([(amd, AMD), (missing, ARM)], ["app"])
    assert store.indexes() == {}


def test_rmi_keeps_images_another_index_uses(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    amd, arm = _two(store)
    store.tag("a", amd)
    store.tag("b", arm)
    store.put_index([(amd, AMD), (arm, ARM)], ["a"])
    store.remove_image("b")  # arm64 is a platform of "a": its config stays
    assert store.has_blob(arm)
    store.remove_image("a")
    assert not store.has_blob(amd) and store.indexes() == {}


def test_bad_indexes_object_is_a_store_error(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    (tmp_path / "images.json").write_text('{"tags": {}, "indexes": []}')
    with pytest.raises(StoreError, match="'indexes' is not an object"):
        store.indexes()
