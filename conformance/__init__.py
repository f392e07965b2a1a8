"""Conformance suite: ocibuild against buildah 1.28 and written BuildKit expectations."""
