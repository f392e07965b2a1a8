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
int ocb_open_in_root(int rootfd, const char *path, int flags, int mode);

/* Issue 5 (native-chroot isolation) will add here, for example:
 *   int ocb_pivot_into(const char *newroot);   pivot_root(2) + detach the old root
 *   int ocb_chroot_into(const char *newroot);  chroot(2) fallback when pivot_root fails
 */

#endif
