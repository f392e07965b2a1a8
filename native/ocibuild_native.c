/* ocibuild native helper (compiled through cffi, see build_native.py).
 *
 * Conventions: return 0 or an fd on success, -errno on failure; never print, never
 * exit, never leave a file descriptor open on an error path.  The new mount API and
 * openat2 are called through syscall(2) so that the build does not depend on the
 * libc headers being recent.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>

#include "ocibuild_native.h"

/* ---- syscall numbers and constants possibly missing from older headers ---- */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 0x00000008
#endif

/* fsconfig commands (enum fsconfig_command in linux/mount.h). */
#define OCB_FSCONFIG_SET_FLAG 0
#define OCB_FSCONFIG_SET_STRING 1
#define OCB_FSCONFIG_CMD_CREATE 6

/* struct open_how and RESOLVE_* (linux/openat2.h). */
struct ocb_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};
#define OCB_RESOLVE_NO_MAGICLINKS 0x02
#define OCB_RESOLVE_IN_ROOT 0x10

#define OCB_OVERLAY_FIXED_OPTS "redirect_dir=off,metacopy=off,index=off"
/* With userxattr (rootless) the kernel refuses redirect_dir=off; nofollow neither creates
 * nor follows redirects either. */
#define OCB_OVERLAY_FIXED_OPTS_USERNS "redirect_dir=nofollow,metacopy=off,index=off"

static const char *fixed_opts(const char *extra)
{
    return (extra && strstr(extra, "userxattr")) ? OCB_OVERLAY_FIXED_OPTS_USERNS
                                                  : OCB_OVERLAY_FIXED_OPTS;
}

static int neg_errno(void) { return errno > 0 ? -errno : -EIO; }

int ocb_enter_mount_ns(void)
{
    if (unshare(CLONE_NEWNS) < 0)
        return neg_errno();
    /* Stop propagation both ways: nothing mounted from now on reaches the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return neg_errno();
    return 0;
}

/* ---------------------------- overlay: new mount API ---------------------------- */

static int fsconfig_str(int fd, const char *key, const char *value)
{
    return (int)syscall(SYS_fsconfig, fd, OCB_FSCONFIG_SET_STRING, key, value, 0);
}

/* Apply "k=v,flag,..." options one by one on an fs context. */
static int fsconfig_opts(int fd, const char *opts)
{
    char *copy, *save = NULL, *tok;
    int rc = 0;

    if (!opts || !*opts)
        return 0;
    copy = strdup(opts);
    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        long r;
        if (!*tok)
            continue;
        if (eq) {
            *eq = '\0';
            r = syscall(SYS_fsconfig, fd, OCB_FSCONFIG_SET_STRING, tok, eq + 1, 0);
        } else {
            r = syscall(SYS_fsconfig, fd, OCB_FSCONFIG_SET_FLAG, tok, NULL, 0);
        }
        if (r < 0) {
            rc = neg_errno();
            break;
        }
    }
    free(copy);
    return rc;
}

