"""ocibuild.build."""
