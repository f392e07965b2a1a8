"""Dockerfile semantics checked against the real BuildKit (issue "Graded by a real
BuildKit"): each test builds what was first built with BuildKit v0.11.6 (buildctl,
dockerfile.v0 frontend, base image = a busybox from a local registry) and asserts what
BuildKit produced there: files, config fields, history, errors.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from tests.conftest import Ocibuild, read_layout


def _write(context: Path, dockerfile: str, files: dict[str, str] | None = None) -> None:
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        path = context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _created_by(config: dict[str, Any], base: str, ocb: Ocibuild) -> list[str]:
    """The history entries the build added on top of ``base``."""
    skip = len(ocb.config(base).get("history", []))
    return [h["created_by"] for h in config["history"][skip:]]


# -- 5: a stage FROM another stage carries its ARG values -------------------------------


def test_stage_from_stage_inherits_arg_values(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # Observed on BuildKit v0.11.6 with --build-arg B=bval: the child stage's RUN and
    # expansion see A (default), B (build arg) and G (global) from the parent stage; C
    # (declared without a value) stays unset; the image's Env (E=e) wins over the
    # parent's ARG E in the child, while in the parent the ARG after the ENV won; the
    # child's RUN history has no "|N" prefix for inherited values; `ARG A` without a
    # value keeps the inherited one.
    _write(
        context,
        "ARG G=glob\n"
        f"FROM {base_image} AS base1\n"
        "ARG A=adef\nARG B\nARG C\nARG G\nENV E=e\nARG E=argE\n"
        'RUN echo "A=$A B=$B C=${C:-unset} G=$G E=$E" > /base.txt\n'
        "FROM base1 AS child\n"
        'RUN echo "A=$A B=$B C=${C:-unset} G=$G E=$E" > /child.txt\n'
        "ARG A\nARG B=bnew\n"
        'RUN echo "A=$A B=$B" > /c2.txt\n'
        "ENV X=$A-$B-${C:-unset}-$G-$E\n"
        "WORKDIR /w$A\n",
    )
    ocb.build(context, "-t", "t-bk-args", "--build-arg", "B=bval")
    out = ocb.run("t-bk-args", "cat", "/base.txt", "/child.txt", "/c2.txt").stdout
    assert out.splitlines() == [
        "A=adef B=bval C=unset G=glob E=argE",
        "A=adef B=bval C=unset G=glob E=e",
        "A=adef B=bval",
    ]
    config = ocb.config("t-bk-args")
    assert config["config"]["Env"][1:] == ["E=e", "X=adef-bval-unset-glob-e"]
    assert config["config"]["WorkingDir"] == "/wadef"
    assert _created_by(config, base_image, ocb) == [
        "ARG A=adef",
        "ARG B",
        "ARG C",
        "ARG G",
        "ENV E=e",
        "ARG E=argE",
        'RUN |5 A=adef B=bval C= G=glob E=argE /bin/sh -c echo "A=$A B=$B '
        'C=${C:-unset} G=$G E=$E" > /base.txt # buildkit',
        'RUN /bin/sh -c echo "A=$A B=$B C=${C:-unset} G=$G E=$E" > /child.txt # buildkit',
        "ARG A",
        "ARG B=bnew",
        'RUN |2 A=adef B=bval /bin/sh -c echo "A=$A B=$B" > /c2.txt # buildkit',
        "ENV X=adef-bval-unset-glob-e",
        "WORKDIR /wadef",
    ]


# -- 8: FROM scratch has WorkingDir "/" -------------------------------------------------


def _layout_without_workdir(path: Path) -> None:
    """An OCI layout (tag latest) whose image config has no WorkingDir."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("hello")
        info.size = 3
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(b"hi\n"))
    layer = buf.getvalue()
    layer_digest = put(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created_by": "hand-made"}],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def test_scratch_has_workdir_root_a_base_without_one_keeps_none(
    ocb: Ocibuild, context: Path, tmp_path: Path
) -> None:
    # Observed on BuildKit v0.11.6: FROM scratch -> "WorkingDir": "/" (also in a stage
    # built FROM that stage); FROM an image whose config has no WorkingDir -> none.
    _write(context, "FROM scratch AS s\nENV A=1\nFROM s\nENV B=2\n")
    ocb.build(context, "-t", "t-bk-scratch-wd", "--target", "s")
    assert ocb.config("t-bk-scratch-wd")["config"]["WorkingDir"] == "/"
    ocb.build(context, "-t", "t-bk-scratch-wd2")
    assert ocb.config("t-bk-scratch-wd2")["config"]["WorkingDir"] == "/"
    layout = tmp_path / "layout"
    _layout_without_workdir(layout)
    _write(context, f"FROM oci-layout://{layout}:latest\nENV A=1\n")
    ocb.build(context, "-t", "t-bk-base-wd")
    assert "WorkingDir" not in ocb.config("t-bk-base-wd")["config"]


