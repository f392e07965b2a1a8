"""The image being built by one stage: config, layers, history, ARG scope."""

from __future__ import annotations

import json

from ocibuild._record import dataclass, field
from ocibuild.dockerfile.ignore import clean as go_path_clean
from ocibuild.image.model import ImageConfig
from ocibuild.runtime.spec import DEFAULT_PATH, env_list_to_map

DEFAULT_SHELL = ("/bin/sh", "-c")
__all__ = ["DEFAULT_PATH", "DEFAULT_SHELL", "ImageState", "StageState", "env_list_to_map"]


class ImageState(ImageConfig):
    """An image config under construction (:class:`~ocibuild.image.model.ImageConfig`)
    with what the builder asks of it: Env as a map, WorkingDir, User, Shell."""

    # -- Env ---------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return env_list_to_map(list(self.config.get("Env") or []))

    def set_env(self, key: str, value: str) -> None:
        env = list(self.config.get("Env") or [])
        for i, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.config["Env"] = env

    def ensure_path(self) -> None:
        """BuildKit always puts PATH in the config's Env."""
        if "PATH" not in self.env:
            self.set_env("PATH", DEFAULT_PATH)

    # -- the rest ----------------------------------------------------------
    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")

    @property
    def user(self) -> str:
        return str(self.config.get("User") or "")

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


@dataclass
class StageState:
    """What one stage knows while it runs: the image plus the ARG values in scope.

    BuildKit keeps one build environment per stage: the image's Env, and each ARG with a
    value added to it (replacing an ENV of the same name set before; a later ENV
    replaces the ARG in turn). ``args`` holds the ARG values that are not overridden by
    a later ENV (the ENV step drops its keys from it), so ``{**Env, **args}`` is that
    environment. A stage built FROM another stage starts with that stage's ``args``
    (minus the names its image Env sets) but with no ``declared`` names: BuildKit
    v0.11.6 carries the values, not the declarations (a RUN's history shows no
    ``|N name=value`` prefix for them).
    """

    image: ImageState
    args: dict[str, str] = field(default_factory=dict)  # ARG values in the environment
    declared: list[str] = field(default_factory=list)  # this stage's ARG names, in order

    def expand_env(self) -> dict[str, str]:
        """Variables for word expansion and RUN: image Env, then the ARG values."""
        return {**self.image.env, **self.args}

    def run_env(self) -> list[str]:
        """The environment of a RUN, as ``NAME=value`` items."""
        return [f"{k}={v}" for k, v in self.expand_env().items()]

    def inherit_args(self, args: dict[str, str]) -> None:
        """Start from a parent stage's ARG values; the image's Env wins over them (BuildKit
        applies the image config's Env on top of the parent stage's environment)."""
        env = self.image.env
        self.args = {k: v for k, v in args.items() if k not in env}


def go_quote_list(args: list[str]) -> str:
    """Render a list the way BuildKit's history does (Go's %q of a []string)."""
    return "[" + " ".join(json.dumps(a, ensure_ascii=False) for a in args) + "]"


def scratch_image() -> ImageState:
    """``FROM scratch``: BuildKit's empty image has WorkingDir "/" (an image pulled with
    no WorkingDir keeps none)."""
    return ImageState(config={"WorkingDir": "/"})


def next_workdir(current: str, path: str) -> str:
    """The WorkingDir after ``WORKDIR path``, as BuildKit records it: an absolute path
    exactly as written (``/tmp/`` stays ``/tmp/``), a relative one joined to the current
    directory and cleaned (Go's ``path.Join("/", current, path)``)."""
    if path.startswith("/"):
        return path
    return go_path_clean("/" + current + "/" + path)
