"""The files smenv's own code puts into every image, beside the model: the verifier and the model server.

One list for both ways an image is made (the build context's `COPY` lines, smenv/render/context.py,
and the assembled layer, smenv/pipeline.py), so both give the same files. In the image they live in
/opt/smenv, which is on PYTHONPATH: `python /opt/smenv/verify.py`, and `python -m serve` (the CMD).
"""

from __future__ import annotations

from importlib import resources

RUNTIME_DIR = "/opt/smenv"
SERVE_PACKAGE = "serve"  # /opt/smenv/serve, imported as `serve`
PORT = 8501  # TensorFlow Serving's REST port, which clients written for it expect
# Top-level module names the runtime takes: /opt/smenv comes first on the image's PYTHONPATH, so a --code
# module of the same name would never be imported (pipeline.check_code and model/builder.py refuse them).
RUNTIME_MODULES = ("verify", SERVE_PACKAGE)
CMD = ("python", "-m", "serve")
PROBE = ("python", "-m", "serve.probe")  # GET /v2/health/ready on 127.0.0.1:$PORT; no curl needed
# HEALTHCHECK timings. The start period covers importing TensorFlow and loading the model (7 to 14 s
# measured for TF 2.15/2.18 images, docs/serving.md; larger models take longer): failures inside it do
# not count, and the first success ends it early.
HEALTH_INTERVAL_S, HEALTH_TIMEOUT_S, HEALTH_START_S, HEALTH_RETRIES = 10, 5, 120, 3


def verifier() -> bytes:
    return resources.files("smenv.runtime").joinpath("verify.py").read_bytes()


def server_files() -> list[tuple[str, bytes]]:
    """(name inside serve/, bytes) of the server package's modules, sorted: no byte code, no tests' data."""
    package = resources.files("smenv.runtime.serve")
    return sorted((f.name, f.read_bytes()) for f in package.iterdir() if f.name.endswith(".py") and f.is_file())


def healthcheck_config() -> dict:
    """The image config's Healthcheck, as `HEALTHCHECK --interval ... CMD [...]` gives it (nanoseconds)."""
    ns = 1_000_000_000
    return {"Test": ["CMD", *PROBE], "Interval": HEALTH_INTERVAL_S * ns, "Timeout": HEALTH_TIMEOUT_S * ns,
            "StartPeriod": HEALTH_START_S * ns, "Retries": HEALTH_RETRIES}
