"""ocibuild.image."""
