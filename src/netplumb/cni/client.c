/* netplumb-cni's fast path: hand the call to a resident `netplumb cni agent`, starting one.
 *
 * A runtime execs a CNI plugin once per container start; Python's own start-up (~14 ms here)
 * is as long as the reference Go plugins' whole ADD. This client starts in well under a
 * millisecond, sends its CNI_* (and NETPLUMB_*) environment and stdin to the agent's socket in
 * netplumb's state directory, and writes back the agent's answer and exit status. Without an
 * agent it execs the plugin in Python (NETPLUMB_PYTHON, NETPLUMB_PYCODE, set when
 * `netplumb cni install` compiles it), so the plugin works the same either way.
 *
 * No agent (no socket, or nobody listening on it: ENOENT, ECONNREFUSED): unless told not to
 * (NETPLUMB_CNI_AGENT=connect or off; the default is NETPLUMB_AGENT_MODE, set at install), the
 * client first starts one (start_agent: the agent lock taken and handed over, a grandchild in
 * a session of its own with /dev/null as its standard streams and no other descriptor of ours)
 * and then serves this call by the Python plugin: a Python start-up is shorter than the
 * agent's, and the next calls find the agent. The agent execs once this call is over (a pipe
 * whose write end this call holds to its end), so the two do not share the CPU meanwhile.
 *
 * An agent that answers nothing (it closes the connection, or says nothing within
 * NETPLUMB_CNI_AGENT_TIMEOUT seconds, default 10) is not trusted with the call: the Python
 * plugin serves it, with the same stdin. That is safe for every command: DEL, CHECK, GC and
 * STATUS may run twice, and a second ADD of an attachment the agent did add fails with code
 * 100 and allocates nothing (the runtime then DELs it).
 *
 * Protocol: request = "K=V\0" for each variable, "\0", then stdin; the client shuts down its
 * writing side. Answer = one byte of exit status, then the plugin's stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef NETPLUMB_AGENT_MODE
#define NETPLUMB_AGENT_MODE "auto"
#endif

extern char **environ;

/* all of buf; to the agent's socket (sock) never SIGPIPE: an agent that closed early is a
 * case we handle */
static int put_all(int fd, const char *buf, size_t len, int sock) {
    while (len > 0) {
        ssize_t n = sock ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

#define write_all(fd, buf, len) put_all((fd), (buf), (len), 0)
#define send_all(fd, buf, len) put_all((fd), (buf), (len), 1)

static void fallback(void) {
    char *argv[] = {NETPLUMB_PYTHON, "-S", "-P", "-c", NETPLUMB_PYCODE, NULL};
    execv(NETPLUMB_PYTHON, argv);
    /* an error object, as the specification wants even now */
    printf("{\"cniVersion\":\"1.1.0\",\"code\":5,\"msg\":\"netplumb-cni: cannot run %s: %s\"}\n",
           NETPLUMB_PYTHON, strerror(errno));
    exit(1);
}

/* the Python plugin with stdin the bytes already read (the agent did not answer) */
static void fallback_with(const char *data, size_t len) {
    int fd = memfd_create("netplumb-cni-stdin", 0);
    if (fd >= 0 && write_all(fd, data, len) == 0 && lseek(fd, 0, SEEK_SET) == 0 &&
        dup2(fd, 0) == 0) {
        if (fd != 0) close(fd);
        fallback();
    }
    printf("{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"netplumb-cni: the agent did not "
           "answer and the call cannot be handed to the Python plugin: %s\"}\n",
           strerror(errno));
    exit(1);
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* <asm-generic/socket.h>, Linux 5.14+ */
#endif
#define INIT_NETNS_INODE 0xEFFFFFF9UL /* init_net's fixed inode on Linux 6.x */

/* netplumb's state directory, by state/scope.py's rule (its docstring): NETPLUMB_STATE_DIR, else
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

static const char *agent_mode(void) {
    const char *env = getenv("NETPLUMB_CNI_AGENT");
    return env && *env ? env : NETPLUMB_AGENT_MODE;
}

/* variables an agent keeps from the call that starts it: where the state is, its idle time */
static int agent_keeps(const char *var) {
    if (strncmp(var, "CNI_", 4) != 0 && strncmp(var, "NETPLUMB_", 9) != 0) return 1;
    return strncmp(var, "NETPLUMB_STATE_DIR=", 19) == 0 ||
           strncmp(var, "NETPLUMB_STATE_ROOT=", 20) == 0 ||
           strncmp(var, "NETPLUMB_CNI_AGENT_IDLE=", 24) == 0;
}

/* Start an agent for the state directory `dir`, unless another holds (or is taking) the agent
 * lock: this process takes it first, and the agent inherits it as descriptor 3. Without the
 * directory (the first call in this namespace) the agent makes it and takes the lock itself. */
static void start_agent(const char *dir) {
    char lock[4096];
    if ((size_t)snprintf(lock, sizeof lock, "%s/cni-agent.lock", dir) >= sizeof lock) return;
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0 && errno != ENOENT) return;
    if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        close(lfd); /* an agent runs, or is starting: nothing to do */
        return;
    }
    /* the gate: the agent starts once this call is over (its write end, not close-on-exec,
     * goes with this process into the Python plugin), not competing with it for the CPU */
    int gate[2] = {-1, -1};
    if (pipe(gate) != 0) gate[0] = gate[1] = -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (setsid() < 0 || fork() != 0) _exit(0);
        if (gate[0] >= 0) {
            close(gate[1]);
            char c;
            while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
            }
        }
        /* the agent: nothing of the runtime's (its pipes get EOF when this call ends) */
        int null = open("/dev/null", O_RDWR);
        if (null < 0) _exit(1);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (lfd >= 0) {
            if (lfd == 3) fcntl(3, F_SETFD, 0);
            else if (dup2(lfd, 3) != 3) _exit(1);
        }
        int first = lfd >= 0 ? 4 : 3;
        long max = sysconf(_SC_OPEN_MAX);
        for (int fd = first; fd < (max > 0 && max < 65536 ? max : 65536); fd++) close(fd);
        if (chdir("/") != 0) _exit(1);
        size_t n = 0;
        for (char **e = environ; *e; e++) n++;
        char **env = calloc(n + 1, sizeof *env);
        if (!env) _exit(1);
        size_t k = 0;
        for (char **e = environ; *e; e++) {
            if (agent_keeps(*e)) env[k++] = *e;
        }
        char *argv[] = {NETPLUMB_PYTHON, "-S", "-P", "-c", NETPLUMB_AGENTCODE, "netplumb-cni-agent",
                        lfd >= 0 ? "3" : "-", NULL};
        execve(NETPLUMB_PYTHON, argv, env);
        _exit(127);
    }
    if (gate[0] >= 0) close(gate[0]);
    if (lfd >= 0) close(lfd); /* the agent's copy holds the lock now */
    if (pid > 0) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
}

