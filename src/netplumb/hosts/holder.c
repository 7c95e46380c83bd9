/* np-holder: a host's holder in C, the twin of hosts/supervise.py's Holder.
 *
 * A host's holder keeps its namespaces and supervises its command (restart policies with
 * Docker's back-off, stop/start orders). It starts as a fork of netplumb; once the command
 * runs, supervise._reexec execs this program instead of a small Python, because a Python
 * interpreter costs ~2.8 MB of private memory per host and this ~0.1 MB (1,000 hosts: 2.8 GB
 * against 0.1 GB). The Python holder (hosts/holder.py) remains where this was not compiled.
 *
 * Invocation: argv = {"netplumb-hold NAME"}, the title ps shows (pgrep -f and the tests look
 * for it), and NETPLUMB_HOLDER_FD=FD in the environment, a memory file with the state handed
 * over (hosts/holderfile.py: NUL-separated key, value pairs). The
 * PID, the command (our child), the blocked SIGCHLD and SIGUSR1 and any of them pending all
 * survive exec, so no exit and no order is lost in between.
 *
 * Everything else is supervise.py's, step for step, and so are the files: `status` (one
 * "KEY VALUE" line per field, written to a temporary file and renamed, 0600) and `control`
 * (`stop TOKEN GRACE` or `start TOKEN`, announced by SIGUSR1). Signals are taken with
 * sigtimedwait, never by handlers: nothing runs asynchronously, and no system call is
 * interrupted by a handler (EINTR is still retried: a SIGSTOP/SIGCONT can cause it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "1" /* holderfile.VERSION: the hand-over's format */
#endif
#define FIRST_DELAY 0.1 /* model/restart.py: Docker's restart manager */
#define MAX_DELAY 60.0
#define RESET_AFTER 10.0
#define NONE (-1.0) /* a deadline that is not set */

extern char **environ;

/* the supervision loop's state (supervise.Holder's attributes) */
static char *files, *logpath, *policy;
static long retries;
static char **cmd_argv, **cmd_env;
static pid_t pid;                  /* the command's; 0 when none runs */
static double started;             /* CLOCK_MONOTONIC of its last start */
static double delay;               /* the last back-off delay */
static double next_start = NONE;   /* during back-off: when to start again */
static double kill_at = NONE;      /* during a stop: when SIGTERM turns to SIGKILL */

/* the status (holderfile.FIELDS) */
static char state[16] = "exited";
static long long start_time = -1; /* /proc/PID/stat field 22; -1: None */
static long restart_count;
static int exit_code;
static char error[256], ack[128];
static double started_at, finished_at;

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono(void) { return now(CLOCK_MONOTONIC); }

static void set(char *dest, size_t size, const char *value) { snprintf(dest, size, "%s", value); }

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

/* Up to size-1 bytes of the file, NUL-terminated; -1 if it cannot be read. */
static ssize_t read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len < size - 1) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* The process's start time, which tells it from a later process given the same PID. */
static long long pid_start_time(pid_t p) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
    if (read_file(path, buf, sizeof buf) <= 0) return -1;
    char *s = strrchr(buf, ')'); /* the name before it may hold spaces and parentheses */
    if (s == NULL) return -1;
    s += 2;
    for (int i = 0; i < 19 && s != NULL; i++) { /* field 22 is the 20th after the name */
        s = strchr(s, ' ');
        if (s != NULL) s++;
    }
    return s != NULL ? strtoll(s, NULL, 10) : -1;
}

static void save(void) {
    char path[PATH_MAX], tmp[PATH_MAX + 32], start[24] = "", buf[1024];
    snprintf(path, sizeof path, "%s/status", files);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    if (start_time >= 0) snprintf(start, sizeof start, "%lld", start_time);
    int len = snprintf(buf, sizeof buf,
                       "state %s\npid %d\nstart %s\nrestart_count %ld\nexit_code %d\nerror %s\n"
                       "ack %s\nstarted_at %.6f\nfinished_at %.6f\n",
                       state, (int)pid, start, restart_count, exit_code, error, ack, started_at,
                       finished_at);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return; /* the files are gone: the host is being removed, and we with it */
    int bad = write_all(fd, buf, (size_t)len) < 0;
    bad |= close(fd) < 0;
    if (bad || rename(tmp, path) < 0) unlink(tmp);
}

/* The last order's words in w[0..2] (empty strings if missing); returns their count. */
static int read_control(char *buf, size_t size, char *w[3]) {
    char path[PATH_MAX], *save_ptr = NULL;
    int n = 0;
    w[0] = w[1] = w[2] = "";
    snprintf(path, sizeof path, "%s/control", files);
    if (read_file(path, buf, size) < 0) return 0;
    for (char *t = strtok_r(buf, " \t\n", &save_ptr); t != NULL && n < 3;
         t = strtok_r(NULL, " \t\n", &save_ptr))
        w[n++] = t;
    return n;
}

