# `make demo` and `make test` set themselves up on a fresh machine: a .venv with torch pinned first
# (an unpinned torch would pull a multi-GB CUDA build), then this package with its test extras, every package at
# the version CI tested (constraints.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

WHEEL_DIR := build/wheel-test
# Rebuild the editable install (and the C++ extension) whenever what it is built from changes.
STAMP_DEPS := setup.py pyproject.toml constraints.txt $(wildcard csrc/*.cpp csrc/*.h)
CONSTRAINTS := -c $(CURDIR)/constraints.txt

.PHONY: demo test test-fast wheel-test setup clean weights gpu-check bench-compare bench-baseline

setup: $(STAMP)

$(STAMP): $(STAMP_DEPS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CONSTRAINTS) torch==2.13.0
	$(PY) -m pip install -q $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/augpaint-fast demo --out demo_out

# `test` is what CI runs: the layer check, every test (the slow tier included), then the installed wheel.
test: $(STAMP)
	$(PY) .ci/check_layers.py
	$(PY) -m pytest -q tests
	$(MAKE) wheel-test

# The fast tier, for the edit-test loop: no test marked slow (no subprocess, server, Ray, torchrun, real training).
test-fast: $(STAMP)
	$(PY) .ci/check_layers.py
	$(PY) -m pytest -q -m "not slow" tests

# The package as users get it: build the wheel, install it into a fresh venv (torch pinned first), and run it
# from outside the source tree. An editable install would hide a module or file left out of the wheel.
wheel-test: $(STAMP)
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(PY) -m pip wheel -q --no-deps -w $(WHEEL_DIR)/dist .
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/python -m pip install -q --upgrade pip
	$(WHEEL_DIR)/venv/bin/python -m pip install -q $(CONSTRAINTS) torch==2.13.0
	$(WHEEL_DIR)/venv/bin/python -m pip install -q $(CONSTRAINTS) $(WHEEL_DIR)/dist/augpaint_fast-*.whl
	cd $(WHEEL_DIR) && venv/bin/python $(CURDIR)/.ci/import_all.py
	cd $(WHEEL_DIR) && venv/bin/augpaint-fast info | tee info.txt && grep -q "kernel path: cpp" info.txt
	cd $(WHEEL_DIR) && venv/bin/augpaint-fast make-phantom --out phantom --n 1 && \
		venv/bin/augpaint-fast sample --data phantom --out samples --n 2 --steps 5 && \
		test -s samples/images/phantom_0000_1.png && test -s samples/preview.png
	@echo "wheel-test: the installed wheel imports, reports its C++ kernel and samples"

clean:
	rm -rf $(VENV) demo_out build *.egg-info

# The shipped tiny weights (augpaint_fast/assets/weights/tiny), made with this project's own commands.
weights: $(STAMP)
	$(VENV)/bin/augpaint-fast make-phantom --out runs/phantom-train --n 200 --unlabelled 1800 --seed 0
	$(VENV)/bin/augpaint-fast train-ae --data runs/phantom-train --weights runs/tiny --steps 2000 --batch-size 16 --lr 2e-3
	$(VENV)/bin/augpaint-fast train-ldm --data runs/phantom-train --weights runs/tiny --steps 3000 --batch-size 64
	rm -rf augpaint_fast/assets/weights/tiny && mkdir -p augpaint_fast/assets/weights
	cp -r runs/tiny augpaint_fast/assets/weights/tiny

# The GPU quarter hour in one call (benchmarks/gpu_check.py): build the extension, pytest -m gpu, bench --device cuda
# on tiny and paper; writes OUT/gpu_check.{json,md}, OUT/logs/ and OUT/bench-*/. Needs no venv and no network (the
# GPU machine has neither): it runs with the .venv's Python when there is one, else $(PYTHON).
# GPU_CHECK_DRY_RUN=1: the same report with every step "not run", in seconds, anywhere.
OUT ?= build/gpu-check
GPU_CHECK_PYTHON ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:
	$(GPU_CHECK_PYTHON) benchmarks/gpu_check.py $(OUT) $(if $(GPU_CHECK_DRY_RUN),--dry-run)

# Micro-benchmarks (pytest-benchmark, the [bench] extra) held against the committed baseline by RATIOS between
# configurations of one run (benchmarks/compare.py), not absolute times: the machines are shared. One torch thread
# in both runs (a ratio depends on the thread count), timed in process CPU time: the time a busy neighbour takes
# the core away is not counted (wall-clock ratios moved up to 4x between runs at load 8 on 2 cores).
# bench-baseline re-records the baseline: say where, in BENCH_NOTE.
BENCH_SUITES := benchmarks/bench_fused_step.py benchmarks/bench_configs.py
BENCH_BASELINE := benchmarks/baseline/cpu.json
BENCH_THRESHOLD ?= 0.5
BENCH_RUN = OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider --benchmark-only \
	--benchmark-timer=time.process_time $(BENCH_SUITES)
bench-compare: $(STAMP)
	mkdir -p build/bench
	$(BENCH_RUN) --benchmark-json=build/bench/fresh.json
	$(PY) benchmarks/compare.py $(BENCH_BASELINE) build/bench/fresh.json --threshold $(BENCH_THRESHOLD)

bench-baseline: $(STAMP)
	BENCH_NOTE="$(BENCH_NOTE)" $(BENCH_RUN) --benchmark-json=$(BENCH_BASELINE)
