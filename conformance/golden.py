"""What a build did, as recorded in ``conformance/goldens/CASE.json``, and comparing two.

A :class:`Result` is what one builder made of one case: either an error message, or the
difference of the image from its base (path -> :class:`Entry`, ``None`` for a path the
image removed), the config fields in :data:`CONFIG_FIELDS`, and, for some cases, the last
layer's entry names and whether a rebuild kept the image ID.

The golden file also records the case's input digest (:func:`input_digest`): when the
case changes, its golden is stale and ``python -m conformance.regen`` must be run against
a BuildKit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.case import Case, Expect
from conformance.layout import Entry, Image

GOLDENS = Path(__file__).resolve().parent / "goldens"
BUILDKIT_VERSION = "v0.11.6"
CONFIG_FIELDS = ("User", "Env", "Entrypoint", "Cmd", "WorkingDir", "Labels", "ExposedPorts",
                 "Volumes", "StopSignal", "Shell", "Healthcheck", "OnBuild")  # fmt: skip
BUILDAH_LABEL = "io.buildah.version"


@dataclass
class Result:
    error: str | None = None
    files: dict[str, Entry | None] = field(default_factory=dict)  # "/path" -> entry
    config: dict[str, Any] = field(default_factory=dict)  # unset fields left out
    last_layer: list[str] | None = None
    same_id_on_rebuild: bool | None = None


def config_fields(image: Image) -> dict[str, Any]:
    """The compared config fields; unset and empty values are left out."""
    config = image.config.get("config") or {}
    out = {}
    for name in CONFIG_FIELDS:
        value = config.get(name)
        if name == "Labels" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != BUILDAH_LABEL}
        if value not in (None, "", [], {}):
            out[name] = value
    return out


BIG = 1 << 16  # base files at least this big are named, not hashed, when copied


def _base_digests(base: Image) -> dict[str, str]:
    """digest -> "base:/path" for the base's big files (the busybox binary, ...): a copy of
    one is recorded by name, so goldens do not depend on the machine's busybox build."""
    cached = getattr(base, "_named", None)
    if cached is None:
        cached = {}
        for path, entry in sorted(base.files.items()):
            if entry.type == "file" and entry.text is None and entry.size >= BIG:
                cached.setdefault(entry.digest, f"base:/{path}")
        base._named = cached  # type: ignore[attr-defined]
    return cached


def diff(image: Image, base: Image, named: dict[str, str] | None = None,
         ) -> dict[str, Entry | None]:  # fmt: skip
    """What ``image`` adds, changes (path -> entry) and removes (path -> None); a file equal
    to a big file of the base (or of ``named``, digest -> name) is recorded by name."""
    out: dict[str, Entry | None] = {}
    named = {**(named or {}), **_base_digests(base)}
    for path, entry in image.files.items():
        if base.files.get(path) != entry:
            if entry.type == "file" and entry.digest in named:
                entry = dataclasses.replace(entry, digest=named[entry.digest])
            out["/" + path] = entry
    for path in base.files:
        if path not in image.files:
            out["/" + path] = None
    return dict(sorted(out.items()))


def result_of(image: Image, base: Image, case: Case, busybox: Image | None = None) -> Result:
    """The result of ``case`` (files equal to busybox's big files recorded by name)."""
    layer = image.layers[-1] if case.layers and image.layers else None
    named = _base_digests(busybox) if busybox is not None else None
    config = config_fields(image)
    if case.platform:  # the image's platform too (os/architecture[/variant] of its config)
        parts = (image.config.get(k) for k in ("os", "architecture", "variant"))
        config["platform"] = "/".join(str(p) for p in parts if p)
    return Result(files=diff(image, base, named), config=config, last_layer=layer)


# -- the case's inputs ---------------------------------------------------------------------


def input_digest(case: Case, context: Path) -> str:
    """A digest of everything that defines the case: Dockerfile template, build args,
    target, secrets, HTTP files and the context tree (names, types, modes, owners, data)."""
    h = hashlib.sha256()
    fixed = {"dockerfile": case.dockerfile, "name": case.dockerfile_name,
             "args": case.build_args, "target": case.target, "secrets": case.secrets,
             "http": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(case.http.items())},
             "base": case.base, "rebuild": case.rebuild, "layers": case.layers,
             "error": case.error is not None}  # fmt: skip
    if case.platform:  # only then: the other cases' recorded digests stay as they were
        fixed.update(platform=case.platform, pick=case.pick)
    h.update(json.dumps(fixed, sort_keys=True).encode())
    skip = context / case.dockerfile_name
    for dirpath, dirnames, filenames in os.walk(context):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath, name)
            if path == skip:
                continue
            st = path.lstat()
            rel = str(path.relative_to(context))
            h.update(f"{rel}\0{st.st_mode:o}\0{st.st_uid}\0{st.st_gid}\0".encode())
            if path.is_symlink():
                h.update(os.readlink(path).encode())
            elif path.is_file():
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


# -- JSON ----------------------------------------------------------------------------------


