# `make demo` and `make test` set themselves up on a fresh machine: a .venv with torch pinned first
# (an unpinned torch would pull a multi-GB CUDA build), then this package with its test extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean weights

setup: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/augpaint-fast demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) demo_out build *.egg-info

# The shipped tiny weights (augpaint_fast/assets/weights/tiny), made with this project's own commands.
weights: $(STAMP)
	$(VENV)/bin/augpaint-fast make-phantom --out runs/phantom-train --n 200 --unlabelled 1800 --seed 0
	$(VENV)/bin/augpaint-fast train-ae --data runs/phantom-train --weights runs/tiny --steps 2000 --batch-size 16 --lr 2e-3
	$(VENV)/bin/augpaint-fast train-ldm --data runs/phantom-train --weights runs/tiny --steps 3000 --batch-size 64
	rm -rf augpaint_fast/assets/weights/tiny && mkdir -p augpaint_fast/assets/weights
	cp -r runs/tiny augpaint_fast/assets/weights/tiny
