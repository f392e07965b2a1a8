"""cffi build script (API mode) for the native helper, module ``ocibuild._ocibuild_native``.

setup.py names it through ``cffi_modules=["native/build_native.py:ffibuilder"]``; it can
also be run directly (``python native/build_native.py``) to build in place.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

CDEF = """
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

/* native-chroot: one mount done in the sandbox before pivot_root (kind: OCB_M_*). */
struct ocb_mount {
    const char *source;
    const char *target; /* host path inside the rootfs */
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
#define OCB_M_MASK 32

struct ocb_sandbox {
    const char *rootfs;
    const char *const *argv;
    const char *const *envp;
    const char *cwd;
    const char *hostname;
    const struct ocb_mount *mounts;
    int nmounts;
    const char *const *symlinks; /* pairs: link target, host path of the link */
    int nsymlinks;
    unsigned int uid;
    unsigned int gid;
    const unsigned int *groups;
    int ngroups;
    int set_groups;
    const int *caps; /* capability numbers kept in the bounding set */
    int ncaps;
    int stdout_fd;
    int new_net;
};

/* Where a sandbox child failed (sent with errno through the error pipe). */
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
#define OCB_STAGE_MOUNT_BASE 100

/* Clone into new mount/pid/ipc/uts (and net) namespaces, set up the rootfs, exec.
 * Returns the child's pid (the caller reaps it) and the read end of an error pipe in
 * *err_fd: EOF = exec succeeded; else two ints (stage, errno). -errno on failure. */
int ocb_sandbox_spawn(const struct ocb_sandbox *sb, int *err_fd);
int ocb_btime(const char *path, long long *out_ns);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "ocibuild._ocibuild_native",
    (HERE / "ocibuild_native.c").read_text(),
    include_dirs=[str(HERE)],
    extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True)
