"""Offline checks of smenv/data/tf_releases.json, the TensorFlow release compatibility table.

The table is generated and checked against PyPI by tools/check_release_table.py (needs the network); these tests
only read the committed file. Known facts are quoted from shared/reference/tensorflow-facts.md ("Release table")
and from the wheels' METADATA on PyPI.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

TABLE_PATH = Path(__file__).parents[1] / "smenv/data/tf_releases.json"

FIELDS = {
    "version", "release_date", "yanked", "python", "requires_python", "manylinux",
    "cpu_wheel", "tensorflow_gpu_wheel",
    "keras", "keras_major", "keras_requires_dist",
    "gpu_route", "pip_cuda", "gpu_build_info",
    "cuda", "cudnn",
    "graph_producer",
}
GPU_ROUTES = {"tensorflow-gpu", "cuda-base-image", "pip-cuda"}
FINAL = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:\.post(\d+))?$")
PY = re.compile(r"^3\.\d+$")


def vkey(v: str) -> tuple[int, int, int, int]:
    m = FINAL.match(v)
    assert m, f"not a final release version: {v!r}"
    return int(m[1]), int(m[2]), int(m[3]), -1 if m[4] is None else int(m[4])


def minor(v: str) -> tuple[int, int]:
    return vkey(v)[:2]


def pykey(p: str) -> tuple[int, int]:
    a, b = p.split(".")
    return int(a), int(b)


@pytest.fixture(scope="module")
def text() -> str:
    return TABLE_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def table(text: str) -> dict:
    return json.loads(text)


@pytest.fixture(scope="module")
def releases(table: dict) -> list[dict]:
    return table["releases"]


@pytest.fixture(scope="module")
def by_version(releases: list[dict]) -> dict[str, dict]:
    return {r["version"]: r for r in releases}


# ------------------------------------------------------------------------------------------------ file shape

def test_top_level_keys(table: dict) -> None:
    assert {"_sources", "_generated_by", "releases"} <= set(table)
    assert isinstance(table["_sources"], list) and table["_sources"]
    assert all(isinstance(s, str) and s for s in table["_sources"])
    assert "check_release_table.py" in table["_generated_by"]
    # the hand-sourced columns say where they come from
    assert any("source.md" in s and "cuda" in s and "cudnn" in s for s in table["_sources"])


def test_deterministic_formatting(table: dict, text: str) -> None:
    assert text == json.dumps(table, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_every_record_has_all_fields(releases: list[dict]) -> None:
    assert releases
    for r in releases:
        assert set(r) == FIELDS, (r.get("version"), set(r) ^ FIELDS)


def test_field_types(releases: list[dict]) -> None:
    for r in releases:
        v = r["version"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["release_date"]), v
        assert r["yanked"] is False, v  # fully yanked releases are left out of the table
        assert isinstance(r["manylinux"], str) and r["manylinux"].endswith("x86_64"), v
        assert "manylinux" in r["manylinux"], v
        assert r["requires_python"] is None or r["requires_python"].startswith(">="), v
        assert isinstance(r["keras"], str) and r["keras"], v
        assert r["keras_major"] in (2, 3), v
        assert isinstance(r["keras_requires_dist"], list), v
        assert r["gpu_route"] in GPU_ROUTES, v
        assert isinstance(r["graph_producer"], int) and r["graph_producer"] > 0, v
        for w in ("cpu_wheel", "tensorflow_gpu_wheel"):
            assert set(r[w]) == {"exists", "python"}, (v, w)
            assert isinstance(r[w]["exists"], bool), (v, w)
            assert r[w]["exists"] == bool(r[w]["python"]), (v, w)
        assert set(r["gpu_build_info"]) == {"package", "is_cuda_build", "cuda_version", "cudnn_version"}, v


# ------------------------------------------------------------------------------------------------- versions

def test_versions_sorted_unique_and_final(releases: list[dict]) -> None:
    versions = [r["version"] for r in releases]
    assert len(versions) == len(set(versions))
    assert versions == sorted(versions, key=vkey)
    assert all(FINAL.match(v) for v in versions)  # no rc / dev / a / b
    assert versions[0] == "1.15.0"


def test_includes_patch_and_post_releases(by_version: dict[str, dict]) -> None:
    for v in ("1.15.5", "2.0.4", "2.1.4", "2.4.4", "2.6.5", "2.8.4", "2.9.3", "2.11.1", "2.12.1", "2.13.1",
              "2.14.1", "2.15.0", "2.15.0.post1", "2.15.1", "2.16.1", "2.16.2", "2.17.1", "2.18.1", "2.19.1",
              "2.20.0", "2.21.0"):
        assert v in by_version, v
    # versions that were never published as finals
    assert "1.15.1" not in by_version
    assert "2.16.0" not in by_version


def test_no_minor_missing(releases: list[dict]) -> None:
    minors = sorted({minor(r["version"]) for r in releases})
    newest = minors[-1]
    assert newest >= (2, 21)
    expected = [(1, 15)] + [(2, m) for m in range(0, newest[1] + 1)]
    assert minors == expected
    for m in minors:
        first = min((r["version"] for r in releases if minor(r["version"]) == m), key=vkey)
        assert first == ("2.16.1" if m == (2, 16) else f"{m[0]}.{m[1]}.0"), m


def test_post_release_follows_its_base(by_version: dict[str, dict]) -> None:
    base, post = by_version["2.15.0"], by_version["2.15.0.post1"]
    assert post["release_date"] > base["release_date"]
    for col in ("python", "keras", "keras_major", "gpu_route", "pip_cuda", "cuda", "cudnn", "graph_producer",
                "cpu_wheel", "manylinux"):
        assert post[col] == base[col], col


def test_release_dates_plausible(releases: list[dict]) -> None:
    for r in releases:
        assert "2019-09-01" <= r["release_date"], r["version"]
    # within one X.Y, later patches are released later
    for a, b in zip(releases, releases[1:]):
        if minor(a["version"]) == minor(b["version"]):
            assert a["release_date"] <= b["release_date"], (a["version"], b["version"])


# --------------------------------------------------------------------------------------------------- python

def test_python_lists(releases: list[dict]) -> None:
    for r in releases:
        for lst in (r["python"], r["cpu_wheel"]["python"], r["tensorflow_gpu_wheel"]["python"]):
            assert all(isinstance(p, str) and PY.match(p) for p in lst), r["version"]
            assert lst == sorted(set(lst), key=pykey), r["version"]
        assert r["python"], r["version"]
        # consecutive minors: TensorFlow never skipped a CPython in the middle of its range
        ks = [pykey(p)[1] for p in r["python"]]
        assert ks == list(range(ks[0], ks[-1] + 1)), r["version"]


def test_requires_python_agrees_with_wheels(releases: list[dict]) -> None:
    for r in releases:
        if r["requires_python"]:
            lowest = r["requires_python"].removeprefix(">=")
            assert pykey(lowest) <= pykey(r["python"][0]), r["version"]


def test_known_python_ranges(by_version: dict[str, dict]) -> None:
    def rng(v: str) -> tuple[str, str]:
        p = by_version[v]["python"]
        return p[0], p[-1]

    # tensorflow-facts.md release table (docs tested build configurations), checked against the wheels
    for v in ("2.15.0", "2.15.0.post1", "2.15.1", "2.14.0", "2.14.1"):
        assert rng(v) == ("3.9", "3.11"), v
    assert rng("2.21.0") == ("3.10", "3.13")
    assert rng("2.20.0") == ("3.9", "3.13")
    for v in ("2.16.1", "2.16.2", "2.17.0", "2.18.0", "2.19.0", "2.19.1"):
        assert rng(v) == ("3.9", "3.12"), v
    assert rng("2.12.0") == rng("2.13.0") == ("3.8", "3.11")
    assert rng("2.8.0") == ("3.7", "3.10")
    assert rng("2.2.0") == ("3.5", "3.8")
    assert rng("2.4.0") == ("3.6", "3.8")
    assert rng("2.5.0") == ("3.6", "3.9")
    assert rng("1.15.0") == ("3.5", "3.7")
    # 1.15.x has no py3.8+ at all; patch releases dropped their oldest Python (narrower than the docs table)
    for r in by_version.values():
        if minor(r["version"]) == (1, 15):
            assert all(pykey(p) < (3, 8) for p in r["python"]), r["version"]
    assert rng("1.15.5") == ("3.6", "3.7")
    assert rng("2.11.1") == ("3.8", "3.10")


# ------------------------------------------------------------------------------------------------ cpu / gpu

def test_cpu_wheels(by_version: dict[str, dict]) -> None:
    for v, r in by_version.items():
        if minor(v) == (2, 0):
            assert not r["cpu_wheel"]["exists"], v  # tensorflow-cpu has no 2.0.x
        elif minor(v) >= (2, 1):
            assert r["cpu_wheel"]["exists"], v
            assert r["cpu_wheel"]["python"] == r["python"], v
    assert by_version["1.15.0"]["cpu_wheel"]["exists"]
    assert not by_version["1.15.5"]["cpu_wheel"]["exists"]


def test_gpu_route_matches_version_ranges(releases: list[dict]) -> None:
    for r in releases:
        m = minor(r["version"])
        want = "tensorflow-gpu" if m < (2, 1) else "cuda-base-image" if m < (2, 14) else "pip-cuda"
        assert r["gpu_route"] == want, r["version"]
        bi = r["gpu_build_info"]
        assert bi["is_cuda_build"] is True, r["version"]
        assert bi["package"] == ("tensorflow-gpu" if want == "tensorflow-gpu" else "tensorflow"), r["version"]
        if want == "tensorflow-gpu":
            assert r["tensorflow_gpu_wheel"]["exists"], r["version"]
        if want == "pip-cuda":
            pc = r["pip_cuda"]
            assert set(pc) == {"cuda_runtime", "cudnn"}, r["version"]
            assert pc["cuda_runtime"].startswith("nvidia-cuda-runtime-cu"), r["version"]
            assert pc["cudnn"].startswith("nvidia-cudnn-cu"), r["version"]
        else:
            assert r["pip_cuda"] is None, r["version"]


def test_tensorflow_gpu_package_ends_at_2_11_0(by_version: dict[str, dict]) -> None:
    for v, r in by_version.items():
        assert r["tensorflow_gpu_wheel"]["exists"] == (vkey(v) <= (2, 11, 0, -1)), v


# ---------------------------------------------------------------------------------------------------- keras

def test_keras_major_by_version(releases: list[dict]) -> None:
    for r in releases:
        m = minor(r["version"])
        if m >= (2, 16):
            assert r["keras_major"] == 3, r["version"]
            assert r["keras"].startswith("keras>=3."), r["version"]
        elif m >= (2, 6):
            assert r["keras_major"] == 2, r["version"]
            assert r["keras"].startswith("keras"), r["version"]
            assert r["keras"] != "bundled tf.keras", r["version"]
        else:
            assert r["keras_major"] == 2, r["version"]
            assert r["keras"] == "bundled tf.keras", r["version"]


def test_keras_pin_follows_tf_minor_for_keras2(releases: list[dict]) -> None:
    # TF 2.6-2.15 bundle keras == the TF minor: the pin's upper bound is the next minor
    for r in releases:
        a, b = minor(r["version"])
        if (2, 6) <= (a, b) <= (2, 15) and r["keras"] != "keras~=2.6":
            assert re.search(rf"<2\.{b + 1}(\.0)?$", r["keras"]), r["version"]
            assert re.search(rf">=2\.{b}\.", r["keras"]), r["version"]


def test_known_keras_pins(by_version: dict[str, dict]) -> None:
    assert by_version["2.15.0"]["keras"] == "keras>=2.15.0,<2.16"
    assert by_version["2.15.1"]["keras"] == "keras>=2.15.0,<2.16"
    assert by_version["2.14.0"]["keras"] == "keras>=2.14.0,<2.15"
    assert by_version["2.13.0"]["keras"] == "keras>=2.13.1,<2.14"
    assert by_version["2.16.1"]["keras"] == "keras>=3.0.0"
    assert by_version["2.17.0"]["keras"] == "keras>=3.2.0"
    assert by_version["2.18.0"]["keras"] == by_version["2.19.0"]["keras"] == "keras>=3.5.0"
    assert by_version["2.20.0"]["keras"] == "keras>=3.10.0"
    assert by_version["2.21.0"]["keras"] == "keras>=3.12.0"
    assert any("keras-nightly" in line for line in by_version["2.5.0"]["keras_requires_dist"])
    assert by_version["1.15.0"]["keras_requires_dist"] == []


# ------------------------------------------------------------------------------------------------ cuda/cudnn

# tensorflow/docs site/en/install/source.md, Linux GPU table, as quoted in shared/reference/tensorflow-facts.md
DOCS_CUDA = {
    (1, 15): ("10.0", "7.4"), (2, 0): ("10.0", "7.4"), (2, 1): ("10.1", "7.6"), (2, 2): ("10.1", "7.6"),
    (2, 3): ("10.1", "7.6"), (2, 4): ("11.0", "8.0"), (2, 5): ("11.2", "8.1"), (2, 6): ("11.2", "8.1"),
    (2, 7): ("11.2", "8.1"), (2, 8): ("11.2", "8.1"), (2, 9): ("11.2", "8.1"), (2, 10): ("11.2", "8.1"),
    (2, 11): ("11.2", "8.1"), (2, 12): ("11.8", "8.6"), (2, 13): ("11.8", "8.6"), (2, 14): ("11.8", "8.7"),
    (2, 15): ("12.2", "8.9"), (2, 16): ("12.3", "8.9"), (2, 17): ("12.3", "8.9"), (2, 18): ("12.5", "9.3"),
    (2, 19): ("12.5", "9.3"), (2, 20): ("12.5", "9.3"), (2, 21): ("12.5", "9.3"),
}


def test_cuda_cudnn_present_and_shaped(releases: list[dict]) -> None:
    for r in releases:
        assert re.fullmatch(r"\d+\.\d+", r["cuda"] or ""), r["version"]
        assert re.fullmatch(r"\d+\.\d+", r["cudnn"] or ""), r["version"]


def test_cuda_cudnn_known_values(releases: list[dict]) -> None:
    for r in releases:
        m = minor(r["version"])
        if m in DOCS_CUDA:
            assert (r["cuda"], r["cudnn"]) == DOCS_CUDA[m], r["version"]


def test_patch_releases_carry_their_minor_values(releases: list[dict]) -> None:
    seen: dict[tuple[int, int], tuple[str, str]] = {}
    for r in releases:
        val = seen.setdefault(minor(r["version"]), (r["cuda"], r["cudnn"]))
        assert (r["cuda"], r["cudnn"]) == val, r["version"]


def _prefix(a: str, b: str) -> bool:
    pa, pb = a.split("."), b.split(".")
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


def test_hand_columns_agree_with_the_wheels(releases: list[dict]) -> None:
    for r in releases:
        bi = r["gpu_build_info"]
        assert _prefix(r["cuda"], bi["cuda_version"]), r["version"]
        assert _prefix(r["cudnn"], bi["cudnn_version"]), r["version"]
        if r["pip_cuda"]:
            runtime = re.search(r"(?:==|>=)(\d+\.\d+)", r["pip_cuda"]["cuda_runtime"])[1]
            cudnn = re.search(r"(?:==|>=)(\d+\.\d+)", r["pip_cuda"]["cudnn"])[1]
            assert runtime == r["cuda"], r["version"]
            assert cudnn == r["cudnn"], r["version"]


# ------------------------------------------------------------------------------------------- wheels / graphs

def test_manylinux_tags(releases: list[dict]) -> None:
    for r in releases:
        m = minor(r["version"])
        if m <= (2, 8):
            assert r["manylinux"] == "manylinux2010_x86_64", r["version"]
        elif m <= (2, 20):
            assert r["manylinux"] == "manylinux_2_17_x86_64.manylinux2014_x86_64", r["version"]
        else:
            assert r["manylinux"].startswith("manylinux_2_"), r["version"]
    assert {r["manylinux"] for r in releases if minor(r["version"]) == (2, 21)} == {"manylinux_2_27_x86_64"}


# TF_GRAPH_DEF_VERSION of the X.Y.0 (2.16.1) releases, tensorflow-facts.md release table
KNOWN_PRODUCERS = {
    "1.15.0": 134, "2.0.0": 119, "2.1.0": 175, "2.2.0": 175, "2.3.0": 440, "2.4.0": 561, "2.5.0": 716,
    "2.6.0": 808, "2.7.0": 898, "2.8.0": 987, "2.9.0": 1087, "2.10.0": 1205, "2.11.0": 1286, "2.12.0": 1395,
    "2.13.0": 1482, "2.14.0": 1575, "2.15.0": 1645, "2.16.1": 1766, "2.17.0": 1882, "2.18.0": 1994,
    "2.19.0": 2129, "2.20.0": 2288, "2.21.0": 2474,
}


def test_graph_producers(by_version: dict[str, dict], releases: list[dict]) -> None:
    for v, p in KNOWN_PRODUCERS.items():
        assert by_version[v]["graph_producer"] == p, v
    tf2 = [r["graph_producer"] for r in releases if minor(r["version"]) >= (2, 0)]
    assert tf2 == sorted(tf2)
