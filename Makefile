# InFiConD: `make demo` sets everything up and runs the main job; `make test` sets up and runs all tests.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
CLIP_VENV := .venv-clip
DATA    ?= $(or $(INFICOND_DATA),../shared/data/voc2012-subset)
WS      ?= workspaces/dev
PORT    ?= 8765
CHROMIUM ?= /usr/bin/chromium
STAMP   := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
CLIP_STAMP := $(CLIP_VENV)/.installed
WEB_STAMP := src/inficond/server/static/index.html

.PHONY: setup setup-clip demo test test-py test-clip test-web web browser wordnet prepare distill serve bench clean screenshots

setup: $(STAMP) $(WEB_STAMP) wordnet

# The clip extra (open_clip + torchvision, on the CUDA torch 2.14.1) in its own venv.
setup-clip: $(CLIP_STAMP)

# The locks are complete closures, installed with --no-deps: no resolving, and facenet-pytorch's
# declared torchvision stays out (the README's "Install" section). --no-compile: byte-compiling
# every installed file took half the install; Python compiles what it imports on first use.
# Reinstalls only when the pins change. A venv from before the light install loses the clip
# packages (torchvision breaks against the CPU-only torch) and the CUDA libraries; `make clean`
# rebuilds from nothing.
PIP_SYNC = pip install -q --no-deps --no-compile
$(STAMP): requirements.lock requirements-cpu.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip freeze | grep -iE '^(torchvision|open.clip.torch|timm|triton|nvidia-|cuda-)' | cut -d= -f1 \
	  | xargs -r $(BIN)/pip uninstall -q -y
	$(BIN)/$(PIP_SYNC) -r requirements.lock -r requirements-cpu.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(TEST_STAMP): $(STAMP) requirements-test.lock
	$(BIN)/$(PIP_SYNC) -r requirements-test.lock
	touch $@

$(CLIP_STAMP): requirements.lock requirements-clip.lock pyproject.toml
	test -x $(CLIP_VENV)/bin/python || $(PY) -m venv $(CLIP_VENV)
	$(CLIP_VENV)/bin/$(PIP_SYNC) -r requirements.lock -r requirements-clip.lock
	$(CLIP_VENV)/bin/pip install -q --no-deps -e .
	touch $@

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund

$(WEB_STAMP): web/node_modules/.package-lock.json $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts
	cd web && npm run build

browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "warning: could not install Debian chromium; browser tests (tests/e2e) will be skipped"

# The default encoder reads WordNet 3.0's noun hierarchy (Debian's wordnet-base; see encoders/wordnet.py).
wordnet:
	@test -f /usr/share/wordnet/data.noun || test -n "$$INFICOND_WORDNET" \
	  || (apt-get update -qq && apt-get install -y -qq wordnet-base >/dev/null) \
	  || echo "warning: could not install Debian wordnet-base; set INFICOND_WORDNET to a WordNet 3.0 dict folder"

prepare: setup
	$(BIN)/inficond prepare --data $(DATA) --out $(WS)

distill: prepare
	@$(BIN)/python -c "import sys; from inficond.session import Session; s = Session('$(WS)'); sys.exit(0 if s.log.head() is not None else 1)" \
	  || $(BIN)/inficond distill $(WS)

demo: distill
	$(BIN)/inficond performance $(WS)
	$(BIN)/inficond serve $(WS) --port $(PORT)

# Without Chromium the browser tests are left out (as `browser` warns), not run into an error.
test-py: setup $(TEST_STAMP) browser
	INFICOND_DATA=$(DATA) $(BIN)/python -m pytest -q -m "not clip" $$(test -x $(CHROMIUM) || echo --ignore=tests/e2e)

# Tests marked clip (open_clip, torchvision) run in .venv-clip; only the files that have them are
# collected there, as the others import test-only packages that venv leaves out.
test-clip: $(CLIP_STAMP)
	INFICOND_DATA=$(DATA) $(CLIP_VENV)/bin/python -m pytest -q -m clip $$(grep -l -r --include='test_*.py' 'pytest.mark.clip' tests)

test-web: setup
	cd web && npm test

# test-clip first, so that the last pytest summary printed is the main suite's.
test: test-clip test-py test-web

# The README's screenshots (docs/screenshots/), taken by the end-to-end test on a copy of $(WS).
screenshots: distill browser
	INFICOND_UPDATE_SCREENSHOTS=1 INFICOND_SCREENSHOT_WS=$(WS) $(BIN)/python -m pytest -q tests/e2e/test_screenshots.py -k test_readme_screenshots

bench: setup
	$(BIN)/python benchmarks/run_all.py --data $(DATA)

clean:
	rm -rf $(VENV) $(CLIP_VENV) web/node_modules src/inficond/server/static
