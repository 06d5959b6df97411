# Two entry points for a fresh machine: `make demo` (main job on the bundled sample) and `make test`;
# `make lint` runs ruff (configured in pyproject.toml).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo

.PHONY: venv tools demo test lint clean

$(BIN)/echokdm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(BIN)/echokdm

venv: $(BIN)/echokdm

# DICOM validators used by the tests: dciodvfy (dicom3tools) and dcmdump/dsrdump (dcmtk); the PACS tests' archive:
# Orthanc with its DICOMweb plugin (started by the tests on loopback; the packaged service is not needed).
TOOLS_PKGS := dicom3tools dcmtk orthanc orthanc-dicomweb
tools:
	@command -v dciodvfy >/dev/null && command -v dcmdump >/dev/null && command -v Orthanc >/dev/null && \
	  ls /usr/lib/orthanc/libOrthancDicomWeb.so* >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(TOOLS_PKGS) >/dev/null; \
	    else echo "install $(TOOLS_PKGS) (e.g. sudo apt-get install $(TOOLS_PKGS))"; exit 1; fi; }

demo: venv
	$(BIN)/echokdm predict --sample --out $(OUT) --overwrite

# Two test processes (pytest-xdist): whole test files, longest first (tests/conftest.py orders them), each to the
# process that is free, so a file's module fixtures are built once and no long file is left for the end.
test: venv tools
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder

lint: venv
	$(BIN)/ruff check echokdm tests pipelines

clean:
	rm -rf $(VENV) out
