"""ocibuild: a pure-Python Dockerfile interpreter that drives OCI runtimes directly.

The API the command line is built on (see examples/api_loop.py)::

    import ocibuild

    options = ocibuild.Options.resolve(root="/var/lib/ocibuild")
    try:
        result = ocibuild.build("examples/hello", tags=["hello"], options=options,
                                reporter=ocibuild.QuietReporter())
    except ocibuild.RunError as exc:      # a RUN step exited non-zero
        print(exc.format(), exc.exit_status)
    except ocibuild.OcibuildError as exc: # any other bad input: a message and a hint
        print(exc.format())
    else:
        result.image_id, result.tags, result.build_id   # ``ocibuild logs BUILD_ID``
        for step in result.steps:                       # StepRecord, one per step
            step.number, step.stage, step.instruction, step.cache, step.seconds
            step.timings.prepare if step.timings else None  # the time split (StepTimings)

``build_platforms(context, platforms=["linux/amd64", "linux/arm64"], tags=..., output=...)``
builds each platform (at once where the machine allows) and one image index over them.
``build`` may be called any number of times in one process. Reporters: ``SilentReporter``
(the default: nothing printed), ``QuietReporter`` (warnings only), ``StreamReporter``
(the command line's step lines on standard error) and ``JsonReporter`` (one JSON event a
line). ``ocibuild.__version__`` is the installed version. Everything here is imported
lazily: ``import ocibuild`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocibuild.api import Output as Output
    from ocibuild.api import build as build
    from ocibuild.api import build_platforms as build_platforms
    from ocibuild.builder.executor import BuildResult as BuildResult
    from ocibuild.builder.executor import StepRecord as StepRecord
    from ocibuild.errors import BuildError as BuildError
    from ocibuild.errors import DockerfileError as DockerfileError
    from ocibuild.errors import OcibuildError as OcibuildError
    from ocibuild.errors import RunError as RunError
    from ocibuild.observe.log import JsonReporter as JsonReporter
    from ocibuild.observe.log import QuietReporter as QuietReporter
    from ocibuild.observe.log import Reporter as Reporter
    from ocibuild.observe.log import SilentReporter as SilentReporter
    from ocibuild.observe.log import StreamReporter as StreamReporter
    from ocibuild.observe.trace import StepTimings as StepTimings
    from ocibuild.options import Options as Options

_WHERE = {
    "build": "ocibuild.api",
    "build_platforms": "ocibuild.api",
    "Output": "ocibuild.api",
    "BuildResult": "ocibuild.builder.executor",
    "StepRecord": "ocibuild.builder.executor",
    "OcibuildError": "ocibuild.errors",
    "DockerfileError": "ocibuild.errors",
    "BuildError": "ocibuild.errors",
    "RunError": "ocibuild.errors",
    "Reporter": "ocibuild.observe.log",
    "SilentReporter": "ocibuild.observe.log",
    "QuietReporter": "ocibuild.observe.log",
    "StreamReporter": "ocibuild.observe.log",
    "JsonReporter": "ocibuild.observe.log",
    "Options": "ocibuild.options",
    "StepTimings": "ocibuild.observe.trace",
}

__all__ = sorted([*_WHERE, "__version__"])


def __getattr__(name: str) -> Any:
    # Lazy: `import ocibuild` stays cheap and never touches the native helper.
    if name == "__version__":
        from ocibuild._version import version

        return version()
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ocibuild' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return list(__all__)
