# avlab: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data/talking-faces-quick
LIP_DATA ?= data/lip-words-quick
LOC_DATA ?= data/sounding-objects-quick
RUN ?= runs/main
WORKERS ?= 2
# Which torch build set-up installs. auto: the CPU build (~0.2 GB of wheels) from PyTorch's CPU index
# when this machine has no NVIDIA GPU and can reach that index, else PyPI's default build (CUDA, ~5.5 GB
# in the venv; it runs on CPUs too). cpu: the CPU build or a clear error. cuda: PyPI's build.
TORCH ?= auto
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PINS := torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0

.PHONY: run run-localisation test lab demo setup synth clean-venv help

help:
	@echo "make run   - set up .venv if needed, generate the quick synthetic sets, run the main job"
	@echo "             (TORCH=auto|cpu|cuda picks the torch build set-up installs; see README)"
	@echo "make test  - set up .venv if needed, run the whole test suite"
	@echo "make run-localisation - the main job's sound-localisation stage alone (CMAC on sounding-objects)"
	@echo "make lab   - JupyterLab on notebooks/ with the avlab kernel"
	@echo "make demo  - Gradio demo of the newest run of each task on http://127.0.0.1:7860 (trains a quick one if none)"

# Re-install whenever pyproject.toml changes (the stamp is older than it).
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "avlab needs $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	@TORCH=$(TORCH) PY=$(PY) INDEX=$(TORCH_CPU_INDEX) PINS="$(TORCH_PINS)" sh tools/install_torch.sh
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name avlab --display-name "Python (avlab)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/avlab run-main --data $(DATA) --lip-data $(LIP_DATA) --loc-data $(LOC_DATA) --out $(RUN) --workers $(WORKERS)

# The sound-localisation stage alone (CMAC on the quick sounding-objects set), e.g. to re-run it.
run-localisation: $(STAMP)
	$(VENV)/bin/avlab run-main --tasks sound-localisation --loc-data $(LOC_DATA) --out $(RUN) --workers $(WORKERS)

test: $(STAMP)
	$(PY) -m pytest -q

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1

# DEMO_ARGS="--share" (public link), "--run runs/x", "--port 7861", … ; see `avlab demo --help`.
demo: $(STAMP)
	$(VENV)/bin/avlab demo $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)
