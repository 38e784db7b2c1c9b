"""What a valid input looks like, read from the model's own files, for the verifier's one call.

The in-image verifier (smenv/runtime/verify.py) calls the model once with input it makes up. Made-up
input the model rejects would report a model that loads as broken, so what the files say is read here,
statically (no TensorFlow), into `CallHint`s that reach the verifier in smenv.json (`model.call_hints`):
- the input's dtype and shape (Keras InputLayer `dtype` and `batch_shape`/`batch_input_shape`;
  SavedModel signatures: TensorInfo dtype and shape);
- integer ids below `input_dim` for an input that feeds an Embedding (`num_tokens` for CategoryEncoding),
  whatever dtype its InputLayer declares: a Keras 2 Sequential gives it the Embedding's float32, and
  Embedding casts the floats to ids;
- text for string inputs, or an (empty) serialised tf.Example when the graph parses examples;
- for unknown lengths, a size the layers accept: the convolutions, poolings and croppings that follow
  an input are run on paper (`min_length`), so a Conv1D or a Cropping1D gets a sequence long enough.
What it does not understand it leaves to the verifier's defaults. The verifier tries the next length
when a call fails, and a call that still fails on made-up input is "not checked", never a failure.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from smenv.model.facts import CallHint, InputHint, Signature, TensorSpec

KERAS_SIGNATURE = "keras_model"  # the name smenv/model/keras_config.py gives a Keras model's one signature
VALUE_KINDS = ("normal", "zeros", "ids", "text", "example")
LADDER = (8, 32, 128)  # sizes tried, in order, for unknown dimensions (each raised to the layers' minimum)
MAX_LENGTH = 1 << 16  # a minimum beyond this is not searched for: the verifier would not allocate it
MAX_LAYERS = 20000  # a config with more layers is read up to here
MAX_DEPTH = 6  # models nested in models

# Ops that read serialised tf.Example / SequenceExample protos (tensorflow/core/ops/parsing_ops.cc): a
# string input of such a graph is a serialised proto, and the empty string is a valid, empty Example.
PARSE_OPS = frozenset({
    "ParseExample", "ParseExampleV2", "ParseSingleExample", "ParseSequenceExample", "ParseSequenceExampleV2",
    "ParseSingleSequenceExample",
})
# A string input of such a graph is a serialised proto when its signature classifies or regresses (TF Serving's
# Classify and Regress APIs take tf.Example), or when its name says so (Estimator and TFX receivers).
EXAMPLE_METHODS = frozenset({"tensorflow/serving/classify", "tensorflow/serving/regress"})
EXAMPLE_NAMES = re.compile(r"(?:^|[/_])(?:examples?|inputs|serialized(?:_examples?)?|input_example_tensor)(?::\d+)?$")
# Layers that take integer ids below a size in their config.
ID_LAYERS = {"Embedding": "input_dim", "CategoryEncoding": "num_tokens"}
# Layers that hand their input on with the same values at inference (so ids stay ids behind them).
PASS_THROUGH = frozenset({
    "Reshape", "Flatten", "Permute", "RepeatVector", "Dropout", "SpatialDropout1D", "AlphaDropout",
    "GaussianDropout", "GaussianNoise", "Masking", "ActivityRegularization", "Identity", "Cropping1D",
    "ZeroPadding1D", "UpSampling1D",
})
RNN_LAYERS = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN", "CuDNNLSTM", "CuDNNGRU", "LSTMV1", "GRUV1"})
ENDS_SEQUENCE = frozenset({"Flatten", "Reshape", "Permute", "RepeatVector"})  # the sizes are not followed further

_CONV = re.compile(r"(?:Conv|Convolution|SeparableConv|SeparableConvolution|DepthwiseConv|LocallyConnected|"
                   r"AtrousConvolution)([123])D$")
_DECONV = re.compile(r"(?:Conv|Convolution)([123])DTranspose$|Deconvolution([123])D$")
_POOL = re.compile(r"(?:Max|Average|Avg)Pool(?:ing)?([123])D$")
_GLOBAL_POOL = re.compile(r"Global(?:Max|Average|Avg)Pool(?:ing)?[123]D$")
_CROP = re.compile(r"Cropping([123])D$")
_PAD = re.compile(r"ZeroPadding([123])D$")
_UP = re.compile(r"UpSampling([123])D$")


# -- SavedModel signatures ---------------------------------------------------------------------------


def signature_hints(signatures: Iterable[Signature], ops: Mapping[str, int]) -> tuple[CallHint, ...]:
    """Hints for SavedModel signatures: dtype and shape from their TensorInfo, strings by what the graph does."""
    parses = sorted(PARSE_OPS & set(ops))
    hints = []
    for sig in signatures:
        if not sig.inputs or sig.name.startswith("__"):  # __saved_model_init_op: not called
            continue
        classifies = sig.method_name in EXAMPLE_METHODS
        inputs = tuple(_plain_hint(spec, parses, classifies) for spec in sig.inputs)
        hints.append(CallHint(sig.name, inputs, _lengths(sig.inputs, 1)))
    return tuple(hints)


def _plain_hint(spec: TensorSpec, parses: list[str], classifies: bool) -> InputHint:
    dtype = spec.dtype or ""
    if dtype == "string":
        named = EXAMPLE_NAMES.search(spec.name) or EXAMPLE_NAMES.search(spec.tensor_name or "")
        if parses and (classifies or named):
            return InputHint(spec.name, spec.dtype, spec.shape, "example",
                             because=f"the graph parses serialised tf.Example protos ({parses[0]})")
        return InputHint(spec.name, spec.dtype, spec.shape, "text")
    return InputHint(spec.name, spec.dtype, spec.shape, _by_dtype(dtype))


def _by_dtype(dtype: str) -> str:
    if dtype == "string":
        return "text"
    if dtype == "bool" or dtype.startswith(("int", "uint", "qint", "quint")):
        return "zeros"  # 0 is a valid id, index and flag for any size
    return "normal"


def _lengths(specs: Iterable[TensorSpec], minimum: int) -> tuple[int, ...]:
    """The sizes to try for unknown non-batch dimensions; () when every input's shape is known."""
    if not any(s.shape is not None and None in s.shape[1:] for s in specs):
        return ()  # (an input of unknown rank gets one value per batch item: shape [1])
    return tuple(sorted({max(minimum, n) for n in LADDER}))


