"""COPY and ADD: sources from the context, a stage or an image, into the rootfs."""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from contextlib import ExitStack
from dataclasses import dataclass, field

from ocibuild.builder.chmod import Chmod, parse_chmod
from ocibuild.builder.context import Source, SourceTree, has_glob
from ocibuild.builder.fetch import download, is_git, is_url
from ocibuild.builder.heredoc import heredoc_content, is_heredoc_word
from ocibuild.builder.rootfs import commit_upper, mounted, workspace
from ocibuild.builder.source import OCI_LAYOUT, split_layout_ref
from ocibuild.builder.step import StepContext, StepOutcome, fail
from ocibuild.dockerfile.ignore import IgnoreMatcher, load_patterns
from ocibuild.dockerfile.instructions import Copy, Heredoc, Instruction
from ocibuild.errors import OcibuildError
from ocibuild.fs.copytree import copy_entries
from ocibuild.fs.rootpath import resolve_in_root
from ocibuild.image.layout import import_oci_layout
from ocibuild.layers.apply import extract_archive
from ocibuild.layers.compress import open_decompressed
from ocibuild.runtime.users import resolve_owner
from ocibuild.storage import fsops

COPY_FLAGS = frozenset({"from", "chown", "chmod", "link", "parents", "exclude"})
ADD_FLAGS = frozenset(
    {"chown", "chmod", "link", "checksum", "exclude", "parents", "keep-git-dir", "unpack"}
)
HEREDOC_FILE_MODE = 0o644  # BuildKit's Mkfile for COPY <<EOF
URL_FILE_MODE = 0o600  # BuildKit's ADD https://...


@dataclass
class CopyPlan:
    uid: int | None  # None: keep the source's owner (COPY --from), else this owner
    gid: int | None
    chmod: Chmod | None
    hardlinks: dict[tuple[int, int], str] = field(default_factory=dict)
    dirs: list[tuple[str, os.stat_result]] = field(default_factory=list)
    exclude: IgnoreMatcher | None = None

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        uid = st.st_uid if self.uid is None else self.uid
        gid = st.st_gid if self.gid is None else self.gid
        return uid, gid

    def mode(self, st: os.stat_result) -> int:
        return stat.S_IMODE(st.st_mode) if self.chmod is None else self.chmod(st.st_mode)


@dataclass(frozen=True)
class Item:
    """One source to copy: where it is, and what to do with it."""

    tree: SourceTree
    source: Source
    extract: bool = False  # ADD of a local archive
    keep: str = ""  # --parents: the path kept below the destination


def chmod_flag(ctx: StepContext, instr: Instruction) -> Chmod | None:
    flag = instr.flag("chmod")
    if flag is None:
        return None
    value = ctx.expand(instr, flag.value or "")
    parsed = parse_chmod(value)
    if parsed is None:
        raise fail(
            instr,
            f"invalid chmod parameter: {value!r}",
            hint="give octal bits (--chmod=0755) or a symbolic mode (--chmod=u+x,go-w)",
        )
    return parsed


def resolve_chown(instr: Instruction, rootfs: str, spec: str) -> tuple[int, int]:
    """--chown=user[:group]: names looked up in the image. With no group, a user name
    takes that user's primary gid from the image's /etc/passwd and a numeric uid is also
    the gid (BuildKit's readUser: ``--chown=bob`` gives bob's uid:gid, ``--chown=1001``
    1001:1001 even when passwd gives uid 1001 another group). An empty part is id 0
    (BuildKit v0.11.6: ``--chown=:`` is 0:0, ``1:`` is 1:0)."""
    user, sep, group = spec.partition(":")
    user = user or "0"
    spec = f"{user}:{group or '0'}" if sep else user
    try:
        return resolve_owner(rootfs, spec)
    except OcibuildError as exc:
        raise fail(instr, f"--chown={spec}: {exc.message}", hint=exc.hint) from None


def _check_flags(instr: Copy) -> None:
    allowed = ADD_FLAGS if instr.keyword == "ADD" else COPY_FLAGS
    for flag in instr.flags:
        if flag.name not in allowed:
            raise fail(
                instr,
                f"the --{flag.name} flag is not supported by {instr.keyword}",
                hint=f"{instr.keyword} supports: " + ", ".join(f"--{f}" for f in sorted(allowed)),
            )


def _bool_flag(instr: Instruction, name: str) -> bool:
    flag = instr.flag(name)
    return flag is not None and (flag.value or "true").lower() == "true"


