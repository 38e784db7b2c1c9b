# One place for the project's commands; the README and .ci/run call these targets.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
SMENV  := $(VENV)/bin/smenv
EXAMPLE ?= examples/half_plus_two

.PHONY: install test demo bench corpus clean fuzz

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The whole suite, in two runs: first every test that needs neither Docker nor the network, with the
# network cut where this user may (tools/offline) and no engine to reach, then the Docker tests and the
# few that use the live index. CI runs this.
test: install
	DOCKER_HOST=unix:///nonexistent/docker.sock tools/offline $(PY) -m pytest -m "not docker and not network"
	$(PY) -m pytest -m "docker or network"

# The main job on the shipped example: a local base image (no registry needed), then build and verify.
demo: install
	bash tools/system-packages demo
	$(SMENV) build $(EXAMPLE) -r $(EXAMPLE)/requirements.txt

# smenv against plain baselines measured in the same run (~25 min); `make bench BENCH_ARGS="--runs 5"`.
bench: install
	bash tools/system-packages bench
	$(PY) bench/run.py $(BENCH_ARGS)

# Every model in ../shared/corpus and tests/fixtures/models built and verified as a new user would; the
# table goes to docs/corpus.md (long: one lock install per distinct environment). CORPUS_ARGS="--only NAME".
corpus: install
	bash tools/system-packages demo
	$(PY) tools/corpus.py $(CORPUS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist

# Every fuzz target for FUZZ_MINUTES each (default 10), one at a time, then a summary per target;
# crashing inputs land in tests/fuzz_crashes/ (replayed by tests/test_fuzz.py). Installs atheris if needed.
fuzz: install
	$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install --quiet atheris
	$(PY) tools/fuzz.py $(if $(FUZZ_MINUTES),--minutes $(FUZZ_MINUTES)) $(FUZZ_ARGS)
