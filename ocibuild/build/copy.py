"""COPY and ADD: sources from the context, a stage or an image, into the rootfs."""

from __future__ import annotations

import os
import posixpath
import re
import stat
import tarfile
from contextlib import ExitStack
from dataclasses import dataclass, field

from ocibuild.storage import fsops
from ocibuild.build.context import Source, SourceTree, has_glob
from ocibuild.build.rootfs import commit_upper, mounted, workspace
from ocibuild.build.step import StepContext, StepOutcome, fail
from ocibuild.dockerfile.instructions import Copy, Instruction
from ocibuild.errors import OcibuildError
from ocibuild.layers.apply import extract_archive
from ocibuild.layers.compress import open_decompressed
from ocibuild.runtime.users import resolve_user

COPY_FLAGS = frozenset({"from", "chown", "chmod", "link"})
ADD_FLAGS = frozenset({"chown", "chmod", "link"})


@dataclass
class CopyPlan:
    uid: int | None  # None: keep the source's owner (COPY --from), else this owner
    gid: int | None
    chmod: int | None
    hardlinks: dict[tuple[int, int], str] = field(default_factory=dict)
    dirs: list[tuple[str, os.stat_result]] = field(default_factory=list)

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        uid = st.st_uid if self.uid is None else self.uid
        gid = st.st_gid if self.gid is None else self.gid
        return uid, gid


def parse_chmod(instr: Instruction, value: str) -> int:
    if re.fullmatch(r"[0-7]{3,4}", value):
        return int(value, 8)
    raise fail(
        instr,
        f"invalid --chmod value {value!r}",
        hint="give octal permission bits, e.g. --chmod=0755 or --chmod=644",
    )


def resolve_chown(instr: Instruction, rootfs: str, spec: str) -> tuple[int, int]:
    """--chown=user[:group]: names looked up in the image; no group means gid = uid."""
    user, sep, group = spec.partition(":")
    try:
        resolved = resolve_user(rootfs, spec if sep else user)
    except OcibuildError as exc:
        raise fail(instr, f"--chown={spec}: {exc.message}", hint=exc.hint) from None
    return resolved.uid, (resolved.gid if sep else resolved.uid)


def copy_step(ctx: StepContext, instr: Instruction) -> StepOutcome:
    assert isinstance(instr, Copy)
    is_add = instr.keyword == "ADD"
    allowed = ADD_FLAGS if is_add else COPY_FLAGS
    for flag in instr.flags:
        if flag.name not in allowed:
            raise fail(
                instr,
                f"the --{flag.name} flag is not supported yet",
                hint=f"{instr.keyword} supports: " + ", ".join(f"--{f}" for f in sorted(allowed)),
            )
    if instr.heredocs:
        raise fail(instr, "heredocs in COPY/ADD are not supported yet")
    sources = [ctx.expand(instr, s) for s in instr.sources]
    dest = ctx.expand(instr, instr.dest)
    if is_add:
        for src in sources:
            if re.match(r"^(https?|git)://", src) or src.startswith("git@"):
                raise fail(instr, f"ADD from a URL is not supported yet: {src}")
    if len(sources) > 1 and not dest.endswith("/"):
        raise fail(
            instr,
            f"When using {instr.keyword} with more than one source file, "
            "the destination must be a directory and end with a /",
            hint=f"write the destination as {dest}/",
        )
    chmod_flag = instr.flag("chmod")
    chmod = parse_chmod(instr, ctx.expand(instr, chmod_flag.value or "")) if chmod_flag else None
    chown_flag = instr.flag("chown")
    chown = ctx.expand(instr, chown_flag.value or "") if chown_flag else ""
    from_flag = instr.flag("from")
    from_ref = ctx.expand(instr, from_flag.value or "") if from_flag else None

    with ExitStack() as stack:
        if from_ref is None:
            tree = ctx.context
        else:
            diff_ids = source_layers(ctx, instr, from_ref)
            src_work = stack.enter_context(workspace(ctx, "from-"))
            src_mount = stack.enter_context(mounted(ctx, diff_ids, src_work))
            tree = SourceTree(src_mount.target)
        work = stack.enter_context(workspace(ctx, "copy-"))
        with mounted(ctx, ctx.image.diff_ids, work) as mnt:
            root = mnt.target
            uid, gid = resolve_chown(instr, root, chown) if chown else (None, None)
            if uid is None and from_ref is None:
                uid, gid = 0, 0  # context files are copied as root, as BuildKit does
            plan = CopyPlan(uid, gid, chmod)
            matches: list[Source] = []
            for src in sources:
                found = tree.match(src)
                if not found:
                    where = "build context" if from_ref is None else f"stage or image {from_ref!r}"
                    raise fail(
                        instr,
                        f"source {src!r} not found in the {where}",
                        hint="check the path (relative to the context root) and .dockerignore",
                    )
                matches.extend(found)
            if not dest.startswith("/"):
                dest = posixpath.join(ctx.image.workdir, dest)
            dest_is_dir = dest.endswith("/") or len(matches) > 1
            try:
                for match in matches:
                    copy_source(tree, match, root, dest, dest_is_dir, plan, is_add)
                for host, st in reversed(plan.dirs):
                    os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            except OSError as exc:
                raise fail(instr, f"copy failed: {exc}") from None
        return commit_upper(ctx, mnt.upper)
    raise AssertionError("unreachable")


