# The two commands a newcomer types:  make speedrun   /   make test
# Both create .venv/ at the repository root and install what they need.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch: pinned to the CPU build that these machines carry; if the interpreter that
# creates the venv already has a torch (e.g. your CUDA build), the venv sees it and keeps it.
TORCH_PIN ?= torch==2.13.0
PRESET ?= cpu

.PHONY: install speedrun test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "using the torch that $(PYTHON) already has"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
	  $(PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[test]"
	@touch $@

install: $(VENV)/.installed

speedrun: install
	$(VENV)/bin/groundup speedrun --preset $(PRESET)

test: install
	$(PY) -m pytest -q -m "not slow" --timeout=900

test-slow: install
	$(PY) -m pytest -q -m slow --timeout=3600

bench: install
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) runs
