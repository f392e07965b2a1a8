"""ocibuild: a pure-Python Dockerfile interpreter that drives OCI runtimes directly.

The API the CLI is built on::

    import ocibuild
    result = ocibuild.build("examples/hello", tags=["hello"])
    result.image_id, result.config, result.steps
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocibuild.api import Output as Output
    from ocibuild.api import build as build
    from ocibuild.options import Options as Options

__all__ = ["Options", "Output", "build"]


def __getattr__(name: str) -> Any:
    # Lazy: `import ocibuild` stays cheap and never touches the native helper.
    if name in ("build", "Output"):
        from ocibuild import api

        return getattr(api, name)
    if name == "Options":
        from ocibuild.options import Options

        return Options
    raise AttributeError(name)
