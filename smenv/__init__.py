"""smenv: turn a TensorFlow/Keras model into a container environment that loads it."""

__version__ = "0.1.0"