# -- Keras model configs ----------------------------------------------------------------------------


def keras_hint(model: object, signature: Signature | None) -> CallHint | None:
    """The hint for a Keras model config ({"class_name", "config"}) and its signature (keras_config.model_signature)."""
    if signature is None or not signature.inputs:
        return None
    graph = _Graph.of(model) if isinstance(model, dict) else None
    nodes = [graph.input_for(i, spec.name) if graph else None for i, spec in enumerate(signature.inputs)]
    inputs = []
    id_fed = []
    for spec, node in zip(signature.inputs, nodes):
        ids = graph.ids_for(node) if graph is not None and node is not None else None
        id_fed.append(ids is not None)
        if ids is not None and (spec.dtype or "float32") != "string":
            high, because = ids
            inputs.append(InputHint(spec.name, spec.dtype, spec.shape, "ids", 0, high, because))
        else:
            inputs.append(InputHint(spec.name, spec.dtype, spec.shape, _by_dtype(spec.dtype or "float32")))
    lengths = _lengths(signature.inputs, 1)
    because = None
    if lengths and graph is not None:
        fed = [(node, spec, ids) for node, spec, ids in zip(nodes, signature.inputs, id_fed) if node is not None]
        minimum, because = min_length(graph, fed)
        lengths = _lengths(signature.inputs, minimum)
    return CallHint(KERAS_SIGNATURE, tuple(inputs), lengths, because)


