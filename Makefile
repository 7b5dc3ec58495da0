# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint soak bench bench-ci bench-status failover failover-ci systemd-test clean

$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./sandbox -e '.[dev]'  # the emulators: a package of their own
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/officehours demo

lint: $(STAMP)
	$(BIN)/ruff check daemon sandbox tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n 6 --dist worksteal  # 6 workers on 2 cores: most tests wait on processes

bench: $(STAMP)  # the campus benchmark (5,000 instructors: about 33 minutes); see README
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# CI's bench: 1,000 instructors on a Business plan's Zoom limits, the same per-instructor
# ratios in about 14 minutes; exits 1 naming the figure when a steady-state budget is broken
bench-ci: $(STAMP)
	$(BIN)/python bench/run.py --instructors 1000 --zoom-plan business $(BENCH_ARGS)
	$(BIN)/python bench/status.py --instructors 5000

bench-status: $(STAMP)  # `status` for 5,000 instructors: under 2 s (a few seconds to run)
	$(BIN)/python bench/status.py

failover: $(STAMP)  # two nodes on a throwaway PostgreSQL, the leader killed 20 times; see README
	$(BIN)/python bench/failover.py $(FAILOVER_ARGS)

failover-ci: $(STAMP)  # the same drill in two rounds on a 3 s lease (CI, about 80 s: it waits for sessions)
	$(BIN)/python bench/failover.py --rounds 2 --instructors 6 --lease 3 --json /dev/null

systemd-test: $(STAMP)  # the service under a real systemd in a Debian container (root; see README)
	OFFICEHOURS_SYSTEMD_TEST=1 $(BIN)/pytest -q tests/test_systemd_boot.py

soak: $(STAMP)  # the soak test, longer than CI runs it: 20 seeds x 300 passes
	SOAK_SEEDS=1-20 SOAK_PASSES=300 $(BIN)/pytest -q tests/test_soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
