"""The build report: one JSON document per build (``--report FILE``, and ``build.json``
in the build's record in the store).

Per step: the instruction and its Dockerfile line, the cache decision and its reason,
the time split (from the same :class:`~ocibuild.observe.trace.StepTimings` ``--trace`` writes,
nothing is timed twice), the layer (diffID, size as stored: the uncompressed tar) and,
with ``--report``, what the layer does to the files below it: added, changed (the path
exists in a lower layer) and deleted (whiteouts), with the largest files added. Totals
sum the steps. ``compress`` is 0: layers are stored uncompressed and compressed only on
export or push.
"""

from __future__ import annotations

import heapq
import os
import stat
import time
from typing import TYPE_CHECKING, Any

from ocibuild._version import version
from ocibuild.errors import OcibuildError
from ocibuild.fs import whiteout as wh
from ocibuild.image.diff import walk_tree

if TYPE_CHECKING:
    from ocibuild.builder.executor import StepRecord
    from ocibuild.image.store import Store
    from ocibuild.observe.records import BuildLog

REPORT_VERSION = 1
LARGEST = 10
PHASES = (
    ("key", "key_seconds"),
    ("prepare_rootfs", "prepare_seconds"),
    ("runtime", "runtime_seconds"),
    ("copy", "copy_seconds"),
    ("diff", "diff_seconds"),
    ("hash", "hash_seconds"),
    ("layer_write", "write_seconds"),
    ("cleanup", "cleanup_seconds"),
)


def build_report(
    log: BuildLog,
    *,
    records: list[StepRecord],
    image_id: str | None,
    tags: list[str],
    error: BaseException | None,
) -> dict[str, Any]:
    observer = log.observer
    detailed = bool(log.options.report)
    rows: dict[int, dict[str, Any]] = {}
    for rec in records:  # every step of a build that succeeded, FROM included
        rows[rec.number] = {
            "stage": rec.stage.removeprefix("stage "),  # FROM records say "stage NAME"
            "instruction": rec.instruction,
            "line": rec.line,
            "cache": rec.cache,
            "seconds": rec.seconds,
            "diff_id": rec.diff_id,
        }
    for number, seen in observer.steps.items():  # also those of a build that failed
        row = rows.setdefault(
            number,
            {"stage": seen.stage, "instruction": seen.instruction, "line": seen.line},
        )
        if seen.record:
            row.setdefault("cache", seen.record.get("cache"))
            row.setdefault("seconds", seen.record.get("seconds"))
            row.setdefault("diff_id", seen.record.get("diff_id"))
        if seen.error:
            row["error"] = seen.error
            row["exit_code"] = seen.exit_code
    for number, text in list(log.announced.items()):  # FROM lines of a build that failed
        rows.setdefault(number, {"stage": "", "instruction": text, "line": None})
    steps = []
    # a step's start as seconds since the build started (the timeline of --report-html)
    mono_started = time.monotonic() - (time.time() - log.started)
    for number, row in sorted(rows.items()):
        info = observer.steps.get(number)
        decision = observer.explainer.decisions.get(number)
        trace = info.record if info is not None else {}
        cache = row.get("cache") or (decision.status if decision else "none")
        step: dict[str, Any] = {
            "step": number,
            "stage": row["stage"],
            "instruction": row["instruction"],
            "line": row["line"],
            "cache": cache,
            "reason": _reason(cache, decision.reason if decision else ""),
            "cache_key": trace.get("cache_key") or (decision.key if decision else None),
            "seconds": round(float(row.get("seconds") or 0.0), 6),
            "start": round(max(0.0, info.started - mono_started), 6) if info else None,
            "time": _time_split(trace),
            "layer": None,
        }
        if row.get("diff_id"):
            step["layer"] = _layer(log.store, row["diff_id"], info, detailed)
        if "error" in row:
            step["error"] = row["error"]
            step["exit_code"] = row.get("exit_code")
        steps.append(step)
    finished = time.time()
    return {
        "version": REPORT_VERSION,
        "id": log.id,
        "status": "failed" if error is not None else "succeeded",
        "error": _error_text(error),
        "dockerfile": log.dockerfile,
        "context": log.context,
        "started": log.started,
        "finished": finished,
        "image_id": image_id,
        "tags": tags,
        "exit_code": _exit_code(error),
        "build_args": dict(log.build_args or {}),
        "target": log.target,
        "platform": log.platform,
        "ocibuild_version": version(),
        "options": {
            "runtime": log.options.runtime,
            "isolation": log.options.isolation,
            "storage_driver": log.options.storage_driver,
            "source_date_epoch": log.options.source_date_epoch,
            "no_cache": log.options.no_cache,
        },
        "steps": steps,
        "totals": _totals(steps, finished - log.started),
    }


