#!/usr/bin/env bash
# Download, into .whl/, the wheels tools/gpu_check.sh installs on a GPU machine whose
# image has python 3.12, torch, triton, numpy and transformers but nothing else of
# latestore's (the device machine): the SQL and FAISS stack, plus flash-maxsim and
# late-interaction-kernels, which the GPU benchmark runs side by side and latestore
# never imports, and colpali-engine with Pillow for the encoder benchmark. About 34 MB
# (the device call carries at most 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
WHEELS=(
    faiss-cpu==1.15.1 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 pydantic==2.14.4
    pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 greenlet==3.5.6
    typing-extensions==4.16.0 flash-maxsim==0.3.0 late-interaction-kernels==0.4.5
    # bench/gpu_encoders.py's reference (pure python; its peft/scipy imports are lazy)
    # and the PIL its processors draw pages with (~7 MB).
    colpali-engine==0.3.18 pillow==12.3.0
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "${WHEELS[@]}"
ls .whl
