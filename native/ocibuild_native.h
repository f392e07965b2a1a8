/* ocibuild native helper: the few syscalls Python's stdlib does not expose.
 *
 * Every function returns 0 (or a file descriptor) on success and -errno on
 * failure.  Nothing here prints, exits or allocates memory the caller must free.
 */
#ifndef OCIBUILD_NATIVE_H
#define OCIBUILD_NATIVE_H

int ocb_enter_mount_ns(void);
int ocb_mount_overlay(const char **lowers, int nlowers, const char *upper, const char *work,
                      const char *target, const char *extra_opts);
/* Same, choosing the API: classic_only != 0 skips the new mount API (tests, debugging). */
int ocb_mount_overlay_api(const char **lowers, int nlowers, const char *upper,
                          const char *work, const char *target, const char *extra_opts,
                          int classic_only);
int ocb_bind_mount(const char *src, const char *target, int recursive, int readonly);
int ocb_umount(const char *target, int detach);
/* mount(2) as is: a filesystem (proc, tmpfs, ...) at ``target``. */
int ocb_mount_fs(const char *source, const char *target, const char *fstype,
                 unsigned long flags, const char *data);
int ocb_open_in_root(int rootfd, const char *path, int flags, int mode);

int ocb_unshare(int flags);
int ocb_set_pdeathsig(int sig);
int ocb_isolate_cgroup2(const char *unified);

/* native-chroot: one mount done in the sandbox before pivot_root (kind: OCB_M_*).
 * ``target`` is a path inside the root: the helper resolves it there (openat2
 * RESOLVE_IN_ROOT) at mount time, mounts onto the resolved fd and checks the result. */
struct ocb_mount {
    const char *source; /* host path (binds) or the filesystem's source */
    const char *target; /* absolute path in the container, no ".." */
    const char *fstype;
    const char *data;
    unsigned long flags; /* MS_* */
    int kind;
};
#define OCB_M_MKDIR 1
#define OCB_M_MKFILE 2
#define OCB_M_IF_EXISTS 4
#define OCB_M_BIND 8
#define OCB_M_RECURSIVE 16
#define OCB_M_MASK 32     /* masked path: ro tmpfs on a dir, /dev/null on the rest */
#define OCB_M_DEVICE 64   /* a host device node bound in: not made nodev */
#define OCB_M_REAL_DIR 128 /* the target must be a directory with no symlink on its path */
#define OCB_M_RO_PATH 256  /* read-only path: bound on itself, remounted read-only */

struct ocb_sandbox {
    const char *rootfs;
    const char *const *argv;
    const char *const *envp;
    const char *cwd;
    const char *hostname;
    const struct ocb_mount *mounts;
    int nmounts;
    const char *const *symlinks; /* pairs: link target, path of the link in the container */
    int nsymlinks;
    unsigned int uid;
    unsigned int gid;
    const unsigned int *groups;
    int ngroups;
    int set_groups;
    const int *caps; /* capability numbers kept in the bounding set */
    int ncaps;
    int stdout_fd;
    int new_net;              /* a new empty network namespace (without netns_path) */
    const char *netns_path;   /* join this network namespace (NULL: see new_net) */
    int readonly_root;
    int no_new_privs;
    const unsigned char *seccomp_filter; /* struct sock_filter[seccomp_len], or NULL */
    int seccomp_len;
};

/* Where a sandbox child failed (sent with errno and a reason through the error pipe). */
#define OCB_STAGE_STDIO 1
#define OCB_STAGE_PRIVATE 2
#define OCB_STAGE_ROOT_BIND 3
#define OCB_STAGE_SYMLINK 4
#define OCB_STAGE_HOSTNAME 5
#define OCB_STAGE_PIVOT 6
#define OCB_STAGE_CWD 7
#define OCB_STAGE_CAPS 8
#define OCB_STAGE_GROUPS 9
#define OCB_STAGE_GID 10
#define OCB_STAGE_UID 11
#define OCB_STAGE_EXEC 12
#define OCB_STAGE_NETNS 13
#define OCB_STAGE_KEYRING 14
#define OCB_STAGE_SECCOMP 15
#define OCB_STAGE_MOUNT_BASE 100

/* Why, beyond errno. */
#define OCB_WHY_NOT_REAL_DIR 1 /* a symlink or a non-directory where a real dir must be */
#define OCB_WHY_CHANGED 2      /* after mounting, the path does not lead to the new mount */
#define OCB_WHY_IN_PROCFS 3    /* the target lies inside procfs or sysfs */
#define OCB_WHY_NOT_APPLIED 4  /* a protection (mask, read-only, nodev) did not take */
#define OCB_WHY_SOURCE 5       /* the bind source cannot be opened */

/* Clone into new mount/pid/ipc/uts (and net) namespaces, set up the rootfs, exec.
 * Returns the child's pid (the caller reaps it) and the read end of an error pipe in
 * *err_fd: EOF = exec succeeded; else three ints (stage, errno, why). -errno on failure. */
int ocb_sandbox_spawn(const struct ocb_sandbox *sb, int *err_fd);

/* Birth time (statx) in ns, or -1 when the filesystem does not record it. */
int ocb_btime(const char *path, long long *out_ns);

#endif
