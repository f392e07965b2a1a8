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

static unsigned long locked_flags(const char *target)
{
    struct statvfs st;
    unsigned long flags = 0;

    if (statvfs(target, &st) < 0)
        return 0;
    if (st.f_flag & ST_NOSUID)
        flags |= MS_NOSUID;
    if (st.f_flag & ST_NODEV)
        flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (st.f_flag & ST_NOATIME)
        flags |= MS_NOATIME;
    if (st.f_flag & ST_NODIRATIME)
        flags |= MS_NODIRATIME;
    if (st.f_flag & ST_RELATIME)
        flags |= MS_RELATIME;
    return flags;
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

#ifndef SYS_pivot_root
#define SYS_pivot_root 155
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC 4
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

extern char **environ;

static void child_fail(int err_fd, int stage)
{
    int msg[2];
    msg[0] = stage;
    msg[1] = errno > 0 ? errno : EIO;
    if (write(err_fd, msg, sizeof(msg)) < 0) {
        /* nothing left to report to */
    }
    _exit(127);
}

/* mkdir -p for a host path; no allocation (the child must not malloc). */
static int mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    size_t len = strlen(path), i;

    if (len == 0 || len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -1;
            buf[i] = saved;
        }
    }
    return 0;
}

static int do_mount(const struct ocb_mount *m)
{
    struct stat st;
    unsigned long flags = m->flags;

    if ((m->kind & OCB_M_IF_EXISTS) && lstat(m->target, &st) < 0)
        return 0;
    if (m->kind & OCB_M_MKDIR) {
        if (mkdir_p(m->target, 0755) < 0)
            return -1;
    } else if (m->kind & OCB_M_MKFILE) {
        if (lstat(m->target, &st) < 0) {
            int fd = open(m->target, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (fd < 0)
                return -1;
            close(fd);
        }
    }
    if (m->kind & OCB_M_MASK) {
        if (stat(m->target, &st) < 0)
            return 0;
        if (S_ISDIR(st.st_mode))
            return mount("tmpfs", m->target, "tmpfs", MS_RDONLY, NULL);
        return mount("/dev/null", m->target, NULL, MS_BIND, NULL);
    }
    if (m->kind & OCB_M_BIND) {
        unsigned long bind = MS_BIND | ((m->kind & OCB_M_RECURSIVE) ? MS_REC : 0);
        if (mount(m->source, m->target, NULL, bind, NULL) < 0)
            return -1;
        flags &= ~(unsigned long)(MS_BIND | MS_REC);
        if (flags) {
            flags |= MS_BIND | MS_REMOUNT | locked_flags(m->target);
            if (mount(NULL, m->target, NULL, flags, NULL) < 0)
                return -1;
        }
        return 0;
    }
    return mount(m->source, m->target, m->fstype, flags, m->data);
}

static int sandbox_child(const struct ocb_sandbox *sb, int err_fd)
{
    int i, nullfd;

    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* stdio first, while the host's /dev/null is reachable. */
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0 || dup2(nullfd, 0) < 0)
        child_fail(err_fd, OCB_STAGE_STDIO);
    if (dup2(sb->stdout_fd, 1) < 0 || dup2(sb->stdout_fd, 2) < 0)
        child_fail(err_fd, OCB_STAGE_STDIO);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(err_fd, OCB_STAGE_PRIVATE);
    if (mount(sb->rootfs, sb->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        child_fail(err_fd, OCB_STAGE_ROOT_BIND);
    for (i = 0; i < sb->nmounts; i++) {
        if (do_mount(&sb->mounts[i]) < 0)
            child_fail(err_fd, OCB_STAGE_MOUNT_BASE + i);
    }
    for (i = 0; i + 1 < 2 * sb->nsymlinks; i += 2) {
        if (symlink(sb->symlinks[i], sb->symlinks[i + 1]) < 0 && errno != EEXIST)
            child_fail(err_fd, OCB_STAGE_SYMLINK);
    }
    if (sb->hostname && sethostname(sb->hostname, strlen(sb->hostname)) < 0)
        child_fail(err_fd, OCB_STAGE_HOSTNAME);
    if (chdir(sb->rootfs) < 0)
        child_fail(err_fd, OCB_STAGE_PIVOT);
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) < 0)
            child_fail(err_fd, OCB_STAGE_PIVOT);
    } else if (chroot(".") < 0) {
        child_fail(err_fd, OCB_STAGE_PIVOT);
    }
    if (chdir("/") < 0 || chdir(sb->cwd) < 0)
        child_fail(err_fd, OCB_STAGE_CWD);
    /* Capabilities: the bounding set becomes the spec's; exec recomputes the rest. */
    for (i = 0; i < 64; i++) {
        int keep = 0, j;
        for (j = 0; j < sb->ncaps; j++)
            if (sb->caps[j] == i)
                keep = 1;
        if (!keep && prctl(PR_CAPBSET_DROP, (unsigned long)i, 0, 0, 0) < 0 && errno != EINVAL)
            child_fail(err_fd, OCB_STAGE_CAPS);
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (sb->set_groups && setgroups((size_t)sb->ngroups, (const gid_t *)sb->groups) < 0)
        child_fail(err_fd, OCB_STAGE_GROUPS);
    if (setresgid(sb->gid, sb->gid, sb->gid) < 0)
        child_fail(err_fd, OCB_STAGE_GID);
    if (setresuid(sb->uid, sb->uid, sb->uid) < 0)
        child_fail(err_fd, OCB_STAGE_UID);
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    environ = (char **)sb->envp;
    execvp(sb->argv[0], (char *const *)sb->argv);
    child_fail(err_fd, OCB_STAGE_EXEC);
    return 127;
}

int ocb_sandbox_spawn(const struct ocb_sandbox *sb, int *err_fd)
{
    int pipefd[2];
    long pid;
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

    if (!sb || !sb->rootfs || !sb->argv || !sb->argv[0] || !sb->envp || !sb->cwd || !err_fd)
        return -EINVAL;
    if (sb->new_net)
        flags |= CLONE_NEWNET;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return neg_errno();
    /* fork-like clone: no new stack, the child runs on a copy of ours. */
    pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) {
        int rc = neg_errno();
        close(pipefd[0]);
        close(pipefd[1]);
        return rc;
    }
    if (pid == 0) {
        close(pipefd[0]);
        sandbox_child(sb, pipefd[1]);
        _exit(127);
    }
    close(pipefd[1]);
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
