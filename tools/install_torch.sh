#!/bin/sh
# Installs the torch build that `make` set-up asks for (TORCH=auto|cpu|cuda), before the project, so
# the project's own pins are then already satisfied. Called by the Makefile with TORCH, PY, INDEX, PINS.
set -e
has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
installed() { "$PY" -c "import torch; print('cpu' if torch.version.cuda is None else 'cuda')" 2>/dev/null || echo none; }
cpu_build() { "$PY" -m pip install --quiet --timeout 10 --retries 0 --index-url "$INDEX" $PINS; }
case "$TORCH" in
  cuda) exit 0 ;;  # PyPI's default build comes with the project's dependencies
  cpu|auto)
    if [ "$TORCH" = auto ] && has_gpu; then exit 0; fi
    case "$(installed)" in
      cpu) exit 0 ;;
      cuda) echo "this venv already holds a CUDA build of torch (it runs on CPUs too); 'make clean-venv' first" \
                 "to replace it with the CPU build" >&2; [ "$TORCH" = auto ] && exit 0 || exit 1 ;;
    esac
    if cpu_build 2>/dev/null; then
      echo "installed the CPU build of torch from $INDEX"
    elif [ "$TORCH" = cpu ]; then
      echo "TORCH=cpu: could not install the CPU build from $INDEX (unreachable from here?); 'make run TORCH=cuda'" \
           "uses PyPI's build, which also runs on CPUs" >&2; exit 1
    else
      echo "no NVIDIA GPU here, but $INDEX is unreachable: installing PyPI's torch build (CUDA; runs on CPUs)"
    fi ;;
  *) echo "TORCH must be auto, cpu or cuda, got '$TORCH'" >&2; exit 1 ;;
esac
