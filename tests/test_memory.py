"""Memory stays flat however large the model: a 500 MB saved_model.pb and a 1 GB variables/ file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pbwrite
from smenv.model.tfschema import numbers

BIG_CONST = 500 << 20


def write_big_saved_model(d: Path) -> None:
    """A SavedModel whose graph holds one 500 MB constant, streamed to disk (never built in memory)."""
    content = pbwrite.varint(4 << 3 | 2) + pbwrite.varint(BIG_CONST)  # TensorProto.tensor_content
    tensor_header = content
    attr_value_len = len(tensor_header) + BIG_CONST
    attr_value_header = pbwrite.varint(8 << 3 | 2) + pbwrite.varint(attr_value_len)  # AttrValue.tensor
    entry = pbwrite.field_bytes(1, "value") + pbwrite.varint(2 << 3 | 2) + pbwrite.varint(len(attr_value_header) + attr_value_len)
    entry_len = len(entry) + len(attr_value_header) + attr_value_len
    node_head = pbwrite.field_bytes(1, "big") + pbwrite.field_bytes(2, "Const") + pbwrite.varint(5 << 3 | 2) + pbwrite.varint(entry_len)
    node_len = len(node_head) + entry_len
    gd = numbers("GraphDef")
    small_nodes = pbwrite.field_bytes(gd["node"], pbwrite.node("Placeholder")) + pbwrite.field_bytes(
        gd["library"], pbwrite.field_bytes(1, pbwrite.function("f", ["MatMul", "Relu"]))
    )
    graph_head = pbwrite.varint(gd["node"] << 3 | 2) + pbwrite.varint(node_len)
    graph_len = len(graph_head) + node_len + len(small_nodes)
    mg_prefix = pbwrite.meta_graph(["serve"])  # meta_info_def + an (empty-ish) graph_def
    mg_head = pbwrite.varint(2 << 3 | 2) + pbwrite.varint(graph_len)
    mg_len = len(mg_prefix) + len(mg_head) + graph_len
    with open(d / "saved_model.pb", "wb") as f:
        f.write(pbwrite.field_varint(1, 1) + pbwrite.varint(2 << 3 | 2) + pbwrite.varint(mg_len))
        f.write(mg_prefix + mg_head + graph_head + node_head + entry + attr_value_header + tensor_header)
        block = b"\x01" * (8 << 20)
        remaining = BIG_CONST
        while remaining:
            n = min(len(block), remaining)
            f.write(block[:n])
            remaining -= n
        f.write(small_nodes)
    variables = d / "variables"
    variables.mkdir()
    with open(variables / "variables.data-00000-of-00001", "wb") as f:
        f.truncate(1 << 30)  # 1 GiB, sparse on disk
    (variables / "variables.index").write_bytes(b"\0" * 16)


PROBE = """
import json, sys
from pathlib import Path
from smenv.model.inspect import inspect_model
facts = inspect_model(Path(sys.argv[1]))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve from the forking (pytest) process.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"ops": facts.ops, "size": facts.size_bytes, "maxrss_kib": hwm}))
"""


def test_peak_memory_is_flat_for_huge_models(tmp_path):
    write_big_saved_model(tmp_path)
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ops"] == {"Const": 1, "MatMul": 1, "Placeholder": 1, "Relu": 1}
    assert result["size"] > (1 << 30) + BIG_CONST
    # Measured: ~25 MiB streaming; ~530 MiB if saved_model.pb were read whole.
    assert result["maxrss_kib"] < 80 * 1024, result
