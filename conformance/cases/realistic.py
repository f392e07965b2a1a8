"""A few realistic builds on a debootstrap Debian root."""

from conformance.case import Case, File

D = "FROM {debian}\n"
CASES = [
    Case(
        "debian_useradd_and_app",
        # SOURCE_DATE_EPOCH: useradd writes the day of the change into /etc/shadow (a
        # golden recorded one day would differ the next: shadow 4.9+ reads the variable)
        D + "RUN SOURCE_DATE_EPOCH=1700000000 useradd -m -u 1234 -s /bin/bash bob && "
        "install -d -o bob -g bob /home/bob/app\n"
        "WORKDIR /home/bob/app\nCOPY --chown=bob:bob app/ ./\nUSER bob\n"
        'RUN ./run.sh > out.txt\nCMD ["./run.sh"]\n',
        files={"app/run.sh": File('#!/bin/bash\necho "hello from $(whoami)"\n', 0o755)},
        base="debian",
    ),
    Case(
        "debian_remove_docs",
        D + "RUN rm -rf /usr/share/doc /usr/share/man /var/log/*.log\n",
        base="debian",
    ),
    Case(
        "debian_dpkg_config",
        D + "RUN echo 'path-exclude /usr/share/locale/*' > "
        "/etc/dpkg/dpkg.cfg.d/nolocale && ln -sf /usr/share/zoneinfo/Europe/Paris /etc/localtime"
        " && echo Europe/Paris > /etc/timezone\n",
        base="debian",
    ),
    Case(
        "debian_copy_chown_system_user",
        D
        + "COPY --chown=daemon:daemon conf /etc/daemon-conf/\nRUN chmod -R g+w /etc/daemon-conf\n",
        files={"conf/a": "1", "conf/b/c": "2"},
        base="debian",
    ),
]
