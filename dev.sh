#!/usr/bin/env bash
# The project's one entry point, used by the README and by CI:
#   ./dev.sh demo    build, then run the demo (two processes sharing a named semaphore)
#   ./dev.sh test    every check: rustfmt, clippy, cargo test, stubtest, pytest
#   ./dev.sh bench   namedipc vs posix_ipc vs a C floor, side by side
# It needs only Rust and Python >= 3.11 with pip; it installs what else it
# needs (Debian packages when missing, Python packages into .venv).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${NAMEDIPC_VENV:-.venv}"

log() { printf '==> %s\n' "$*" >&2; }

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

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    # Reinstall only when the requirements changed.
    local stamp="$VENV/.requirements-installed"
    if [ ! -f "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ]; then
        log "installing Python tools into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -r requirements-dev.txt
        touch "$stamp"
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
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy"
    cargo clippy -q --workspace --all-targets -- -D warnings
    log "cargo test"
    cargo test -q --workspace
    build
    log "mypy.stubtest (the hand-written stubs match the module)"
    python -m mypy.stubtest namedipc
    log "pytest"
    python -m pytest
}

cmd_bench() {
    ensure_system_tools
    ensure_venv
    build --release
    python bench/bench.py "$@"
}

case "${1:-}" in
    demo) shift; cmd_demo "$@" ;;
    test) shift; cmd_test "$@" ;;
    bench) shift; cmd_bench "$@" ;;
    *)
        echo "usage: ./dev.sh demo | test | bench [bench options]" >&2
        exit 2
        ;;
esac
