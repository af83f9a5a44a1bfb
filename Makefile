# Two commands for a new user: `make demo` (the main job end to end) and `make test`.
# Everything installs into .venv. torch comes from the PyTorch CPU index (about 190 MB): PyPI's
# default torch wheel on Linux is a CUDA build that pulls several GB of nvidia-* wheels. For a CUDA
# build: make setup TORCH_SPEC=torch==2.13.0 TORCH_INDEX=https://pypi.org/simple
# A CPU wheel pip already has locally (its --find-links) is taken first, without asking any index;
# where the PyTorch index cannot be reached either, PyPI's torch of the same version is the last resort.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PY := $(VENV)/bin/python
STAMP := $(VENV)/.arena-installed

.PHONY: setup test demo bench lint clean clean-cache

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-index --no-deps "$(TORCH_SPEC)" 2>/dev/null \
	  && $(PY) -m pip install --quiet "$(TORCH_SPEC)" \
	  || $(PY) -m pip install --quiet "$(TORCH_SPEC)" --extra-index-url "$(TORCH_INDEX)" \
	  || $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[train,dev,demo]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/arena demo --out demo_out

bench: setup
	$(PY) benchmarks/bench_inference.py

lint: setup
	$(VENV)/bin/ruff check arena_core tests benchmarks scripts build_dataset.py
	$(VENV)/bin/ruff format --check arena_core tests benchmarks scripts build_dataset.py

clean:
	rm -rf demo_out build dist *.egg-info .pytest_cache
	@echo "removed demo_out/ and build outputs; kept .venv/ (rm -rf .venv) and the converted Gemma-3 cache (make clean-cache)"

clean-cache:
	rm -rf "$${ARENA_CACHE:-$$HOME/.cache/arena_core}"
