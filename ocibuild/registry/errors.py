"""Registry errors: each names the registry, the repository and what to do."""

from __future__ import annotations

from ocibuild.errors import ImageNotFound, OcibuildError


class RegistryError(OcibuildError):
    """A registry that cannot be reached or answers with an error."""


class Unreachable(RegistryError):
    """The registry did not answer (connection refused, reset, timed out), even on retry."""


class AuthError(RegistryError):
    """Credentials missing, wrong, or not allowed to do what was asked."""


class NotFoundError(ImageNotFound, RegistryError):
    """The registry has no such repository, tag or manifest."""


class DigestMismatch(RegistryError):
    """Content whose size or digest is not what its descriptor says."""
