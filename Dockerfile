# mixcut on an official CUDA PyTorch image. Build:  docker build -t mixcut .
# Run (GPUs, data mounted read-only, results in ./outputs):
#   docker run --gpus all --ipc=host -v /path/to/imagenet:/data:ro -v $PWD/outputs:/app/outputs \
#       mixcut python train.py data=imagenet data.root=/data model.name=resnet50 aug=imagenet
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

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