@dataclass
class _Node:
    class_name: str  # without a "package>" prefix
    name: str
    layer: dict  # the layer's whole entry ({"class_name", "config", ...})
    preds: list[int] = field(default_factory=list)
    _sub: object = False  # the model this layer is, once read (None when it is not one)

    def sub(self, depth: int) -> _Graph | None:
        if self._sub is False:
            nested = isinstance(self.config.get("layers"), list) and depth < MAX_DEPTH
            self._sub = _Graph.of(self.layer, depth + 1) if nested else None
        return self._sub

    @property
    def config(self) -> dict:
        conf = self.layer.get("config")
        return conf if isinstance(conf, dict) else {}


@dataclass
class _Graph:
    nodes: list[_Node]
    inputs: list[int]  # node ids of the model's inputs, in keras_config.model_signature's order
    outputs: list[int]
    depth: int = 0
    _consumers: dict[int, list[int]] | None = None
    _order: list[int] | None = None

    @classmethod
    def of(cls, model: dict, depth: int = 0) -> _Graph | None:
        """The layer graph of a Sequential or functional model config; None when it is neither."""
        conf = model.get("config")
        if isinstance(conf, list):  # Keras <= 2.2 wrote a Sequential's config as its list of layers
            layers, functional, conf = conf, False, {}
        elif isinstance(conf, dict) and isinstance(conf.get("layers"), list):
            layers, functional = conf["layers"], isinstance(conf.get("input_layers"), (list, dict))
        else:
            return None
        entries = [entry for entry in layers[:MAX_LAYERS] if isinstance(entry, dict) and isinstance(entry.get("class_name"), str)]
        graph = cls([], [], [], depth)
        if functional:
            graph._functional(entries, conf)
        else:
            graph._sequential(entries)
        return graph

    def _sequential(self, entries: list[dict]) -> None:
        for entry in entries:
            node = _node(entry)
            if node.class_name == "InputLayer":
                self.inputs.append(len(self.nodes))
            elif not self.inputs and _batch_shape(node.config) is not None:
                # The first layer carries the input's shape; Keras makes its InputLayer at load time.
                self.inputs.append(len(self.nodes))
                self.nodes.append(_Node("InputLayer", node.name, {"class_name": "InputLayer", "config": node.config}))
            if self.nodes and node.class_name != "InputLayer":
                node.preds = [len(self.nodes) - 1]
            self.nodes.append(node)
        if self.nodes:
            self.outputs = [len(self.nodes) - 1]

    def _functional(self, entries: list[dict], conf: dict) -> None:
        by_name: dict[str, int] = {}
        for entry in entries:
            node = _node(entry)
            by_name.setdefault(node.name, len(self.nodes))
            if node.class_name == "InputLayer" or (not self.inputs and _batch_shape(node.config) is not None):
                self.inputs.append(len(self.nodes))
            self.nodes.append(node)
        for node in self.nodes:
            node.preds = [by_name[n] for n in _history_names(node.layer.get("inbound_nodes")) if n in by_name]
        self.outputs = [by_name[n] for n in _history_names(conf.get("output_layers")) if n in by_name]

    def input_for(self, position: int, name: str) -> int | None:
        for i in self.inputs:
            if self.nodes[i].name == name:
                return i
        return self.inputs[position] if position < len(self.inputs) else None

    def consumers(self, node: int) -> list[int]:
        if self._consumers is None:
            self._consumers = {}
            for i, n in enumerate(self.nodes):
                for p in dict.fromkeys(n.preds):
                    self._consumers.setdefault(p, []).append(i)
        return self._consumers.get(node, [])

    def ids_for(self, node: int) -> tuple[int, str] | None:
        """(input_dim, why) when the input feeds an id layer, through layers that keep values; else None."""
        found: list[tuple[int, str]] = []
        seen = {node}
        queue = deque([node])
        if self.nodes[node].class_name != "InputLayer":  # a Sequential's first layer that carried the shape
            queue = deque()
            found += _id_layer(self.nodes[node].layer, self.depth)
        while queue and len(seen) < MAX_LAYERS:
            for c in self.consumers(queue.popleft()):
                if c in seen:
                    continue
                seen.add(c)
                consumer = self.nodes[c]
                hits = _id_layer(consumer.layer, self.depth)
                found += hits
                if not hits and consumer.class_name in PASS_THROUGH:
                    queue.append(c)
        return min(found) if found else None

    def order(self) -> list[int]:
        """Node ids, inputs first, each after the layers it takes input from (a cycle is broken by list order)."""
        if self._order is None:
            self._order = self._sorted()
        return self._order

    def _sorted(self) -> list[int]:
        waiting = {i: {p for p in n.preds if p != i} for i, n in enumerate(self.nodes)}
        done: list[int] = []
        placed: set[int] = set()
        ready = deque(i for i, preds in waiting.items() if not preds)
        unplaced = iter(range(len(self.nodes)))
        while len(done) < len(self.nodes):
            if not ready:  # a cycle (a hostile config): take the first node left
                ready.append(next(i for i in unplaced if i not in placed))
            i = ready.popleft()
            if i in placed:
                continue
            placed.add(i)
            done.append(i)
            for c in self.consumers(i):
                waiting[c].discard(i)
                if not waiting[c] and c not in placed:
                    ready.append(c)
        return done


