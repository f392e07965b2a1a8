# The ocibuild image: ocibuild with runc, crun, fuse-overlayfs and uidmap, run as the
# unprivileged user `build` (subordinate ids 100000-165535), its store a volume.
# Built by ocibuild itself: `make image` (BASE=... to start from another Debian 12 image).
# Run it (see README, "Building inside containers"):
#   podman run --device /dev/fuse --security-opt seccomp=ocibuild-seccomp.json \
#     --security-opt unmask=/proc/* -v ocibuild-store:/home/build/.local/share/ocibuild \
#     -v $PWD:/context:ro ocibuild:latest ocibuild build /context
ARG BASE=debian:bookworm-slim

# -- the Python package, compiled (its native helper) where a compiler is --------------
FROM ${BASE} AS build
# Docker's default seccomp profile, for the RUN steps' sandbox inside the image: the one
# file unpacked from Debian's golang-github-docker-docker-dev, as `make setup` does
ARG SECCOMP_DEB=golang-github-docker-docker-dev
ARG SECCOMP_MEMBER=./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3 python3-venv python3-dev gcc libc6-dev libffi-dev \
 && mkdir -p /seccomp && cd /seccomp && apt-get download -q ${SECCOMP_DEB} \
 && dpkg-deb --fsys-tarfile ${SECCOMP_DEB}_*.deb | tar -xO ${SECCOMP_MEMBER} > default.json \
 && rm -f ./*.deb && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md /src/
COPY native /src/native
COPY ocibuild /src/ocibuild
# Python dependencies: wheels that `make image` downloaded on the host into
# build/image-wheels (with the host's own pip configuration) when present, else the index
RUN --mount=type=bind,target=/context \
    python3 -m venv /opt/ocibuild \
 && if [ -d /context/build/image-wheels ]; then \
      export PIP_NO_INDEX=1 PIP_FIND_LINKS=/context/build/image-wheels; fi \
 && /opt/ocibuild/bin/pip install -q --no-cache-dir --upgrade 'setuptools>=68' wheel cffi \
 && /opt/ocibuild/bin/pip install -q --no-cache-dir --no-build-isolation /src \
 && /opt/ocibuild/bin/pip uninstall -q -y pip setuptools wheel \
 && /opt/ocibuild/bin/ocibuild --version

# -- the image ---------------------------------------------------------------------------
FROM ${BASE}
# runc/crun run the RUN steps; fuse-overlayfs where kernel overlay does not mount; uidmap
# maps the build's user namespace; slirp4netns is the steps' network; libseccomp2 compiles
# the native sandbox's filter; git for git URL contexts. newuidmap/newgidmap get file
# capabilities instead of the setuid bit: a setuid-root helper has only the container's
# bounding set (no CAP_SYS_ADMIN), which the kernel wants to write a map of a user
# namespace that root does not own; with cap_setuid/cap_setgid the helper keeps the
# user's uid, the namespace's owner (as the buildah and podman images do)
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3 runc crun fuse-overlayfs uidmap slirp4netns libseccomp2 ca-certificates git \
      libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && chmod 0755 /usr/bin/newuidmap /usr/bin/newgidmap \
 && setcap cap_setuid=ep /usr/bin/newuidmap && setcap cap_setgid=ep /usr/bin/newgidmap
COPY --from=build /opt/ocibuild /opt/ocibuild
COPY --from=build /seccomp/default.json /usr/local/share/ocibuild/seccomp/default.json
# useradd gives `build` a /etc/subuid and /etc/subgid range (100000-165535): checked here
RUN ln -s /opt/ocibuild/bin/ocibuild /usr/local/bin/ocibuild \
 && useradd --create-home --uid 1000 --shell /bin/bash build \
 && grep -q '^build:100000:65536$' /etc/subuid && grep -q '^build:100000:65536$' /etc/subgid \
 && install -d -o build -g build -m 0700 /home/build/.local /home/build/.local/share \
      /home/build/.local/share/ocibuild \
 && ocibuild --version
VOLUME /home/build/.local/share/ocibuild
USER build
WORKDIR /home/build
CMD ["ocibuild", "--help"]
