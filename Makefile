# `make demo` and `make test` do all the set-up on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := runc crun fuse-overlayfs uidmap busybox-static skopeo umoci slirp4netns \
	oci-image-tool libffi-dev gcc docker-registry apache2-utils buildah debootstrap \
	charliecloud time libc6-dev zstd keyutils
STAMP := $(VENV)/.installed
# other architectures' RUN steps (--platform): QEMU registered in binfmt_misc, fix-binary
SYSTEM_PACKAGES += qemu-user-static binfmt-support
# the browser the HTML report is tested in (headless)
SYSTEM_PACKAGES += chromium
# what `make demo` needs: a runtime, the busybox the example copies, the RUN steps' network
# (slirp4netns), the native helper's compiler and headers, and Python's venv
DEMO_PACKAGES := runc busybox-static slirp4netns gcc libc6-dev libffi-dev python3-dev \
	python3-venv
# Docker's default seccomp profile, as Debian ships it in the Go sources of docker.io
# (golang-github-docker-docker-dev); only that one file is unpacked, not the ~250 Go
# source packages the package depends on. ocibuild reads it at run time.
SECCOMP_PROFILE := /usr/local/share/ocibuild/seccomp/default.json
SECCOMP_DEB := golang-github-docker-docker-dev
SECCOMP_MEMBER := ./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json

.PHONY: setup system venv demo test lint unit integration clean bench bench-scale conformance \
	conformance-live conformance-regen hardening test-platform

setup: system venv

system: $(SECCOMP_PROFILE)
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
		echo "installing Debian packages: $(SYSTEM_PACKAGES)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); \
	fi

$(SECCOMP_PROFILE):
	@echo "unpacking Docker's default seccomp profile from Debian's $(SECCOMP_DEB)"
	@d=$$(mktemp -d) && chmod 755 $$d && cd $$d && apt-get download -q $(SECCOMP_DEB) >/dev/null \
		&& dpkg-deb --fsys-tarfile $(SECCOMP_DEB)_*.deb | tar -xO $(SECCOMP_MEMBER) > profile.json \
		&& install -D -m 0644 profile.json $@ && rm -rf $$d

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py native/ocibuild_native.c native/ocibuild_native.h native/build_native.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools>=68' wheel cffi
	# compat: a plain path entry, not the import-hook finder (whose imports every start pays)
	$(BIN)/pip install -q --no-build-isolation -e '.[test]' --config-settings editable_mode=compat \
	|| $(BIN)/pip install -q --no-build-isolation -e '.[test]'
	$(BIN)/python -m compileall -q ocibuild  # byte-compiled now, even where PYTHONDONTWRITEBYTECODE is set
	touch $(STAMP)

.PHONY: demo-system
demo-system:
	@if ! dpkg -s $(DEMO_PACKAGES) >/dev/null 2>&1; then \
		echo "installing Debian packages: $(DEMO_PACKAGES)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEMO_PACKAGES); \
	fi

# the demo's venv: ocibuild alone, not the test tools (`make test` adds them)
DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): pyproject.toml setup.py native/ocibuild_native.c native/ocibuild_native.h native/build_native.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools>=68' wheel cffi
	$(BIN)/pip install -q --no-build-isolation -e .
	$(BIN)/python -m compileall -q ocibuild
	touch $(DEMO_STAMP)

demo: demo-system $(SECCOMP_PROFILE) $(DEMO_STAMP)
	cp /bin/busybox examples/hello/busybox
	$(BIN)/ocibuild build -t hello examples/hello
	$(BIN)/ocibuild run --rm hello

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest -q -ra

# Fast checks a contributor runs without root: the pure parts (parser, expander,
# .dockerignore, layer reader, spec, store logic). Under a minute.
unit: venv
	$(BIN)/pytest -q -ra -m unit

# Everything that needs root, runtimes, mounts, registries (what `test` adds to unit).
integration: setup
	$(BIN)/pytest -q -ra -m 'integration and not slow_hardening and not platform_debian'

# Multi-platform builds from the two-platform Debian base (debootstrap amd64 + arm64, cached
# in /var/tmp/ocibuild-conformance; RUN under QEMU): slow, so not in `make test`.
test-platform: setup
	$(BIN)/pytest -q -ra -m platform_debian tests/platform

clean:
	rm -rf $(VENV) build *.egg-info ocibuild/_ocibuild_native*.so

# Times ocibuild, buildah, ch-image and BuildKit (when its daemon answers or BK_GIT is
# set: bench/bench.py starts it then; else the column is skipped) on the same workloads.
bench: setup
	$(BIN)/python -m compileall -q ocibuild  # (sources changed since set-up: no compile in the runs)
	$(BIN)/python bench/bench.py

# scale series (bench/scale.py): numbers, PNG plots and the linearity check in bench/results/
bench-scale: setup
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/pip install -q matplotlib
	$(BIN)/python -m compileall -q ocibuild
	$(BIN)/python bench/scale.py

# ocibuild against the real BuildKit's results recorded in conformance/goldens/ (root; no
# BuildKit needed; also part of `make test` through tests/language/test_conformance.py).
conformance: setup
	$(BIN)/python -m conformance.harness -j 3

# The same, building every case with the running BuildKit too (says which goldens are
# stale); OCIBUILD_BUILDKIT_ADDR, OCIBUILD_BUILDCTL: see conformance/buildkit.py.
conformance-live: setup
	$(BIN)/python -m conformance.harness -j 3 --live

# Rewrite conformance/goldens/ from the running BuildKit (bases pushed to 127.0.0.1:5000).
conformance-regen: setup
	$(BIN)/python -m conformance.regen -j 3

# Sandbox escapes: the slow cells of tests/hardening/test_escapes.py (the rest run in
# `make test`), then the whole attack x mode table (root; ~6 min; hardening/README.md).
hardening: setup
	$(BIN)/pytest -q -ra -m slow_hardening tests/hardening/test_escapes.py
	$(BIN)/python -m hardening.escapes

# The ocibuild image (Dockerfile), built by ocibuild itself into the default store as
# ocibuild:latest and ocibuild:VERSION; BASE=REF starts from another Debian 12 image. The
# Python dependencies are downloaded here first (build/image-wheels, with this machine's
# pip configuration); `ocibuild push ocibuild:latest REF` sends the image anywhere.
.PHONY: image test-container seccomp-profile
# podman: builds inside containers and --isolation docker-with-fuse (make test-container);
# appended here, at the end, so the list above merges apart (recipes expand it later)
SYSTEM_PACKAGES += podman
BASE ?=
image: venv $(SECCOMP_PROFILE)
	$(BIN)/pip download -q -d build/image-wheels 'setuptools>=68' wheel cffi .
	$(BIN)/ocibuild build $(if $(BASE),--build-arg BASE=$(BASE)) -t ocibuild:latest \
		-t ocibuild:$$($(BIN)/ocibuild --version | cut -d' ' -f2) .

# The seccomp profile a container needs to build inside (Docker's default + unshare,
# mount, pivot_root...: ocibuild/engine.py), next to the default one.
seccomp-profile: venv $(SECCOMP_PROFILE)
	$(BIN)/python -m ocibuild.engine seccomp-profile $(dir $(SECCOMP_PROFILE))ocibuild-in-container.json

# Builds inside the ocibuild image under podman, and --isolation docker-with-fuse (root;
# podman from Debian; several minutes: they build the image first). Not in `make test`.
test-container: setup
	$(BIN)/pytest -q -ra -m container tests/container
