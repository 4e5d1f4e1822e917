# InFiConD: `make demo` sets everything up and runs the main job; `make test` sets up and runs all tests.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
DATA    ?= $(or $(INFICOND_DATA),../shared/data/voc2012-subset)
WS      ?= workspaces/dev
PORT    ?= 8765
CHROMIUM ?= /usr/bin/chromium
STAMP   := $(VENV)/.installed
WEB_STAMP := src/inficond/server/static/index.html

.PHONY: setup demo test test-py test-web web browser wordnet prepare distill serve bench clean screenshots

setup: $(STAMP) $(WEB_STAMP) wordnet

# Reinstalls only when the pins change; torch comes from the local wheel via constraints.txt.
$(STAMP): requirements.lock constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
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
test-py: setup browser
	INFICOND_DATA=$(DATA) $(BIN)/python -m pytest -q $$(test -x $(CHROMIUM) || echo --ignore=tests/e2e)

test-web: setup
	cd web && npm test

test: test-py test-web

# The README's screenshots (docs/screenshots/), taken by the end-to-end test on a copy of $(WS).
screenshots: distill browser
	INFICOND_UPDATE_SCREENSHOTS=1 INFICOND_SCREENSHOT_WS=$(WS) $(BIN)/python -m pytest -q tests/e2e/test_screenshots.py -k test_readme_screenshots

bench: setup
	$(BIN)/python benchmarks/run_all.py --data $(DATA)

clean:
	rm -rf $(VENV) web/node_modules src/inficond/server/static
