"""How much work a run does (Plan: the default and the --quick one), and the
command line that picks a plan and the CPUs the helper processes run on.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Plan:
    """How much work a run does. Every sample times a loop of many
    iterations, so the timer's own cost and resolution vanish in it."""

    rounds: int
    warmup_rounds: int
    uncontended_iters: int
    nonblocking_iters: int
    pingpong_trips: int
    shm_passes: int  # read+write passes over the whole segment
    shm_create_cycles: int
    shm_open_cycles: int
    mq_trips: int  # message queue round trips, per message size
    mq_create_cycles: int
    mq_open_cycles: int
    robust_kills: int  # SIGKILLed holders for the kill-to-acquire latency
    # The same in every plan: the size the goal is stated for, and far
    # beyond any CPU cache, so that memory bandwidth is what is measured.
    shm_bandwidth_size: int = 64 * MIB
    shm_cycle_size: int = 4096
    # Rows 7 and 8: the message sizes, and the queues' max_message_size,
    # Linux's default msgsize_max (the most an unprivileged process may ask
    # for unless /proc/sys/fs/mqueue says otherwise).
    mq_message_sizes: tuple[int, int] = (64, 8192)
    mq_max_message_size: int = 8192
    # Rows 9 and 10 create and open queues with Linux's default limits,
    # given explicitly: what MessageQueue(name, O_CREX) asks for.
    mq_cycle_limits: tuple[int, int] = (10, 8192)
    # Row 0: fresh interpreters per sample, each timing one import.
    imports: int = 5


DEFAULT_PLAN = Plan(
    rounds=51,
    warmup_rounds=2,
    uncontended_iters=200_000,
    nonblocking_iters=100_000,
    pingpong_trips=20_000,
    shm_passes=4,
    shm_create_cycles=5_000,
    shm_open_cycles=20_000,
    mq_trips=5_000,
    mq_create_cycles=3_000,
    mq_open_cycles=20_000,
    robust_kills=25,
)
QUICK_PLAN = Plan(
    rounds=9,
    warmup_rounds=1,
    uncontended_iters=100_000,
    nonblocking_iters=50_000,
    pingpong_trips=10_000,
    shm_passes=2,
    shm_create_cycles=2_000,
    shm_open_cycles=5_000,
    mq_trips=2_000,
    mq_create_cycles=1_000,
    mq_open_cycles=5_000,
    robust_kills=20,
)


@dataclass(frozen=True)
class Options:
    """What the command line asked for."""

    plan: Plan
    cpu: int  # the CPU of both ping-pong processes and the shm partner
    # The CPUs of the message queue ping-pong's sides a and b; None if this
    # process may run on one CPU only (rows 7 and 8 are then not run).
    mq_cpus: tuple[int, int] | None
    check: bool  # exit with status 1 if a target is missed


def parse_options(argv: Sequence[str] | None, description: str | None) -> Options:
    """The options of `argv` (default: sys.argv[1:]); exits with a usage
    message if they make no sense."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and iterations (about 20 s)")
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"measured rounds (default {DEFAULT_PLAN.rounds}, or {QUICK_PLAN.rounds} with --quick)",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=min(os.sched_getaffinity(0)),
        help="the CPU both ping-pong processes share (default: the first one allowed)",
    )
    parser.add_argument(
        "--mq-cpus",
        metavar="A,B",
        help="the CPUs of the message queue ping-pong's sides a and b "
        "(default: the first two allowed; N,N puts both on CPU N)",
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a target is missed")
    args = parser.parse_args(argv)

    plan = QUICK_PLAN if args.quick else DEFAULT_PLAN
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
        plan = dataclasses.replace(plan, rounds=args.rounds)
    allowed = os.sched_getaffinity(0)
    if args.cpu not in allowed:
        parser.error(f"--cpu {args.cpu} is not a CPU this process may run on")
    mq_cpus: tuple[int, int] | None
    if args.mq_cpus is not None:
        try:
            cpu_a, cpu_b = (int(cpu) for cpu in args.mq_cpus.split(","))
        except ValueError:
            parser.error("--mq-cpus takes two CPU numbers, such as 0,1")
        if not {cpu_a, cpu_b} <= allowed:
            parser.error(f"--mq-cpus {args.mq_cpus}: not CPUs this process may run on")
        mq_cpus = (cpu_a, cpu_b)
    else:
        first_two = sorted(allowed)[:2]
        mq_cpus = (first_two[0], first_two[1]) if len(first_two) == 2 else None
    return Options(plan, args.cpu, mq_cpus, args.check)
