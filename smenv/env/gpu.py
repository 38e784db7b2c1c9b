"""GPU base images for the TensorFlow releases whose GPU route needs a CUDA runtime image.

Releases from 2.14 install CUDA and cuDNN as pip wheels (`tensorflow[and-cuda]`) and need no such
image. CUDA/cuDNN per release come from smenv/data/tf_releases.json (tensorflow/docs
site/en/install/source.md); the image tags and the Python each Ubuntu ships are NVIDIA's nvidia/cuda
tags (hub.docker.com/r/nvidia/cuda) and Ubuntu's python3 package: 18.04 -> 3.6, 20.04 -> 3.8, 22.04 -> 3.10.
"""

from __future__ import annotations

CUDA_IMAGES: dict[str, tuple[str, str]] = {
    "10.0": ("nvidia/cuda:10.0-cudnn7-runtime-ubuntu18.04", "3.6"),
    "10.1": ("nvidia/cuda:10.1-cudnn7-runtime-ubuntu18.04", "3.6"),
    "11.0": ("nvidia/cuda:11.0.3-cudnn8-runtime-ubuntu20.04", "3.8"),
    "11.2": ("nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04", "3.8"),
    "11.8": ("nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", "3.10"),
}
ROUTES_WITH_CUDA_IMAGE = ("cuda-base-image", "tensorflow-gpu")