def source_layers(ctx: StepContext, instr: Instruction, ref: str) -> list[str]:
    index = ctx.plan.stage_ref(ref, ctx.stage_index)
    if index is not None:
        image = ctx.stage_images.get(index)
        if image is None:
            raise fail(instr, f"stage {ref!r} has not been built")
        return list(image.diff_ids)
    if has_glob(ref) or ref.isdigit():
        raise fail(instr, f"invalid --from={ref}: no such stage", hint="name an earlier stage")
    try:
        config = ctx.store.get_config(ctx.store.resolve(ref))
    except OcibuildError as exc:
        raise fail(
            instr, f"--from={ref}: not a stage and not an image in the local store", hint=exc.hint
        ) from None
    return list((config.get("rootfs") or {}).get("diff_ids") or [])


def copy_source(
    tree: SourceTree, src: Source, root: str, dest: str, dest_is_dir: bool, plan: CopyPlan, add: bool
) -> None:
    st = os.stat(src.host_path)
    if stat.S_ISDIR(st.st_mode):
        target = fsops.host_path(root, dest)
        if not os.path.lexists(target):
            fsops.makedirs(root, posixpath.dirname(dest.rstrip("/")) or "/", **_parent_owner(plan))
            os.mkdir(target)
            apply_meta(target, st, plan, src.host_path)
            plan.dirs.append((target, st))
        for host, rel, entry_st in tree.walk(src):
            copy_entry(host, entry_st, root, posixpath.join(dest, rel), plan)
        return
    if add and is_archive(src.host_path):
        target_dir = fsops.makedirs(root, dest, **_parent_owner(plan))
        with open(src.host_path, "rb") as raw:
            extract_archive(open_decompressed(raw), root, os.path.relpath(target_dir, root))
        return
    target_path = dest
    if dest_is_dir or os.path.isdir(fsops.host_path(root, dest)):
        target_path = posixpath.join(dest, posixpath.basename(src.rel) or "file")
    fsops.makedirs(root, posixpath.dirname(target_path.rstrip("/")) or "/", **_parent_owner(plan))
    copy_entry(src.host_path, st, root, target_path, plan)


def _parent_owner(plan: CopyPlan) -> dict[str, int]:
    return {"uid": plan.uid or 0, "gid": plan.gid or 0}


def copy_entry(src: str, st: os.stat_result, root: str, path: str, plan: CopyPlan) -> None:
    parent, name = fsops.parent_in_root(root, path)
    dst = os.path.join(parent, name)
    mode = st.st_mode
    existing = os.lstat(dst) if os.path.lexists(dst) else None
    if existing is not None and not (stat.S_ISDIR(mode) and stat.S_ISDIR(existing.st_mode)):
        fsops.remove_any(dst)
        existing = None
    key = (st.st_dev, st.st_ino)
    if stat.S_ISDIR(mode):
        if existing is None:
            os.mkdir(dst)
        plan.dirs.append((dst, st))
    elif stat.S_ISREG(mode) and st.st_nlink > 1 and key in plan.hardlinks:
        os.link(plan.hardlinks[key], dst)
        return
    elif stat.S_ISREG(mode):
        fsops.copy_data(src, dst)
        if st.st_nlink > 1:
            plan.hardlinks[key] = dst
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(dst)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(dst, mode, st.st_rdev)
    else:
        return  # sockets are not copied
    apply_meta(dst, st, plan, src)


def apply_meta(dst: str, st: os.stat_result, plan: CopyPlan, src: str) -> None:
    uid, gid = plan.owner(st)
    os.chown(dst, uid, gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        mode = stat.S_IMODE(st.st_mode) if plan.chmod is None else plan.chmod
        os.chmod(dst, mode)  # after chown: chown clears setuid bits
        fsops.copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def is_archive(path: str) -> bool:
    """A tar archive, plain or compressed (gzip, bzip2, xz, zstd), recognised by content."""
    try:
        with open(path, "rb") as raw:
            block = open_decompressed(raw).read(512)
    except (OSError, EOFError, ValueError, OcibuildError):
        return False
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True
