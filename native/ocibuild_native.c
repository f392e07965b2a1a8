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
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

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
    if ((rc = fsconfig_opts(fd, OCB_OVERLAY_FIXED_OPTS)) < 0 ||
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
        rc = append_escaped(buf, cap, &pos, "," OCB_OVERLAY_FIXED_OPTS, 0);
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

/* ---------------------------- reserved ----------------------------
 * Issue 5 (native-chroot isolation) lands here: pivot_root(2)/chroot(2) into a
 * prepared rootfs, mount /proc and /dev inside it, then execve the step's process.
 */
