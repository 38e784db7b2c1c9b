"""smenv's model server: TensorFlow Serving's REST API and the Open Inference Protocol v2, on waitress.

Runs INSIDE the image, on whatever Python and TensorFlow the resolver chose (Python 3.5 syntax at the
oldest, as smenv/runtime/verify.py; tests/test_serve_compat.py checks it). Its only dependencies are
the standard library, numpy (which TensorFlow brings) and waitress (pure Python, no dependencies,
locked with the model's environment). docs/serving.md says why waitress, and how each part behaves.

Modules:
- adapter: the seam between the HTTP API and a model (TensorSpec, Signature, Adapter) and the
  TensorFlow adapter (SavedModel, .keras, .h5);
- codec: JSON <-> numpy for both protocols, with every check a bad request needs;
- runner: model calls on a thread pool, with a time limit and optional server-side batching;
- metrics: Prometheus text exposition, written by hand (prometheus_client has no wheel before 2020);
- openapi: the OpenAPI 3 description of the API, built from the model's signatures;
- app: the WSGI application (routing, both protocols, errors as {"error": ...});
- server: waitress with JSON errors, a background load and warm-up, and a SIGTERM drain;
- testing: a numpy stand-in for a model, for tests and for trying the server without TensorFlow.
"""

SERVER_NAME = "smenv"
SERVER_VERSION = "1"
