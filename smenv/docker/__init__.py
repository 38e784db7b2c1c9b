"""The Docker side of smenv: the engine behind a small interface, and base images for hosts with no registry.

engine.py       connect() to the engine DOCKER_HOST or the current Docker context names; Engine operations
interface.py    ContainerEngine: the operations the pipeline uses, which Engine and test fakes implement
base_image.py   a Debian python3 base image made with debootstrap and `docker import`
"""
