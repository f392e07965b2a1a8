"""ocibuild.builder."""
