# `make demo` and `make test` do all the set-up on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := runc crun fuse-overlayfs uidmap busybox-static skopeo umoci \
	oci-image-tool libffi-dev gcc docker-registry apache2-utils buildah debootstrap \
	charliecloud time libc6-dev zstd keyutils
STAMP := $(VENV)/.installed

.PHONY: setup system venv demo test lint unit integration clean bench conformance hardening

setup: system venv

system:
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
		echo "installing Debian packages: $(SYSTEM_PACKAGES)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py native/ocibuild_native.c native/ocibuild_native.h native/build_native.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools>=68' wheel cffi
	$(BIN)/pip install -q --no-build-isolation -e '.[test]'
	touch $(STAMP)

demo: setup
	cp /bin/busybox examples/hello/busybox
	$(BIN)/ocibuild build -t hello examples/hello
	$(BIN)/ocibuild run --rm hello

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -q -ra

clean:
	rm -rf $(VENV) build *.egg-info ocibuild/_ocibuild_native*.so

# Times ocibuild, buildah and ch-image on the same workloads (root; a few minutes).
bench: setup
	$(BIN)/python bench/bench.py

# ocibuild against buildah 1.28 and written BuildKit expectations (root; ~2.5 min; also
# part of `make test` through tests/language/test_conformance.py).
conformance: setup
	$(BIN)/python -m conformance.harness

# Sandbox escapes: the slow cells of tests/hardening/test_escapes.py (the rest run in
# `make test`), then the whole attack x mode table (root; ~6 min; hardening/README.md).
hardening: setup
	$(BIN)/pytest -q -ra -m slow_hardening tests/hardening/test_escapes.py
	$(BIN)/python -m hardening.escapes
