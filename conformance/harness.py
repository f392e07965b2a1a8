"""Build every case with ocibuild and with ``buildah bud --isolation chroot``; compare.

    python -m conformance.harness [-k SUBSTRING] [-j JOBS] [--keep DIR]

Both builders start from the same local OCI layouts (``conformance.bases``): ocibuild
reads ``FROM oci-layout://DIR:TAG``, buildah ``FROM oci:DIR:TAG``. buildah runs with a
private ``--root``/``--runroot`` (hermetic). Both results are exported as OCI layouts and
flattened (``conformance.layout``); the file trees and the config fields in
``CONFIG_FIELDS`` must be equal. Cases with a written expectation are checked against it
instead. Prints one line per differing case and ``N passed, M failed``.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from conformance.bases import busybox_layout, debian_layout
from conformance.case import Case, Dir, File, Link
from conformance.cases import all_cases
from conformance.layout import Entry, Image, read_image

REPO = Path(__file__).resolve().parents[1]
CONFIG_FIELDS = ("User", "Env", "Entrypoint", "Cmd", "WorkingDir", "Labels", "ExposedPorts",
                 "Volumes", "StopSignal")  # fmt: skip
BUILDAH_LABEL = "io.buildah.version"


@dataclass
class Outcome:
    case: Case
    ok: bool
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Served(http.server.BaseHTTPRequestHandler):
    content: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.content.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Harness:
    def __init__(self, work: Path, jobs: int = 2) -> None:
        self.work = work
        self.jobs = jobs
        self.layouts = {"busybox": busybox_layout(), "debian": None}
        self.bases: dict[str, Image] = {}
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None
        self.buildah_root = work / "buildah"
        self.stores = [work / f"store{i}" for i in range(jobs)]
        self.free_stores = list(self.stores)

    # -- set-up ---------------------------------------------------------------------
    def layout(self, name: str) -> Path:
        with self.lock:
            if self.layouts.get(name) is None:
                self.layouts[name] = debian_layout()
            path = self.layouts[name]
            assert path is not None
            return path

    def base(self, name: str) -> Image:
        if name == "scratch":
            return Image()
        layout = self.layout(name)
        with self.lock:
            if name not in self.bases:
                self.bases[name] = read_image(layout)
            return self.bases[name]

    def serve(self, cases: list[Case]) -> str:
        content: ClassVar[dict[str, bytes]] = {}
        for case in cases:
            for path, body in case.http.items():
                content[f"/{case.name}/{path.lstrip('/')}"] = body
        _Served.content = content
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Served)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- one case -------------------------------------------------------------------
    def dockerfile(self, case: Case, builder: str, http_base: str) -> str:
        refs = {}
        for name in ("busybox", "debian"):
            if "{" + name + "}" in case.dockerfile:
                path = self.layout(name)
                tag = "latest" if name == "busybox" else "bookworm"
                refs[name] = (
                    f"oci-layout://{path}:{tag}" if builder == "ocibuild" else f"oci:{path}:{tag}"
                )
        text = case.dockerfile
        for name, ref in refs.items():
            text = text.replace("{" + name + "}", ref)
        return text.replace("{http}", f"{http_base}/{case.name}")

    def make_context(self, case: Case, path: Path, builder: str, http_base: str) -> Path:
        path.mkdir(parents=True)
        for rel, spec in case.files.items():
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(spec, str | bytes):
                spec = File(spec)
            if isinstance(spec, File):
                data = spec.content.encode() if isinstance(spec.content, str) else spec.content
                target.write_bytes(data)
            elif isinstance(spec, Link):
                os.symlink(spec.target, target)
                continue
            else:
                target.mkdir(exist_ok=True)
            assert isinstance(spec, File | Dir)
            os.chown(target, spec.uid, spec.gid)
            os.chmod(target, spec.mode)
        if case.setup is not None:
            case.setup(path)
        df = path / case.dockerfile_name
        df.parent.mkdir(parents=True, exist_ok=True)
        df.write_text(self.dockerfile(case, builder, http_base))
        return df

    def secrets(self, case: Case, where: Path) -> dict[str, Path]:
        out = {}
        for sid, value in case.secrets.items():
            p = where / f"secret-{sid}"
            p.write_text(value)
            out[sid] = p
        return out

    def run_ocibuild(self, case: Case, tmp: Path, http_base: str) -> tuple[Image | None, str]:
        ctx = tmp / "ctx-ocibuild"
        df = self.make_context(case, ctx, "ocibuild", http_base)
        out = tmp / "out-ocibuild"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCIBUILD_SECRET_")}
        for sid, p in self.secrets(case, tmp).items():
            env["OCIBUILD_SECRET_" + sid] = str(p)
        with self.lock:
            store = self.free_stores.pop()
        try:
            cmd = [sys.executable, "-m", "ocibuild", "build", "--root", str(store), "--no-cache",
                   "-q", "-f", str(df), "--output", f"type=oci,dest={out}"]  # fmt: skip
            cmd += _common_args(case)
            proc = subprocess.run([*cmd, str(ctx)], capture_output=True, text=True, env=env,
                                  cwd=REPO, timeout=600)  # fmt: skip
        finally:
            with self.lock:
                self.free_stores.append(store)
        if proc.returncode != 0:
            return None, proc.stderr.strip()
        return read_image(out), proc.stderr

    def run_buildah(self, case: Case, tmp: Path, http_base: str) -> tuple[Image | None, str]:
        ctx = tmp / "ctx-buildah"
        df = self.make_context(case, ctx, "buildah", http_base)
        out = tmp / "out-buildah"
        root = ["buildah", "--root", str(self.buildah_root / "root"), "--runroot",
                str(self.buildah_root / "run"), "--storage-driver", "overlay"]  # fmt: skip
        tag = f"localhost/conformance-{case.name}"
        cmd = [*root, "bud", "--isolation", "chroot", "-q", "--layers=false", "-f", str(df),
               "-t", tag, *_common_args(case)]  # fmt: skip
        for sid, p in self.secrets(case, tmp).items():
            cmd += ["--secret", f"id={sid},src={p}"]
        proc = subprocess.run([*cmd, str(ctx)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return None, proc.stderr.strip()
        push = subprocess.run([*root, "push", "-q", tag, f"oci:{out}:latest"],
                              capture_output=True, text=True)  # fmt: skip
        if push.returncode != 0:
            return None, push.stderr.strip()
        return read_image(out), proc.stderr

    def run_case(self, case: Case, http_base: str) -> Outcome:
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=self.work))
        try:
            outcome = self._run_case(case, tmp, http_base)
        except Exception as exc:  # a harness failure is a failed case, not a crash
            outcome = Outcome(case, False, [f"harness error: {type(exc).__name__}: {exc}"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _run_case(self, case: Case, tmp: Path, http_base: str) -> Outcome:
        ours, log = self.run_ocibuild(case, tmp, http_base)
        if case.error is not None:
            problems = []
            if ours is not None:
                problems.append(f"ocibuild built it; expected an error containing {case.error!r}")
            elif case.error not in log:
                problems.append(f"ocibuild error lacks {case.error!r}:\n{_indent(log)}")
            if case.expect is None and not case.reason:
                theirs, _ = self.run_buildah(case, tmp, http_base)
                if theirs is not None:
                    problems.append("buildah built it, but the case expects an error")
            return Outcome(case, not problems, problems)
        if ours is None:
            return Outcome(case, False, [f"ocibuild failed:\n{_indent(log)}"])
        if case.expect is not None:
            problems = check_expectation(case, ours, self.base(case.base))
            return Outcome(case, not problems, problems)
        theirs, blog = self.run_buildah(case, tmp, http_base)
        if theirs is None:
            return Outcome(case, False, [f"buildah failed:\n{_indent(blog)}"])
        problems = compare(ours, theirs)
        return Outcome(case, not problems, problems)

    def run(self, cases: list[Case]) -> list[Outcome]:
        http_base = self.serve(cases)
        try:
            with ThreadPoolExecutor(self.jobs) as pool:
                return list(pool.map(lambda c: self.run_case(c, http_base), cases))
        finally:
            self.close()


def _common_args(case: Case) -> list[str]:
    args = []
    for k, v in case.build_args.items():
        args += ["--build-arg", f"{k}={v}"]
    if case.target:
        args += ["--target", case.target]
    return args


def _indent(text: str) -> str:
    lines = text.strip().splitlines()[-15:]
    return "\n".join("      " + line for line in lines)


def _config_field(image: Image, name: str) -> Any:
    value = (image.config.get("config") or {}).get(name)
    if name == "Labels" and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != BUILDAH_LABEL}
    if name == "WorkingDir" and value == "/":
        value = None  # "/" and unset mean the same to a runtime
    return value if value not in ("", [], {}) else None


def compare(ours: Image, theirs: Image) -> list[str]:
    problems = []
    for path in sorted(set(ours.files) | set(theirs.files)):
        a, b = ours.files.get(path), theirs.files.get(path)
        if a != b:
            problems.append(f"/{path}: ocibuild {_desc(a)} | buildah {_desc(b)}")
    for name in CONFIG_FIELDS:
        a, b = _config_field(ours, name), _config_field(theirs, name)
        if a != b:
            problems.append(f"config {name}: ocibuild {a!r} | buildah {b!r}")
    return problems


def check_expectation(case: Case, ours: Image, base: Image) -> list[str]:
    assert case.expect is not None
    problems = []
    diff: dict[str, Entry | None] = {p: e for p, e in ours.files.items() if base.files.get(p) != e}
    diff.update({p: None for p in base.files if p not in ours.files})
    for path, want in case.expect.files.items():
        got = diff.get(path.lstrip("/"), ours.files.get(path.lstrip("/")))
        if got != want:
            problems.append(f"{path}: ocibuild {_desc(got)} | expected {_desc(want)}")
    if case.expect.exact:
        wanted = {p.lstrip("/") for p in case.expect.files}
        for path in sorted(set(diff) - wanted):
            problems.append(f"/{path}: unexpected {_desc(diff[path])}")
    for name, want in case.expect.config.items():
        got = (ours.config.get("config") or {}).get(name)
        if got != want:
            problems.append(f"config {name}: ocibuild {got!r} | expected {want!r}")
    return problems


def _desc(entry: Entry | None) -> str:
    return "absent" if entry is None else entry.describe()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance")
    parser.add_argument("-k", help="only cases whose name contains this")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    cases = [c for c in all_cases() if not args.k or args.k in c.name]
    if args.list:
        for c in cases:
            print(c.name + (f"  [expectation: {c.reason}]" if c.reason else ""))
        return 0
    work = Path(tempfile.mkdtemp(prefix="ocibuild-conformance-"))
    started = time.monotonic()
    try:
        outcomes = Harness(work, args.jobs).run(cases)
    finally:
        subprocess.run(["umount", "-R", str(work / "buildah" / "root" / "overlay")],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    return report(outcomes, time.monotonic() - started)


def report(outcomes: list[Outcome], seconds: float) -> int:
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        print(f"FAIL {o.case.name} ({o.seconds:.1f}s)")
        for p in o.problems[:30]:
            print("    " + p)
    expected = [o.case for o in outcomes if o.case.reason]
    if expected:
        print(f"compared against written BuildKit expectations ({len(expected)}):")
        for c in expected:
            print(f"    {c.name}: {c.reason}")
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed in {seconds:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
