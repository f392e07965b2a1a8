"""``ocibuild build --check-reproducible``: build twice, compare.

Both builds run in fresh temporary stores (under ``ROOT/tmp/``, removed afterwards), so
no step is a cache hit; the base images the Dockerfile's FROM lines name are copied in
from the main store first (hard links: layers are read-only lower dirs), anything else
is pulled as usual. Both use the same SOURCE_DATE_EPOCH: ``--source-date-epoch``, else
``$SOURCE_DATE_EPOCH``, else the time the check started. The verdict is the image ID (the
config digest, which covers every layer's diffID): the same in both, or the first layer
that differs (the step that made it) and its first differing files, compared by type,
size, content, mode, owner and mtime (clamped to the epoch, as the layer tar has it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from ocibuild import _record, api
from ocibuild._record import dataclass, field
from ocibuild.builder.executor import BuildResult
from ocibuild.dockerfile.parser import parse
from ocibuild.errors import OcibuildError
from ocibuild.image.diff import Change, compare, image_layers, layer_entries
from ocibuild.image.store import Store
from ocibuild.observe.log import Reporter, SilentReporter
from ocibuild.options import Options
from ocibuild.plan import make_plan

SHOWN_FILES = 5


@dataclass
class Verdict:
    reproducible: bool
    epoch: int
    image_ids: tuple[str, str]
    layer: int | None = None  # 1-based index of the first differing layer
    step: str = ""  # the step that made it
    files: list[Change] = field(default_factory=list)
    config_fields: list[str] = field(default_factory=list)

    def message(self) -> str:
        a, b = self.image_ids
        if self.reproducible:
            return f"reproducible: both builds gave {a} (SOURCE_DATE_EPOCH={self.epoch})"
        lines = [
            f"not reproducible: build 1 gave {a}, build 2 gave {b} (SOURCE_DATE_EPOCH={self.epoch})"
        ]
        if self.layer is not None:
            lines.append(f"first differing layer: layer {self.layer}, made by {self.step}")
            if self.files:
                lines.append("first differing files (build 1 -> build 2):")
                lines += ["  " + c.line() for c in self.files]
            else:
                lines.append("  (same files; the tar streams differ in metadata not compared)")
        elif self.config_fields:
            lines.append(
                "same layers; the image configs differ in: " + ", ".join(self.config_fields)
            )
        return "\n".join(lines)


def base_images(
    dockerfile_text: str, name: str, build_args: Mapping[str, str], target: str | None
) -> list[str]:
    """The images the stages start FROM (not stages, not scratch)."""
    plan = make_plan(parse(dockerfile_text, name), dict(build_args), target)
    out = []
    for index in plan.order:
        stage = plan.stages[index]
        if stage.base_stage is None and stage.base != "scratch" and stage.base not in out:
            out.append(stage.base)
    return out


def seed_store(src: Store, dst: Store, names: list[str]) -> None:
    """Copy the images ``names`` (when ``src`` has them) into ``dst``: config (the same
    bytes), tag, layers hard-linked, original blobs of pulled layers."""
    for name in names:
        try:
            image_id = src.resolve(name)
        except OcibuildError:
            continue  # not local: the build pulls it
        for diff_id in src.get_image(image_id).diff_ids:
            hexpart = diff_id.partition(":")[2]
            target = os.path.join(dst.layers, hexpart)
            if not os.path.exists(target):
                subprocess.run(
                    ["cp", "-al", os.path.join(src.layers, hexpart), target],
                    check=True,
                    capture_output=True,
                )
            blob = (src.layer_info(diff_id).get("blob") or {}).get("digest")
            if isinstance(blob, str) and src.has_blob(blob) and not dst.has_blob(blob):
                os.link(src.blob_path(blob), dst.blob_path(blob))
        # the config's own bytes: a pulled config is kept as the registry served it (its
        # digest is the image ID); encoding it again would give another digest
        if dst.put_blob(src.read_blob(image_id)) != image_id:
            raise OcibuildError(f"image {image_id}: its config does not match its digest")
        dst.tag(name, image_id)


def check(
    context: str,
    *,
    dockerfile: str | None = None,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    options: Options,
    reporter: Reporter | None = None,
) -> Verdict:
    reporter = reporter or SilentReporter()
    build_args = dict(build_args or {})
    epoch = options.source_date_epoch
    if epoch is None:
        epoch = int(time.time())
    context = os.path.abspath(context)
    path = dockerfile or os.path.join(context, "Dockerfile")
    text, name = api.read_dockerfile(path, context)
    main = Store(options.root)
    work = main.tmpdir("repro-")
    try:
        results: list[tuple[Store, BuildResult]] = []
        for n in (1, 2):
            store = Store(os.path.join(work, f"store-{n}"))
            seed_store(main, store, base_images(text, name, build_args, target))
            reporter.info(f"== build {n} of 2 (SOURCE_DATE_EPOCH={epoch}, store {store.root})")
            opts = _record.replace(
                options,
                root=store.root,
                source_date_epoch=epoch,
                trace=None,
                report=None,
                keep_failed=False,
                keep_bundles=None,
            )
            result = api.build(
                context,
                dockerfile=path if dockerfile != "-" else None,
                dockerfile_text=text if dockerfile == "-" else None,
                build_args=build_args,
                target=target,
                options=opts,
                reporter=reporter,
            )
            results.append((store, result))
        return compare_builds(results[0], results[1], epoch)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare_builds(
    one: tuple[Store, BuildResult], two: tuple[Store, BuildResult], epoch: int
) -> Verdict:
    (s1, r1), (s2, r2) = one, two
    verdict = Verdict(r1.image_id == r2.image_id, epoch, (r1.image_id, r2.image_id))
    if verdict.reproducible:
        return verdict
    l1, l2 = image_layers(s1, r1.image_id), image_layers(s2, r2.image_id)
    for i in range(max(len(l1), len(l2))):
        a = l1[i] if i < len(l1) else None
        b = l2[i] if i < len(l2) else None
        if a == b:
            continue
        verdict.layer = i + 1
        verdict.step = _step_of(r1, a) or _step_of(r2, b) or "an unknown step"
        if a is not None and b is not None:
            changes = compare(
                layer_entries(s1.layer_dir(a)),
                layer_entries(s2.layer_dir(b)),
                mtimes=True,
                epoch=epoch,
            )
            verdict.files = changes[:SHOWN_FILES]
        return verdict
    verdict.config_fields = _config_differences(r1.config, r2.config)
    return verdict


def _step_of(result: BuildResult, diff_id: str | None) -> str:
    for step in result.steps:
        if diff_id is not None and step.diff_id == diff_id:
            return f"step {step.number} (line {step.line}): {step.instruction}"
    return ""


def _config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_differences(va, vb, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out