def _node(entry: dict) -> _Node:
    conf = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = entry.get("name") if isinstance(entry.get("name"), str) else conf.get("name")
    return _Node(entry["class_name"].split(">")[-1], name if isinstance(name, str) else "", entry)


def _batch_shape(conf: dict) -> list | None:
    shape = conf.get("batch_shape", conf.get("batch_input_shape"))
    if isinstance(shape, dict):  # legacy {"class_name": "__tuple__", "items": [...]}
        shape = shape.get("items")
    return shape if isinstance(shape, list) else None


def _history_names(value: object) -> list[str]:
    """Layer names an `inbound_nodes` (or `output_layers`) value refers to, in either serialisation.

    Legacy: [[["input_1", 0, 0, {}], ...], ...]; new (Keras 3, tf.keras .keras files): [{"args": [{"class_name":
    "__keras_tensor__", "config": {"keras_history": ["input_1", 0, 0]}}], "kwargs": {...}}].
    """
    names: list[str] = []
    stack = [(value, 0)]
    while stack and len(names) < MAX_LAYERS:
        item, depth = stack.pop()
        if depth > 12:
            continue
        if isinstance(item, dict):
            history = item.get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
                continue
            stack.extend((v, depth + 1) for v in reversed(list(item.values())))
        elif isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and all(isinstance(x, int) for x in item[1:3]):
                names.append(item[0])
                continue
            stack.extend((v, depth + 1) for v in reversed(item))
    return list(dict.fromkeys(names))


def _id_layer(layer: dict, depth: int) -> list[tuple[int, str]]:
    """(size, why) for an Embedding-like layer, a wrapper around one, or a nested model that starts with one."""
    name = layer.get("class_name")
    conf = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    if not isinstance(name, str):
        return []
    name = name.split(">")[-1]
    key = ID_LAYERS.get(name)
    if key is not None:
        size = conf.get(key)
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            label = conf.get("name") if isinstance(conf.get("name"), str) else name.lower()
            return [(size, f"feeds {name} {label!r} ({key} {size})")]
        return []
    inner = conf.get("layer")
    if isinstance(inner, dict) and depth < MAX_DEPTH:  # TimeDistributed, Bidirectional
        return _id_layer(inner, depth + 1)
    sub = _node(layer).sub(depth)
    if sub is not None:  # a model used as a layer: what its inputs feed
        return [ids for ids in map(sub.ids_for, sub.inputs) if ids is not None]
    return []


