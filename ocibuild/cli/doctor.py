"""``ocibuild doctor``: what the chosen isolation mode needs, and how to fix what is missing."""

from __future__ import annotations

import argparse
import os
import pwd
from typing import Any

from ocibuild import doctor
from ocibuild.fs.idmap import in_user_namespace
from ocibuild.options import ISOLATIONS, STORAGE_DRIVERS, default_runtime


def register(sub: Any) -> None:
    d = sub.add_parser("doctor", help="check what builds need on this machine")
    d.add_argument("--isolation", choices=ISOLATIONS, help="the mode to check (default: auto)")
    d.add_argument("--storage-driver", choices=STORAGE_DRIVERS, help="default: overlay")
    d.add_argument("--runtime", help="crun or runc or a path (default: crun if installed)")
    d.add_argument("--user", help="check rootless building for this user (default: you)")
    d.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="OS/ARCH[/VARIANT]",
        help="check that builds for this platform can run RUN here (natively or emulated)",
    )
    d.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    isolation = args.isolation or os.environ.get("OCIBUILD_ISOLATION") or "auto"
    runtime = args.runtime or os.environ.get("OCIBUILD_RUNTIME") or default_runtime()
    picked = (
        "--runtime"
        if args.runtime
        else "OCIBUILD_RUNTIME"
        if os.environ.get("OCIBUILD_RUNTIME")
        else "default: crun when on PATH, else runc"
    )
    storage = args.storage_driver or os.environ.get("OCIBUILD_STORAGE_DRIVER") or "overlay"
    if args.user:
        entry = pwd.getpwnam(args.user)
        login, uid, gid = entry.pw_name, entry.pw_uid, entry.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
        login = doctor.login_of(uid)
    rootless = uid != 0 or isolation == "native-rootless" or in_user_namespace() or bool(args.user)
    needs = doctor.Needs(
        rootless=rootless,
        runtime=None if isolation == "native-chroot" else runtime,
        storage_driver=storage,
        user=login,
        uid=uid,
        gid=gid,
    )
    if isolation == "docker-with-fuse":  # the build runs in a container: check for that
        return _report_engine(options_root())
    mode = "rootless" if rootless else "root"
    print(
        f"checking: {mode} build as {login}, isolation {isolation}, storage {storage}, "
        f"runtime {'none (native-chroot)' if needs.runtime is None else f'{runtime} ({picked})'}"
    )
    failed = False
    platforms = [p.strip() for item in args.platform for p in item.split(",") if p.strip()]
    for f in doctor.run_checks(needs) + [doctor.check_platform(p) for p in platforms]:
        print(f"  [{f.status:>4}] {f.name}: {f.detail}")
        if f.fix:
            print(f"         fix: {f.fix}")
        failed = failed or (f.required and not f.ok)
    print("result: " + ("missing requirements (FAIL above)" if failed else "ready"))
    return 1 if failed else 0


def options_root() -> str:
    from ocibuild.options import Options

    return Options.resolve().root


def _report_engine(root: str) -> int:
    from ocibuild import engine

    print("checking: isolation docker-with-fuse (the build runs in the ocibuild image)")
    found = engine.doctor_findings(root)
    for f in found:
        print(f"  [{f.status:>4}] {f.name}: {f.detail}")
        if f.fix:
            print(f"         fix: {f.fix}")
    failed = any(f.required and not f.ok for f in found)
    print("result: " + ("missing requirements (FAIL above)" if failed else "ready"))
    return 1 if failed else 0