static int stopped(void) {
    char buf[512], *w[3];
    read_control(buf, sizeof buf, w);
    return strcmp(w[0], "stop") == 0;
}

/* Start the command in a session of its own, output to the log; its PID, or 0 with the
 * reason in `error`. A close-on-exec pipe tells the two apart: end of file means exec. */
static pid_t spawn(void) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        set(error, sizeof error, strerror(errno));
        return 0;
    }
    pid_t child = fork();
    if (child < 0) {
        set(error, sizeof error, strerror(errno));
        close(p[0]);
        close(p[1]);
        return 0;
    }
    if (child == 0) {
        /* what the command must not inherit from a holder: its mask and these dispositions */
        int reset[] = {SIGPIPE, SIGXFSZ, SIGCHLD, SIGUSR1};
        for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) signal(reset[i], SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int in, out;
        /* 0600: a log holds what the command printed, secrets among it (state.py) */
        if (setsid() < 0 || (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
            (out = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0 ||
            dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || chdir("/") < 0)
            goto fail;
        /* nothing else of ours leaks into the command, whatever opened it (the pipe stays
         * until exec, to report a failure) */
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        environ = cmd_env; /* execvp searches the command's PATH, as Python's os.execvpe */
        execvp(cmd_argv[0], cmd_argv);
    fail: {
        const char *why = strerror(errno);
        write_all(p[1], why, strlen(why));
        _exit(127);
    }
    }
    close(p[1]);
    size_t len = 0;
    while (len < sizeof error - 1) {
        ssize_t n = read(p[0], error + len, sizeof error - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    error[len] = '\0';
    close(p[0]);
    if (len == 0) return child;
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    return 0;
}

/* Start the command now; -1 if it could not be (exit code 127, as a shell's). */
static int start(void) {
    next_start = NONE;
    pid = spawn();
    started = mono();
    if (pid) {
        set(state, sizeof state, "running");
        start_time = pid_start_time(pid);
        error[0] = '\0';
        started_at = now(CLOCK_REALTIME);
        return 0;
    }
    set(state, sizeof state, "exited");
    exit_code = 127;
    finished_at = now(CLOCK_REALTIME);
    return -1;
}

static int should_restart(int code) {
    if (strcmp(policy, "always") == 0 || strcmp(policy, "unless-stopped") == 0) return 1;
    if (strcmp(policy, "on-failure") == 0)
        return code != 0 && (retries == 0 || restart_count < retries);
    return 0;
}

/* The command exited with `code`: record it; per the policy, schedule a restart. */
static void exited(int code) {
    double ran = mono() - started;
    char buf[512], *w[3];
    pid = 0;
    kill_at = NONE;
    exit_code = code;
    finished_at = now(CLOCK_REALTIME);
    set(state, sizeof state, "exited");
    read_control(buf, sizeof buf, w);
    if (strcmp(w[0], "stop") == 0) {
        set(ack, sizeof ack, w[1]);
        return;
    }
    if (should_restart(code)) {
        delay = (ran >= RESET_AFTER || delay <= 0) ? FIRST_DELAY
                : delay * 2 < MAX_DELAY            ? delay * 2
                                                   : MAX_DELAY;
        next_start = mono() + delay;
        set(state, sizeof state, "restarting");
        restart_count++;
    }
}

/* Carry out the order in `control` (SIGUSR1 says there is one). */
static void order(void) {
    char buf[512], *w[3];
    read_control(buf, sizeof buf, w);
    if (strcmp(w[0], "stop") == 0) {
        next_start = NONE;
        if (pid) {
            double grace = *w[2] ? strtod(w[2], NULL) : 10.0;
            kill(-pid, grace > 0 ? SIGTERM : SIGKILL);
            kill_at = mono() + grace;
            return; /* acknowledged once it has exited */
        }
        set(state, sizeof state, "exited");
    } else if (strcmp(w[0], "start") == 0 && !pid) {
        restart_count = 0; /* as docker start does */
        delay = 0;
        start();
    }
    set(ack, sizeof ack, w[1]);
}

static void tick(void) {
    double t = mono();
    if (kill_at != NONE && t >= kill_at) {
        kill_at = NONE;
        if (pid) kill(-pid, SIGKILL);
    }
    if (next_start != NONE && t >= next_start) {
        if (stopped()) {
            next_start = NONE;
            set(state, sizeof state, "exited");
        } else if (start() < 0) {
            exited(127);
        }
        save();
    }
}

/* Collect every child that exited (SIGCHLDs coalesce); 1 if it was the command. */
static int reap(void) {
    int changed = 0, status;
    for (;;) {
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p < 0 && errno == EINTR) continue;
        if (p <= 0) return changed;
        if (p == pid) {
            /* Docker's exit code: the code, or 128 + the signal */
            exited(WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                   : WIFEXITED(status) ? WEXITSTATUS(status)
                                       : 255);
            changed = 1;
        }
    }
}

static void loop(const sigset_t *signals) {
    for (;;) {
        double deadline = next_start;
        if (kill_at != NONE && (deadline == NONE || kill_at < deadline)) deadline = kill_at;
        int sig;
        if (deadline != NONE) {
            double wait = deadline - mono();
            wait = wait < 0 ? 0 : wait > 86400 ? 86400 : wait; /* a huge grace: wake daily */
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            sig = sigtimedwait(signals, NULL, &ts);
        } else {
            sig = sigwaitinfo(signals, NULL);
        }
        if (sig < 0) {
            if (errno == EAGAIN) tick(); /* a deadline passed; EINTR: wait again */
        } else if (sig == SIGCHLD) {
            if (reap()) save();
        } else {
            order();
            save();
        }
    }
}

/* Count or collect the values of `key` among the hand-over's pairs. */
static size_t collect(char *buf, size_t len, const char *key, char **into) {
    size_t n = 0;
    for (char *k = buf; k < buf + len;) {
        char *v = k + strlen(k) + 1;
        if (v >= buf + len + 1) break;
        if (strcmp(k, key) == 0) {
            if (into != NULL) into[n] = v;
            n++;
        }
        k = v + strlen(v) + 1;
    }
    if (into != NULL) into[n] = NULL;
    return n;
}

static char *value(char *buf, size_t len, const char *key) {
    char *v[2] = {NULL, NULL};
    return collect(buf, len, key, NULL) == 1 && collect(buf, len, key, v) ? v[0] : NULL;
}

static char *handover; /* the hand-over's text: the strings above point into it for good */

/* Read the hand-over; 0 if complete. */
static int load(int fd) {
    struct stat sb;
    if (fstat(fd, &sb) < 0 || sb.st_size <= 0) return -1;
    size_t len = (size_t)sb.st_size, got = 0;
    char *buf = handover = malloc(len + 1);
    if (buf == NULL) return -1;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    buf[len] = '\0'; /* a last value without its NUL still ends */
    char *version = value(buf, len, "version");
    files = value(buf, len, "files");
    logpath = value(buf, len, "log");
    policy = value(buf, len, "policy");
    char *fields[] = {value(buf, len, "retries"),   value(buf, len, "started"),
                      value(buf, len, "state"),     value(buf, len, "pid"),
                      value(buf, len, "start"),     value(buf, len, "restart_count"),
                      value(buf, len, "exit_code"), value(buf, len, "error"),
                      value(buf, len, "ack"),       value(buf, len, "started_at"),
                      value(buf, len, "finished_at")};
    if (version == NULL || strcmp(version, VERSION) != 0 || !files || !logpath || !policy)
        return -1;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i] == NULL) return -1;
    size_t nargs = collect(buf, len, "arg", NULL), nenv = collect(buf, len, "env", NULL);
    cmd_argv = calloc(nargs + 1, sizeof(char *));
    cmd_env = calloc(nenv + 1, sizeof(char *));
    if (nargs == 0 || cmd_argv == NULL || cmd_env == NULL) return -1;
    collect(buf, len, "arg", cmd_argv);
    collect(buf, len, "env", cmd_env);
    retries = strtol(fields[0], NULL, 10);
    started = strtod(fields[1], NULL);
    set(state, sizeof state, fields[2]);
    pid = (pid_t)strtol(fields[3], NULL, 10);
    start_time = *fields[4] ? strtoll(fields[4], NULL, 10) : -1;
    restart_count = strtol(fields[5], NULL, 10);
    exit_code = (int)strtol(fields[6], NULL, 10);
    set(error, sizeof error, fields[7]);
    set(ack, sizeof ack, fields[8]);
    started_at = strtod(fields[9], NULL);
    finished_at = strtod(fields[10], NULL);
    return 0;
}

int main(int argc, char **argv) {
    (void)argv;
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGCHLD);
    sigaddset(&signals, SIGUSR1);
    /* blocked already (inherited through exec); again in case of a caller that did not */
    sigprocmask(SIG_BLOCK, &signals, NULL);
    char *fd_text = getenv("NETPLUMB_HOLDER_FD");
    if (argc != 1 || fd_text == NULL) return 2;
    int fd = (int)strtol(fd_text, NULL, 10);
    if (load(fd) < 0) {
        /* a hand-over this build cannot read (a binary older than its source): the Python
         * holder can, and the host must not lose its holder */
        char *python = getenv("NETPLUMB_HOLDER_PYTHON");
        char *script = getenv("NETPLUMB_HOLDER_SCRIPT");
        char *args[] = {python, "-I", "-S", "-B", script, fd_text, NULL};
        if (python != NULL && script != NULL) execv(python, args);
        return 1;
    }
    close(fd);
    if (reap()) save(); /* the command may have exited before this exec */
    loop(&signals);
}
