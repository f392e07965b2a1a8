"""Failure forensics: kept failures, ``ocibuild debug``, full logs, kept bundles, and
any OCI runtime given as a path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ocibuild.options import default_runtime
from tests.conftest import Ocibuild
from tests.observe.conftest import build_id

FAILING = """\
FROM {base}
ENV GREETING=hello
WORKDIR /work
USER app
RUN echo "$GREETING from the failed step" > /tmp/out.txt \\
 && i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done; exit 3
"""


def test_keep_failed_then_debug_reads_what_the_step_wrote(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(FAILING.format(base=base_image))
    failed = ocb.build(context, "--keep-failed", "-q", check=False)
    assert failed.returncode == 1
    assert "exit code: 3" in failed.stderr
    assert "the failed step is kept in " in failed.stderr
    bid = failed.stderr.split("`ocibuild debug ", 1)[1].split("`", 1)[0]
    kept = Path(ocb.root) / "builds" / bid / "failed" / "step-5"
    meta = json.loads((kept / "failure.json").read_text())
    assert meta["command"][0] == default_runtime() and "run" in meta["command"]
    assert meta["plan"][0].startswith("effect: run '/bin/sh -c echo")  # what was planned
    assert (kept / "upper" / "tmp" / "out.txt").read_text() == "hello from the failed step\n"
    assert (kept / "bundle" / "config.json").is_file() and (kept / "lowers" / "0").is_dir()

    # The same environment: env, user, workdir, and the files the step left.
    out = ocb("debug", bid, "--", "sh", "-c", 'cat /tmp/out.txt; pwd; id -un; echo "$GREETING"')
    assert out.stdout == "hello from the failed step\n/work\napp\nhello\n"
    # A command's status comes back; the kept state is untouched by a session.
    rc = ocb("debug", bid, "--", "sh", "-c", "rm /tmp/out.txt; exit 5", check=False)
    assert rc.returncode == 5
    assert ocb("debug", "last", "cat", "/tmp/out.txt").stdout.startswith("hello")
    # Standard input reaches the command (non-interactive use).
    piped = ocb("debug", bid, "--", "sh", "-c", "cat > /dev/null; echo read", input="x\n")
    assert piped.stdout == "read\n"

    # The full output is in the store, unclipped, although -q showed none of it.
    logs = ocb("logs", bid, "5").stdout.splitlines()
    assert logs[0] == "line 0" and logs[-1] == "line 2999" and len(logs) == 3000
    assert "line 2999" not in failed.stderr
    listed = ocb("builds").stdout
    assert bid in listed and "failed" in listed.split(bid, 1)[1].splitlines()[0]

    pruned = ocb("prune").stdout
    assert f"removed failure {kept}" in pruned
    gone = ocb("debug", bid, check=False)
    assert gone.returncode == 1 and "kept no failed step" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_logs_of_a_successful_build(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo one && echo two\nRUN printf 'no newline'\n"
    )
    result = ocb.build(context)
    bid = build_id(result.stderr)
    assert ocb("logs", bid, "2").stdout == "one\ntwo\n"
    everything = ocb("logs", bid).stdout
    assert "[2] RUN echo one && echo two\none\ntwo\n[3] RUN printf 'no newline'\n" in everything
    missing = ocb("logs", bid, "9", check=False)
    assert missing.returncode == 1 and "has no step 9" in missing.stderr
    record = json.loads(ocb("builds", bid).stdout)
    assert record["status"] == "succeeded" and record["image_id"] == result.image_id


def test_keep_bundles_and_a_runtime_given_as_a_path(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.log"
    wrapper = tmp_path / "my-runtime"
    runc = shutil.which("runc")
    assert runc is not None
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {runc} "$@"\n')
    wrapper.chmod(0o755)
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo via-wrapper > /w\nENV X=1\nRUN cat /w\n"
    )
    bundles = tmp_path / "bundles"
    out = ocb.build(
        context, "--no-cache", "--runtime", str(wrapper), "--keep-bundles", str(bundles)
    )
    assert "via-wrapper" in out.stderr
    assert calls.read_text().count(" run --bundle ") == 2
    assert sorted(p.name for p in bundles.iterdir()) == ["step-2", "step-4"]
    spec = json.loads((bundles / "step-4" / "config.json").read_text())
    assert spec["process"]["args"][-1] == "cat /w" and "X=1" in spec["process"]["env"]
    assert (bundles / "step-4" / "etc" / "hosts").is_file()
    command = json.loads((bundles / "step-4" / "command.json").read_text())
    assert command["command"][0] == str(wrapper) and command["status"] == 0


def test_a_failing_runtime_is_quoted_verbatim(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-runtime"
    broken.write_text(
        "#!/bin/sh\necho 'broken-runtime: cannot set up: quota <42> exceeded' >&2\nexit 9\n"
    )
    broken.chmod(0o755)
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN true\n")
    out = ocb.build(context, "--no-cache", "--runtime", str(broken), check=False)
    assert out.returncode == 1
    assert (
        f"the OCI runtime {broken} exited with status 9 before starting the container; it said:\n"
        "broken-runtime: cannot set up: quota <42> exceeded\n"
    ) in out.stderr
    assert "Traceback" not in out.stderr
