"""Filesystem primitives every layer below the builder shares, importing nothing of
ocibuild but errors and the native helper: paths resolved inside a root
(:mod:`rootpath`), overlay whiteouts (:mod:`whiteout`), user-namespace id maps
(:mod:`idmap`)."""
