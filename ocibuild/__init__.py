"""ocibuild: a pure-Python Dockerfile interpreter that drives OCI runtimes directly."""
