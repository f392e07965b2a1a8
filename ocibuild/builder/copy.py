"""COPY and ADD: sources from the context, a stage or an image, into the rootfs."""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any

from ocibuild import _record
from ocibuild._record import dataclass, field
from ocibuild.builder.chmod import Chmod, created_dir_mode, parse_chmod
from ocibuild.builder.context import Source, SourceTree, has_glob
from ocibuild.builder.fetch import download, is_git, is_url
from ocibuild.builder.heredoc import heredoc_content, is_heredoc_word
from ocibuild.builder.rootfs import commit_upper, mounted, workspace
from ocibuild.builder.source import OCI_LAYOUT, split_layout_ref
from ocibuild.builder.step import StepContext, StepOutcome, fail
from ocibuild.dockerfile.ignore import IgnoreMatcher, load_patterns
from ocibuild.dockerfile.instructions import Copy, Heredoc, Instruction
from ocibuild.errors import OcibuildError
from ocibuild.fs.copytree import Entry, EntryClash, copy_entries
from ocibuild.fs.rootpath import resolve_in_root
from ocibuild.image.layout import import_oci_layout
from ocibuild.layers.apply import extract_archive
from ocibuild.layers.compress import open_decompressed
from ocibuild.observe.log import human_size
from ocibuild.registry.progress import PlainLines
from ocibuild.runtime.users import resolve_owner, unknown_owner_names
from ocibuild.storage import fsops

HEREDOC_FILE_MODE = 0o644  # BuildKit's Mkfile for COPY <<EOF
URL_FILE_MODE = 0o600  # BuildKit's ADD https://...


@dataclass
class CopyPlan:
    uid: int | None  # None: keep the source's owner (COPY --from), else this owner
    gid: int | None
    chmod: Chmod | None
    dir_mode: int = 0o755  # of the directories the copy creates (an octal --chmod's)
    hardlinks: dict[tuple[int, int], str] = field(default_factory=dict)
    dirs: list[tuple[str, os.stat_result]] = field(default_factory=list)
    exclude: IgnoreMatcher | None = None
    say: Callable[[str], None] | None = None  # progress lines (ADD: downloads, archives)

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


def chmod_value(ctx: StepContext, instr: Copy) -> str | None:
    """The --chmod value (expanded before dispatch), None without the flag."""
    return instr.chmod


def chmod_flag(ctx: StepContext, instr: Copy) -> Chmod | None:
    value = chmod_value(ctx, instr)
    if value is None:
        return None
    parsed = parse_chmod(value)
    if parsed is None:
        raise fail(
            instr,
            f"invalid chmod parameter: {value!r}",
            hint="give octal bits (--chmod=0755) or a symbolic mode (--chmod=u+x,go-w)",
        )
    return parsed


def resolve_chown(
    instr: Instruction, rootfs: str, spec: str, warn: Callable[[str], None] | None = None
) -> tuple[int, int]:
    """--chown=user[:group], as BuildKit's readUser (see ``resolve_owner``): with no
    group, a user name takes that user's primary gid and a numeric uid is also the gid;
    a name the image does not have is id 0 (``warn`` is told). An empty user is 0; an
    empty group is no group (current BuildKit, 07aa65e08: ``--chown=app:`` is app's
    primary gid; v0.11.6 took gid 0), so ``--chown=:`` is 0:0."""
    user, sep, group = spec.partition(":")
    user = user or "0"
    spec = f"{user}:{group}" if sep and group else user
    try:
        owner = resolve_owner(rootfs, spec)
        unknown = unknown_owner_names(rootfs, spec) if warn is not None else []
    except OcibuildError as exc:
        raise fail(instr, f"--chown={spec}: {exc.message}", hint=exc.hint) from None
    if warn is not None and unknown:
        warn(
            f"warning: {instr.pos}: {instr.keyword} --chown={spec}: "
            + ", ".join(unknown)
            + f"; files are owned by {owner[0]}:{owner[1]}, as BuildKit does"
        )
    return owner


