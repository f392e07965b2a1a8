"""ocibuild.storage."""
