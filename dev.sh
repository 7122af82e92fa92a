#!/usr/bin/env bash
# The project's one entry point, used by the README and by CI:
#   ./dev.sh demo    build, then run the demo: jobs limited to two at a time by
#                    `namedipc run`, one of them SIGKILLed while it holds its slot
#   ./dev.sh test    every check: rustfmt, clippy, cargo test, stubtest,
#                    mypy --strict, pytest; then pytest again against the release wheel
#   ./dev.sh bench   namedipc vs posix_ipc vs a C floor, side by side
#   ./dev.sh lock    regenerate the lock requirements-dev.txt from requirements-dev.in
# It needs only Rust and Python >= 3.11 with pip; it installs what else it
# needs (Debian packages when missing, Python packages into .venv from the
# lock file requirements-dev.txt).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${NAMEDIPC_VENV:-.venv}"
# The human-edited list of Python tools, and the lock generated from it.
REQUIREMENTS_IN=requirements-dev.in
LOCK=requirements-dev.txt

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_install() {
    log "installing Debian packages: $*"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

ensure_system_tools() {
    command -v cc >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            log "adding the rustup component $component"
            rustup component add "$component"
        fi
    done
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# `./dev.sh lock` writes this line into the lock, so that a lock older than
# the list it was made from is caught before its tools are used.
lock_source_line() { echo "# from $REQUIREMENTS_IN with sha256 $(sha256 "$REQUIREMENTS_IN")"; }

check_lock_is_current() {
    grep -qxF "$(lock_source_line)" "$LOCK" \
        || die "$REQUIREMENTS_IN changed since $LOCK was generated from it: run ./dev.sh lock (or make lock), and commit both"
}

# Installs the locked tools into a virtualenv, every file checked against its
# hash (pip's hash-checking mode). The lock pins pip too.
pip_install_lock() {
    "$1/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$LOCK"
}

ensure_venv() {
    [ "${1:-}" = --stale-lock-ok ] || check_lock_is_current
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    # Reinstall only when the lock changed.
    local stamp="$VENV/.requirements-installed"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256 "$LOCK")" ]; then
        log "installing the Python tools of $LOCK into $VENV"
        pip_install_lock "$VENV"
        sha256 "$LOCK" >"$stamp"
    fi
    export VIRTUAL_ENV="$PWD/$VENV"
    export PATH="$VIRTUAL_ENV/bin:$PATH"
}

build() {
    log "building the extension (maturin develop $*)"
    maturin develop -q "$@"
}

cmd_demo() {
    ensure_system_tools
    ensure_venv
    build --release
    # Five jobs limited to two at a time by `namedipc run` (the command that
    # `maturin develop` installed in $VENV/bin, on PATH here), one SIGKILLed.
    python examples/demo.py
}

cmd_test() {
    ensure_system_tools
    ensure_venv
    # pytest's temporary directories live here, not in the /tmp/pytest-of-$USER
    # that every run on the machine shares and prunes.
    local target="${CARGO_TARGET_DIR:-target}"
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy"
    cargo clippy -q --workspace --all-targets -- -D warnings
    log "cargo test"
    cargo test -q --workspace
    build
    log "mypy.stubtest (the hand-written stubs match the module)"
    python -m mypy.stubtest namedipc
    log "mypy --strict (tests and examples; see [tool.mypy] in pyproject.toml)"
    python -m mypy
    log "pytest (the development build)"
    python -m pytest --basetemp="$target/pytest"

    # The same tests against what users install: the release wheel, in a
    # new virtualenv, with the source tree's python/ nowhere on sys.path.
    local wheels="$target/wheels-test" wheel_venv="$VENV-wheel" wheel
    rm -rf "$wheels" "$wheel_venv"
    log "maturin build --release (the abi3 wheel)"
    maturin build -q --release --out "$wheels"
    wheel="$(echo "$wheels"/namedipc-*-cp311-abi3-*.whl)"
    [ -f "$wheel" ] || { echo "expected one cp311-abi3 wheel in $wheels, found: $(ls "$wheels")" >&2; exit 1; }
    log "installing $LOCK, then ${wheel##*/}, into a new $wheel_venv"
    python3 -m venv "$wheel_venv"
    pip_install_lock "$wheel_venv"
    # namedipc has no dependencies; --no-deps keeps it from fetching anything unlocked.
    "$wheel_venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$wheel"
    # Started as pytest is below, from here: the package must come from the venv.
    "$wheel_venv/bin/python" - "$PWD/python" <<'EOF'
import pathlib, sys, sysconfig
import namedipc, namedipc._namedipc
site = pathlib.Path(sysconfig.get_paths()["platlib"]).resolve()
for module in (namedipc, namedipc._namedipc):
    found = pathlib.Path(module.__file__ or "?").resolve()
    assert site in found.parents, f"{module.__name__} was imported from {found}, not from {site}"
source = pathlib.Path(sys.argv[1]).resolve()
assert all(pathlib.Path(p or ".").resolve() != source for p in sys.path), f"{source} is on sys.path"
print(f"==> namedipc {namedipc.__version__} imported from {found.parent}", file=sys.stderr)
EOF
    log "mypy.stubtest (the stubs in the wheel)"
    "$wheel_venv/bin/python" -m mypy.stubtest namedipc
    log "pytest (the installed wheel)"
    "$wheel_venv/bin/python" -m pytest --basetemp="$target/pytest-wheel"
}

cmd_bench() {
    ensure_system_tools
    ensure_venv
    build --release
    python bench/bench.py "$@"
}

cmd_lock() {
    # The lock's own tools (uv among them) come from the lock being replaced.
    ensure_venv --stale-lock-ok
    log "uv pip compile $REQUIREMENTS_IN -> $LOCK"
    # --universal: one lock for every Python >= 3.11 and platform, with markers;
    # the existing pins are kept unless an --upgrade option says otherwise.
    uv pip compile -q "$REQUIREMENTS_IN" --output-file "$LOCK" \
        --universal --python-version 3.11 --generate-hashes \
        --custom-compile-command "./dev.sh lock" "$@"
    local body
    body="$(tail -n +3 "$LOCK")"
    { head -n 2 "$LOCK"; lock_source_line; printf '%s\n' "$body"; } >"$LOCK.new"
    mv "$LOCK.new" "$LOCK"
    log "wrote $LOCK; the next command installs it into $VENV"
}

case "${1:-}" in
    demo) shift; cmd_demo "$@" ;;
    test) shift; cmd_test "$@" ;;
    bench) shift; cmd_bench "$@" ;;
    lock) shift; cmd_lock "$@" ;;
    *)
        echo "usage: ./dev.sh demo | test | bench [bench options] | lock [uv pip compile options]" >&2
        exit 2
        ;;
esac
