"""cffi build script (API mode) for the native helper, module ``ocibuild._ocibuild_native``.

setup.py names it through ``cffi_modules=["native/build_native.py:ffibuilder"]``; it can
also be run directly (``python native/build_native.py``) to build in place.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent


def cdef_from_header(text: str) -> str:
    """The header's declarations for cffi: the include guard and comments dropped (the
    header is the one list of what the helper exports)."""
    keep = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("#ifndef", "#endif")) or stripped == "#define OCIBUILD_NATIVE_H":
            continue
        keep.append(line)
    return "\n".join(keep)


CDEF = cdef_from_header((HERE / "ocibuild_native.h").read_text())

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
