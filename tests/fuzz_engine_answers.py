"""Fuzz targets for what registries say through the Docker engine: the metadata of a pulled base image,
and the answers of pulls, pushes and manifest lookups (tests/fuzz_targets.py lists them in TARGETS).

The real `Engine` runs over a fake low-level client (`AnswersAPI`), so smenv's own parsing and error
translation (engine.py, obtain_base.py, the cache-registry steps of pipeline.py) see exactly what the
docker SDK would hand them. The engine types what it relays as its Go structs do (strings, string lists
and maps, null for empty): the strategies keep those types and make the contents hostile. The one part
the engine passes through untyped, a stream message's `aux`, is anything JSON.

An input is one JSON document (a "scenario"); bytes that are not JSON become the text of a registry error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import requests
import urllib3
from hypothesis import strategies as st

# -- the fake low-level client ------------------------------------------------------------------------


class _Response:
    """What docker.errors.APIError reads of an HTTP answer."""

    def __init__(self, status: int, reason: str = ""):
        self.status_code, self.reason, self.url = status, reason, "http://docker/v1.45/images"


def _failure(spec: dict) -> BaseException:
    """The exception a scenario's "raise" names, as the SDK, requests or urllib3 would raise it."""
    kind, text = spec.get("kind"), str(spec.get("explanation", ""))
    status = spec.get("status") if isinstance(spec.get("status"), int) else 500
    if kind == "api":
        return docker.errors.APIError(text, response=_Response(status), explanation=text)
    if kind == "notfound":
        return docker.errors.NotFound(text, response=_Response(404), explanation=text)
    if kind == "timeout":
        return requests.exceptions.ConnectionError("UnixHTTPConnectionPool(host='localhost'): Read timed out.")
    if kind == "readtimeout":
        return urllib3.exceptions.ReadTimeoutError(None, "/images/create", "Read timed out.")
    if kind == "chunked":
        return requests.exceptions.ChunkedEncodingError(text)
    if kind == "protocol":
        return urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead", text)
    return requests.exceptions.ConnectionError(f"('Connection aborted.', RemoteDisconnected({text!r}))")


class AnswersAPI:
    """docker.APIClient's calls smenv makes for pulls, pushes and image metadata, answering from a scenario."""

    timeout = 60

    def __init__(self, scenario: dict, missing: tuple[str, ...] = ()):
        self.scenario = scenario
        self.missing = set(missing)  # refs the engine has no image for until a pull
        self.pulled = False

    def _stream(self) -> Iterator:
        messages = self.scenario.get("messages")
        messages = messages if isinstance(messages, list) else []
        failure = self.scenario.get("raise") if isinstance(self.scenario.get("raise"), dict) else None
        at = failure.get("at") if failure and isinstance(failure.get("at"), int) else len(messages)
        for i, message in enumerate(messages):
            if failure and i == at:
                raise _failure(failure)
            yield message
        if failure and at >= len(messages):
            raise _failure(failure)
        self.pulled = True

    def pull(self, repository, tag=None, stream=False, decode=False, **kwargs):
        if self.scenario.get("raise_at_start") and isinstance(self.scenario.get("raise"), dict):
            raise _failure(self.scenario["raise"])
        return self._stream()

    def push(self, repository, tag=None, stream=False, decode=False, **kwargs):
        return self._stream()

    def inspect_distribution(self, ref, **kwargs):
        failure = self.scenario.get("raise")
        if isinstance(failure, dict):
            raise _failure(failure)
        return {"Descriptor": {"digest": "sha256:" + "a" * 64}}

    def inspect_image(self, ref):
        if ref in self.missing and not self.pulled:
            raise docker.errors.ImageNotFound(f"No such image: {ref}", response=_Response(404))
        answer = self.scenario.get("inspect")
        return answer if isinstance(answer, dict) else {"Id": "sha256:" + "b" * 64}

    def tag(self, image, repository, tag=None, force=False):
        return True

    def remove_image(self, image, force=False, noprune=False):
        return None


class _Client:
    def __init__(self, api: AnswersAPI):
        self.api = api

    def close(self) -> None:
        pass


def engine_over(api: AnswersAPI, python_run=None):
    """The real Engine over `api`; `python_run` (a SandboxRun) is what python3 prints in a pulled image."""
    from smenv.docker.engine import Endpoint, Engine

    class AnsweringEngine(Engine):
        def run_sandboxed(self, image, command, sandbox):
            return python_run

    return AnsweringEngine(_Client(api), Endpoint("unix:///fuzz.sock", "fuzz"), {"Version": "27.0", "ApiVersion": "1.45"})


# -- scenarios -----------------------------------------------------------------------------------------


def decode_scenario(data: bytes) -> dict:
    """The scenario in `data`; bytes that are not a JSON object are the text of a registry's error."""
    try:
        scenario = json.loads(data)
    except ValueError:
        return {"messages": [{"errorDetail": {"message": data.decode("utf-8", "replace")},
                              "error": data.decode("utf-8", "replace")}]}
    return scenario if isinstance(scenario, dict) else {"messages": [scenario]}


_hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["3.11.2", "3.11", "3.9.2", "3.110", "3.1", "3", "", "3.11\n", "3.11.2\nrm -rf /", "v3.11",
                     "Python 3.11.2", "３.１１", "3.11.2rc1", "sha256:" + "b" * 64, "x" * 5000]),
)
_string_lists = st.none() | st.lists(_hostile_text, max_size=4)
_string_maps = st.none() | st.dictionaries(
    st.sampled_from(["org.smenv.base.python", "org.smenv.lock.digest", "org.smenv.base.id", "org.smenv.version"])
    | st.text(max_size=20), _hostile_text, max_size=4)
_env_lines = st.lists(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["PYTHON_VERSION", "PATH", "LANG", "GPG_KEY", ""]), _hostile_text)
    | _hostile_text, max_size=5)


@st.composite
def inspect_answers(draw) -> dict:
    """`GET /images/{name}/json` as the engine types it, with anything in the strings."""
    answer = {
        "Id": draw(st.sampled_from(["sha256:" + "b" * 64, "sha256:" + "c" * 64]) | _hostile_text),
        "RepoTags": draw(_string_lists), "Size": draw(st.integers(min_value=0, max_value=2**63 - 1)),
        "Created": draw(_hostile_text), "Architecture": draw(_hostile_text), "Os": draw(_hostile_text),
        "Config": draw(st.none() | st.fixed_dictionaries({}, optional={
            "Env": st.none() | _env_lines, "Labels": _string_maps, "Cmd": _string_lists, "User": _hostile_text,
            "WorkingDir": _hostile_text, "Entrypoint": _string_lists})),
        "RootFS": draw(st.none() | st.fixed_dictionaries({"Type": st.just("layers"), "Layers": _string_lists})),
    }
    for key in draw(st.lists(st.sampled_from(sorted(answer)), max_size=3)):
        if key != "Id":  # the engine always says which image it describes
            answer.pop(key, None)
    return answer


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _hostile_text
_any_json = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
_registry_errors = st.sampled_from([
    "manifest unknown", "unauthorized: authentication required", "no basic auth credentials",
    "denied: requested access to the resource is denied", "received unexpected HTTP status: 500 Internal Server Error",
    "Get \"https://127.0.0.1:5000/v2/\": http: server gave HTTP response to HTTPS client",
    "dial tcp 127.0.0.1:5000: connect: connection refused", "EOF", "write: broken pipe",
    "Patch \"http://127.0.0.1:5000/v2/x/blobs/uploads/1?_state=abc\": EOF", "toomanyrequests: rate limit",
]) | _hostile_text


@st.composite
def stream_messages(draw) -> dict:
    """One message of the engine's JSON stream (jsonmessage.JSONMessage); `aux` is raw JSON."""
    message = draw(st.fixed_dictionaries({}, optional={
        "status": _hostile_text | st.sampled_from(["Pulling fs layer", "Downloading", "Pull complete", "Pushed",
                                                   "Layer already exists", "Digest: sha256:" + "d" * 64]),
        "id": _hostile_text, "progress": _hostile_text,
        "progressDetail": st.fixed_dictionaries({}, optional={"current": st.integers(), "total": st.integers()}),
        "error": _registry_errors,
        "errorDetail": st.fixed_dictionaries({}, optional={"code": st.integers(), "message": _registry_errors}),
        "aux": _any_json | st.fixed_dictionaries({}, optional={"Tag": _hostile_text, "Digest": _hostile_text,
                                                               "Size": st.integers()}),
    }))
    return message


_failures = st.none() | st.fixed_dictionaries({
    "kind": st.sampled_from(["api", "notfound", "timeout", "readtimeout", "chunked", "protocol", "cut"]),
    "status": st.sampled_from([400, 401, 403, 404, 409, 429, 500, 502, 503]), "explanation": _registry_errors,
    "at": st.integers(0, 6),
})


@st.composite
def registry_scenarios(draw) -> bytes:
    scenario = {
        "op": draw(st.sampled_from(["pull", "push", "has", "shared"])),
        "messages": draw(st.lists(stream_messages(), max_size=6)),
        "raise": draw(_failures), "raise_at_start": draw(st.booleans()),
        "inspect": draw(inspect_answers()),
    }
    return json.dumps(scenario).encode()


@st.composite
def base_scenarios(draw) -> bytes:
    scenario = {
        "inspect": draw(inspect_answers()),
        "python": draw(st.fixed_dictionaries({
            "exit": st.sampled_from([0, 0, 0, 1, 127, 137, None]), "stdout": _hostile_text, "stderr": _hostile_text})),
        "messages": draw(st.lists(stream_messages(), max_size=4)), "raise": draw(_failures),
        "raise_at_start": draw(st.booleans()),
    }
    return json.dumps(scenario).encode()


# -- real answers, the seeds -------------------------------------------------------------------------------

