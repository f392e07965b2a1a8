"""Mount a stage's layers as an overlay rootfs and turn its upper dir into a layer."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ocibuild.builder.step import StepContext, StepOutcome
from ocibuild.layers.diff import digest_upper
from ocibuild.storage import driver
from ocibuild.storage.base import Rootfs


def lower_dirs(ctx: StepContext, diff_ids: Sequence[str]) -> list[str]:
    """Layer dirs top-most first (:meth:`Store.lower_dirs`)."""
    return ctx.store.lower_dirs(diff_ids)


@contextmanager
def workspace(ctx: StepContext, prefix: str, *, at_once: bool = False) -> Iterator[str]:
    """A scratch dir for one step; removed afterwards by the build's reaper (a background
    thread), or here with ``at_once`` (a dir that held secrets)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=ctx.tmp)
    try:
        yield path
    finally:
        with ctx.timings.phase("cleanup"):
            reaper = ctx.build.reaper
            if reaper is None or at_once:
                shutil.rmtree(path, ignore_errors=True)
            else:
                reaper.remove(path)


@contextmanager
def mounted(ctx: StepContext, diff_ids: Sequence[str], work: str) -> Iterator[Rootfs]:
    """The image's layers as a rootfs in ``work`` through the storage driver, mounted."""
    started = time.perf_counter()
    mount = driver.prepare(ctx.options.storage_driver, lower_dirs(ctx, diff_ids), work)
    ctx.reporter.debug(mount.describe())
    with mount:
        ctx.timings.prepare += time.perf_counter() - started
        try:
            yield mount
        finally:
            started = time.perf_counter()
    ctx.timings.cleanup += time.perf_counter() - started


def commit_upper(ctx: StepContext, upper: str) -> StepOutcome:
    """Hash the upper dir as a layer and move it into the store (no layer if empty).
    The layer joins the image when the step's plan is applied (``stepplan.apply_plan``)."""
    started = time.perf_counter()
    digest = digest_upper(upper, ctx.options.source_date_epoch)
    ctx.timings.record_layer(time.perf_counter() - started, digest.size, digest.stats)
    if digest.empty:
        return StepOutcome(note="no changes")
    with ctx.timings.phase("write"):
        ctx.store.commit_layer_dir(
            upper, digest.diff_id, digest.size, source_date_epoch=ctx.options.source_date_epoch
        )
    return StepOutcome(diff_id=digest.diff_id, size=digest.size)


def ensure_dir_gone(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
