#!/usr/bin/env bash
# The project's one entry point, used by the README, by the Makefile and by CI.
# `./dev.sh help` lists the commands; the README's two are `demo` and `test`.
# It needs only Rust and Python >= 3.11 with pip; it installs what else it
# needs (Debian packages when missing, Python packages into .venv from the
# lock file requirements-dev.txt).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${NAMEDIPC_VENV:-.venv}"
# The human-edited list of Python tools, and the lock generated from it.
REQUIREMENTS_IN=requirements-dev.in
LOCK=requirements-dev.txt
# Where cargo builds, and where pytest keeps its temporary directories: not in
# the /tmp/pytest-of-$USER that every run on the machine shares and prunes.
TARGET="${CARGO_TARGET_DIR:-target}"

usage() {
    cat <<'EOF'
usage: ./dev.sh COMMAND [ARGS...]

  demo                   build (release), then watch `namedipc run` keep five jobs
                         to two slots while one of them is SIGKILLed
  test [--] [PYTEST...]  every check: lint, test-rust, test-python, then wheel
                         (PYTEST arguments go to both pytest runs)
  lint                   rustfmt --check, clippy, ruff check, ruff format --check,
                         mypy.stubtest and mypy --strict (on the development build)
  test-rust [CARGO...]   cargo test (arguments go to cargo test)
  test-python [PYTEST...]
                         build the development extension (maturin develop), then
                         pytest; e.g. ./dev.sh test-python tests/test_pickle.py -x
  wheel [PYTEST...]      build the release wheel, install it into a new
                         virtualenv, check that namedipc comes from there, and
                         run mypy.stubtest and pytest against it
  bench [BENCH...]       namedipc vs posix_ipc vs a C floor (./dev.sh bench --help)
  bench --redis [...]    RedisSemaphore vs python-redis-lock and py-redis-semaphore on a
                         redis-server the benchmark starts (./dev.sh bench --redis --help)
  lock [UV...]           regenerate requirements-dev.txt from requirements-dev.in
                         (e.g. ./dev.sh lock --upgrade, --upgrade-package ruff)
  clean [--all]          remove build outputs and caches (--all: also .venv)
  help                   this text
EOF
}

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
    # The Redis tests start Debian's redis-server themselves (tests/support/redis_server.py)
    # and make a TLS certificate with openssl.
    [ -x /usr/bin/redis-server ] || apt_install redis-server
    command -v openssl >/dev/null 2>&1 || apt_install openssl
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

setup() {
    ensure_system_tools
    ensure_venv
}

build() {
    log "building the extension (maturin develop${*:+ $*})"
    maturin develop -q "$@"
}

# The development build, made at most once per run (lint and test-python both need it).
built=""
build_dev() {
    [ -n "$built" ] || { build; built=1; }
}

cmd_demo() {
    setup
    build --release
    # Five jobs limited to two at a time by `namedipc run` (the command that
    # `maturin develop` installed in $VENV/bin, on PATH here), one SIGKILLed.
    python examples/demo.py
}

cmd_lint() {
    setup
    # Every check runs, so that one report shows all that fails.
    local failed=()
    step() {
        local what="$1"
        shift
        log "$what"
        "$@" || failed+=("$what")
    }
    step "cargo fmt --check" cargo fmt --all -- --check
    step "ruff check (see [tool.ruff] in pyproject.toml)" ruff check
    step "ruff format --check" ruff format --check
    step "cargo clippy" cargo clippy -q --workspace --all-targets -- -D warnings
    build_dev
    step "mypy.stubtest (the hand-written stubs match the module)" python -m mypy.stubtest namedipc
    step "mypy --strict (tests and examples; see [tool.mypy] in pyproject.toml)" python -m mypy
    if [ "${#failed[@]}" -gt 0 ]; then
        printf 'lint failed: %s\n' "${failed[@]}" >&2
        exit 1
    fi
}

cmd_test_rust() {
    setup
    log "cargo test"
    cargo test -q --workspace "$@"
}

# The multi-user tests make throwaway users (tests/support/users.py) and
# remove them at their end; this removes those of a run killed before that.
remove_stale_test_users() {
    "$1" -c 'import sys; sys.path.insert(0, "tests"); from support.users import main_remove_stale; main_remove_stale()'
}

cmd_test_python() {
    setup
    build_dev
    log "pytest (the development build)${*:+: $*}"
    local status=0
    python -m pytest --basetemp="$TARGET/pytest" "$@" || status=$?
    remove_stale_test_users python
    return "$status"
}

# The same tests against what users install: the release wheel, in a new
# virtualenv, with the source tree's python/ nowhere on sys.path.
cmd_wheel() {
    setup
    local wheels="$TARGET/wheels-test" wheel_venv="$VENV-wheel" wheel
    rm -rf "$wheels" "$wheel_venv"
    # The wheel is the venv's interpreter's (namedipc is not built for the
    # stable ABI): its tag is that interpreter's, cpXY-cpXY.
    local tag
    tag="$(python -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
    log "maturin build --release (the $tag wheel)"
    maturin build -q --release --interpreter python --out "$wheels"
    wheel="$(echo "$wheels"/namedipc-*-"$tag-$tag"-*.whl)"
    [ -f "$wheel" ] || die "expected one $tag-$tag wheel in $wheels, found: $(ls "$wheels")"
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
    log "pytest (the installed wheel)${*:+: $*}"
    local status=0
    "$wheel_venv/bin/python" -m pytest --basetemp="$TARGET/pytest-wheel" "$@" || status=$?
    remove_stale_test_users "$wheel_venv/bin/python"
    return "$status"
}

cmd_test() {
    [ "${1:-}" != -- ] || shift
    cmd_lint
    cmd_test_rust
    cmd_test_python "$@"
    cmd_wheel "$@"
}

cmd_bench() {
    setup
    build --release
    if [ "${1:-}" = --redis ]; then
        shift
        python bench/redis_bench.py "$@"
    else
        python bench/bench.py "$@"
    fi
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

cmd_clean() {
    log "removing build outputs and caches"
    cargo clean -q 2>/dev/null || rm -rf "$TARGET"
    rm -rf "$VENV-wheel" dist build .pytest_cache .mypy_cache .ruff_cache python/namedipc/*.so
    find python tests bench examples -name __pycache__ -type d -prune -exec rm -rf {} +
    if [ "${1:-}" = --all ]; then
        log "removing $VENV"
        rm -rf "$VENV"
    fi
}

command="${1:-}"
[ $# -eq 0 ] || shift
case "$command" in
    demo) cmd_demo "$@" ;;
    test) cmd_test "$@" ;;
    lint) cmd_lint "$@" ;;
    test-rust) cmd_test_rust "$@" ;;
    test-python) cmd_test_python "$@" ;;
    wheel) cmd_wheel "$@" ;;
    bench) cmd_bench "$@" ;;
    lock) cmd_lock "$@" ;;
    clean) cmd_clean "$@" ;;
    help | -h | --help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
