"""Write a large SavedModel: thousands of small tf.functions and a saved_model.pb over 100 MB.

Runs with the bench's TensorFlow venv (`run.py` calls it), never with smenv's: smenv does not depend
on TensorFlow. The big constants are embedded in function graphs (Const nodes), so they land in
saved_model.pb itself, not in variables/, which is what makes the protobuf large.

    python gen_large_model.py OUT_DIR [--functions 3000] [--constant-mb 110]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

SPEC = tf.TensorSpec([None], tf.float32)


def small_function(i: int):
    @tf.function(input_signature=[SPEC])
    def f(x):
        y = tf.tanh(x * float(i + 1) + 0.5)
        return y - tf.reduce_mean(x) + tf.cast(tf.size(x), tf.float32)

    return f


def constant_function(values: np.ndarray):
    @tf.function(input_signature=[SPEC])
    def g(x):
        return x + tf.reduce_sum(tf.constant(values))

    return g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--functions", type=int, default=3000)
    parser.add_argument("--constant-mb", type=int, default=110)
    args = parser.parse_args()

    module = tf.Module()
    for i in range(args.functions):
        setattr(module, f"f{i:05d}", small_function(i))
    rng = np.random.default_rng(0)  # random floats: the bytes do not compress away
    chunk_mb = 10
    for j in range(-(-args.constant_mb // chunk_mb)):
        values = rng.standard_normal(chunk_mb * (1 << 20) // 4, dtype=np.float32)
        setattr(module, f"c{j:03d}", constant_function(values))
    serving = module.f00000.get_concrete_function()
    tf.saved_model.save(module, args.out, signatures={"serving_default": serving})
    size = os.path.getsize(os.path.join(args.out, "saved_model.pb"))
    print(f"wrote {args.out}: {args.functions} functions, saved_model.pb {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
