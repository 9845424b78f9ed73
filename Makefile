# Quick start:  make demo   (set up, then synth -> check -> train -> eval -> export -> infer -> stress)
#               make test   (set up, then the test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data/synth-quickstart
RUN    ?= runs/quickstart
CAPTURE = examples/recordings/intel5300/sample_0x1_ap.dat

.PHONY: setup demo test edge-check bench bench-learning bench-stress clean

$(BIN)/rfsense: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; the train extra's torch range accepts it
	$(BIN)/pip install -q -e '.[train,recordings,plots,fast,dev]'
	touch $@

setup: $(BIN)/rfsense

demo: setup
	$(BIN)/rfsense synth $(DATA) --volunteers 2 --actions 10 --trials 20 --workers 2
	$(BIN)/rfsense data check $(DATA)
	$(BIN)/rfsense train configs/quickstart.yaml --overwrite
	$(BIN)/rfsense export $(RUN) --out export/
	$(BIN)/rfsense infer export/rfsense.onnx $(DATA)/WiFi/1_3_17.npy $(CAPTURE)
	$(BIN)/rfsense stress export/rfsense.onnx $(RUN) --data $(DATA) --limit 24 --workers 2 \
	    --faults missing,gaussian,nan-inf,dead-receiver,sensor-lost --severities 0,3,5

test: setup
	$(BIN)/python -m pytest -q

# The torch-free edge install: a venv with the edge set only runs `rfsense infer` on an exported model.
edge-check: setup
	.ci/edge_check

bench: setup
	for b in benchmarks/bench_*.py; do case $$b in *bench_learning*|*bench_stress*|*bench_fault_training*) ;; *) $(BIN)/python $$b --results || exit 1;; esac; done

bench-learning: setup
	$(BIN)/python benchmarks/bench_learning.py --results

bench-stress: setup   # needs `make demo` first (the quick-start data and model)
	$(BIN)/python benchmarks/bench_stress.py --results
	$(BIN)/python benchmarks/bench_fault_training.py --results

clean:
	rm -rf $(VENV) .venv-edge build *.egg-info .pytest_cache
