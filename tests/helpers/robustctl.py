"""An independent process for the RobustSemaphore tests: does one thing to a
robust semaphore and reports on stdout, one line per event.

    robustctl.py hold NAME         acquire; print "held PID"; wait for a stdin line;
                                   release; print "released"
    robustctl.py hold-exit NAME    acquire; print "held PID"; exit without releasing
    robustctl.py hold-fork NAME    acquire; fork a child that checks it holds none of
                                   the parent's slots and waits for stdin to close; print
                                   "forked PARENT CHILD CODE" (CODE 0: the child's checks
                                   passed) and wait for a stdin line
    robustctl.py hold-exec NAME    acquire; print "held PID"; exec a program that
                                   prints "execd PID" and waits for stdin to close
    robustctl.py hold-thread NAME  a thread acquires and ends; print "thread gone PID";
                                   wait for a stdin line; release from the main thread;
                                   print "released"
    robustctl.py wait NAME         print "waiting"; acquire; on KeyboardInterrupt
                                   print "interrupted"
"""

from __future__ import annotations

import os
import sys
import threading

import namedipc


def opened(name: str) -> namedipc.RobustSemaphore:
    flags = namedipc.NamedSemaphore.Flags
    return namedipc.RobustSemaphore(name, handle_existence=flags.RAISE_IF_NOT_EXISTS)


def say(line: str) -> None:
    # One write(2) per line: a forked child and its parent share stdout,
    # and a pipe keeps writes of up to PIPE_BUF bytes whole.
    os.write(1, f"{line}\n".encode())


def hold_fork(sem: namedipc.RobustSemaphore) -> None:
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(report_r)
            # The parent's slot is not the child's: it cannot release it...
            try:
                sem.release()
                code = 4
            except ValueError:
                pass
            # ... and it sees the slot taken.
            if sem.value != 0 or sem.acquire(blocking=False):
                code = 5
            os.write(report_w, f"{os.getpid()} {code}".encode())
            os.close(report_w)
            sys.stdin.read()
        finally:
            os._exit(code)
    os.close(report_w)
    with os.fdopen(report_r) as report:
        child, outcome = report.read().split()
    say(f"forked {os.getpid()} {child} {outcome}")
    sys.stdin.readline()


def main(argv: list[str]) -> int:
    command, name = argv
    sem = opened(name)
    if command == "wait":
        say("waiting")
        try:
            sem.acquire()
        except KeyboardInterrupt:
            say("interrupted")
        return 0
    if command == "hold-thread":
        worker = threading.Thread(target=sem.acquire)
        worker.start()
        worker.join()
        say(f"thread gone {os.getpid()}")
        sys.stdin.readline()
        sem.release()
        say("released")
        return 0
    sem.acquire()
    if command == "hold":
        say(f"held {os.getpid()}")
        sys.stdin.readline()
        sem.release()
        say("released")
    elif command == "hold-exit":
        say(f"held {os.getpid()}")
        os._exit(0)
    elif command == "hold-fork":
        hold_fork(sem)
    elif command == "hold-exec":
        say(f"held {os.getpid()}")
        code = "import os, sys; print('execd', os.getpid(), flush=True); sys.stdin.read()"
        os.execv(sys.executable, [sys.executable, "-c", code])
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
