# Conventional names for dev.sh's commands; dev.sh has the logic, and the
# README's two commands (./dev.sh demo, ./dev.sh test) need no make at all.
# Extra arguments go in ARGS, e.g.
#   make test-python ARGS='-k robust -x'
#   make test-python ARGS='tests/test_pickle.py::test_handles_through_a_pipe'
#   make one-test T=tests/test_pickle.py::test_handles_through_a_pipe
#   make bench ARGS=--quick

ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo test lint test-rust test-python one-test wheel bench lock clean

help: ## list the targets (this text)
	@echo 'usage: make TARGET [ARGS=...]   (the same as ./dev.sh TARGET ARGS; ./dev.sh help says more)'
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

demo: ## build (release), then watch `namedipc run` keep five jobs to two slots, one SIGKILLed
	./dev.sh demo $(ARGS)

test: ## every check: lint, test-rust, test-python, wheel (ARGS: pytest arguments for both runs)
	./dev.sh test $(if $(ARGS),-- $(ARGS))

lint: ## rustfmt --check, clippy, ruff check, ruff format --check, mypy.stubtest, mypy --strict
	./dev.sh lint

test-rust: ## cargo test (ARGS: cargo test arguments)
	./dev.sh test-rust $(ARGS)

test-python: ## pytest on the development build (ARGS: pytest arguments, e.g. one test's node id)
	./dev.sh test-python $(ARGS)

one-test: ## one pytest test, verbose, stopping at its failure: make one-test T=tests/test_pickle.py::test_x
	@test -n "$(T)" || { echo 'make one-test T=tests/FILE.py::TEST (a pytest node id)' >&2; exit 2; }
	./dev.sh test-python -v -x $(T) $(ARGS)

wheel: ## the release wheel, installed into a new venv, checked by stubtest and pytest (ARGS: pytest's)
	./dev.sh wheel $(ARGS)

bench: ## namedipc vs posix_ipc vs a C floor (ARGS: bench.py options, e.g. --quick)
	./dev.sh bench $(ARGS)

lock: ## regenerate requirements-dev.txt from requirements-dev.in (ARGS: e.g. --upgrade)
	./dev.sh lock $(ARGS)

clean: ## remove build outputs and caches (ARGS=--all: also .venv)
	./dev.sh clean $(ARGS)
