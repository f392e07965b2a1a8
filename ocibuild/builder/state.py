"""The image being built by one stage: config, layers, history, ARG scope."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from ocibuild.runtime.spec import DEFAULT_PATH, env_list_to_map

DEFAULT_SHELL = ("/bin/sh", "-c")
__all__ = ["DEFAULT_PATH", "DEFAULT_SHELL", "ImageState", "StageState", "env_list_to_map"]


@dataclass
class ImageState:
    """An image config under construction (OCI config JSON, Docker field names)."""

    config: dict[str, Any] = field(default_factory=dict)  # the "config" section
    diff_ids: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    architecture: str = "amd64"
    os: str = "linux"
    author: str = ""

    @classmethod
    def from_image_config(cls, image: dict[str, Any]) -> ImageState:
        state = cls(
            config=copy.deepcopy(image.get("config") or {}),
            diff_ids=list((image.get("rootfs") or {}).get("diff_ids") or []),
            history=copy.deepcopy(image.get("history") or []),
            architecture=image.get("architecture", "amd64"),
            os=image.get("os", "linux"),
            author=image.get("author", ""),
        )
        return state

    def copy(self) -> ImageState:
        return ImageState(
            copy.deepcopy(self.config),
            list(self.diff_ids),
            copy.deepcopy(self.history),
            self.architecture,
            self.os,
            self.author,
        )

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

    def add_history(
        self, created: str, created_by: str, *, empty_layer: bool, comment: str = ""
    ) -> None:
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if empty_layer:
            entry["empty_layer"] = True
        self.history.append(entry)

    def to_image_config(self, created: str) -> dict[str, Any]:
        cfg = {k: v for k, v in self.config.items() if v not in (None, [], {}, "")}
        image: dict[str, Any] = {"created": created}
        if self.author:
            image["author"] = self.author
        image.update(
            architecture=self.architecture,
            os=self.os,
            config=cfg,
            rootfs={"type": "layers", "diff_ids": list(self.diff_ids)},
            history=self.history,
        )
        return image


@dataclass
class StageState:
    """What one stage knows while it runs: the image plus ARGs in scope."""

    image: ImageState
    args: dict[str, str] = field(default_factory=dict)  # declared ARGs with a value

    def expand_env(self) -> dict[str, str]:
        """Variables for word expansion: ARGs in scope, overridden by ENV."""
        return {**self.args, **self.image.env}

    def run_env(self) -> list[str]:
        """The environment of a RUN: image Env plus ARGs ENV doesn't override."""
        env = self.image.env
        out = [f"{k}={v}" for k, v in env.items()]
        out += [f"{k}={v}" for k, v in self.args.items() if k not in env]
        return out


def go_quote_list(args: list[str]) -> str:
    """Render a list the way BuildKit's history does (Go's %q of a []string)."""
    return "[" + " ".join(json.dumps(a, ensure_ascii=False) for a in args) + "]"