_BASE_LAYERS = ["sha256:" + "1" * 64]
_REAL_BASE = {  # python:3.11-slim-bookworm as the engine describes it (trimmed)
    "Id": "sha256:" + "b" * 64, "RepoTags": ["python:3.11-slim-bookworm"], "Size": 130_000_000,
    "Created": "2026-11-12T01:02:03Z", "Architecture": "amd64", "Os": "linux",
    "Config": {"Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "PYTHON_VERSION=3.11.14"],
               "Cmd": ["python3"], "Labels": None},
    "RootFS": {"Type": "layers", "Layers": _BASE_LAYERS},
}
_PULL = [{"status": "Pulling from library/python", "id": "3.11-slim-bookworm"},
         {"status": "Pulling fs layer", "id": "a1b2c3"}, {"status": "Pull complete", "id": "a1b2c3"},
         {"status": "Digest: sha256:" + "d" * 64}, {"status": "Status: Downloaded newer image for python:3.11"}]
_PUSH = [{"status": "The push refers to repository [127.0.0.1:5000/smenv/m]"},
         {"status": "Pushed", "id": "a1b2c3", "progressDetail": {}},
         {"status": "1: digest: sha256:" + "d" * 64 + " size: 1234"},
         {"progressDetail": {}, "aux": {"Tag": "1", "Digest": "sha256:" + "d" * 64, "Size": 1234}}]


def seed_base_scenarios() -> list[bytes]:
    smenv_base = json.loads(json.dumps(_REAL_BASE))
    smenv_base["Config"] = {"Env": ["PATH=/usr/bin"], "Labels": {"org.smenv.base.python": "3.11.2"}}
    no_version = json.loads(json.dumps(_REAL_BASE))
    no_version["Config"]["Env"] = ["PATH=/usr/bin"]
    return [json.dumps(s).encode() for s in [
        {"inspect": _REAL_BASE, "messages": _PULL},
        {"inspect": smenv_base, "messages": _PULL},
        {"inspect": no_version, "messages": _PULL, "python": {"exit": 0, "stdout": "3.11.2\n", "stderr": ""}},
        {"inspect": no_version, "messages": _PULL, "python": {"exit": 127, "stdout": "", "stderr": "python3: not found"}},
        {"inspect": _REAL_BASE, "messages": [{"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}]},
    ]]


def seed_registry_scenarios() -> list[bytes]:
    dependency = json.loads(json.dumps(_REAL_BASE))
    dependency["RootFS"]["Layers"] = _BASE_LAYERS + ["sha256:" + "2" * 64]
    dependency["Config"]["Labels"] = {"org.smenv.lock.digest": "sha256:" + "e" * 64, "org.smenv.base.id": _REAL_BASE["Id"]}
    unauthorized = {"kind": "api", "status": 401, "explanation": "unauthorized: authentication required", "at": 0}
    return [json.dumps(s).encode() for s in [
        {"op": "pull", "messages": _PULL}, {"op": "push", "messages": _PUSH},
        {"op": "push", "messages": _PUSH[:2] + [{"errorDetail": {"message": "EOF"}, "error": "EOF"}]},
        {"op": "has", "raise": unauthorized}, {"op": "shared", "messages": _PULL, "inspect": dependency},
        {"op": "pull", "messages": _PULL, "raise": {"kind": "cut", "explanation": "", "at": 2}},
    ]]


# -- the targets' bodies -----------------------------------------------------------------------------------

LOCK_DIGEST = "sha256:" + "e" * 64


def pull_a_base(data: bytes) -> object:
    """`obtain_base_image` for python 3.11 with a base registry: not on the engine, so pulled, then checked."""
    from smenv.docker.engine import SandboxRun
    from smenv.docker.obtain_base import obtain_base_image

    scenario = decode_scenario(data)
    run = scenario.get("python") if isinstance(scenario.get("python"), dict) else {}
    python_run = SandboxRun(run.get("exit") if isinstance(run.get("exit"), int) else None, str(run.get("stdout", "")),
                            str(run.get("stderr", "")), False, False, 0.1)
    image = "python:3.11-slim-bookworm"
    api = AnswersAPI(scenario, missing=(image, "127.0.0.1:5000/library/" + image))
    return obtain_base_image(engine_over(api, python_run), image, "3.11", registry="127.0.0.1:5000",
                             build_from_debian=None, pull_timeout=10)


def registry_answers(data: bytes) -> object:
    """One registry operation through the engine, as the scenario's "op" says."""
    from smenv.docker.engine import ImageInfo
    from smenv.pipeline import _is_shared_dependency_image, _pull_shared

    scenario = decode_scenario(data)
    op = scenario.get("op")
    remote = "127.0.0.1:5000/smenv-deps/m:abc"
    engine = engine_over(AnswersAPI(scenario, missing=(remote,)))
    if op == "push":
        return engine.push("127.0.0.1:5000/smenv/m:1")
    if op == "has":
        return engine.registry_has(remote)
    if op == "shared":  # the cache registry's dependency image: pulled, then checked against the lock and base
        base = ImageInfo(_REAL_BASE["Id"], (), 1, {}, "", diff_ids=tuple(_BASE_LAYERS))
        return _pull_shared(engine, remote, lambda m: None) and _is_shared_dependency_image(
            engine, remote, LOCK_DIGEST, base, lambda m: None)
    return engine.pull(remote, timeout=10)