/* Returns 0, -errno, or 1 meaning "use the classic API instead". */
static int overlay_new_api(const char **lowers, int nlowers, const char *upper,
                           const char *work, const char *target, const char *extra)
{
    int fd, mfd, rc, i;

    fd = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fd < 0)
        return (errno == ENOSYS) ? 1 : neg_errno();

    if (fsconfig_str(fd, "source", "overlay") < 0)
        goto fail;
    for (i = 0; i < nlowers; i++) {
        /* "lowerdir+" (Linux >= 6.8) appends one layer: no page-size limit. */
        if (fsconfig_str(fd, "lowerdir+", lowers[i]) < 0) {
            if (i == 0 && errno == EINVAL) {
                close(fd);
                return 1;
            }
            goto fail;
        }
    }
    if (fsconfig_str(fd, "upperdir", upper) < 0 || fsconfig_str(fd, "workdir", work) < 0)
        goto fail;
    if ((rc = fsconfig_opts(fd, fixed_opts(extra))) < 0 ||
        (rc = fsconfig_opts(fd, extra)) < 0) {
        close(fd);
        return rc;
    }
    if (syscall(SYS_fsconfig, fd, OCB_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        goto fail;
    mfd = (int)syscall(SYS_fsmount, fd, FSMOUNT_CLOEXEC, 0);
    if (mfd < 0)
        goto fail;
    close(fd);
    rc = 0;
    if (syscall(SYS_move_mount, mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        rc = neg_errno();
    close(mfd);
    return rc;

fail:
    rc = neg_errno();
    close(fd);
    return rc;
}

/* ---------------------------- overlay: classic mount(2) ---------------------------- */

/* Append s to buf at *pos, backslash-escaping ':' ',' '\'.  -E2BIG when full. */
static int append_escaped(char *buf, size_t cap, size_t *pos, const char *s, int escape)
{
    for (; *s; s++) {
        if (escape && (*s == ':' || *s == ',' || *s == '\\')) {
            if (*pos + 1 >= cap)
                return -E2BIG;
            buf[(*pos)++] = '\\';
        }
        if (*pos + 1 >= cap)
            return -E2BIG;
        buf[(*pos)++] = *s;
    }
    buf[*pos] = '\0';
    return 0;
}

static int overlay_classic(const char **lowers, int nlowers, const char *upper,
                           const char *work, const char *target, const char *extra)
{
    /* The kernel copies at most one page of mount data. */
    long page = sysconf(_SC_PAGESIZE);
    size_t cap = page > 0 ? (size_t)page : 4096, pos = 0;
    char *buf = calloc(1, cap);
    int rc = 0, i;

    if (!buf)
        return -ENOMEM;
    rc = append_escaped(buf, cap, &pos, "lowerdir=", 0);
    for (i = 0; rc == 0 && i < nlowers; i++) {
        if (i > 0)
            rc = append_escaped(buf, cap, &pos, ":", 0);
        if (rc == 0)
            rc = append_escaped(buf, cap, &pos, lowers[i], 1);
    }
    if (rc == 0)
        rc = append_escaped(buf, cap, &pos, ",upperdir=", 0);
    if (rc == 0)
        rc = append_escaped(buf, cap, &pos, upper, 1);
    if (rc == 0)
        rc = append_escaped(buf, cap, &pos, ",workdir=", 0);
    if (rc == 0)
        rc = append_escaped(buf, cap, &pos, work, 1);
    if (rc == 0)
        rc = append_escaped(buf, cap, &pos, ",", 0);
    if (rc == 0)
        rc = append_escaped(buf, cap, &pos, fixed_opts(extra), 0);
    if (rc == 0 && extra && *extra) {
        rc = append_escaped(buf, cap, &pos, ",", 0);
        if (rc == 0)
            rc = append_escaped(buf, cap, &pos, extra, 0);
    }
    if (rc == 0 && mount("overlay", target, "overlay", 0, buf) < 0)
        rc = neg_errno();
    free(buf);
    return rc;
}

int ocb_mount_overlay_api(const char **lowers, int nlowers, const char *upper,
                          const char *work, const char *target, const char *extra_opts,
                          int classic_only)
{
    int rc;

    if (!lowers || nlowers < 1 || !upper || !work || !target)
        return -EINVAL;
    if (!classic_only) {
        rc = overlay_new_api(lowers, nlowers, upper, work, target, extra_opts);
        if (rc != 1)
            return rc;
    }
    return overlay_classic(lowers, nlowers, upper, work, target, extra_opts);
}

int ocb_mount_overlay(const char **lowers, int nlowers, const char *upper, const char *work,
                      const char *target, const char *extra_opts)
{
    return ocb_mount_overlay_api(lowers, nlowers, upper, work, target, extra_opts, 0);
}

/* ---------------------------- bind mounts ---------------------------- */

/* The MS_* flags a remount must repeat (the kernel locks them in a user namespace),
 * from a statvfs f_flag; MS_RDONLY too when ``keep_ro``. */
static unsigned long ms_flags_of(unsigned long f_flag, int keep_ro)
{
    unsigned long flags = 0;

    if (keep_ro && (f_flag & ST_RDONLY))
        flags |= MS_RDONLY;
    if (f_flag & ST_NOSUID)
        flags |= MS_NOSUID;
    if (f_flag & ST_NODEV)
        flags |= MS_NODEV;
    if (f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (f_flag & ST_NOATIME)
        flags |= MS_NOATIME;
    if (f_flag & ST_NODIRATIME)
        flags |= MS_NODIRATIME;
    if (f_flag & ST_RELATIME)
        flags |= MS_RELATIME;
    return flags;
}

static unsigned long locked_flags(const char *target)
{
    struct statvfs st;

    if (statvfs(target, &st) < 0)
        return 0;
    return ms_flags_of(st.f_flag, 0);
}

int ocb_bind_mount(const char *src, const char *target, int recursive, int readonly)
{
    unsigned long flags = MS_BIND | (recursive ? MS_REC : 0);

    if (mount(src, target, NULL, flags, NULL) < 0)
        return neg_errno();
    if (readonly) {
        /* Keep the flags the kernel would refuse to clear (locked in a user ns). */
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(target);
        if (mount(NULL, target, NULL, flags, NULL) < 0) {
            int rc = neg_errno();
            umount2(target, MNT_DETACH);
            return rc;
        }
    }
    return 0;
}

int ocb_umount(const char *target, int detach)
{
    if (umount2(target, UMOUNT_NOFOLLOW | (detach ? MNT_DETACH : 0)) < 0)
        return neg_errno();
    return 0;
}

int ocb_mount_fs(const char *source, const char *target, const char *fstype,
                 unsigned long flags, const char *data)
{
    if (mount(source, target, fstype, flags, data) < 0)
        return neg_errno();
    return 0;
}

/* ---------------------------- openat2 ---------------------------- */

int ocb_open_in_root(int rootfd, const char *path, int flags, int mode)
{
    struct ocb_open_how how;
    int attempt;

    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(unsigned int)(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? (uint64_t)(unsigned int)mode : 0;
    how.resolve = OCB_RESOLVE_IN_ROOT | OCB_RESOLVE_NO_MAGICLINKS;
    /* RESOLVE_IN_ROOT answers EAGAIN when a concurrent rename raced the lookup. */
    for (attempt = 0; attempt < 32; attempt++) {
        long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        if (errno != EAGAIN)
            return neg_errno();
    }
    return -EAGAIN;
}

/* ---------------------------- namespaces and process set-up ---------------------------- */

int ocb_unshare(int flags)
{
    if (unshare(flags) < 0)
        return neg_errno();
    return 0;
}

int ocb_set_pdeathsig(int sig)
{
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) < 0)
        return neg_errno();
    return 0;
}

/* crun refuses a hybrid cgroup v1/v2 layout.  Called in crun's child before exec:
 * a private mount namespace in which /sys/fs/cgroup is the cgroup2 hierarchy. */
int ocb_isolate_cgroup2(const char *unified)
{
    if (unshare(CLONE_NEWNS) < 0)
        return neg_errno();
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return neg_errno();
    if (mount(unified, "/sys/fs/cgroup", NULL, MS_BIND | MS_REC, NULL) < 0)
        return neg_errno();
    return 0;
}

/* ---------------------------- native-chroot sandbox ---------------------------- */

/* What the sandbox child does, in order (runc's order where it has one):
 *   close every inherited fd but the error pipe; join the network namespace by path;
 *   a fresh session keyring; "/" private; bind the rootfs on itself (nodev) and open
 *   it as the root fd; every mount resolved *inside* the root through that fd
 *   (openat2 RESOLVE_IN_ROOT), missing targets created with mkdirat/openat on the
 *   resolved parent, the mount made onto the resolved fd (/proc/self/fd/N) and checked
 *   afterwards (statfs magic, or the bind source's inode); masked and read-only paths
 *   likewise; pivot_root; cwd resolved inside the new root; bounding set, inheritable
 *   and ambient capabilities; seccomp; setgroups/gid/uid; exec.
 * The child never allocates (it is a fork of a threaded Python process). */

#include <sys/statfs.h>
#include <sys/resource.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SYS_pivot_root
#define SYS_pivot_root 155
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_seccomp
#define SYS_seccomp 317
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC 4
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif
#define OCB_RESOLVE_NO_SYMLINKS 0x04
#define OCB_KEYCTL_JOIN_SESSION_KEYRING 1

#define OCB_PROC_MAGIC 0x9fa0
#define OCB_SYSFS_MAGIC 0x62656572
#define OCB_TMPFS_MAGIC 0x01021994
#define OCB_DEVPTS_MAGIC 0x1cd1
#define OCB_MQUEUE_MAGIC 0x19800202
#define OCB_CGROUP2_MAGIC 0x63677270

extern char **environ;

/* Why a stage failed beyond errno (third int on the error pipe). */
static int child_why;

static void child_fail(int err_fd, int stage)
{
    int msg[3];
    msg[0] = stage;
    msg[1] = errno > 0 ? errno : EIO;
    msg[2] = child_why;
    if (write(err_fd, msg, sizeof(msg)) < 0) {
        /* nothing left to report to */
    }
    _exit(127);
}

static int fail_why(int why, int err)
{
    child_why = why;
    errno = err;
    return -1;
}

/* "/proc/self/fd/N" for fd in buf (no allocation). */
static const char *fd_path(char *buf, size_t cap, int fd)
{
    static const char prefix[] = "/proc/self/fd/";
    char digits[16];
    size_t n = 0, i, len = sizeof(prefix) - 1;
    unsigned int v = (unsigned int)fd;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof(digits));
    if (len + n + 1 > cap)
        return "";
    memcpy(buf, prefix, len);
    for (i = 0; i < n; i++)
        buf[len + i] = digits[n - 1 - i];
    buf[len + n] = '\0';
    return buf;
}

static int openat2_resolve(int dirfd, const char *path, int flags, uint64_t resolve)
{
    struct ocb_open_how how;
    int attempt;

    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(unsigned int)(flags | O_CLOEXEC);
    how.resolve = resolve;
    for (attempt = 0; attempt < 32; attempt++) {
        long fd = syscall(SYS_openat2, dirfd, (*path ? path : "."), &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        if (errno != EAGAIN)
            return -1;
    }
    return -1;
}

static uint64_t resolve_flags(int kind)
{
    uint64_t r = OCB_RESOLVE_IN_ROOT | OCB_RESOLVE_NO_MAGICLINKS;
    if (kind & OCB_M_REAL_DIR)
        r |= OCB_RESOLVE_NO_SYMLINKS;
    return r;
}

/* Append component ``c`` (length n) to the resolved path ``done``. */
static int push_component(char *done, size_t cap, const char *c, size_t n)
{
    size_t len = strlen(done);
    if (len + n + 2 > cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (len)
        done[len++] = '/';
    memcpy(done + len, c, n);
    done[len + n] = '\0';
    return 0;
}

static void pop_component(char *done)
{
    char *slash = strrchr(done, '/');
    if (slash)
        *slash = '\0';
    else
        done[0] = '\0';
}

/* Create component ``name`` (a directory, or an empty file when ``file``) in the real
 * directory ``done`` of the root (opened with no symlink allowed on its path). */
static int create_in(int rootfd, const char *done, const char *name, int file)
{
    int dfd = openat2_resolve(rootfd, done, O_PATH | O_DIRECTORY,
                              OCB_RESOLVE_IN_ROOT | OCB_RESOLVE_NO_SYMLINKS);
    int rc = 0;

    if (dfd < 0)
        return -1;
    if (file) {
        int f = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f >= 0)
            close(f);
        else if (errno != EEXIST)
            rc = -1;
    } else if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST) {
        rc = -1;
    }
    {
        int saved = errno;
        close(dfd);
        errno = saved;
    }
    return rc;
}

/* Open ``rel`` (relative to the root fd) as O_PATH, resolved inside the root (symlinks
 * and ".." clamped to it, as RESOLVE_IN_ROOT does). With OCB_M_MKDIR / OCB_M_MKFILE, what
 * is missing is created: the walk expands symlinks itself (a dangling one leads to where
 * it points *in the root*), creates each missing component on its real parent, and opens
 * the result with no symlink allowed on the path it built. OCB_M_REAL_DIR: no symlink
 * may be met at all. */
static int resolve_target(int rootfd, const char *rel, int kind)
{
    char todo[4096], done[4096], tmp[4096], link[4096];
    uint64_t resolve = resolve_flags(kind);
    int fd, links = 0;

    fd = openat2_resolve(rootfd, rel, O_PATH, resolve);
    if (fd >= 0 || errno != ENOENT || !(kind & (OCB_M_MKDIR | OCB_M_MKFILE)))
        return fd;
    if (strlen(rel) >= sizeof(todo)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(todo, rel);
    done[0] = '\0';
    while (todo[0]) {
        char *p = todo, *end;
        size_t n, rest_len;
        struct stat st;
        int last;

        while (*p == '/')
            p++;
        end = strchr(p, '/');
        n = end ? (size_t)(end - p) : strlen(p);
        /* The rest of the path after this component, kept in tmp. */
        rest_len = end ? strlen(end) : 0;
        memcpy(tmp, end ? end : "", rest_len + 1);
        {
            const char *r = tmp;
            while (*r == '/')
                r++;
            last = (*r == '\0');
        }
        if (n == 0 || (n == 1 && p[0] == '.')) {
            memmove(todo, tmp, rest_len + 1);
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            pop_component(done);
            memmove(todo, tmp, rest_len + 1);
            continue;
        }
        {
            char comp[256];
            if (n >= sizeof(comp)) {
                errno = ENAMETOOLONG;
                return -1;
            }
            memcpy(comp, p, n);
            comp[n] = '\0';
            if (push_component(done, sizeof(done), comp, n) < 0)
                return -1;
            fd = openat2_resolve(rootfd, done, O_PATH | O_NOFOLLOW,
                                 OCB_RESOLVE_IN_ROOT | OCB_RESOLVE_NO_SYMLINKS);
            if (fd < 0 && errno == ENOENT) {
                pop_component(done);
                if (create_in(rootfd, done, comp,
                              last && (kind & OCB_M_MKFILE) && !(kind & OCB_M_MKDIR)) < 0)
                    return -1;
                if (push_component(done, sizeof(done), comp, n) < 0)
                    return -1;
                fd = openat2_resolve(rootfd, done, O_PATH | O_NOFOLLOW,
                                     OCB_RESOLVE_IN_ROOT | OCB_RESOLVE_NO_SYMLINKS);
            }
            if (fd < 0)
                return -1;
            if (fstat(fd, &st) < 0) {
                close(fd);
                return -1;
            }
            if (S_ISLNK(st.st_mode)) {
                ssize_t len = readlinkat(fd, "", link, sizeof(link) - 1);
                close(fd);
                if (len < 0)
                    return -1;
                link[len] = '\0';
                if ((kind & OCB_M_REAL_DIR) || ++links > 40) {
                    errno = ELOOP;
                    return -1;
                }
                pop_component(done);
                if (link[0] == '/')
                    done[0] = '\0';
                /* todo = link + "/" + rest */
                if ((size_t)len + 1 + rest_len + 1 > sizeof(todo)) {
                    errno = ENAMETOOLONG;
                    return -1;
                }
                memcpy(todo, link, (size_t)len);
                todo[len] = '/';
                memcpy(todo + len + 1, tmp, rest_len + 1);
                continue;
            }
            close(fd);
            if (!last && !S_ISDIR(st.st_mode)) {
                errno = ENOTDIR;
                return -1;
            }
        }
        memmove(todo, tmp, rest_len + 1);
    }
    /* Every component of ``done`` is real: open it allowing no symlink at all. */
    return openat2_resolve(rootfd, done, O_PATH,
                           OCB_RESOLVE_IN_ROOT | OCB_RESOLVE_NO_SYMLINKS);
}

static unsigned long locked_flags_fd(int fd)
{
    struct statvfs st;

    if (fstatvfs(fd, &st) < 0)
        return 0;
    /* Never made writable here: what is read-only stays so. */
    return ms_flags_of(st.f_flag, 1);
}

/* Remount the bind mount whose root ``fd`` is with ``flags`` added to what it has (its
 * nosuid/nodev/noexec/atime flags and read-only state are kept: a user namespace locks
 * them, and nothing read-only is made writable); then check the kernel applied them. */
static int remount_fd(int fd, unsigned long flags)
{
    char path[64];
    struct statvfs st;

    flags |= locked_flags_fd(fd);
    if (mount(NULL, fd_path(path, sizeof(path), fd), NULL, MS_BIND | MS_REMOUNT | flags, NULL) < 0)
        return -1;
    if (fstatvfs(fd, &st) < 0)
        return -1;
    if (((flags & MS_RDONLY) && !(st.f_flag & ST_RDONLY)) ||
        ((flags & MS_NODEV) && !(st.f_flag & ST_NODEV)))
        return fail_why(OCB_WHY_NOT_APPLIED, EPERM);
    return 0;
}

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define OCB_MOUNT_ATTR_NODEV 0x00000004

struct ocb_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

/* nodev on every mount below ``fd`` too (a recursive bind may carry submounts that allow
 * devices, e.g. a host devtmpfs under a bound directory). Before Linux 5.12 there is no
 * mount_setattr: the top mount's remount is all there is. */
static int nodev_recursive(int fd)
{
    struct ocb_mount_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.attr_set = OCB_MOUNT_ATTR_NODEV;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) == 0)
        return 0;
    return errno == ENOSYS ? 0 : -1;
}

static long fs_magic(const char *fstype)
{
    if (!fstype)
        return 0;
    if (!strcmp(fstype, "proc"))
        return OCB_PROC_MAGIC;
    if (!strcmp(fstype, "sysfs"))
        return OCB_SYSFS_MAGIC;
    if (!strcmp(fstype, "tmpfs"))
        return OCB_TMPFS_MAGIC;
    if (!strcmp(fstype, "devpts"))
        return OCB_DEVPTS_MAGIC;
    if (!strcmp(fstype, "mqueue"))
        return OCB_MQUEUE_MAGIC;
    if (!strcmp(fstype, "cgroup2"))
        return OCB_CGROUP2_MAGIC;
    return 0;
}

static int in_proc_or_sys(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return 0;
    return sf.f_type == OCB_PROC_MAGIC || sf.f_type == OCB_SYSFS_MAGIC;
}

/* One spec mount (bind or filesystem) onto its target resolved in the root. */
static int do_mount(int rootfd, const struct ocb_mount *m)
{
    const char *rel = m->target;
    char tpath[64], spath[64];
    struct stat src_st, st;
    struct statfs sf;
    unsigned long flags = m->flags;
    int kind = m->kind, tfd, nfd, sfd = -1, rc = -1;
    long magic;

    while (*rel == '/')
        rel++;
    if (m->kind & OCB_M_BIND) {
        sfd = open(m->source, O_PATH | O_CLOEXEC);
        if (sfd < 0 || fstat(sfd, &src_st) < 0) {
            if (sfd >= 0)
                close(sfd);
            return fail_why(OCB_WHY_SOURCE, errno);
        }
        kind &= ~(OCB_M_MKDIR | OCB_M_MKFILE);
        kind |= S_ISDIR(src_st.st_mode) ? OCB_M_MKDIR : OCB_M_MKFILE;
    }
    tfd = resolve_target(rootfd, rel, kind);
    if (tfd < 0) {
        if (errno == ELOOP && (kind & OCB_M_REAL_DIR))
            child_why = OCB_WHY_NOT_REAL_DIR;
        goto out;
    }
    if (fstat(tfd, &st) < 0)
        goto out;
    if ((kind & OCB_M_REAL_DIR) && !S_ISDIR(st.st_mode)) {
        fail_why(OCB_WHY_NOT_REAL_DIR, ENOTDIR);
        goto out;
    }
    if (in_proc_or_sys(tfd)) {
        fail_why(OCB_WHY_IN_PROCFS, EPERM);
        goto out;
    }
    if (!(kind & OCB_M_DEVICE) && !(m->fstype && !strcmp(m->fstype, "devpts")))
        flags |= MS_NODEV; /* no device node is usable outside the bound host devices */
    if (m->kind & OCB_M_BIND) {
        unsigned long bind = MS_BIND | ((kind & OCB_M_RECURSIVE) ? MS_REC : 0);
        if (mount(fd_path(spath, sizeof(spath), sfd), fd_path(tpath, sizeof(tpath), tfd), NULL,
                  bind, NULL) < 0)
            goto out;
    } else if (mount(m->source, fd_path(tpath, sizeof(tpath), tfd), m->fstype, flags, m->data) <
               0) {
        goto out;
    }
    /* Re-resolve: the path must now lead to what was just mounted. */
    nfd = openat2_resolve(rootfd, rel, O_PATH, resolve_flags(kind));
    if (nfd < 0) {
        child_why = OCB_WHY_CHANGED;
        goto out;
    }
    close(tfd);
    tfd = nfd;
    if (m->kind & OCB_M_BIND) {
        if (fstat(tfd, &st) < 0)
            goto out;
        if (st.st_dev != src_st.st_dev || st.st_ino != src_st.st_ino) {
            fail_why(OCB_WHY_CHANGED, EXDEV);
            goto out;
        }
        flags &= ~(unsigned long)(MS_BIND | MS_REC);
        if (flags && remount_fd(tfd, flags) < 0)
            goto out;
        if ((flags & MS_NODEV) && (kind & OCB_M_RECURSIVE) && nodev_recursive(tfd) < 0) {
            child_why = OCB_WHY_NOT_APPLIED;
            goto out;
        }
    } else {
        magic = fs_magic(m->fstype);
        if (fstatfs(tfd, &sf) < 0)
            goto out;
        if (magic && sf.f_type != magic) {
            fail_why(OCB_WHY_CHANGED, EXDEV);
            goto out;
        }
    }
    rc = 0;
out:
    {
        int saved = errno;
        if (tfd >= 0)
            close(tfd);
        if (sfd >= 0)
            close(sfd);
        errno = saved;
    }
    return rc;
}

/* A masked path: an empty read-only tmpfs over a directory, /dev/null over anything else.
 * Missing inside the root: nothing to mask. */
static int do_mask(int rootfd, const char *rel, int nullfd, const struct stat *null_st)
{
    char tpath[64], spath[64];
    struct stat st;
    struct statfs sf;
    int fd, nfd, rc = -1;

    while (*rel == '/')
        rel++;
    fd = openat2_resolve(rootfd, rel, O_PATH, resolve_flags(0));
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    if (fstat(fd, &st) < 0)
        goto out;
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", fd_path(tpath, sizeof(tpath), fd), "tmpfs",
                  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k,mode=0555") < 0)
            goto out;
    } else if (mount(fd_path(spath, sizeof(spath), nullfd), fd_path(tpath, sizeof(tpath), fd),
                     NULL, MS_BIND, NULL) < 0) {
        goto out;
    }
    nfd = openat2_resolve(rootfd, rel, O_PATH, resolve_flags(0));
    if (nfd < 0)
        goto out;
    close(fd);
    fd = nfd;
    if (S_ISDIR(st.st_mode)) {
        if (fstatfs(fd, &sf) < 0)
            goto out;
        if (sf.f_type != OCB_TMPFS_MAGIC) {
            fail_why(OCB_WHY_NOT_APPLIED, EXDEV);
            goto out;
        }
    } else {
        if (fstat(fd, &st) < 0)
            goto out;
        if (!S_ISCHR(st.st_mode) || st.st_rdev != null_st->st_rdev) {
            fail_why(OCB_WHY_NOT_APPLIED, EXDEV);
            goto out;
        }
    }
    rc = 0;
out:
    {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

/* A read-only path: bound on itself, then remounted read-only (checked). */
static int do_readonly(int rootfd, const char *rel)
{
    char tpath[64];
    struct stat st0, st;
    int fd, nfd, rc = -1;

    while (*rel == '/')
        rel++;
    fd = openat2_resolve(rootfd, rel, O_PATH, resolve_flags(0));
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    if (fstat(fd, &st0) < 0)
        goto out;
    fd_path(tpath, sizeof(tpath), fd);
    if (mount(tpath, tpath, NULL, MS_BIND | MS_REC, NULL) < 0)
        goto out;
    nfd = openat2_resolve(rootfd, rel, O_PATH, resolve_flags(0));
    if (nfd < 0)
        goto out;
    close(fd);
    fd = nfd;
    if (fstat(fd, &st) < 0)
        goto out;
    if (st.st_dev != st0.st_dev || st.st_ino != st0.st_ino) {
        fail_why(OCB_WHY_NOT_APPLIED, EXDEV);
        goto out;
    }
    if (remount_fd(fd, MS_RDONLY) < 0)
        goto out;
    rc = 0;
out:
    {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

static int do_one(int rootfd, const struct ocb_mount *m, int nullfd, const struct stat *null_st)
{
    if (m->kind & OCB_M_MASK)
        return do_mask(rootfd, m->target, nullfd, null_st);
    if (m->kind & OCB_M_RO_PATH)
        return do_readonly(rootfd, m->target);
    return do_mount(rootfd, m);
}

/* A symlink ``link`` (a path in the root) pointing at ``target``; an existing one stays. */
static int make_symlink(int rootfd, const char *target, const char *link)
{
    char dir[4096];
    const char *slash = strrchr(link, '/'), *base = slash ? slash + 1 : link;
    size_t n = slash ? (size_t)(slash - link) : 0;
    int dfd, rc;

    while (n > 0 && *link == '/') {
        link++;
        n--;
    }
    if (n >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, link, n);
    dir[n] = '\0';
    dfd = openat2_resolve(rootfd, dir, O_PATH | O_DIRECTORY, resolve_flags(0));
    if (dfd < 0)
        return -1;
    rc = symlinkat(target, dfd, base);
    if (rc < 0 && errno == EEXIST)
        rc = 0;
    {
        int saved = errno;
        close(dfd);
        errno = saved;
    }
    return rc;
}

static void close_fds_from(unsigned int first)
{
    struct rlimit rl;
    unsigned int fd, top = 65536;

    if (syscall(SYS_close_range, first, ~0U, 0) == 0)
        return;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (1U << 20))
        top = (unsigned int)rl.rlim_cur;
    for (fd = first; fd < top; fd++)
        close((int)fd);
}

/* Move ``fd`` to exactly ``want`` (closing what was there). */
static int move_fd(int fd, int want)
{
    if (fd == want)
        return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : want;
    if (dup3(fd, want, O_CLOEXEC) < 0)
        return -1;
    return want;
}

static int drop_capabilities(const struct ocb_sandbox *sb)
{
    struct __user_cap_header_struct hdr;
    struct __user_cap_data_struct data[2];
    int i, j;

    for (i = 0; i < 64; i++) {
        int keep = 0;
        for (j = 0; j < sb->ncaps; j++)
            if (sb->caps[j] == i)
                keep = 1;
        if (!keep && prctl(PR_CAPBSET_DROP, (unsigned long)i, 0, 0, 0) < 0 && errno != EINVAL)
            return -1;
    }
    /* CVE-2022-29162: no inheritable capability may survive exec; no ambient ones. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -1;
    memset(&hdr, 0, sizeof(hdr));
    memset(data, 0, sizeof(data));
    hdr.version = _LINUX_CAPABILITY_VERSION_3;
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -1;
    data[0].inheritable = 0;
    data[1].inheritable = 0;
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -1;
    return 0;
}

static int install_seccomp(const struct ocb_sandbox *sb)
{
    struct sock_fprog prog;

    prog.len = (unsigned short)sb->seccomp_len;
    prog.filter = (struct sock_filter *)(uintptr_t)sb->seccomp_filter;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* Layout of the child's fds: 0-2 stdio, 3 the error pipe, 4 the netns (if any). */
#define OCB_ERR_FD 3
#define OCB_NETNS_FD 4

static int sandbox_child(const struct ocb_sandbox *sb, int err_fd, int netns_fd)
{
    struct stat null_st;
    char cwdbuf[4096];
    int i, fd, rootfd, nullfd, dirfd;

    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Known fd numbers above stdio first (F_DUPFD never lands on 0-2). */
    err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, 10);
    if (err_fd < 0)
        _exit(127);
    if (netns_fd >= 0 && (netns_fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 10)) < 0)
        child_fail(err_fd, OCB_STAGE_STDIO);
    /* stdio while the host's /dev/null is reachable. */
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0 || dup2(nullfd, 0) < 0)
        child_fail(err_fd, OCB_STAGE_STDIO);
    if (dup2(sb->stdout_fd, 1) < 0 || dup2(sb->stdout_fd, 2) < 0)
        child_fail(err_fd, OCB_STAGE_STDIO);
    /* Every other inherited fd goes now (CVE-2024-21626: no host directory fd may be
     * reachable through /proc/self/fd). */
    if ((err_fd = move_fd(err_fd, OCB_ERR_FD)) < 0)
        _exit(127);
    if (netns_fd >= 0 && (netns_fd = move_fd(netns_fd, OCB_NETNS_FD)) < 0)
        child_fail(err_fd, OCB_STAGE_STDIO);
    close_fds_from(netns_fd >= 0 ? OCB_NETNS_FD + 1 : OCB_ERR_FD + 1);
    if (netns_fd >= 0) {
        if (setns(netns_fd, CLONE_NEWNET) < 0)
            child_fail(err_fd, OCB_STAGE_NETNS);
        close(netns_fd);
    }
    /* A fresh anonymous session keyring: the caller's keys stay out of reach. */
    if (syscall(SYS_keyctl, OCB_KEYCTL_JOIN_SESSION_KEYRING, NULL, 0, 0, 0) < 0 &&
        errno != ENOSYS)
        child_fail(err_fd, OCB_STAGE_KEYRING);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(err_fd, OCB_STAGE_PRIVATE);
    if (mount(sb->rootfs, sb->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        child_fail(err_fd, OCB_STAGE_ROOT_BIND);
    rootfd = open(sb->rootfs, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0 || remount_fd(rootfd, MS_NODEV) < 0 || nodev_recursive(rootfd) < 0)
        child_fail(err_fd, OCB_STAGE_ROOT_BIND);
    nullfd = open("/dev/null", O_PATH | O_CLOEXEC);
    if (nullfd < 0 || fstat(nullfd, &null_st) < 0 || !S_ISCHR(null_st.st_mode))
        child_fail(err_fd, OCB_STAGE_STDIO);
    for (i = 0; i < sb->nmounts; i++) {
        child_why = 0;
        if (do_one(rootfd, &sb->mounts[i], nullfd, &null_st) < 0)
            child_fail(err_fd, OCB_STAGE_MOUNT_BASE + i);
    }
    child_why = 0;
    close(nullfd);
    for (i = 0; i + 1 < 2 * sb->nsymlinks; i += 2) {
        if (make_symlink(rootfd, sb->symlinks[i], sb->symlinks[i + 1]) < 0)
            child_fail(err_fd, OCB_STAGE_SYMLINK);
    }
    if (sb->readonly_root && remount_fd(rootfd, MS_RDONLY | MS_NODEV) < 0)
        child_fail(err_fd, OCB_STAGE_ROOT_BIND);
    if (sb->hostname && sethostname(sb->hostname, strlen(sb->hostname)) < 0)
        child_fail(err_fd, OCB_STAGE_HOSTNAME);
    if (fchdir(rootfd) < 0)
        child_fail(err_fd, OCB_STAGE_PIVOT);
    close(rootfd);
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) < 0)
            child_fail(err_fd, OCB_STAGE_PIVOT);
    } else if (chroot(".") < 0) {
        child_fail(err_fd, OCB_STAGE_PIVOT);
    }
    /* The working directory, resolved inside the new root (no magic links). */
    if (chdir("/") < 0)
        child_fail(err_fd, OCB_STAGE_CWD);
    dirfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        child_fail(err_fd, OCB_STAGE_CWD);
    {
        const char *rel = sb->cwd;
        while (*rel == '/')
            rel++;
        fd = openat2_resolve(dirfd, rel, O_PATH | O_DIRECTORY, resolve_flags(0));
    }
    if (fd < 0 || fchdir(fd) < 0)
        child_fail(err_fd, OCB_STAGE_CWD);
    close(fd);
    close(dirfd);
    if (syscall(SYS_getcwd, cwdbuf, sizeof(cwdbuf)) < 0 || cwdbuf[0] != '/') {
        errno = ENOENT;
        child_fail(err_fd, OCB_STAGE_CWD);
    }
    if (drop_capabilities(sb) < 0)
        child_fail(err_fd, OCB_STAGE_CAPS);
    /* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we
     * still hold it (as runc does); the calls below are all allowed by Docker's profile. */
    if (sb->seccomp_len > 0 && !sb->no_new_privs && install_seccomp(sb) < 0)
        child_fail(err_fd, OCB_STAGE_SECCOMP);
    if (sb->set_groups && setgroups((size_t)sb->ngroups, (const gid_t *)sb->groups) < 0)
        child_fail(err_fd, OCB_STAGE_GROUPS);
    if (setresgid(sb->gid, sb->gid, sb->gid) < 0)
        child_fail(err_fd, OCB_STAGE_GID);
    if (setresuid(sb->uid, sb->uid, sb->uid) < 0)
        child_fail(err_fd, OCB_STAGE_UID);
    if (sb->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(err_fd, OCB_STAGE_SECCOMP);
    if (sb->seccomp_len > 0 && sb->no_new_privs && install_seccomp(sb) < 0)
        child_fail(err_fd, OCB_STAGE_SECCOMP);
    environ = (char **)sb->envp;
    execvp(sb->argv[0], (char *const *)sb->argv);
    child_fail(err_fd, OCB_STAGE_EXEC);
    return 127;
}

int ocb_sandbox_spawn(const struct ocb_sandbox *sb, int *err_fd)
{
    int pipefd[2], netns_fd = -1;
    long pid;
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

    if (!sb || !sb->rootfs || !sb->argv || !sb->argv[0] || !sb->envp || !sb->cwd || !err_fd)
        return -EINVAL;
    if (sb->seccomp_len < 0 || sb->seccomp_len > 65535 || (sb->seccomp_len && !sb->seccomp_filter))
        return -EINVAL;
    if (sb->netns_path && *sb->netns_path) {
        netns_fd = open(sb->netns_path, O_RDONLY | O_CLOEXEC);
        if (netns_fd < 0)
            return neg_errno();
    } else if (sb->new_net) {
        flags |= CLONE_NEWNET;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        int rc = neg_errno();
        if (netns_fd >= 0)
            close(netns_fd);
        return rc;
    }
    /* fork-like clone: no new stack, the child runs on a copy of ours. */
    pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) {
        int rc = neg_errno();
        close(pipefd[0]);
        close(pipefd[1]);
        if (netns_fd >= 0)
            close(netns_fd);
        return rc;
    }
    if (pid == 0) {
        sandbox_child(sb, pipefd[1], netns_fd);
        _exit(127);
    }
    close(pipefd[1]);
    if (netns_fd >= 0)
        close(netns_fd);
    *err_fd = pipefd[0];
    return (int)pid;
}

/* ---------------------------- birth time ---------------------------- */

/* Birth time in ns (no symlink following) in *out_ns; -1 when the filesystem has none.
 * vfs uses it to tell a directory that was removed and recreated (same inode number
 * reused) from one that was kept. */
int ocb_btime(const char *path, long long *out_ns)
{
    struct statx stx;

    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BTIME, &stx) < 0)
        return neg_errno();
    if (!(stx.stx_mask & STATX_BTIME))
        *out_ns = -1;
    else
        *out_ns = (long long)stx.stx_btime.tv_sec * 1000000000LL + stx.stx_btime.tv_nsec;
    return 0;
}