def _check_link_chown(instr: Instruction, chown: str) -> None:
    """COPY --link --chown=NAME fails in BuildKit (v0.11.6 and current): a --link copy
    (without --chmod) is made on an empty filesystem, so there is no /etc/passwd or
    /etc/group to look a name up in ("invalid user index: -1"). Only numeric ids (and
    ``root``) work; say so here, before anything is copied."""
    names = [p for p in chown.split(":", 1) if p and p != "root" and not p.isdigit()]
    if names:
        raise fail(
            instr,
            f"--chown={chown} with --link: the name {names[0]!r} cannot be looked up, a "
            "--link copy does not see the image's /etc/passwd and /etc/group (BuildKit "
            "fails the same way: invalid user index -1)",
            hint="give numeric ids (e.g. --chown=1000:1000), or drop --link",
        )


def _parents_keep(pattern: str, rel: str) -> str:
    """--parents: the part of ``rel`` kept below the destination (after a ``/./`` pivot)."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if "/./" in pattern:
        head = pattern.split("/./", 1)[0]
        depth = len([p for p in posixpath.normpath("/" + head).split("/") if p])
        return "/".join(rel.split("/")[depth:])
    return rel


def copy_step(ctx: StepContext, instr: Copy) -> StepOutcome:
    is_add = instr.keyword == "ADD"
    env = ctx.stage.expand_env()
    dest = instr.dest  # words expanded before dispatch (dockerfile/expansion.py)
    chmod = chmod_flag(ctx, instr)
    chown = instr.chown or ""
    from_ref = instr.from_  # never expanded (the plan refuses a variable there)
    parents = instr.parents
    if instr.link and chmod is None:
        _check_link_chown(instr, chown)
    excludes = list(instr.exclude)
    checksum = instr.checksum
    unpack = instr.unpack

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
            src = raw
            if is_add and is_url(src):
                say = _say(ctx)
                items.append(_url_item(instr, gen_tree, src, checksum, bool(unpack), count, say))
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
            uid, gid = (None, None)
            if chown:
                uid, gid = resolve_chown(instr, root, chown, ctx.reporter.info)
            if uid is None and from_ref is None:
                uid, gid = 0, 0  # context files are copied as root, as BuildKit does
            plan = CopyPlan(uid, gid, chmod, created_dir_mode(chmod_value(ctx, instr)))
            plan.say = _say(ctx) if is_add else None
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
                        item_plan = _record.replace(plan, uid=0, gid=0)
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


def _say(ctx: StepContext) -> Callable[[str], None]:
    """Progress lines under the step (plain output: logs and pipes see them too)."""
    return lambda text: ctx.reporter.info(f"  {text}")


def _url_item(
    instr: Instruction,
    gen: SourceTree,
    url: str,
    checksum: str | None,
    unpack: bool,
    n: int,
    say: Callable[[str], None],
) -> Item:
    sub = os.path.join(gen.root, str(n))
    os.mkdir(sub)
    lines = PlainLines(say)
    started = time.monotonic()
    try:
        got = download(url, sub, checksum, progress=lines)
    except OcibuildError as exc:
        raise fail(instr, exc.message, hint=exc.hint) from None
    size = os.path.getsize(got.path)
    lines.end(url, f"downloaded {human_size(size)} in {time.monotonic() - started:.1f}s")
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
        found = ctx.store.get_image(image_id)
    except OcibuildError as exc:
        raise fail(
            instr, f"--from={ref}: not a stage and not an image in the local store", hint=exc.hint
        ) from None
    return found.diff_ids


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
            # BuildKit makes a missing destination dir as it makes the parents: 0755
            # (an octal --chmod's mode in current BuildKit), owned by --chown or root,
            # whatever the source dir's mode and owner; it keeps the source's mtime.
            fsops.makedirs(root, posixpath.dirname(dest) or "/", **_parent_owner(plan))
            os.mkdir(target, plan.dir_mode)
            os.chown(target, plan.uid or 0, plan.gid or 0, follow_symlinks=False)
            os.chmod(target, plan.dir_mode)
            plan.dirs.append((target, st))
        elif not os.path.isdir(target):
            raise _not_a_directory(dest)
        # streamed (no list of every file and its stat), unless the copy writes into the
        # tree it walks (a store inside the context): then a snapshot, taken first
        snapshot = _inside(target, src.host_path)
        entries: Iterable[Entry] = tree.walk(src) if snapshot else tree.iter_walk(src)
        if plan.exclude is not None:
            exclude = plan.exclude
            entries = (e for e in entries if not exclude.matches(e[1]))
        try:
            copy_entries(entries, target, plan)
        except EntryClash as clash:
            path = posixpath.join(dest, clash.rel)
            raise (_not_a_directory if clash.dir_over_file else _is_a_directory)(path) from None
        return
    if item.extract and is_archive(src.host_path):
        # BuildKit's unpack makes the destination 0755 whatever --chmod says
        target_dir = fsops.makedirs(root, dest, **{**_parent_owner(plan), "mode": 0o755})
        name = src.name or os.path.basename(src.host_path)
        lines = PlainLines(plan.say) if plan.say is not None else None
        if lines is not None:
            lines.note(f"unpacking {name} ({human_size(st.st_size)}) into {dest}")
            lines.begin(name, name, st.st_size)
        started = time.monotonic()
        with _ReadingArchive(src.host_path, lines, name) as raw:
            extract_archive(open_decompressed(raw), root, os.path.relpath(target_dir, root))
        if lines is not None:
            lines.end(name, f"unpacked into {dest} in {time.monotonic() - started:.1f}s")
        return
    target_path = dest
    if dest_is_dir or os.path.isdir(fsops.host_path(root, dest)):
        target_path = posixpath.join(dest, src.name or "file")
    fsops.makedirs(root, posixpath.dirname(target_path) or "/", **_parent_owner(plan))
    copy_entry(src.host_path, st, root, target_path, plan)


class _ReadingArchive(io.FileIO):
    """A local archive ADD unpacks: tells ``lines`` how far it has been read."""

    def __init__(self, path: str, lines: PlainLines | None, key: str) -> None:
        super().__init__(path, "rb")
        self.lines = lines
        self.key = key

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if self.lines is not None:
            self.lines.update(self.key, self.tell())
        return data

    def readinto(self, buffer: Any) -> int:
        got = super().readinto(buffer)
        if self.lines is not None:
            self.lines.update(self.key, self.tell())
        return got


def _inside(path: str, top: str) -> bool:
    """``path`` is ``top`` or below it (both host paths, symlinks resolved)."""
    path, top = os.path.realpath(path), os.path.realpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")


def _parent_owner(plan: CopyPlan) -> dict[str, int]:
    return {"uid": plan.uid or 0, "gid": plan.gid or 0, "mode": plan.dir_mode}


def _not_a_directory(path: str) -> OcibuildError:
    """BuildKit's "cannot copy to non-directory": a directory copied onto a file."""
    return OcibuildError(
        f"cannot copy a directory to {path}: it exists and is not a directory",
        hint=f"remove {path} first (RUN rm {path}) or copy to another destination",
    )


def _is_a_directory(path: str) -> OcibuildError:
    """BuildKit's "cannot replace to directory ... with file"."""
    return OcibuildError(
        f"cannot replace the directory {path} with a file",
        hint=f"remove it first (RUN rm -r {path}) or copy to another destination",
    )


def copy_entry(src: str, st: os.stat_result, root: str, path: str, plan: CopyPlan) -> None:
    parent, name = fsops.parent_in_root(root, path)
    dst = os.path.join(parent, name)
    mode = st.st_mode
    existing = os.lstat(dst) if os.path.lexists(dst) else None
    if existing is not None:
        # BuildKit merges a dir into a dir, replaces a non-dir by a non-dir, and fails
        # otherwise (fsutil copy: copyDirectoryOnly, ensureEmptyFileTarget)
        if stat.S_ISDIR(mode) and not stat.S_ISDIR(existing.st_mode):
            raise _not_a_directory(path)
        if not stat.S_ISDIR(mode) and stat.S_ISDIR(existing.st_mode):
            raise _is_a_directory(path)
        if not stat.S_ISDIR(mode):
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