# -- lengths: the layers after an input, run on paper ----------------------------------------------------


class _TooShort(Exception):
    def __init__(self, node: _Node):
        self.node = node


def min_length(graph: _Graph, inputs: list[tuple[int, TensorSpec, bool]]) -> tuple[int, str | None]:
    """The shortest size for the inputs' unknown dimensions that every layer after them accepts.

    `inputs`: (node id, spec, feeds an id layer). An id input's dimensions after the batch are all
    positions; another input's last dimension is its channels (channels_last, the only layout TensorFlow
    convolves on CPU). Sizes only grow with the input's, so the shortest is found by bisection.
    Returns (1, None) when nothing constrains it, and (1, why) when no size up to MAX_LENGTH works.
    """
    order = graph.order()

    def fits(n: int) -> _Node | None:
        try:
            _run(graph, order, inputs, n)
        except _TooShort as short:
            return short.node
        return None

    if fits(1) is None:
        return 1, None
    if fits(MAX_LENGTH) is not None:
        return 1, f"no length up to {MAX_LENGTH} fits the layers"
    low, high = 1, MAX_LENGTH  # low does not fit, high does
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid) is None:
            high = mid
        else:
            low = mid
    node = fits(low)
    return high, f"{node.class_name} {node.name!r} rejects length {low}; {high} is the shortest the layers accept"


def _run(graph: _Graph, order: list[int], inputs: list[tuple[int, TensorSpec, bool]], n: int) -> dict[int, tuple]:
    state: dict[int, tuple | None] = {}
    for node, spec, ids in inputs:
        if spec.shape is None or len(spec.shape) < 2:
            continue
        dims = spec.shape[1:] if ids else spec.shape[1:-1]
        state[node] = tuple(n if d is None else d for d in dims)
    for i in order:
        if i in state:
            continue
        node = graph.nodes[i]
        before = [state[p] for p in node.preds if state.get(p) is not None]
        if before:
            state[i] = _through(node, before[0], graph.depth)
    return state


def _through(node: _Node, sizes: tuple, depth: int) -> tuple | None:
    """The sizes after `node`; None when they are no longer followed; _TooShort when the layer rejects them."""
    name, conf = node.class_name, node.config
    for pattern, shape_of in ((_CONV, _conv), (_DECONV, _deconv), (_POOL, _pool), (_CROP, _crop), (_PAD, _pad), (_UP, _up)):
        m = pattern.match(name)
        if m:
            rank = int(next(g for g in m.groups() if g))
            if len(sizes) < rank:
                return None
            head = shape_of(conf, sizes[:rank], rank)
            if head is None:  # a config it does not understand: follow the sizes unchanged
                return sizes
            if any(s < 1 for s in head):
                raise _TooShort(node)
            return tuple(head) + sizes[rank:]
    if _GLOBAL_POOL.match(name) or name in ENDS_SEQUENCE:
        return None
    if name in RNN_LAYERS:
        return sizes if conf.get("return_sequences") else None
    inner = conf.get("layer")
    if name in ("Bidirectional", "TimeDistributed") and isinstance(inner, dict) and depth < MAX_DEPTH:
        inner_node = _node(inner) if isinstance(inner.get("class_name"), str) else None
        if inner_node is None:
            return sizes
        if name == "Bidirectional":
            return _through(inner_node, sizes, depth + 1)
        if not sizes:
            return None
        rest = _through(inner_node, sizes[1:], depth + 1)
        return sizes[:1] + (rest or ())
    sub = node.sub(depth)
    if sub is not None:  # a model used as a layer
        if sub.inputs:
            state: dict[int, tuple | None] = dict.fromkeys(sub.inputs, sizes)
            for i in sub.order():
                if i in state:
                    continue
                inner_node = sub.nodes[i]
                before = [state[p] for p in inner_node.preds if state.get(p) is not None]
                if before:
                    state[i] = _through(inner_node, before[0], depth + 1)
            return next((state.get(o) for o in sub.outputs), None)
    return sizes


