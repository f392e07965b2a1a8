"""RUN --mount (buildah 1.28 leaves mount points behind: written expectations)."""

from conformance.case import Case, Expect, f

B = "FROM {busybox}\n"
WHY = "buildah 1.28 leaves the RUN --mount target in the layer; BuildKit removes it"
CASES = [
    Case(
        "mount_bind_context",
        B + "RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/x > /out\n"
        "RUN --mount=target=/ctx ls /ctx > /listing\n",
        files={"data/x": "from context\n", ".dockerignore": "ignored\n", "ignored": "no"},
        expect=Expect(files={"/out": f("from context\n"), "/listing": f("Dockerfile\ndata\n")}),
        reason=WHY,
    ),
    Case(
        "mount_bind_rw_discarded",
        B + "RUN --mount=type=bind,source=data,target=/d,rw echo changed > /d/x && cat /d/x > /o\n"
        "RUN --mount=type=bind,source=data,target=/d cat /d/x > /o2\n",
        files={"data/x": "orig\n"},
        expect=Expect(files={"/o": f("changed\n"), "/o2": f("orig\n")}),
        reason=WHY,
    ),
    Case(
        "mount_bind_from_stage",
        B.replace("\n", " AS tools\n")
        + "RUN mkdir /kit && echo tool > /kit/t\n"
        + B
        + "RUN --mount=type=bind,from=tools,source=/kit,target=/k cp /k/t /t\n",
        expect=Expect(files={"/t": f("tool\n")}),
        reason=WHY,
    ),
    Case(
        "mount_cache_persists_between_steps",
        B + "RUN --mount=type=cache,target=/var/cache/c,id=conformance-$RANDOM-x "
        "echo 1 > /var/cache/c/n\n"
        "RUN --mount=type=cache,target=/c2,id=conf-cache-shared sh -c 'echo x >> /c2/log'\n"
        "RUN --mount=type=cache,target=/c3,id=conf-cache-shared wc -l < /c3/log > /count\n",
        expect=Expect(files={"/count": f("1\n")}, exact=False),
        reason=WHY,
    ),
    Case(
        "mount_cache_owner",
        B + "USER app\nRUN --mount=type=cache,target=/home/app/.cache,uid=1000,gid=1000,"
        "id=conf-owned,sharing=locked touch /home/app/.cache/ok && echo ok > /tmp/ok\n",
        expect=Expect(files={"/tmp/ok": f("ok\n", 0o644, 1000, 1000)}),
        reason=WHY,
    ),
    Case(
        "mount_tmpfs",
        B + "RUN --mount=type=tmpfs,target=/scratch,size=1m sh -c "
        "'echo t > /scratch/f && grep -c scratch /proc/mounts > /n'\n",
        expect=Expect(files={"/n": f("1\n")}),
        reason=WHY,
    ),
    Case(
        "mount_secret_file",
        B + 'RUN --mount=type=secret,id=token test "$(cat /run/secrets/token)" = s3cret '
        "&& stat -c %a /run/secrets/token > /mode\n"
        "RUN --mount=type=secret,id=token,target=/etc/tok,mode=0440,uid=1000 "
        "stat -c '%a %u' /etc/tok > /mode2\n",
        secrets={"token": "s3cret"},
        expect=Expect(files={"/mode": f("400\n"), "/mode2": f("440 1000\n")}),
        reason=WHY,
    ),
    Case(
        "mount_secret_env",
        B + 'RUN --mount=type=secret,id=token,env=TOKEN test "$TOKEN" = s3cret && echo y > /y\n',
        secrets={"token": "s3cret"},
        expect=Expect(files={"/y": f("y\n")}),
        reason="buildah 1.28 has no secret env=; BuildKit sets the variable for the RUN only",
    ),
    Case(
        "mount_secret_missing_optional",
        B + "RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo ok > /ok\n",
        expect=Expect(files={"/ok": f("ok\n")}),
        reason=WHY,
    ),
    Case(
        "mount_secret_missing_required",
        B + "RUN --mount=type=secret,id=absent,required=true true\n",
        error="secret absent not found",
        reason="buildah 1.28 has no required= for secrets",
    ),
]
