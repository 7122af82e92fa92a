"""What a command run by `namedipc run` can do with what it inherited, for
the tests of run's descriptor (tests/test_run_security.py) and of a command
that changed user (tests/test_robust_security.py). Passed to `python -c`,
so that it needs no file the other user may not read."""

# CMD: finds every descriptor it inherited of the semaphore's file (argv[1],
# compared by inode: the description may have been opened through another
# name), reports its uid, how each is open and what locks it holds, tries to
# truncate and write through it, unlocks every byte of it and closes it;
# then says so and holds on until it reads a line.
TAMPER = """
import errno, fcntl, json, os, struct, sys
target = os.stat(sys.argv[1])
report = {"uid": os.getuid(), "fds": [], "read_only": [], "locks": [], "truncate": [], "write": []}
for entry in os.listdir("/proc/self/fd"):
    fd = int(entry)
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    if (st.st_dev, st.st_ino) != (target.st_dev, target.st_ino):
        continue
    report["fds"].append(fd)
    report["read_only"].append(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY)
    with open(f"/proc/self/fdinfo/{fd}") as info:
        report["locks"].append([l for l in info.read().splitlines() if l.startswith("lock:")])
    for what, attempt in (("truncate", lambda: os.ftruncate(fd, 0)), ("write", lambda: os.pwrite(fd, b"x", 0))):
        try:
            attempt()
            report[what].append("done")
        except OSError as e:
            report[what].append(errno.errorcode[e.errno])
    # l_len 0: every byte from 0 on, the liveness bytes at 2**40 included.
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_UNLCK, os.SEEK_SET, 0, 0, 0))
    os.close(fd)
print(json.dumps(report), flush=True)
sys.stdin.readline()
print("released", flush=True)
"""
