"""ocibuild.dockerfile."""