def _reason(cache: str, reason: str) -> str:
    if cache == "hit":
        return "cache key found"
    if cache == "none" and not reason:
        return "not cached (FROM)"
    return reason


def _exit_code(error: BaseException | None) -> int:
    """The status ``ocibuild build`` exits with (a failed RUN's own is in its step)."""
    if error is None:
        return 0
    return int(getattr(error, "exit_code", 1))


def _error_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, OcibuildError):
        return error.format()
    return str(error) or type(error).__name__


def _time_split(trace: dict[str, Any]) -> dict[str, float]:
    out = {name: float(trace.get(field, 0.0) or 0.0) for name, field in PHASES}
    out["compress"] = 0.0  # layers are stored uncompressed; compressed on export/push
    return out


def _layer(store: Store, diff_id: str, info: Any, detailed: bool) -> dict[str, Any]:
    try:
        size = int(store.layer_info(diff_id).get("size") or 0)
    except OcibuildError:
        return {"diff_id": diff_id, "size": None, "missing": True}
    layer: dict[str, Any] = {"diff_id": diff_id, "size": size}
    if detailed and info is not None:
        parents = []
        for parent in reversed(info.parent_layers):
            try:
                parents.append(store.layer_dir(parent))
            except OcibuildError:
                continue
        layer.update(layer_changes(store.layer_dir(diff_id), parents))
    return layer


def layer_changes(layer_dir: str, parents: list[str], largest: int = LARGEST) -> dict[str, Any]:
    """Files a layer (overlay lower-dir form) adds, changes and deletes relative to the
    layers below it (``parents``, top-most first); the largest files it adds."""
    added = changed = deleted = 0
    added_bytes = 0
    biggest: list[tuple[int, str]] = []
    for rel, st, _path in walk_tree(layer_dir):
        if stat.S_ISDIR(st.st_mode):
            continue
        if _is_whiteout(os.path.basename(rel), st):
            deleted += 1
            continue
        if _in_parents(rel, parents):
            changed += 1
            continue
        added += 1
        if stat.S_ISREG(st.st_mode):
            added_bytes += st.st_size
            item = (st.st_size, "/" + rel)
            if len(biggest) < largest:
                heapq.heappush(biggest, item)
            elif item > biggest[0]:
                heapq.heapreplace(biggest, item)
    return {
        "files_added": added,
        "files_changed": changed,
        "files_deleted": deleted,
        "bytes_added": added_bytes,
        "largest_added": [{"path": p, "size": s} for s, p in sorted(biggest, reverse=True)],
    }


def _is_whiteout(name: str, st: os.stat_result) -> bool:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    return wh.is_whiteout_name(name) and name != wh.OPAQUE_MARKER


def _in_parents(rel: str, parents: list[str]) -> bool:
    for parent in parents:
        try:
            st = os.lstat(os.path.join(parent, rel))
        except OSError:
            continue
        return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    return False


def _totals(steps: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    time_split: dict[str, float] = {}
    totals: dict[str, Any] = {
        "seconds": round(wall, 6),
        "steps": len(steps),
        "hits": sum(1 for s in steps if s.get("cache") == "hit"),
        "misses": sum(1 for s in steps if s.get("cache") in ("miss", "off")),
        "layers": 0,
        "layer_bytes": 0,
        "new_layer_bytes": 0,
    }
    for key in ("files_added", "files_changed", "files_deleted", "bytes_added"):
        totals[key] = 0
    for step in steps:
        for name, value in (step.get("time") or {}).items():
            time_split[name] = round(time_split.get(name, 0.0) + value, 6)
        layer = step.get("layer")
        if not layer or layer.get("size") is None:
            continue
        totals["layers"] += 1
        totals["layer_bytes"] += layer["size"]
        if step.get("cache") != "hit":
            totals["new_layer_bytes"] += layer["size"]
        for key in ("files_added", "files_changed", "files_deleted", "bytes_added"):
            totals[key] += int(layer.get(key) or 0)
    totals["time"] = time_split
    return totals