def _parents_keep(pattern: str, rel: str) -> str:
    """--parents: the part of ``rel`` kept below the destination (after a ``/./`` pivot)."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if "/./" in pattern:
        head = pattern.split("/./", 1)[0]
        depth = len([p for p in posixpath.normpath("/" + head).split("/") if p])
        return "/".join(rel.split("/")[depth:])
    return rel


def copy_step(ctx: StepContext, instr: Instruction) -> StepOutcome:
    assert isinstance(instr, Copy)
    is_add = instr.keyword == "ADD"
    _check_flags(instr)
    env = ctx.stage.expand_env()
    dest = ctx.expand(instr, instr.dest)
    chmod = chmod_flag(ctx, instr)
    chown_flag = instr.flag("chown")
    chown = ctx.expand(instr, chown_flag.value or "") if chown_flag else ""
    from_flag = instr.flag("from")
    from_ref = ctx.expand(instr, from_flag.value or "") if from_flag else None
    parents = _bool_flag(instr, "parents")
    excludes = [ctx.expand(instr, v) for v in instr.flag_values("exclude")]
    checksum_flag = instr.flag("checksum")
    checksum = ctx.expand(instr, checksum_flag.value or "") if checksum_flag else None
    unpack_flag = instr.flag("unpack")
    unpack = None if unpack_flag is None else _bool_flag(instr, "unpack")

    with ExitStack() as stack:
        gen_dir = stack.enter_context(workspace(ctx, "gen-"))
        gen_tree = SourceTree(gen_dir)
        if from_ref is None:
            tree = ctx.context
        else:
            diff_ids = source_layers(ctx, instr, from_ref)
            src_work = stack.enter_context(workspace(ctx, "from-"))
            src_mount = stack.enter_context(mounted(ctx, diff_ids, src_work))
            tree = SourceTree(src_mount.target)
        items: list[Item] = []
        docs = list(instr.heredocs)
        count = 0
        for raw in instr.sources:
            count += 1
            if instr.heredocs and is_heredoc_word(raw) and docs:
                doc = docs.pop(0)
                items.append(_heredoc_item(gen_tree, doc, heredoc_content(doc, env), count))
                continue
            src = ctx.expand(instr, raw)
            if is_add and is_url(src):
                items.append(_url_item(instr, gen_tree, src, checksum, bool(unpack), count))
                continue
            if is_add and is_git(src):
                raise fail(instr, f"ADD from a Git repository is not supported: {src}")
            if checksum is not None:
                raise fail(instr, "checksum can't be specified for non-HTTP(S) sources")
            found = tree.match(src)
            if excludes:
                matcher = IgnoreMatcher(load_patterns("\n".join(excludes), "--exclude"))
                found = [f for f in found if not matcher.matches(f.rel)]
            if not found and has_glob(src):
                continue  # BuildKit copies nothing for a wildcard that matches nothing
            if not found:
                where = "build context" if from_ref is None else f"stage or image {from_ref!r}"
                if from_ref is None and _ignored(tree, src):
                    raise fail(
                        instr,
                        f"source {src!r} is excluded by .dockerignore",
                        hint=f"remove its pattern from .dockerignore (or add a line !{src})",
                    )
                raise fail(
                    instr,
                    f"source {src!r} not found in the {where}",
                    hint="check the path (relative to the context root) and .dockerignore",
                )
            for match in found:
                keep = _parents_keep(src, match.rel) if parents else ""
                items.append(Item(tree, match, is_add and unpack is not False, keep))
        # Several sources and a destination without a trailing slash: BuildKit (v0.11.6
        # and today) has no "must end with a /" rule (the classic builder's): each
        # source is copied onto the destination in turn, the last one wins.
        work = stack.enter_context(workspace(ctx, "copy-"))
        with mounted(ctx, ctx.image.diff_ids, work) as mnt:
            root = mnt.target
            uid, gid = resolve_chown(instr, root, chown) if chown else (None, None)
            if uid is None and from_ref is None:
                uid, gid = 0, 0  # context files are copied as root, as BuildKit does
            plan = CopyPlan(uid, gid, chmod)
            if excludes:
                plan.exclude = IgnoreMatcher(load_patterns("\n".join(excludes), "--exclude"))
            # Several matches of one wildcard go one after the other onto ``dest``
            # (BuildKit: ``COPY *.txt /dest`` leaves the last match as the file /dest);
            # only a trailing slash, ``.`` (or --parents) makes ``dest`` a directory.
            dest_is_dir = dest.endswith("/") or dest in (".", "") or parents
            # Cleaned as a path first (``/link/..`` is ``/``), then resolved in the root.
            dest = posixpath.normpath(posixpath.join("/", ctx.image.workdir, dest))
            try:
                for item in items:
                    item_plan = plan
                    if item.tree is gen_tree and uid is None:
                        item_plan = CopyPlan(0, 0, chmod, plan.hardlinks, plan.dirs, plan.exclude)
                    target = posixpath.join(dest, item.keep) if item.keep else dest
                    copy_source(item, root, target, dest_is_dir and not item.keep, item_plan)
                for host, st in reversed(plan.dirs):
                    os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            except OSError as exc:
                raise fail(instr, f"copy failed: {exc}") from None
            except OcibuildError as exc:
                raise fail(instr, exc.message, hint=exc.hint) from None
        return commit_upper(ctx, mnt.upper)
    raise AssertionError("unreachable")


def _heredoc_item(gen: SourceTree, doc: Heredoc, content: str, n: int) -> Item:
    sub = os.path.join(gen.root, str(n))
    os.mkdir(sub)
    path = os.path.join(sub, doc.name)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(content)
    os.chmod(path, HEREDOC_FILE_MODE)
    return Item(gen, Source(path, f"{n}/{doc.name}"))


def _url_item(
    instr: Instruction, gen: SourceTree, url: str, checksum: str | None, unpack: bool, n: int
) -> Item:
    sub = os.path.join(gen.root, str(n))
    os.mkdir(sub)
    try:
        got = download(url, sub, checksum)
    except OcibuildError as exc:
        raise fail(instr, exc.message, hint=exc.hint) from None
    path = os.path.join(sub, got.name)
    os.rename(got.path, path)
    os.chmod(path, URL_FILE_MODE)
    if got.mtime is not None:
        os.utime(path, (got.mtime, got.mtime))
    return Item(gen, Source(path, f"{n}/{got.name}"), extract=unpack)


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
        if ref.startswith(OCI_LAYOUT):
            path, tag = split_layout_ref(ref)
            image_id = import_oci_layout(ctx.store, os.path.abspath(path), tag)
        else:
            image_id = ctx.store.resolve(ref)
        config = ctx.store.get_config(image_id)
    except OcibuildError as exc:
        raise fail(
            instr, f"--from={ref}: not a stage and not an image in the local store", hint=exc.hint
        ) from None
    return list((config.get("rootfs") or {}).get("diff_ids") or [])


def copy_source(item: Item, root: str, dest: str, dest_is_dir: bool, plan: CopyPlan) -> None:
    """Copy one source to ``dest`` (a clean absolute path), which is resolved inside the
    root first, as BuildKit does: a symlink on the way, or at the end, is written
    through (a dangling one has its target created), never replaced."""
    tree, src = item.tree, item.source
    st = os.stat(src.host_path)
    dest = "/" + resolve_in_root(root, dest)
    if stat.S_ISDIR(st.st_mode):
        target = fsops.host_path(root, dest)
        if not os.path.lexists(target):
            # BuildKit makes a missing destination dir 0755, owned by --chown or root,
            # whatever the source dir's mode and owner; it keeps the source's mtime.
            fsops.makedirs(root, posixpath.dirname(dest) or "/", **_parent_owner(plan))
            os.mkdir(target, 0o755)
            os.chown(target, plan.uid or 0, plan.gid or 0, follow_symlinks=False)
            os.chmod(target, 0o755)
            plan.dirs.append((target, st))
        entries = tree.walk(src)
        if plan.exclude is not None:
            entries = [e for e in entries if not plan.exclude.matches(e[1])]
        copy_entries(entries, target, plan)
        return
    if item.extract and is_archive(src.host_path):
        target_dir = fsops.makedirs(root, dest, **_parent_owner(plan))
        with open(src.host_path, "rb") as raw:
            extract_archive(open_decompressed(raw), root, os.path.relpath(target_dir, root))
        return
    target_path = dest
    if dest_is_dir or os.path.isdir(fsops.host_path(root, dest)):
        target_path = posixpath.join(dest, src.name or "file")
    fsops.makedirs(root, posixpath.dirname(target_path) or "/", **_parent_owner(plan))
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
        os.chmod(dst, plan.mode(st))  # after chown: chown clears setuid bits
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


def _ignored(tree: SourceTree, src: str) -> bool:
    """``src`` exists in the context but .dockerignore leaves it out."""
    clean = posixpath.normpath("/" + src).lstrip("/")
    if not clean or tree.ignore is None or has_glob(clean):
        return False
    return os.path.lexists(os.path.join(tree.root, clean)) and tree.excluded(clean)
