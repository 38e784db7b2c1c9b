"""`python -m serve` in the image (/opt/smenv on sys.path), `python -m smenv.runtime.serve` on a host.

Settings come from flags, else the environment, else the defaults below (docs/serving.md lists them):
PORT, MODEL_NAME, SMENV_PLAN, SMENV_THREADS, SMENV_MODEL_THREADS, SMENV_MAX_QUEUE,
SMENV_REQUEST_TIMEOUT, SMENV_MAX_REQUEST_BYTES, SMENV_BATCHING, SMENV_MAX_BATCH_SIZE,
SMENV_BATCH_TIMEOUT_MS, SMENV_BATCH_THREADS, SMENV_DRAIN_SECONDS, SMENV_CHANNEL_TIMEOUT, SMENV_HOST.

Python 3.5 syntax (see the package docstring).
"""

import argparse
import importlib
import os
import sys

from .app import Config, log
from .runner import BatchConfig

DEFAULT_PLAN = "/opt/smenv/smenv.json"


def _env(name, default, kind=str):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit("smenv-serve: %s=%r is not a valid %s" % (name, raw, kind.__name__))


def _flag(text):
    return text.strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="serve", description="Serve one model over TensorFlow Serving's REST API and the Open Inference Protocol v2.")
    p.add_argument("--plan", default=_env("SMENV_PLAN", DEFAULT_PLAN), help="smenv.json (default %(default)s)")
    p.add_argument("--model", default=None, help="model path (default: the plan's)")
    p.add_argument("--model-name", default=os.environ.get("MODEL_NAME") or None, help="the name in the URLs (MODEL_NAME)")
    p.add_argument("--sample-input", default=_env("SMENV_SAMPLE_INPUT", None), help=".npz to warm up with")
    p.add_argument("--host", default=_env("SMENV_HOST", "0.0.0.0"))
    p.add_argument("--port", type=int, default=_env("PORT", 8501, int))
    p.add_argument("--threads", type=int, default=_env("SMENV_THREADS", 8, int), help="HTTP threads")
    p.add_argument("--model-threads", type=int, default=_env("SMENV_MODEL_THREADS", 4, int), help="concurrent model calls")
    p.add_argument("--max-queue", type=int, default=_env("SMENV_MAX_QUEUE", 64, int), help="model calls waiting or running; more: 503")
    p.add_argument("--request-timeout", type=float, default=_env("SMENV_REQUEST_TIMEOUT", 60.0, float), help="seconds a request waits for the model")
    p.add_argument("--max-request-bytes", type=int, default=_env("SMENV_MAX_REQUEST_BYTES", 64 * 1024 * 1024, int))
    p.add_argument("--batching", action="store_true", default=_flag(_env("SMENV_BATCHING", "0")))
    p.add_argument("--max-batch-size", type=int, default=_env("SMENV_MAX_BATCH_SIZE", 32, int))
    p.add_argument("--batch-timeout-ms", type=float, default=_env("SMENV_BATCH_TIMEOUT_MS", 2.0, float))
    p.add_argument("--batch-threads", type=int, default=_env("SMENV_BATCH_THREADS", 2, int))
    p.add_argument("--drain-seconds", type=float, default=_env("SMENV_DRAIN_SECONDS", 8.0, float))
    p.add_argument("--channel-timeout", type=float, default=_env("SMENV_CHANNEL_TIMEOUT", 30.0, float), help="idle connection timeout")
    p.add_argument("--adapter", default=None, help="module:callable returning an Adapter (tests); default: TensorFlow")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    plan = None
    if args.adapter is None:
        from .adapter import load_plan

        plan = load_plan(args.plan)
    name = args.model_name or ((plan or {}).get("image") or {}).get("model_name") or "model"
    batching = BatchConfig(args.max_batch_size, args.batch_timeout_ms / 1000.0, args.batch_threads) if args.batching else None
    config = Config(model_name=name, host=args.host, port=args.port, threads=args.threads, model_threads=args.model_threads,
                    max_queue=args.max_queue, request_timeout=args.request_timeout, max_body=args.max_request_bytes,
                    batching=batching, drain_seconds=args.drain_seconds, channel_timeout=args.channel_timeout)
    if args.adapter is not None:
        module, _, attr = args.adapter.partition(":")
        factory = getattr(importlib.import_module(module), attr or "make")
    else:
        factory = _tensorflow_factory(plan, args.model, args.sample_input)
    from .server import serve

    log("batching %s" % ("on: up to %d rows, %gms" % (batching.max_batch_size, args.batch_timeout_ms) if batching else "off"))
    return serve(config, factory)


def _tensorflow_factory(plan, model, sample_input):
    def factory():
        from .adapter import TensorFlowAdapter

        samples = {}
        if sample_input:
            import numpy as np

            with np.load(sample_input, allow_pickle=False) as data:
                samples = dict((k, data[k]) for k in data.files)
        return TensorFlowAdapter(plan, model, samples)

    return factory


if __name__ == "__main__":
    sys.exit(main())
