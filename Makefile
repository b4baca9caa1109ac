# The set-up entry point: `make demo` and `make test` create .venv and install everything the
# project needs (nothing by hand, nothing as root), then run. Re-running only re-installs when
# pyproject.toml changed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: demo test setup clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of PyTorch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# tinysoundfont's optional pyaudio dependency does not build; it is not needed.
	$(BIN)/pip install -q --no-deps tinysoundfont==0.3.7
	$(BIN)/pip install -q -e '.[fftw,test]'
	touch $@

JOBS ?= 2

# The main job on the embedded demo corpus. Re-running it reuses what is already built.
demo: setup
	test -f $(DEMO)/urmp/demo.json || $(BIN)/cmav-data make-demo-urmp $(DEMO)/urmp -j $(JOBS) --force
	$(BIN)/cmav-data inspect-urmp $(DEMO)/urmp --json $(DEMO)/urmp_summary.json --strict
	$(BIN)/cmav-data build-suburmp $(DEMO)/urmp $(DEMO)/suburmp -j $(JOBS) --image-size 64 --resume
	$(BIN)/cmav-data stats $(DEMO)/suburmp
	$(BIN)/cmav-data compare-features $(DEMO)/suburmp --fast -j $(JOBS)
	$(BIN)/cmav-bench run --suite fast --data $(DEMO)/suburmp --out runs --jobs $(JOBS)
	$(BIN)/cmav-data view $(DEMO)/suburmp -j $(JOBS)
	@echo "Open in a browser (from disk, or serve with python -m http.server):"
	@echo "  the viewer:  $(DEMO)/suburmp/view/index.html"
	@echo "  the report:  runs/fast-*/report.html  (blind rating page: runs/fast-*/rate.html)"

test: setup
	$(BIN)/python -m pytest -n 2 -q -rs

clean-demo:
	rm -rf $(DEMO)
