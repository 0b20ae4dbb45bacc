# dfn on the CPU: `docker build -t dfn .` then `docker run --rm -v $PWD/runs:/dfn/runs dfn`
# runs a short steerable-filter fit (W&B offline; the run lands in ./runs/steerable_docker).
#
# CUDA: build from a CUDA PyTorch build instead of the CPU one, e.g.
#   docker build -t dfn:cuda --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# and run with `docker run --gpus all ...` (needs the NVIDIA container toolkit on the host).
#
# BASE_IMAGE: any Debian-like image with python3 (>= 3.10) and its venv module; the default is
# the official slim Python image. container/build_with_buildah.sh builds this file without a
# Docker engine from a Debian base made with debootstrap.
# Apptainer / Singularity: container/README.md has the one conversion command.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# gcc builds the fused CPU kernel of dfn.ops on first use (without it dfn falls back to PyTorch ops)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# a virtual environment: Debian's own python3 refuses system-wide pip installs (PEP 668)
RUN python3 -m venv /opt/dfn-venv
ENV PATH=/opt/dfn-venv/bin:$PATH

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /dfn
COPY pyproject.toml README.md ./
COPY dfn dfn
COPY datamodules datamodules
RUN pip install --no-cache-dir ".[video,mnist]"
COPY configs configs

ENV WANDB_MODE=offline
CMD ["python", "-m", "dfn", "fit", "--config", "configs/steerable.yaml", \
     "--trainer.max_steps", "500", "--run_dir", "runs/steerable_docker"]
