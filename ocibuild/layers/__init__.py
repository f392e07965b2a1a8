"""ocibuild.layers."""
