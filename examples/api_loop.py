"""Build several images in one process with the Python API and tabulate their steps.

    sudo .venv/bin/python examples/api_loop.py [--root DIR]

Each build is a small Dockerfile on the host's static busybox; the third one fails on
purpose (a RUN that exits 3), to show that a failure is an exception with a message and
that the next build in the same process works as usual.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import ocibuild

BUSYBOX = "/bin/busybox"
DOCKERFILES = {
    "api-base": "FROM scratch\nCOPY busybox /bin/busybox\n"
    'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n',
    "api-app": 'FROM api-base\nWORKDIR /app\nRUN echo built > stamp\nCMD ["cat", "/app/stamp"]\n',
    "api-broken": "FROM api-base\nRUN echo about to fail; exit 3\n",
    "api-multi": "FROM api-base AS build\nRUN echo artifact > /out\n"
    "FROM api-base\nCOPY --from=build /out /out\n",
}


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="the store (default: $OCIBUILD_ROOT or the usual)")
    args = parser.parse_args()
    options = ocibuild.Options.resolve(root=args.root)
    rows: list[tuple[str, ...]] = [
        ("IMAGE", "STEP", "STAGE", "INSTRUCTION", "CACHE", "SECONDS", "PREPARE", "DIFF")
    ]
    failures = []
    with tempfile.TemporaryDirectory() as work:
        for name, text in DOCKERFILES.items():
            context = Path(work) / name
            context.mkdir()
            shutil.copy(BUSYBOX, context / "busybox")
            (context / "Dockerfile").write_text(text)
            try:
                result = ocibuild.build(
                    str(context),
                    tags=[name],
                    options=options,
                    reporter=ocibuild.QuietReporter(),
                )
            except ocibuild.RunError as exc:  # a RUN step exited non-zero
                failures.append(f"{name}: exit status {exc.exit_status}: {exc.message}")
                continue
            except ocibuild.OcibuildError as exc:  # any other mistake: message + hint
                failures.append(f"{name}: {exc.format()}")
                continue
            for step in result.steps:
                t = step.timings
                rows.append(
                    (
                        name,
                        str(step.number),
                        step.stage,
                        step.instruction[:40],
                        step.cache,
                        f"{step.seconds:.3f}",
                        f"{t.prepare:.3f}" if t else "-",
                        f"{t.diff:.3f}" if t else "-",
                    )
                )
    print(table(rows))
    for failure in failures:
        print(f"failed: {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
