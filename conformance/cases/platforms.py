"""Multi-platform builds: the same Dockerfile for linux/amd64 and linux/arm64 (the arm64 RUN
steps through QEMU's emulator in binfmt_misc), from the two-platform Debian base
(``conformance.multiarch``). Both builders make one multi-platform image
(``--platform linux/amd64,linux/arm64``; BuildKit: ``--opt platform=...``); each case
compares one platform's image from that index with BuildKit's for the same platform, so
every Dockerfile here is two cases, ``NAME_amd64`` and ``NAME_arm64``. One case builds
arm64 alone (a single cross-platform build).
"""

from __future__ import annotations

from conformance.case import Case

BOTH = "linux/amd64,linux/arm64"
ARCHES = ("amd64", "arm64")


def per_platform(name: str, dockerfile: str) -> list[Case]:
    """One case per architecture of a two-platform build of ``dockerfile``."""
    return [
        Case(f"{name}_{arch}", dockerfile, base="debian-multi", platform=BOTH, pick=arch)
        for arch in ARCHES
    ]


ARCH = """\
FROM {debian-multi}
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT
ARG BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT
RUN echo "$(uname -m) $(dpkg --print-architecture)" > /arch \\
 && echo "target $TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT]" > /args \\
 && echo "build $BUILDPLATFORM $BUILDOS $BUILDARCH [$BUILDVARIANT]" >> /args
"""

DPKG = """\
FROM {debian-multi}
RUN dpkg-query -W -f='${Package} ${Architecture} ${Version}\\n' > /packages \\
 && dpkg --print-architecture > /arch \\
 && mkdir -p /opt/bin && cp /usr/bin/env /opt/bin/env && ln -s env /opt/bin/printenv \\
 && rm -rf /usr/share/doc/dpkg
"""

CROSS = """\
FROM --platform=$BUILDPLATFORM {debian-multi} AS build
ARG TARGETARCH BUILDARCH
RUN echo "built on $(dpkg --print-architecture) ($BUILDARCH) for $TARGETARCH" > /out
FROM {debian-multi}
ARG TARGETARCH
COPY --from=build /out /out
RUN cat /out > /copied && uname -m >> /copied && echo "$TARGETARCH" >> /copied
"""

CONFIG = """\
FROM {debian-multi} AS base
ARG TARGETARCH
ENV ARCH=$TARGETARCH
WORKDIR /app/$TARGETARCH
RUN dpkg --print-architecture > here
LABEL arch=$TARGETARCH
CMD ["uname", "-m"]
"""

VARIANT = """\
FROM scratch
ARG TARGETPLATFORM TARGETARCH TARGETVARIANT
ENV PLATFORM=$TARGETPLATFORM ARCH=$TARGETARCH VARIANT=$TARGETVARIANT
COPY f /f
"""

CASES: list[Case] = [
    *per_platform("platform_debian_arch", ARCH),
    *per_platform("platform_debian_dpkg", DPKG),
    *per_platform("platform_debian_cross_stage", CROSS),
    *per_platform("platform_debian_config", CONFIG),
    *[
        Case(
            f"platform_scratch_variant_{arch}",
            VARIANT,
            files={"f": "x\n"},
            base="scratch",
            platform="linux/amd64,linux/arm/v7",
            pick=arch,
        )
        for arch in ("amd64", "arm")
    ],
    Case(
        "platform_debian_single_arm64",
        ARCH,
        base="debian-multi",
        platform="linux/arm64",
        pick="arm64",
    ),
]