static double timeout_s(void) {
    const char *env = getenv("NETPLUMB_CNI_AGENT_TIMEOUT");
    double t = env && *env ? atof(env) : 10.0;
    return t > 0 ? t : 10.0;
}

int main(void) {
    char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    const char *mode = agent_mode();
    if (strcmp(mode, "off") == 0) {
        debug("agent off:", "the Python plugin");
        fallback();
    }
    /* one socket: its namespace cookie names the state directory, then it connects there */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || state_dir(fd, dir, sizeof dir) != 0 ||
        (size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/cni-agent.sock", dir) >=
            sizeof addr.sun_path) {
        debug("no agent (state directory unknown or too long):", "the Python plugin");
        fallback();
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int err = errno;
        const char *cmd = getenv("CNI_COMMAND");
        if ((err == ENOENT || err == ECONNREFUSED) && strcmp(mode, "auto") == 0 && cmd &&
            strcmp(cmd, "VERSION") != 0) { /* a runtime's probe of the plugin starts nothing */
            debug("no agent, starting one, at", addr.sun_path);
            start_agent(dir);
        } else {
            debug("no agent at", addr.sun_path);
        }
        close(fd);
        fallback(); /* stdin is untouched, the Python plugin reads it */
    }
    debug("agent at", addr.sun_path);
    /* stdin whole first: if the agent does not answer, the Python plugin gets it again */
    size_t cap = 65536, len = 0;
    char *in = malloc(cap);
    if (!in) fallback();
    for (;;) {
        if (len == cap) {
            char *bigger = realloc(in, cap * 2);
            if (!bigger) fallback_with(in, len);
            in = bigger;
            cap *= 2;
        }
        ssize_t n = read(0, in + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    double t = timeout_s();
    struct timeval tv = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "CNI_", 4) == 0 || strncmp(*e, "NETPLUMB_", 9) == 0) {
            if (send_all(fd, *e, strlen(*e) + 1) != 0) goto unanswered;
        }
    }
    if (send_all(fd, "", 1) != 0 || send_all(fd, in, len) != 0) goto unanswered;
    shutdown(fd, SHUT_WR);
    char buf[65536];
    ssize_t n;
    do {
        n = read(fd, buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) goto unanswered;
    /* answered: the agent has the call; its answer is the call's, however long it takes */
    tv.tv_sec = 0;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int status = (unsigned char)buf[0];
    if (write_all(1, buf + 1, (size_t)n - 1) != 0) return 1;
    for (;;) {
        n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (write_all(1, buf, (size_t)n) != 0) return 1;
    }
    return status;
unanswered:
    debug("no answer, the Python plugin serves the call, from the agent at", addr.sun_path);
    close(fd);
    if (strcmp(mode, "auto") == 0) start_agent(dir); /* one that stepped aside (an upgrade) */
    fallback_with(in, len);
    return 1;
}
