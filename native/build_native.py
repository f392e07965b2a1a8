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
int ocb_open_in_root(int rootfd, const char *path, int flags, int mode);
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
