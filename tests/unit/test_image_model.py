"""image.model and image.digest (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocibuild.errors import StoreError
from ocibuild.image import model
from ocibuild.image.digest import hexpart, sha256_bytes, sha256_file, validate_digest

D = "sha256:" + "a" * 64


def test_canonical_json_is_sorted_and_compact() -> None:
    assert model.canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == (
        '{"a":[1,{"c":null,"d":"é"}],"b":1}'.encode()
    )


def test_config_building_is_pure() -> None:
    created = model.format_created(0)
    assert created == "1970-01-01T00:00:00Z"
    base = model.new_config(created=created, config={"Env": ["A=1"], "Cmd": None, "User": ""})
    assert base["config"] == {"Env": ["A=1"]}
    assert base["rootfs"] == {"type": "layers", "diff_ids": []}
    one = model.add_layer(base, D, created, "RUN x")
    two = model.add_history(one, created, "ENV A=1")
    assert base["rootfs"]["diff_ids"] == [] and base["history"] == []
    assert model.diff_ids_of(two) == [D]
    assert two["history"] == [
        {"created": created, "created_by": "RUN x"},
        {"created": created, "created_by": "ENV A=1", "empty_layer": True},
    ]


def test_manifest_and_index() -> None:
    cfg = model.descriptor(model.MT_OCI_CONFIG, D, 10)
    layer = model.descriptor(model.MT_OCI_LAYER_GZIP, D, 20)
    m = model.make_manifest(cfg, [layer])
    assert m["schemaVersion"] == 2 and m["mediaType"] == model.MT_OCI_MANIFEST
    assert m["config"] == {"mediaType": model.MT_OCI_CONFIG, "digest": D, "size": 10}
    entry = model.descriptor(
        model.MT_OCI_MANIFEST,
        D,
        5,
        annotations={model.REF_NAME: "v1"},
        platform={"os": "linux", "architecture": "amd64"},
    )
    idx = model.make_index([entry])
    assert idx["manifests"][0]["annotations"] == {model.REF_NAME: "v1"}
    assert model.platform_matches(entry) and not model.platform_matches(cfg)


def test_digests() -> None:
    assert sha256_bytes(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert hexpart(D) == "a" * 64
    assert validate_digest(D) == D
    for bad in ["sha256:" + "A" * 64, "sha256:abc", "sha512:" + "a" * 128, "sha256:../../x", ""]:
        with pytest.raises(StoreError):
            validate_digest(bad)


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000000)
    assert sha256_file(str(path)) == sha256_bytes(b"abc" * 1000000)