def entry_json(entry: Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    out: dict[str, Any] = {"type": entry.type, "mode": f"{entry.mode:04o}",
                           "uid": entry.uid, "gid": entry.gid}  # fmt: skip
    if entry.type == "file":
        out["sha256"] = entry.digest
        if entry.text is not None:
            out["content"] = entry.text
    elif entry.digest:
        out["device"] = entry.digest
    if entry.link:
        out["link"] = entry.link
    if entry.xattrs:
        out["xattrs"] = dict(entry.xattrs)
    return out


def entry_from_json(data: dict[str, Any] | None) -> Entry | None:
    if data is None:
        return None
    return Entry(
        data["type"],
        int(data["mode"], 8),
        data["uid"],
        data["gid"],
        data.get("sha256") or data.get("device", ""),
        data.get("link", ""),
        tuple(sorted(data.get("xattrs", {}).items())),
        text=data.get("content"),
    )


def golden_path(name: str) -> Path:
    return GOLDENS / f"{name}.json"


def write_golden(case: Case, result: Result, digest: str, base_id: str) -> None:
    data: dict[str, Any] = {"case": case.name, "buildkit": BUILDKIT_VERSION, "base": case.base,
                            "base_layer": base_id, "input": digest}  # fmt: skip
    if result.error is not None:
        data["error"] = result.error
    else:
        data["files"] = {p: entry_json(e) for p, e in result.files.items()}
        data["config"] = result.config
        if result.last_layer is not None:
            data["last_layer"] = result.last_layer
        if result.same_id_on_rebuild is not None:
            data["same_id_on_rebuild"] = result.same_id_on_rebuild
    GOLDENS.mkdir(exist_ok=True)
    text = json.dumps(data, indent=1, sort_keys=False, ensure_ascii=False) + "\n"
    tmp = golden_path(case.name).with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, golden_path(case.name))


@dataclass
class Golden:
    result: Result
    input: str
    base_layer: str


def read_golden(name: str) -> Golden | None:
    path = golden_path(name)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    result = Result(
        error=data.get("error"),
        files={p: entry_from_json(e) for p, e in data.get("files", {}).items()},
        config=data.get("config", {}),
        last_layer=data.get("last_layer"),
        same_id_on_rebuild=data.get("same_id_on_rebuild"),
    )
    return Golden(result, data["input"], data.get("base_layer", ""))


# -- expected results and comparison ------------------------------------------------------


def written_result(expect: Expect) -> Result:
    """A whole written expectation as a result (paths as written, config as given)."""
    files = {"/" + p.lstrip("/"): e for p, e in expect.files.items()}
    return Result(files=files, config={k: v for k, v in expect.config.items() if v is not None})


def patched(golden: Result, newer: Expect) -> Result:
    """``golden`` with the entries and config fields that current BuildKit changed."""
    files = dict(golden.files)
    for path, mode in newer.modes.items():
        entry = files.get("/" + path.lstrip("/"))
        if entry is not None:
            files["/" + path.lstrip("/")] = dataclasses.replace(entry, mode=mode)
    for path, entry in newer.files.items():
        files["/" + path.lstrip("/")] = entry
    config = dict(golden.config)
    for name, value in newer.config.items():
        if value is None:
            config.pop(name, None)
        else:
            config[name] = value
    return Result(golden.error, files, config, golden.last_layer, golden.same_id_on_rebuild)


def compare(got: Result, want: Result, *, exact: bool = True, who: str = "BuildKit",
            fields: tuple[str, ...] = CONFIG_FIELDS) -> list[str]:  # fmt: skip
    """One line per difference between ``got`` (ocibuild) and ``want``: every path when
    ``exact`` (else only the paths ``want`` names), the config ``fields``."""
    if want.error is not None:
        if got.error is None:
            return [f"ocibuild built it; {who} fails: {_short(want.error)}"]
        return []
    if got.error is not None:
        return [f"ocibuild fails: {_short(got.error)}"]
    problems = []
    paths = set(want.files) | (set(got.files) if exact else set())
    for path in sorted(paths):
        a, b = got.files.get(path), want.files.get(path)
        if a != b:
            problems.append(f"{path}: ocibuild {describe(a)} | {who} {describe(b)}")
    for name in fields:
        a, b = got.config.get(name), want.config.get(name)
        if a != b:
            problems.append(f"config {name}: ocibuild {a!r} | {who} {b!r}")
    if want.last_layer is not None and got.last_layer != want.last_layer:
        problems.append(f"last layer: ocibuild {got.last_layer} | {who} {want.last_layer}")
    if want.same_id_on_rebuild is not None and got.same_id_on_rebuild != want.same_id_on_rebuild:
        problems.append(
            f"rebuild keeps the image ID: ocibuild {got.same_id_on_rebuild} | "
            f"{who} {want.same_id_on_rebuild}"
        )
    return problems


def describe(entry: Entry | None) -> str:
    return "absent/removed" if entry is None else entry.describe()


def _short(text: str) -> str:
    """The error line of a build's output (the last ``error...`` line, else the last)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or ["(no message)"])[-1][:300]
