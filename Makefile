# The README's two commands, `make demo` and `make test`, are the whole set-up:
# the first target that needs it creates .venv and installs everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-all test-fast bench clean

# The dev environment takes every extra, Ray included (`pip install unified`
# alone needs none of them), so the Ray tests run in `make test`.
# constraints.txt pins every package to the version the tests, conformance
# baselines and docs/performance.md were measured with.
$(STAMP): pyproject.toml Makefile constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch only as 2.13.0: the CPU wheel; an unpinned torch pulls CUDA packages
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/minilm_demo.py

# pytest exits 5 when it collected no tests: say so, and fail. One BLAS thread
# per test worker: two workers share the two cores (OpenBLAS spin-waits otherwise).
# `make test` (what CI runs) leaves out the real-model matrix (marker `corpus`:
# every corpus model x delegate x strictness, about an hour on 2 cores) and the
# three slowest executorch model exports (marker `heavy`, about 4 minutes);
# `make test-all` runs it too.
PYTEST = OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile
test: $(STAMP)
	@$(PYTEST) -m "not corpus and not heavy"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; rc=1; fi; exit $$rc

test-all: $(STAMP)
	@$(PYTEST); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-all: pytest collected no tests" >&2; rc=1; fi; exit $$rc

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