# -- 10: --from is never expanded --------------------------------------------------------


def test_copy_from_variable_is_refused(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6 does not expand --from either (it fails with `failed to parse stage
    # name "$NAME"`); the message is current BuildKit's.
    _write(
        context,
        f"ARG NAME=a\nFROM {base_image} AS a\nRUN echo x > /x\n"
        f"FROM {base_image}\nCOPY --from=$NAME /x /y\n",
    )
    res = ocb.build(context, "-t", "t-bk-from-var", check=False)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "Dockerfile:5: COPY: variable expansion is not supported for --from, define a new " \
        "stage with FROM using ARG from global scope as a workaround" in res.stderr  # fmt: skip
    assert "| COPY --from=$NAME /x /y" in res.stderr
    assert "hint:" in res.stderr


def test_run_mount_from_variable_is_refused(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # BuildKit v0.11.6: "dockerfile parse error on line 5: 'from' doesn't support variable
    # expansion, define alias stage instead"
    _write(
        context,
        f"ARG NAME=a\nFROM {base_image} AS a\nRUN echo x > /x\n"
        f"FROM {base_image}\nRUN --mount=from=$NAME,target=/m cat /m/x\n",
    )
    res = ocb.build(context, "-t", "t-bk-mount-var", check=False)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert (
        "Dockerfile:5: RUN: 'from' doesn't support variable expansion, define alias stage "
        "instead" in res.stderr
    )


# -- 11: WORKDIR keeps an absolute path as written ----------------------------------------


def test_workdir_absolute_as_written_relative_cleaned(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # Observed on BuildKit v0.11.6 (config, history and the RUNs' pwd).
    _write(
        context,
        f"FROM {base_image}\n"
        "WORKDIR /tmp/\nRUN pwd > /1.txt\n"
        "WORKDIR /x\nWORKDIR a/\nRUN pwd > /2.txt\n"
        "WORKDIR /p/../q/./r//\nRUN pwd > /3.txt\n"
        "WORKDIR ../s/\nRUN pwd > /4.txt\n",
    )
    ocb.build(context, "-t", "t-bk-workdir")
    config = ocb.config("t-bk-workdir")
    assert config["config"]["WorkingDir"] == "/q/s"
    workdirs = [c for c in _created_by(config, base_image, ocb) if c.startswith("WORKDIR")]
    assert workdirs == [
        "WORKDIR /tmp/",
        "WORKDIR /x",
        "WORKDIR /x/a",
        "WORKDIR /p/../q/./r//",
        "WORKDIR /q/s",
    ]
    out = ocb.run("t-bk-workdir", "cat", "/1.txt", "/2.txt", "/3.txt", "/4.txt").stdout
    assert out.split() == ["/tmp", "/x/a", "/q/r", "/q/s"]


# -- 13: ** in COPY sources and in .dockerignore -----------------------------------------

TREE = {"top.txt": "1", "d/a.txt": "2", "d/e/b.txt": "3", "d/e/g/b.txt": "5", "f/c.md": "4"}


def _files(ocb: Ocibuild, image: str, top: str) -> list[str]:
    out = ocb.run(image, "find", top).stdout.split()
    return sorted(out)


def test_double_star_in_copy_sources(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # Observed on BuildKit v0.11.6: in a COPY source `**` matches one path component,
    # as `*` does (`**/**` is `*/*`), so `**/**` copies what lies two levels down.
    _write(
        context,
        f"FROM {base_image}\n"
        "COPY **/** /o/all/\nCOPY d/**/** /o/d1/\nCOPY **/**/*.txt /o/t/\n"
        'COPY d/** /o/d2/\nCOPY ["**/**/**", "/o/three/"]\n',
        TREE,
    )
    ocb.build(context, "-t", "t-bk-star-copy")
    assert _files(ocb, "t-bk-star-copy", "/o") == [
        "/o",
        "/o/all",
        "/o/all/a.txt",
        "/o/all/b.txt",
        "/o/all/c.md",
        "/o/all/g",
        "/o/all/g/b.txt",
        "/o/d1",
        "/o/d1/b.txt",
        "/o/d2",
        "/o/d2/a.txt",
        "/o/d2/b.txt",
        "/o/d2/g",
        "/o/d2/g/b.txt",
        "/o/t",
        "/o/t/b.txt",
        "/o/three",
        "/o/three/b.txt",
    ]


def test_double_star_in_dockerignore(ocb: Ocibuild, base_image: str, tmp_path: Path) -> None:
    # Observed on BuildKit v0.11.6 (COPY . /c/): in .dockerignore `**/**` crosses any
    # number of directories (zero included) and an exception under it re-includes.
    cases = {
        "**/**\n!**/**/g\n": ["d", "d/e", "d/e/g", "d/e/g/b.txt"],
        "**/**/*.txt\n": [".dockerignore", "Dockerfile", "d", "d/e", "d/e/g", "f", "f/c.md"],
        "d/**/**\n": [".dockerignore", "Dockerfile", "d", "f", "f/c.md", "top.txt"],
    }
    for n, (ignore, expected) in enumerate(cases.items()):
        context = tmp_path / f"ctx{n}"
        context.mkdir()
        _write(context, f"FROM {base_image}\nCOPY . /c/\n", {**TREE, ".dockerignore": ignore})
        ocb.build(context, "-t", f"t-bk-star-ignore{n}")
        found = _files(ocb, f"t-bk-star-ignore{n}", "/c")
        assert found == sorted(["/c"] + [f"/c/{p}" for p in expected]), ignore


# -- 14: repeated stage names --------------------------------------------------------------


def _target_files(ocb: Ocibuild, context: Path, target: str) -> list[str]:
    """The files in the layers of ``--target``'s image (exported as an OCI layout)."""
    layout = context.parent / f"out-{target}"
    ocb.build(context, "--target", target, "--output", f"type=oci,dest={layout}")
    got = read_layout(layout)
    return sorted(
        m.name
        for n in range(len(got.manifest["layers"]))
        for m in got.layer_members(n)
        if m.isfile()
    )


def test_repeated_stage_names_build(ocb: Ocibuild, context: Path) -> None:
    # Observed on BuildKit v0.11.6 (no warning there; current BuildKit warns
    # DuplicateStageName): --from=a, FROM a and --target a take the last stage named a.
    _write(
        context,
        "FROM scratch AS a\nCOPY Dockerfile /first\n"
        "FROM scratch AS a\nCOPY Dockerfile /second\n"
        "FROM scratch AS b\nCOPY --from=a / /froma/\n"
        "FROM a AS c\nCOPY Dockerfile /c\n",
    )
    res = ocb.build(context, "-t", "t-bk-dup", "--target", "b")
    assert 'Duplicate stage name "a", stage names should be unique' in res.stderr
    assert "Dockerfile:3" in res.stderr
    assert _target_files(ocb, context, "b") == ["froma/second"]
    assert _target_files(ocb, context, "a") == ["second"]
    assert _target_files(ocb, context, "c") == ["c", "second"]


# -- 18: bare RUN, empty --chown parts -------------------------------------------------------


def test_bare_run_and_empty_chown_parts(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # Observed on BuildKit v0.11.6: a bare RUN runs `/bin/sh -c ""` (history
    # 'RUN /bin/sh -c  # buildkit'); --chown=: (also after expansion of empty ARGs) copies
    # as 0:0; an empty user part is id 0 (:5 -> 0:5). An empty group part was gid 0 in
    # v0.11.6 (1: -> 1:0, app: -> 1000:0); current BuildKit takes it as no group, the
    # user's primary gid (07aa65e08: 1: -> 1:1, app: -> 1000:1000), and so does ocibuild.
    _write(
        context,
        f"FROM {base_image}\nRUN\n"
        "COPY --chown=: Dockerfile /d1\nARG E\nCOPY --chown=$E:$E Dockerfile /d2\n"
        "COPY --chown=1: Dockerfile /d3\nCOPY --chown=:5 Dockerfile /d4\n"
        "COPY --chown=app: Dockerfile /d5\n",
    )
    ocb.build(context, "-t", "t-bk-bare-run")
    out = ocb.run("t-bk-bare-run", "stat", "-c", "%n %u:%g", "/d1", "/d2", "/d3", "/d4", "/d5")
    assert out.stdout.splitlines() == ["/d1 0:0", "/d2 0:0", "/d3 1:1", "/d4 0:5", "/d5 1000:1000"]
    history = _created_by(ocb.config("t-bk-bare-run"), base_image, ocb)
    assert history[0] == "RUN /bin/sh -c  # buildkit"
