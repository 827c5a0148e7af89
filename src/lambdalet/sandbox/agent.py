"""lambdalet sandbox agent: PID 1 inside a runc sandbox.  Standalone, stdlib only.

Run as ``python -I -S agent.py``.  It imports nothing beyond builtin C modules
so that it stays small (it lives as long as the sandbox, one per sandbox).

Protocol, over a SOCK_SEQPACKET unix socket on fd 0 (one message per packet):

host -> agent, fields separated by NUL bytes (runc.agent_message; agent.c, the
compiled agent used where a C compiler is, speaks the same):

* ``spawn seq argc argv... envc KEY=VALUE... cwd`` with one fd attached
  (SCM_RIGHTS): the write end of a pipe that becomes the child's stdout and
  stderr.  The child gets its own process group, stdin /dev/null and default
  signal dispositions.  A second attached fd, if any, becomes the child's fd 3
  (a pre-started runtime reads what it is to become from it).
* ``signal pid sig``: ``killpg(pid, sig)``, no error if gone.
* ``killall seq``: SIGKILL every other process in the pid namespace and reap
  them all.

agent -> host, ASCII words separated by spaces:

* ``R`` ready;  ``S seq pid`` spawned;  ``E seq errno`` could not execute;
* ``X pid code sig`` a spawned process ended (-1 for "not applicable");
* ``K seq`` killall done.

Orphans (daemonised grandchildren) are reparented to PID 1 and reaped here
silently.  EOF on the socket means the host is gone: the agent exits, which
makes the kernel kill everything else in the pid namespace.
"""

# the C modules, not signal.py and socket.py: those build enums, ~1.1 MB of heap in every
# sandbox (Private_Dirty of an idle agent 3.9 -> 2.9 MB)
import _signal as signal  # type: ignore[import-not-found]
import _socket as socket
import os
import sys

CTL = 0
MAX_MSG = 1 << 20


def recv_fds(sock: socket.socket, size: int, maxfds: int) -> tuple[bytes, list[int]]:
    """One message and the descriptors attached to it (SCM_RIGHTS)."""
    data, ancillary, _flags, _addr = sock.recvmsg(size, socket.CMSG_LEN(maxfds * 4))
    fds: list[int] = []
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(raw) - len(raw) % 4
            fds += [int.from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    return data, fds


def not_dumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0): no process of the sandbox may ptrace the agent or open
    its /proc/1/fd (agent.c does the same); the programs it execs are dumpable again."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")


def main() -> None:
    ctl = socket.socket(fileno=CTL)
    ctl.setblocking(True)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda s, f: None)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    not_dumpable()
    tracked: set[int] = set()

    def send(words: str) -> None:
        try:
            ctl.send(words.encode())
        except OSError:
            os._exit(0)

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in tracked:
                tracked.discard(pid)
                if os.WIFSIGNALED(status):
                    send(f"X {pid} -1 {os.WTERMSIG(status)}")
                else:
                    send(f"X {pid} {os.waitstatus_to_exitcode(status)} -1")

    def spawn(
        seq: int, argv: list[bytes], env: dict[bytes, bytes], cwd: bytes, out: int, extra: int
    ) -> None:
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.close(err_r)
                os.setpgid(0, 0)
                signal.set_wakeup_fd(-1)
                for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM):
                    signal.signal(s, signal.SIG_DFL)
                for s in (signal.SIGINT, signal.SIGHUP):
                    signal.signal(s, signal.SIG_DFL)
                os.chdir(cwd)
                # the received descriptors themselves must not reach the program
                os.set_inheritable(out, False)
                if extra >= 0:
                    os.set_inheritable(extra, False)
                os.dup2(devnull, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                if extra == 3:
                    os.set_inheritable(3, True)
                elif extra >= 0:
                    os.dup2(extra, 3)  # inheritable
                os.execve(argv[0], argv, env)
            except OSError as e:
                os.write(err_w, str(e.errno or 0).encode())
            except BaseException:
                os.write(err_w, b"0")
            os._exit(127)
        os.close(err_w)
        os.close(out)
        if extra >= 0:
            os.close(extra)
        data = b""
        while True:
            try:
                chunk = os.read(err_r, 16)
            except InterruptedError:
                continue
            if not chunk:
                break
            data += chunk
        os.close(err_r)
        if data:
            os.waitpid(pid, 0)
            send(f"E {seq} {int(data)}")
        else:
            tracked.add(pid)
            send(f"S {seq} {pid}")

    def killall(seq: int) -> None:
        while True:
            try:  # noqa: SIM105 - contextlib is not worth importing here
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid in tracked:
                tracked.discard(pid)
                if os.WIFSIGNALED(status):
                    send(f"X {pid} -1 {os.WTERMSIG(status)}")
                else:
                    send(f"X {pid} {os.waitstatus_to_exitcode(status)} -1")
        send(f"K {seq}")

    send("R")
    import select  # builtin C module, cheap

    while True:
        try:
            ready, _, _ = select.select([ctl.fileno(), wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 64):
                    pass
            except BlockingIOError:
                pass
            reap()
        if ctl.fileno() not in ready:
            continue
        try:
            data, fds = recv_fds(ctl, MAX_MSG, 4)
        except InterruptedError:
            continue
        if not data:
            sys.exit(0)
        f = data.split(b"\0")
        op = f[0]
        if op == b"spawn" and len(f) >= 5:
            seq = int(f[1])
            argc = int(f[2])
            envc = int(f[3 + argc]) if 3 + argc < len(f) else -1
            if argc < 1 or envc < 0 or len(f) != 5 + argc + envc:
                send(f"E {seq} 22")  # EINVAL
            elif not fds:
                send(f"E {seq} 9")  # EBADF
            else:
                for unused in fds[2:]:
                    os.close(unused)
                argv = f[3 : 3 + argc]
                env = dict(kv.partition(b"=")[::2] for kv in f[4 + argc : 4 + argc + envc])
                spawn(seq, argv, env, f[-1], fds[0], fds[1] if len(fds) > 1 else -1)
                fds = []
            for fd in fds:
                os.close(fd)
        else:
            for fd in fds:
                os.close(fd)
            if op == b"signal" and len(f) == 3:
                try:  # noqa: SIM105
                    os.killpg(int(f[1]), int(f[2]))
                except (ProcessLookupError, PermissionError):
                    pass
            elif op == b"killall" and len(f) == 2:
                killall(int(f[1]))
        reap()


if __name__ == "__main__":
    main()