def _ints(value: object, rank: int) -> tuple[int, ...] | None:
    if isinstance(value, dict):  # {"class_name": "__tuple__", "items": [...]}
        value = value.get("items")
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * rank
    if isinstance(value, list) and len(value) == rank and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    return None


def _first(conf: dict, *keys: str) -> object:
    return next((conf[k] for k in keys if conf.get(k) is not None), None)


def _padding(conf: dict) -> str:
    padding = _first(conf, "padding", "border_mode")
    return padding.lower() if isinstance(padding, str) else "valid"


def _conv(conf: dict, sizes: tuple, rank: int) -> list[int] | None:
    kernel = _ints(_first(conf, "kernel_size", "filter_length"), rank)
    if kernel is None and rank == 2:
        kernel = _ints([conf.get("nb_row"), conf.get("nb_col")], 2)  # Keras 1
    strides = _ints(_first(conf, "strides", "subsample_length", "subsample") or 1, rank)
    dilation = _ints(_first(conf, "dilation_rate", "atrous_rate") or 1, rank)
    if kernel is None or strides is None or dilation is None or min(strides) < 1:
        return None
    if _padding(conf) in ("same", "causal", "full"):
        return [-(-n // s) for n, s in zip(sizes, strides)]
    return [(n - d * (k - 1) - 1) // s + 1 if n - d * (k - 1) >= 1 else 0
            for n, k, s, d in zip(sizes, kernel, strides, dilation)]


def _deconv(conf: dict, sizes: tuple, rank: int) -> list[int] | None:
    kernel = _ints(conf.get("kernel_size"), rank)
    strides = _ints(conf.get("strides") or 1, rank)
    if kernel is None or strides is None:
        return None
    if _padding(conf) == "same":
        return [n * s for n, s in zip(sizes, strides)]
    return [(n - 1) * s + k for n, k, s in zip(sizes, kernel, strides)]


def _pool(conf: dict, sizes: tuple, rank: int) -> list[int] | None:
    pool = _ints(_first(conf, "pool_size", "pool_length") or 2, rank)
    strides = _ints(_first(conf, "strides", "stride") or pool, rank)
    if pool is None or strides is None or min(strides) < 1:
        return None
    if _padding(conf) == "same":
        return [-(-n // s) for n, s in zip(sizes, strides)]
    return [(n - p) // s + 1 if n >= p else 0 for n, p, s in zip(sizes, pool, strides)]


def _pairs(value: object, rank: int) -> list[tuple[int, int]] | None:
    """Cropping/ZeroPadding amounts per axis: an int, one pair (1D), one int per axis, or one pair per axis."""
    if isinstance(value, dict):
        value = value.get("items")
    if isinstance(value, int) and not isinstance(value, bool):
        return [(value, value)] * rank
    if not isinstance(value, list):
        return None
    if rank == 1 and len(value) == 2 and _ints(value, 2):
        return [(value[0], value[1])]
    if len(value) == rank and _ints(value, rank):
        return [(v, v) for v in value]
    if len(value) == rank and all(_ints(v, 2) for v in value):
        return [tuple(_ints(v, 2)) for v in value]
    return None


def _crop(conf: dict, sizes: tuple, rank: int) -> list[int] | None:
    amounts = _pairs(conf.get("cropping", 1), rank)
    return None if amounts is None else [n - a - b for n, (a, b) in zip(sizes, amounts)]


def _pad(conf: dict, sizes: tuple, rank: int) -> list[int] | None:
    amounts = _pairs(conf.get("padding", 1), rank)
    return None if amounts is None else [n + a + b for n, (a, b) in zip(sizes, amounts)]


def _up(conf: dict, sizes: tuple, rank: int) -> list[int] | None:
    size = _ints(_first(conf, "size", "length") or 2, rank)
    return None if size is None else [n * s for n, s in zip(sizes, size)]
