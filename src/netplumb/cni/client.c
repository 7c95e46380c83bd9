/* netplumb-cni's fast path: hand the call to a resident `netplumb cni agent`.
 *
 * A runtime execs a CNI plugin once per container start; Python's own start-up (~14 ms here)
 * is as long as the reference Go plugins' whole ADD. This client starts in well under a
 * millisecond, sends its CNI_* (and NETPLUMB_*) environment and stdin to the agent's socket in
 * netplumb's state directory, and writes back the agent's answer and exit status. Without an
 * agent it execs the plugin in Python (NETPLUMB_PYTHON, NETPLUMB_PYCODE, set when
 * `netplumb cni install` compiles it), so the plugin works the same either way.
 *
 * Protocol: request = "K=V\0" for each variable, "\0", then stdin; the client shuts down its
 * writing side. Answer = one byte of exit status, then the plugin's stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void fallback(void) {
    char *argv[] = {NETPLUMB_PYTHON, "-S", "-c", NETPLUMB_PYCODE, NULL};
    execv(NETPLUMB_PYTHON, argv);
    /* an error object, as the specification wants even now */
    printf("{\"cniVersion\":\"1.1.0\",\"code\":5,\"msg\":\"netplumb-cni: cannot run %s: %s\"}\n",
           NETPLUMB_PYTHON, strerror(errno));
    exit(1);
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* <asm-generic/socket.h>, Linux 5.14+ */
#endif
#define INIT_NETNS_INODE 0xEFFFFFF9UL /* init_net's fixed inode on Linux 6.x */

/* netplumb's state directory, by state/__init__.py's rule (its docstring): NETPLUMB_STATE_DIR, else
 * under NETPLUMB_STATE_ROOT (/run/netplumb) "host" for the machine's own namespace and
 * "netns-<inode>-<cookie>" for any other. The cookie is never reused, so a socket found there
 * is this namespace's agent; a directory not made yet (or an old kernel without the cookie)
 * means no agent: the Python plugin then finds (and first creates) the directory itself. */
static int state_dir(int fd, char *out, size_t size) {
    const char *env = getenv("NETPLUMB_STATE_DIR");
    if (env && *env) {
        return snprintf(out, size, "%s", env) < (int)size ? 0 : -1;
    }
    const char *root = getenv("NETPLUMB_STATE_ROOT");
    if (!root || !*root) root = "/run/netplumb";
    struct stat mine, init;
    if (stat("/proc/self/ns/net", &mine) != 0) return -1;
    int n;
    if ((unsigned long)mine.st_ino == INIT_NETNS_INODE ||
        (stat("/proc/1/ns/net", &init) == 0 && mine.st_dev == init.st_dev &&
         mine.st_ino == init.st_ino)) {
        n = snprintf(out, size, "%s/host", root);
    } else {
        unsigned long long cookie = 0;
        socklen_t len = sizeof cookie;
        if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0 ||
            len != sizeof cookie) {
            return -1;
        }
        n = snprintf(out, size, "%s/netns-%lu-%llu", root, (unsigned long)mine.st_ino, cookie);
    }
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

/* NETPLUMB_CNI_DEBUG=1: one line on stderr saying which path a call took (tests) */
static void debug(const char *what, const char *where) {
    const char *env = getenv("NETPLUMB_CNI_DEBUG");
    if (env && strcmp(env, "1") == 0) {
        fprintf(stderr, "netplumb-cni: %s %s\n", what, where);
    }
}

int main(void) {
    char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    /* one socket: its namespace cookie names the state directory, then it connects there */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || state_dir(fd, dir, sizeof dir) != 0 ||
        (size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/cni-agent.sock", dir) >=
            sizeof addr.sun_path) {
        debug("no agent (state directory unknown or too long):", "the Python plugin");
        fallback();
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        debug("no agent at", addr.sun_path);
        fallback(); /* no agent: stdin is untouched, the Python plugin reads it */
    }
    debug("agent at", addr.sun_path);
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "CNI_", 4) == 0 || strncmp(*e, "NETPLUMB_", 9) == 0) {
            if (write_all(fd, *e, strlen(*e) + 1) != 0) goto lost;
        }
    }
    if (write_all(fd, "", 1) != 0) goto lost;
    char buf[65536];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (write_all(fd, buf, (size_t)n) != 0) goto lost;
    }
    shutdown(fd, SHUT_WR);
    int status = -1;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t off = 0;
        if (status < 0) {
            status = (unsigned char)buf[0];
            off = 1;
        }
        if (write_all(1, buf + off, (size_t)n - off) != 0) return 1;
    }
    if (status >= 0) return status;
lost:
    printf("{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"netplumb-cni: the agent at %s "
           "closed the connection without an answer\"}\n", addr.sun_path);
    return 1;
}
