"""Build every case with ocibuild and compare it with the real BuildKit's result.

    python -m conformance.harness [-k SUBSTRING] [-j JOBS] [--live] [--buildah] [--list]

The reference of record is BuildKit (v0.11.6 on these machines). Its result for each
case is recorded in ``conformance/goldens/CASE.json`` (``python -m conformance.regen``
writes them from a running BuildKit), so the default run needs no BuildKit: ocibuild
builds each case from the cached local base layouts (``conformance.bases``), the image is
flattened (``conformance.layout``) and its difference from the base, plus the config
fields, is compared with the golden file.

``--live`` also builds each case with the running BuildKit (bases pulled by digest from
the local registry on 127.0.0.1:5000), compares ocibuild with that fresh result and says
which golden files are stale. ``--buildah`` adds buildah 1.28 as an informational second
column (whether buildah agrees with BuildKit); it never decides a case.

Each case ends up in one of three counts: identical to BuildKit v0.11.6's output,
matching a written expectation (only where v0.11.6 cannot be the reference; reasons
printed), or differing (one line per difference). Differing cases listed in
``conformance.known_differences`` (open bugs) are reported but do not fail the run.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from conformance import buildkit
from conformance.bases import busybox_layout, debian_layout
from conformance.case import Case, Dir, File, Link
from conformance.cases import all_cases
from conformance.golden import (
    CONFIG_FIELDS,
    Result,
    _short,
    compare,
    input_digest,
    patched,
    read_golden,
    result_of,
    write_golden,
    written_result,
)
from conformance.known_differences import KNOWN
from conformance.layout import Image, read_image
from conformance.multiarch import debian_index_layout

REPO = Path(__file__).resolve().parents[1]
TAGS = {"busybox": "latest", "debian": "bookworm", "debian-multi": "bookworm"}
LAYOUTS = {"busybox": busybox_layout, "debian": debian_layout, "debian-multi": debian_index_layout}


@dataclass
class Outcome:
    case: Case
    status: str  # "identical", "written", "differing"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # stale golden, buildah column, ...
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
    def __init__(self, work: Path, jobs: int = 2, *, live: bool = False,
                 buildah: bool = False) -> None:  # fmt: skip
        self.work = work
        self.jobs = jobs
        self.live = live
        self.buildah = buildah
        self.layouts: dict[str, Path] = {}
        self.bases: dict[tuple[str, str], Image] = {}
        self.refs: dict[str, str] = {}
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None
        self.http_base = ""
        self.buildah_root = work / "buildah"
        self.stores = [work / f"store{i}" for i in range(jobs)]
        self.free_stores = list(self.stores)

    # -- set-up ---------------------------------------------------------------------
    def layout(self, name: str) -> Path:
        with self.lock:
            if name not in self.layouts:
                self.layouts[name] = LAYOUTS[name]()
            return self.layouts[name]

    def base(self, name: str, arch: str = "") -> Image:
        """The base image (``arch``'s from a multi-platform base)."""
        if name == "scratch":
            return Image()
        layout = self.layout(name)
        with self.lock:
            if (name, arch) not in self.bases:
                self.bases[name, arch] = read_image(layout, arch)
            return self.bases[name, arch]

    def base_id(self, name: str, arch: str = "") -> str:
        """The diffID of the base's (single) layer: which base a golden was made from."""
        if name == "scratch":
            return ""
        rootfs = self.base(name, arch).config.get("rootfs", {})
        return str(rootfs.get("diff_ids", [""])[-1])

    def registry_ref(self, name: str) -> str:
        layout = self.layout(name)
        with self.lock:
            if name not in self.refs:
                self.refs[name] = buildkit.push_base(name, layout, TAGS[name])
            return self.refs[name]

    def serve(self, cases: list[Case]) -> None:
        content: dict[str, bytes] = {}
        for case in cases:
            for path, body in case.http.items():
                content[f"/{case.name}/{path.lstrip('/')}"] = body
        _Served.content = content
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Served)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.http_base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- contexts ---------------------------------------------------------------------
    def dockerfile(self, case: Case, builder: str) -> str:
        text = case.dockerfile
        for name, tag in TAGS.items():
            if "{" + name + "}" not in text:
                continue
            if builder == "ocibuild":
                ref = f"oci-layout://{self.layout(name)}:{tag}"
            elif builder == "buildah":
                ref = f"oci:{self.layout(name)}:{tag}"
            else:
                ref = self.registry_ref(name)
            text = text.replace("{" + name + "}", ref)
        return text.replace("{http}", f"{self.http_base}/{case.name}")

    def make_context(self, case: Case, path: Path, builder: str) -> Path:
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
        df.write_text(self.dockerfile(case, builder))
        return df

    def secrets(self, case: Case, where: Path) -> dict[str, Path]:
        out = {}
        for sid, value in case.secrets.items():
            p = where / f"secret-{sid}"
            p.write_text(value)
            out[sid] = p
        return out

    # -- builders ---------------------------------------------------------------------
    def run_ocibuild(self, case: Case, tmp: Path) -> Result:
        ctx = tmp / "ctx-ocibuild"
        df = self.make_context(case, ctx, "ocibuild")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCIBUILD_SECRET_")}
        for sid, p in self.secrets(case, tmp).items():
            env["OCIBUILD_SECRET_" + sid] = str(p)

        def once(out: Path, store: Path, cache: bool) -> tuple[Image | None, str]:
            cmd = [sys.executable, "-m", "ocibuild", "build", "--root", str(store), "-q",
                   "-f", str(df), "--output", f"type=oci,dest={out}"]  # fmt: skip
            if not cache:
                cmd.append("--no-cache")
            if case.platform:
                cmd += ["--platform", case.platform]
            cmd += _common_args(case)
            proc = subprocess.run([*cmd, str(ctx)], capture_output=True, text=True, env=env,
                                  cwd=REPO, timeout=600)  # fmt: skip
            if proc.returncode != 0:
                return None, proc.stderr.strip() or proc.stdout.strip()
            return read_image(out, case.pick), proc.stderr

        if case.rebuild:  # its own store: the second build must hit the first one's cache
            first, log = once(tmp / "out-ocibuild", tmp / "store", True)
            if first is None:
                return Result(error=log)
            second, log = once(tmp / "out-ocibuild-2", tmp / "store", True)
            if second is None:
                return Result(error=log)
            result = result_of(second, self.base(case.base, case.pick), case, self.base("busybox"))
            result.same_id_on_rebuild = _image_id(tmp / "out-ocibuild") == _image_id(
                tmp / "out-ocibuild-2"
            )
            return result
        with self.lock:
            store = self.free_stores.pop()
        try:
            image, log = once(tmp / "out-ocibuild", store, False)
        finally:
            with self.lock:
                self.free_stores.append(store)
        if image is None:
            return Result(error=log)
        return result_of(image, self.base(case.base, case.pick), case, self.base("busybox"))

    def run_buildkit(self, case: Case, tmp: Path) -> Result:
        ctx = tmp / "ctx-buildkit"
        df = self.make_context(case, ctx, "buildkit")
        secrets = self.secrets(case, tmp)

        def once(out: Path) -> tuple[Path | None, str]:
            return buildkit.build(ctx, df, out, build_args=case.build_args, target=case.target,
                                  secrets=secrets, platform=case.platform)  # fmt: skip

        layout, log = once(tmp / "out-buildkit")
        if layout is None:
            return Result(error=buildkit.error_message(log))
        image = read_image(layout, case.pick)
        result = result_of(image, self.base(case.base, case.pick), case, self.base("busybox"))
        if case.rebuild:
            again, log = once(tmp / "out-buildkit-2")
            if again is None:
                return Result(error=buildkit.error_message(log))
            result.same_id_on_rebuild = _image_id(layout) == _image_id(again)
        return result

    def run_buildah(self, case: Case, tmp: Path) -> Result:
        ctx = tmp / "ctx-buildah"
        df = self.make_context(case, ctx, "buildah")
        out = tmp / "out-buildah"
        root = ["buildah", "--root", str(self.buildah_root / "root"), "--runroot",
                str(self.buildah_root / "run"), "--storage-driver", "overlay"]  # fmt: skip
        tag = f"localhost/conformance-{case.name}"
        cmd = [*root, "bud", "--isolation", "chroot", "-q", "--layers=false", "-f", str(df),
               "-t", tag, *_common_args(case)]  # fmt: skip
        if case.pick:
            cmd += ["--platform", f"linux/{case.pick}"]
        for sid, p in self.secrets(case, tmp).items():
            cmd += ["--secret", f"id={sid},src={p}"]
        proc = subprocess.run([*cmd, str(ctx)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return Result(error=proc.stderr.strip() or "failed")
        push = subprocess.run([*root, "push", "-q", tag, f"oci:{out}:latest"],
                              capture_output=True, text=True)  # fmt: skip
        if push.returncode != 0:
            return Result(error=push.stderr.strip() or "push failed")
        base = self.base(case.base, case.pick)
        return result_of(read_image(out), base, case, self.base("busybox"))

    # -- one case -------------------------------------------------------------------
    def case_digest(self, case: Case, tmp: Path) -> str:
        ctx = tmp / "ctx-digest"
        self.make_context(case, ctx, "ocibuild")
        return input_digest(case, ctx)

    def regen_case(self, case: Case) -> Outcome:
        """Build ``case`` with BuildKit and record the golden file."""

        def body(tmp: Path) -> Outcome:
            result = self.run_buildkit(case, tmp)
            base_id = self.base_id(case.base, case.pick)
            write_golden(case, result, self.case_digest(case, tmp), base_id)
            what = f"error: {result.error}" if result.error else f"{len(result.files)} paths"
            return Outcome(case, "identical", notes=[what])

        return self._guarded(case, body)

    def run_case(self, case: Case) -> Outcome:
        return self._guarded(case, lambda tmp: self._run_case(case, tmp))

    def _guarded(self, case: Case, body: Callable[[Path], Outcome]) -> Outcome:
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=self.work))
        try:
            outcome = body(tmp)
        except Exception as exc:  # a harness failure is a differing case, not a crash
            outcome = Outcome(case, "differing", [f"harness error: {type(exc).__name__}: {exc}"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _run_case(self, case: Case, tmp: Path) -> Outcome:
        notes: list[str] = []
        stale = False
        ours = self.run_ocibuild(case, tmp)
        exact, fields = True, CONFIG_FIELDS + (("platform",) if case.platform else ())
        if case.expect is not None:
            fields = tuple(case.expect.config)
            want: Result | None = written_result(case.expect)
            exact = case.expect.exact
            if case.error is not None:
                want = Result(error=case.error)
        else:
            golden = read_golden(case.name)
            stale = golden is not None and golden.input != self.case_digest(case, tmp)
            if golden is not None and golden.base_layer != self.base_id(case.base, case.pick):
                notes.append(f"golden made from another {case.base} base layer")
            if self.live:
                fresh = self.run_buildkit(case, tmp)
                if golden is not None and (stale or compare(fresh, golden.result, who="golden")):
                    notes.append("golden is stale: the running BuildKit builds something else "
                                 "or the case changed (python -m conformance.regen)")  # fmt: skip
                elif golden is None:
                    notes.append("no golden file yet (python -m conformance.regen)")
                want = fresh
            else:
                want = golden.result if golden is not None else None
            if want is not None and case.newer is not None:
                want = patched(want, case.newer)
        if want is None:
            return Outcome(case, "differing", ["no golden file: run python -m conformance.regen"],
                           notes)  # fmt: skip
        problems = compare(ours, want, exact=exact, fields=fields)
        if case.expect is None and stale and not self.live:
            problems.insert(0, "golden is stale: the case changed since it was recorded "
                            "(python -m conformance.regen -k NAME)")  # fmt: skip
        if case.error is not None:
            if want.error is None:
                problems.append("the case expects an error, but BuildKit built it")
            elif ours.error is not None and case.error and case.error not in ours.error:
                problems.append(f"ocibuild's error lacks {case.error!r}: {_last(ours.error)}")
        if self.buildah:
            theirs = self.run_buildah(case, tmp)
            n = len(compare(theirs, want, exact=exact, who="reference", fields=fields))
            notes.append("buildah: same as BuildKit" if not n else f"buildah: {n} differences")
        status = "differing" if problems else ("written" if case.written else "identical")
        return Outcome(case, status, problems, notes)

    def run(self, cases: list[Case], job: Callable[[Case], Outcome] | None = None,
            ) -> list[Outcome]:  # fmt: skip
        self.serve(cases)
        try:
            with ThreadPoolExecutor(self.jobs) as pool:
                return list(pool.map(job or self.run_case, cases))
        finally:
            self.close()


def _image_id(layout: Path) -> str:
    """The config digest (the image ID) of a layout's first manifest."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)
    manifest = json.loads((layout / "blobs" / digest[0] / digest[1]).read_text())
    if "manifests" in manifest:
        digest = manifest["manifests"][0]["digest"].split(":", 1)
        manifest = json.loads((layout / "blobs" / digest[0] / digest[1]).read_text())
    return str(manifest["config"]["digest"])


def _common_args(case: Case) -> list[str]:
    args = []
    for k, v in case.build_args.items():
        args += ["--build-arg", f"{k}={v}"]
    if case.target:
        args += ["--target", case.target]
    return args


def _last(text: str) -> str:
    return _short(text)


def select(k: str | None) -> list[Case]:
    """The cases whose name contains one of the comma-separated substrings ``k``."""
    words = [w for w in (k or "").split(",") if w]
    return [c for c in all_cases() if not words or any(w in c.name for w in words)]


def with_work(fn: Callable[[Path], int]) -> int:
    work = Path(tempfile.mkdtemp(prefix="ocibuild-conformance-"))
    try:
        return fn(work)
    finally:
        subprocess.run(["umount", "-R", str(work / "buildah" / "root" / "overlay")],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance")
    parser.add_argument("-k", help="only cases whose name contains one of these (a,b,...)")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--live",
        action="store_true",
        help="build with the running BuildKit too (stale goldens reported)",
    )
    parser.add_argument(
        "--buildah", action="store_true", help="add buildah 1.28 as an informational column"
    )
    parser.add_argument(
        "--regen", action="store_true", help="rewrite the golden files from the running BuildKit"
    )
    args = parser.parse_args(argv)
    cases = select(args.k)
    if args.list:
        for c in cases:
            print(c.name + (f"  [written: {c.reason}]" if c.written else ""))
        return 0
    if args.regen:
        from conformance.regen import regen

        return regen(cases, args.jobs, prune=not args.k)
    if args.live and (why := buildkit.buildkit_available()) is not None:
        print(f"--live needs a running BuildKit: {why}", file=sys.stderr)
        return 2
    started = time.monotonic()

    def go(work: Path) -> int:
        outcomes = Harness(work, args.jobs, live=args.live, buildah=args.buildah).run(cases)
        return report(outcomes, time.monotonic() - started)

    return with_work(go)


def report(outcomes: list[Outcome], seconds: float) -> int:
    differing = [o for o in outcomes if o.status == "differing"]
    written = [o for o in outcomes if o.status == "written"]
    identical = [o for o in outcomes if o.status == "identical"]
    unknown = [o for o in differing if o.case.name not in KNOWN]
    for o in differing:
        known = f"  [known difference, bug {KNOWN[o.case.name]}]" if o.case.name in KNOWN else ""
        print(f"DIFF {o.case.name} ({o.seconds:.1f}s){known}")
        for p in o.problems[:30]:
            print("    " + p)
        if len(o.problems) > 30:
            print(f"    ... {len(o.problems) - 30} more")
    for o in outcomes:
        for note in o.notes:
            print(f"NOTE {o.case.name}: {note}")
    fixed = [o.case.name for o in outcomes if o.case.name in KNOWN and o.status != "differing"]
    for name in fixed:
        print(f"FIXED {name}: now matches; remove it from conformance/known_differences.py")
    if written:
        print(f"matching a written expectation ({len(written)}):")
        for o in written:
            print(f"    {o.case.name}: {o.case.reason}")
    counts = (
        f"{len(identical)} identical to BuildKit v0.11.6, {len(written)} matching a written "
        "expectation"
    )
    if not differing:  # the two counts and nothing else
        print(f"{counts} in {seconds:.0f}s")
        return 0
    print("differing (one line each):")
    for o in differing:
        first = o.problems[0] if o.problems else ""
        tag = " [known]" if o.case.name in KNOWN else ""
        print(f"    {o.case.name}{tag}: {first[:160]}")
    print(
        f"{counts}, {len(differing)} differing ({len(differing) - len(unknown)} known, "
        f"{len(unknown)} new) in {seconds:.0f}s"
    )
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
