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


def test_image_config_document() -> None:
    created = model.format_created(0)
    assert created == "1970-01-01T00:00:00Z"
    base = model.ImageConfig(created=created, config={"Env": ["A=1"], "Cmd": None, "User": ""})
    doc = base.to_json()
    assert doc == {  # empty config values are left out, as Docker and BuildKit do
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["A=1"]},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    one = base.copy()
    one.add_layer(D, created, "RUN x")
    one.add_history(created, "ENV A=1", empty_layer=True)
    assert base.diff_ids == [] and base.history == []  # a copy shares nothing
    assert one.to_json()["rootfs"]["diff_ids"] == [D]
    assert one.to_json()["history"] == [
        {"created": created, "created_by": "RUN x"},
        {"created": created, "created_by": "ENV A=1", "empty_layer": True},
    ]
    assert one.to_bytes() == model.canonical_json(one.to_json())
    arm = model.ImageConfig(architecture="arm", variant="v7", author="me")
    assert arm.to_json("2000-01-01T00:00:00Z") == {
        "created": "2000-01-01T00:00:00Z",
        "author": "me",
        "architecture": "arm",
        "os": "linux",
        "variant": "v7",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    assert arm.platform == {"os": "linux", "architecture": "arm", "variant": "v7"}


def test_image_config_round_trip_keeps_every_field() -> None:
    """A pulled config (Docker's extra fields, a comment) is written back unchanged: same
    bytes, same image ID; a stage built on it starts without the fields it does not model."""
    doc = {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "os.version": "10.0",
        "created": "2023-05-01T10:00:00.123456789Z",
        "author": "someone",
        "docker_version": "20.10.7",
        "container_config": {"Cmd": ["/bin/sh"]},
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["sh"], "Labels": {"a": "b"}},
        "rootfs": {"type": "layers", "diff_ids": [D]},
        "history": [{"created": "2023-05-01T10:00:00Z", "created_by": "ADD f /"}],
    }
    image = model.ImageConfig.from_json(doc)
    assert image.to_json() == doc
    assert image.to_bytes() == model.canonical_json(doc)
    assert image.diff_ids == [D] and image.variant == "v8"
    child = image.derived()
    assert child.extra == {} and child.created == ""
    assert child.config == doc["config"] and child.diff_ids == [D]
    child.config["Env"].append("A=1")
    assert doc["config"]["Env"] == ["PATH=/usr/bin"]  # from_json copied it


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a JSON object"),
        ({"config": ["Env"]}, "'config' is not an object"),
        ({"rootfs": {"diff_ids": "sha256:x"}}, "'rootfs.diff_ids' is not a list"),
        ({"history": ["RUN x"]}, "'history' is not a list of objects"),
    ],
)
def test_malformed_image_config_is_named(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model.ImageConfig.from_json(doc)


def test_store_reads_the_model_and_names_a_malformed_config(tmp_path: Path) -> None:
    from ocibuild.image.store import Store

    store = Store(str(tmp_path))
    image = model.ImageConfig(created=model.format_created(5), diff_ids=[D])
    image_id = store.put_image(image)
    assert image_id == sha256_bytes(image.to_bytes())
    assert store.get_image(image_id) == image
    bad = store.put_blob(b'{"config": "nope"}')
    with pytest.raises(StoreError, match=f"image config {bad}: the image config's 'config'"):
        store.get_image(bad)


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
