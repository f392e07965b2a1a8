"""ocibuild.runtime."""
