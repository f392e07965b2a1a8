"""RUN: forms, users, environment, filesystem effects, flags."""

from pathlib import Path

from conformance.case import Case, File

BUSYBOX = Path("/bin/busybox").read_bytes()

B = "FROM {busybox}\n"
CASES = [
    Case("run_shell_form", B + "RUN echo one > /one && echo two | tr a-z A-Z > /two\n"),
    Case(
        "run_exec_form",
        B + 'RUN ["/bin/sh", "-c", "echo exec > /exec"]\nRUN ["touch", "/t1", "/t2"]\n',
    ),
    Case("run_as_user", B + "USER app\nRUN touch /tmp/mine && id -u > /tmp/id\n"),
    Case(
        "run_user_groups",
        B + "USER app\nRUN id > /tmp/id\n",
    ),
    Case("run_as_uid_gid", B + "USER 1000:2000\nRUN touch /tmp/f && id -u > /tmp/u\n"),
    Case(
        "run_home_per_user",
        B + "RUN echo $HOME > /tmp/h-root\nUSER app\nRUN echo $HOME > /tmp/h-app\n",
    ),
    Case("run_workdir", B + "WORKDIR /work/dir\nRUN pwd > here\n"),
    Case("run_delete_base_file", B + "RUN rm /bin/vi /etc/group\n"),
    Case(
        "run_replace_dir_opaque",
        B + "RUN mkdir -p /data/old && touch /data/old/x\n"
        "RUN rm -rf /data && mkdir /data && touch /data/new\n",
    ),
    Case("run_fifo", B + "RUN mkfifo /fifo\n"),
    Case(
        "run_mknod",
        B + "RUN mknod /null c 1 3 && mknod /blk b 7 0\n",
    ),
    Case(
        "run_modes_and_setuid",
        B + "RUN cp /bin/busybox /su && chmod 4755 /su && "
        "mkdir /g && chmod 2775 /g && mkdir /st && chmod 1777 /st && chmod 0600 /etc/passwd\n",
    ),
    Case(
        "run_hardlinks_symlinks",
        B + "RUN echo x > /a && ln /a /b && ln -s /a /c && ln -s dangling /d\n",
    ),
    Case("run_chown", B + "RUN touch /o && chown 1000:2000 /o && mkdir /od && chown app /od\n"),
    Case("run_env_and_arg", B + 'ENV E=env\nARG A=arg\nRUN echo "$E $A" > /ea\n'),
    Case("run_in_new_dir_parents", B + "RUN mkdir -p /a/b/c && echo deep > /a/b/c/f\n"),
    Case(
        "run_modify_then_delete", B + "RUN echo 1 > /tmp/x\nRUN echo 2 >> /tmp/x\nRUN rm /tmp/x\n"
    ),
    Case("run_empty_layer", B + "RUN true\nRUN echo keep > /k\n"),
    Case(
        "run_network_none",
        B + "RUN --network=none sh -c 'ip link 2>/dev/null | grep -c ^[0-9] > /links; true'\n"
        "RUN --network=default echo d > /default\n",
    ),
    Case(
        "run_leaves_no_mount_points",
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo hi > /hi"]\n',
        files={"busybox": File(BUSYBOX, 0o755)},
        base="scratch",
    ),
]
