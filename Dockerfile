# mixcut on an official CUDA PyTorch image. Build:  docker build -t mixcut .
# Run (GPUs, data mounted read-only, results in ./outputs):
#   docker run --gpus all --ipc=host -v /path/to/imagenet:/data:ro -v $PWD/outputs:/app/outputs \
#       mixcut python train.py data=imagenet data.root=/data model.name=resnet50 aug=imagenet
# The base carries torch 2.6.0 / torchvision 0.21.0: the minimum pyproject.toml declares (engine.py needs
# torch.nn.utils.get_total_norm and clip_grads_with_norm_, new in 2.6), the versions `make test-min` runs the fast
# suite on, and the same CUDA 12.4 as before (no new driver needed). tests/scripts/test_packaging.py keeps the
# tag and the declared minimum in step.
FROM pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime

WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WANDB_MODE=offline

# Dependencies first (cached layer); torch and torchvision come with the base image.
COPY pyproject.toml README.md ./
COPY mixcut/__init__.py mixcut/__init__.py
RUN pip install -e ".[slurm]"

COPY . .
RUN pip install --no-deps -e .

CMD ["python", "train.py"]
