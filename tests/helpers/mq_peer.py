"""An independent process for the message queue tests: does one thing to a
named queue and reports on stdout, one line per event. Messages travel as
hex on the command line and in reports, so NULs and any bytes survive.

    mq_peer.py send NAME PRIORITY:HEX...   send each message; print "sent N"
    mq_peer.py receive NAME COUNT          receive COUNT messages without waiting;
                                           print "PRIORITY HEX" for each
    mq_peer.py wait-receive NAME TIMEOUT   print "ready FD", then receive(TIMEOUT or
                                           "none"); print the outcome (see below)
    mq_peer.py wait-send NAME TIMEOUT      print "ready FD", then send(b"late", TIMEOUT);
                                           print the outcome
    mq_peer.py notify-signal NAME          ask for USER_SIGNAL_MIN, print "registered",
                                           wait for the signal, print "signal N PRIORITY HEX"
    mq_peer.py notify-callback NAME        ask for a (callable, param) notification, delete
                                           the queue object, print "registered", wait for
                                           the call, print "called PARAM MAIN_THREAD PRIORITY HEX"
    mq_peer.py notify-raise NAME HOOK      the callback raises RuntimeError("boom-7"); print
                                           "reported TYPE:MESSAGE..." for what reached the hooks:
                                           HOOK "custom" replaces threading.excepthook, "default"
                                           runs the default one (traceback on stderr), "broken"
                                           installs one that raises (then sys.unraisablehook)
    mq_peer.py try-notify NAME             request_notification(USER_SIGNAL_MIN); print "registered"
                                           or "busy MESSAGE"

Outcomes of the waits: "received PRIORITY HEX", "sent", "busy", "SignalError
handled=N", "KeyboardInterrupt at MONOTONIC". Every wait is bounded.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time

import namedipc
from namedipc._namedipc import USER_SIGNAL_MIN, MessageQueue

WAIT = 10.0


def report(*words: object) -> None:
    print(*words, flush=True)


def wait_outcome(action: str, queue: MessageQueue, timeout: float | None) -> str:
    handled: list[int] = []
    signal.signal(signal.SIGUSR1, lambda signum, _frame: handled.append(signum))
    report("ready", queue.fileno())
    try:
        if action == "receive":
            message, priority = queue.receive(timeout)
            return f"received {priority} {message.hex()}"
        queue.send(b"late", timeout)
        return "sent"
    except KeyboardInterrupt:
        return f"KeyboardInterrupt at {time.monotonic()!r}"
    except namedipc.SignalError:
        return f"SignalError handled={len(handled)}"
    except namedipc.BusyError:
        return "busy"


def main(argv: list[str]) -> int:
    command, name, *rest = argv
    if command == "send":
        queue = MessageQueue(name)
        for item in rest:
            priority_text, hex_message = item.split(":")
            queue.send(bytes.fromhex(hex_message), priority=int(priority_text))
        report("sent", len(rest))
    elif command == "receive":
        queue = MessageQueue(name)
        for _ in range(int(rest[0])):
            message, priority = queue.receive(0)
            report(priority, message.hex())
    elif command in ("wait-receive", "wait-send"):
        timeout = None if rest[0] == "none" else float(rest[0])
        report(wait_outcome(command.removeprefix("wait-"), MessageQueue(name), timeout))
    elif command == "notify-signal":
        arrived = threading.Event()
        signals: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            signals.append(signum)
            arrived.set()

        signal.signal(USER_SIGNAL_MIN, on_signal)
        queue = MessageQueue(name)
        queue.request_notification(USER_SIGNAL_MIN)
        report("registered")
        if not arrived.wait(WAIT):
            report("no signal")
            return 1
        message, priority = queue.receive(0)
        report("signal", signals[0], priority, message.hex())
    elif command == "notify-callback":
        called = threading.Event()
        outcome: list[str] = []

        def on_message(param: tuple[str, str]) -> None:
            # A fresh handle: the one that asked was deleted long ago.
            message, priority = MessageQueue(param[1]).receive(0)
            is_main = threading.current_thread() is threading.main_thread()
            outcome.append(f"called {param[0]} {is_main} {priority} {message.hex()}")
            called.set()

        queue = MessageQueue(name)
        queue.request_notification((on_message, ("param-kept-alive", name)))
        # posix_ipc reads freed memory when the notification fires after this.
        del queue
        gc.collect()
        report("registered")
        if not called.wait(WAIT):
            report("no call")
            return 1
        report(outcome[0])
    elif command == "notify-raise":
        reported = threading.Event()
        seen: list[str] = []
        mode = rest[0]

        def custom_hook(args: threading.ExceptHookArgs) -> None:
            seen.append(f"{args.exc_type.__name__}:{args.exc_value}")
            reported.set()

        def default_hook(args: threading.ExceptHookArgs) -> None:
            threading.__excepthook__(args)  # writes the traceback to stderr
            seen.append(f"{args.exc_type.__name__}:{args.exc_value}")
            reported.set()

        def broken_hook(args: threading.ExceptHookArgs) -> None:
            raise ValueError("the hook itself fails")

        def unraisable(args: sys.UnraisableHookArgs) -> None:
            seen.append(f"{args.exc_type.__name__}:{args.exc_value}")
            if len(seen) == 2:
                reported.set()

        threading.excepthook = {"custom": custom_hook, "default": default_hook, "broken": broken_hook}[mode]
        sys.unraisablehook = unraisable

        def boom(param: int) -> None:
            raise RuntimeError(f"boom-{param}")

        queue = MessageQueue(name)
        queue.request_notification((boom, 7))
        report("registered")
        if not reported.wait(WAIT):
            report("not reported", seen)
            return 1
        report("reported", " ".join(seen))
    elif command == "try-notify":
        queue = MessageQueue(name)
        try:
            queue.request_notification(USER_SIGNAL_MIN)
            report("registered")
        except namedipc.BusyError as e:
            report("busy", e)
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
