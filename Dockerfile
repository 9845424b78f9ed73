# rfsense on the CPU: `docker build -t rfsense . && docker run --rm rfsense` prints the CLI help.
# Mount data and runs to work for real, e.g.
#   docker run --rm -v $PWD/data:/app/data -v $PWD/runs:/app/runs rfsense rfsense train configs/quickstart.yaml
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app

# The CPU build of torch first (the +cpu wheel from PyTorch's CPU index sorts above PyPI's CUDA
# build of the same version), so the package install below finds its torch requirement met.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY rfsense ./rfsense
COPY configs ./configs
# The training and recordings extras too, so every command in the image works (the edge set alone runs infer),
# and the compiled preprocessing kernels (numba) the runtime uses once they are built (in the background, ~3 s).
RUN pip install '.[train,recordings,fast]'

CMD ["rfsense", "--help"]
