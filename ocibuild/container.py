"""``ocibuild run``: an image's command through the same runtime driver as RUN."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ocibuild import isolation
from ocibuild.builder.scratch import Scratch
from ocibuild.errors import OcibuildError
from ocibuild.image.store import Store
from ocibuild.log import Reporter, SilentReporter
from ocibuild.options import Options
from ocibuild.runtime.process import Process, run_process
from ocibuild.storage import driver
from ocibuild.storage.overlay import ensure_mount_namespace


def image_command(config: dict[str, Any], override: Sequence[str]) -> list[str]:
    cfg = config.get("config") or {}
    entrypoint = list(cfg.get("Entrypoint") or [])
    cmd = list(override) if override else list(cfg.get("Cmd") or [])
    args = entrypoint + cmd
    if not args:
        raise OcibuildError(
            "the image has no command to run", hint="give one: ocibuild run IMAGE CMD..."
        )
    return args


def run_image(
    name: str,
    command: Sequence[str] = (),
    *,
    options: Options,
    on_output: Callable[[bytes], None],
    reporter: Reporter | None = None,
    user: str | None = None,
    env: Sequence[str] = (),
) -> int:
    """Run the image's entrypoint+cmd (or ``command``); returns the exit status.

    The container's changes go to a scratch upper dir that is removed afterwards.
    """
    store = Store(options.root)
    config = store.get_config(store.resolve(name))
    cfg = config.get("config") or {}
    args = image_command(config, command)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    lowers: list[str] = []
    for diff_id in reversed(diff_ids):
        path = store.layer_dir(diff_id)
        if path not in lowers:
            lowers.append(path)
    ensure_mount_namespace()
    reporter = reporter or SilentReporter()
    options = isolation.resolve(options, reporter, store.tmp)
    scratch = Scratch(store, "run-")
    work = scratch.path
    try:
        mount = driver.prepare(options.storage_driver, lowers, work)
        with mount:
            status, _ = run_process(
                rootfs=mount.target,
                upper=mount.upper,
                work=work,
                process=Process(
                    args=args,
                    env=[*(cfg.get("Env") or []), *env],
                    user=user if user is not None else str(cfg.get("User") or ""),
                    workdir=str(cfg.get("WorkingDir") or "/"),
                ),
                runtime=options.runtime,
                reporter=reporter,
                on_output=on_output,
            )
        return status
    finally:
        scratch.close()
