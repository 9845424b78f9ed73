# Quick start:  make demo   (set up, then synth -> check -> train -> eval -> export -> infer)
#               make test   (set up, then the test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data/synth-quickstart
RUN    ?= runs/quickstart

.PHONY: setup demo test bench clean

$(BIN)/rfsense: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; pyproject's torch range accepts it
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/rfsense

demo: setup
	$(BIN)/rfsense synth $(DATA) --volunteers 2 --actions 10 --trials 20 --workers 2
	$(BIN)/rfsense data check $(DATA)
	$(BIN)/rfsense train configs/quickstart.yaml --overwrite
	$(BIN)/rfsense export $(RUN) --out export/
	$(BIN)/rfsense infer export/rfsense.onnx $(DATA)/WiFi/1_3_17.npy examples/recordings/intel5300/sample_0x1_ap.dat

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
