/*
 * lambdalet sandbox agent: PID 1 inside a runc sandbox (the compiled form of agent.py).
 *
 * It speaks agent.py's protocol (see that file for the full description) over a
 * SOCK_SEQPACKET unix socket on fd 0, one message per packet:
 *
 *   host -> agent, fields separated by NUL bytes:
 *     spawn  seq argc argv... envc env... cwd   (+ SCM_RIGHTS: output pipe [, fd 3])
 *     signal pid sig                            killpg(pid, sig), no error if gone
 *     killall seq                               SIGKILL everything else, reap it all
 *   agent -> host, ASCII words:
 *     R | S seq pid | E seq errno | X pid code sig | K seq
 *
 * Why a compiled agent: one per sandbox lives as long as the sandbox, and an idle
 * Python interpreter costs ~3.4 MB of private memory where this costs ~0.1 MB
 * (docs/performance.md).  The isolation itself is runc's; this only starts, signals
 * and reaps the sandbox's processes.  agent.py is the fallback where no C compiler is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTL 0
#define MAX_MSG (1 << 20)
#define MAX_FDS 4
#define MAX_TRACKED 4096

static pid_t tracked[MAX_TRACKED];
static int ntracked;
static char msg[MAX_MSG + 1];
static int devnull = -1;

static void say(const char *fmt, ...)
{
    char out[96];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof out, fmt, ap);
    va_end(ap);
    while (send(CTL, out, (size_t)n, MSG_NOSIGNAL) < 0) {
        if (errno != EINTR)
            _exit(0); /* the host is gone */
    }
}

static void track(pid_t pid)
{
    if (ntracked < MAX_TRACKED)
        tracked[ntracked++] = pid;
}

static int untrack(pid_t pid)
{
    for (int i = 0; i < ntracked; i++) {
        if (tracked[i] == pid) {
            tracked[i] = tracked[--ntracked];
            return 1;
        }
    }
    return 0;
}

/* report an ended spawned process; orphans reparented to us are reaped silently */
static void ended(pid_t pid, int status)
{
    if (!untrack(pid))
        return;
    if (WIFSIGNALED(status))
        say("X %d -1 %d", (int)pid, WTERMSIG(status));
    else
        say("X %d %d -1", (int)pid, WEXITSTATUS(status));
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        ended(pid, status);
}

static void spawn(long seq, char **argv, char **envp, const char *cwd, int out, int extra)
{
    int err[2];
    if (pipe2(err, O_CLOEXEC) < 0) {
        say("E %ld %d", seq, errno);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int e;
        sigset_t none;
        close(err[0]);
        setpgid(0, 0);
        for (int s = 1; s < NSIG; s++) {
            if (s != SIGKILL && s != SIGSTOP)
                signal(s, SIG_DFL);
        }
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir(cwd) < 0 || dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            goto failed;
        /* received descriptors are close-on-exec; only what dup2 made reaches the program */
        if (extra == 3) {
            if (fcntl(3, F_SETFD, 0) < 0)
                goto failed;
        } else if (extra >= 0 && dup2(extra, 3) < 0) {
            goto failed;
        }
        execve(argv[0], argv, envp);
    failed:
        e = errno;
        char text[16];
        int n = snprintf(text, sizeof text, "%d", e);
        if (write(err[1], text, (size_t)n) < 0) {
            /* nothing left to tell anyone */
        }
        _exit(127);
    }
    close(err[1]);
    close(out);
    if (extra >= 0)
        close(extra);
    if (pid < 0) {
        int e = errno;
        close(err[0]);
        say("E %ld %d", seq, e);
        return;
    }
    char text[16];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(err[0], text + got, sizeof text - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof text - 1)
            break;
    }
    close(err[0]);
    if (got > 0) {
        text[got] = '\0';
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        say("E %ld %d", seq, atoi(text));
    } else {
        track(pid);
        say("S %ld %d", seq, (int)pid);
    }
}

static void killall(long seq)
{
    for (;;) {
        int status;
        kill(-1, SIGKILL);
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: nothing left */
        }
        ended(pid, status);
    }
    say("K %ld", seq);
}

/* split msg[0..len) at NUL bytes; returns the field count, fields in *out (malloc'd) */
static int fields(size_t len, char ***out)
{
    int count = 1;
    msg[len] = '\0';
    for (size_t i = 0; i < len; i++)
        count += msg[i] == '\0';
    char **f = malloc(sizeof(char *) * (size_t)count);
    if (f == NULL)
        return 0;
    int k = 0;
    f[k++] = msg;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\0')
            f[k++] = msg + i + 1;
    }
    *out = f;
    return count;
}

static void handle(size_t len, int *fds, int nfds)
{
    char **f = NULL;
    int n = fields(len, &f);
    int used = 0;
    if (n >= 2 && strcmp(f[0], "spawn") == 0) {
        long seq = atol(f[1]);
        int argc = n > 2 ? atoi(f[2]) : -1;
        int envc = argc >= 1 && 3 + argc < n ? atoi(f[3 + argc]) : -1;
        if (envc < 0 || 4 + argc + envc + 1 != n) {
            say("E %ld %d", seq, EINVAL);
        } else if (nfds < 1) {
            say("E %ld %d", seq, EBADF);
        } else {
            char **argv = calloc((size_t)argc + 1, sizeof(char *));
            char **envp = calloc((size_t)envc + 1, sizeof(char *));
            if (argv == NULL || envp == NULL) {
                say("E %ld %d", seq, ENOMEM);
            } else {
                memcpy(argv, f + 3, sizeof(char *) * (size_t)argc);
                memcpy(envp, f + 4 + argc, sizeof(char *) * (size_t)envc);
                spawn(seq, argv, envp, f[n - 1], fds[0], nfds > 1 ? fds[1] : -1);
                used = nfds > 1 ? 2 : 1;
            }
            free(argv);
            free(envp);
        }
    } else if (n == 3 && strcmp(f[0], "signal") == 0) {
        if (killpg((pid_t)atoi(f[1]), atoi(f[2])) < 0) {
            /* gone already, or not ours: no error, as agent.py */
        }
    } else if (n == 2 && strcmp(f[0], "killall") == 0) {
        killall(atol(f[1]));
    }
    for (int i = used; i < nfds; i++)
        close(fds[i]);
    free(f);
}

int main(void)
{
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* not dumpable: no process of the sandbox (same uid) may ptrace us or open
       /proc/1/fd, /proc/1/mem and friends; the children it execs are dumpable again */
    if (sfd < 0 || devnull < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return 1;
    say("R");
    for (;;) {
        struct pollfd p[2] = {{.fd = CTL, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (p[1].revents) {
            struct signalfd_siginfo info;
            while (read(sfd, &info, sizeof info) > 0) {
            }
            reap();
        }
        if (p[0].revents) {
            char control[CMSG_SPACE(sizeof(int) * MAX_FDS)];
            struct iovec iov = {.iov_base = msg, .iov_len = MAX_MSG};
            struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control,
                .msg_controllen = sizeof control,
            };
            ssize_t len = recvmsg(CTL, &mh, MSG_CMSG_CLOEXEC);
            if (len < 0 && errno == EINTR)
                continue;
            if (len <= 0)
                return 0; /* the host is gone: everything else dies with PID 1 */
            int fds[MAX_FDS];
            int nfds = 0;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                    for (int i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                        if (nfds < MAX_FDS)
                            fds[nfds++] = fd;
                        else
                            close(fd);
                    }
                }
            }
            handle((size_t)len, fds, nfds);
        }
        reap();
    }
}
