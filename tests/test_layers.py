"""Layers smenv writes itself: the same files give the same bytes, whatever the host's times, owners or order.

The image ID rests on this (tests/test_image_assembly.py proves it end to end on the engine).
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import replace
from pathlib import Path

from smenv.docker.assemble import Archive, ImageSpec, ImageToLoad, docker_archive, image_config
from smenv.docker.layers import Entry, layer_from_entries, normalize_archive, tree_entries


def model_dir(root: Path, mtime: int) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"\x08\x01" * 100)
    (root / "variables" / "variables.index").write_bytes(b"index")
    for path in (root / "saved_model.pb", root / "variables" / "variables.index", root / "variables", root):
        os.utime(path, (mtime, mtime))
    os.chmod(root / "saved_model.pb", 0o600)  # a private file on the host is still readable in the image
    return root


def test_the_same_files_give_the_same_layer_whatever_their_times(tmp_path):
    a = layer_from_entries(tree_entries(model_dir(tmp_path / "a", 1_000_000), "opt/smenv/model"), tmp_path / "a.tar")
    b = layer_from_entries(tree_entries(model_dir(tmp_path / "b", 2_000_000), "opt/smenv/model"), tmp_path / "b.tar")
    assert a.diff_id == b.diff_id and a.path.read_bytes() == b.path.read_bytes()
    with tarfile.open(a.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)  # parents first, in path order
    assert {m.name for m in members} >= {"opt", "opt/smenv", "opt/smenv/model/variables/variables.index"}
    assert all(m.mtime == 0 and m.uname == "" and m.uid == 0 for m in members)
    assert {m.name: m.mode for m in members}["opt/smenv/model/saved_model.pb"] == 0o644


def test_a_changed_file_changes_the_layer(tmp_path):
    root = model_dir(tmp_path / "m", 1_000_000)
    before = layer_from_entries(tree_entries(root, "opt/smenv/model"), tmp_path / "1.tar")
    (root / "variables" / "variables.index").write_bytes(b"indeX")
    after = layer_from_entries(tree_entries(root, "opt/smenv/model"), tmp_path / "2.tar")
    assert before.diff_id != after.diff_id


def engine_like_archive(mtime: int, uname: str) -> list[bytes]:
    """A tar as the engine's archive of /opt/venv arrives: names under venv/, times and owner names set."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("venv", None), ("venv/bin", None), ("venv/bin/python3", b"#!elf"), ("venv/x" * 30, b"long")):
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.gname = mtime, uname, uname
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    return [data[i:i + 1000] for i in range(0, len(data), 1000)]  # in chunks, as the SDK streams it


def test_the_engines_archive_is_made_reproducible_under_its_prefix(tmp_path):
    a = normalize_archive(engine_like_archive(1_700_000_000, "root"), tmp_path / "a.tar", prefix="opt")
    b = normalize_archive(engine_like_archive(1_800_000_000, "builder"), tmp_path / "b.tar", prefix="opt")
    assert a.diff_id == b.diff_id and a.size == a.path.stat().st_size
    with tarfile.open(a.path) as tar:
        assert tar.getnames()[:3] == ["opt/venv", "opt/venv/bin", "opt/venv/bin/python3"]
        assert tar.getmember("opt/venv/bin/python3").mode == 0o755  # modes kept
        assert tar.extractfile("opt/" + "venv/x" * 30).read() == b"long"


def test_an_image_config_is_fixed_by_its_inputs_and_the_archive_lists_every_layer(tmp_path):
    layer = layer_from_entries([Entry("opt/smenv/smenv.json", data=b"{}\n")], tmp_path / "l.tar")
    spec = ImageSpec(env=(("PATH", "/opt/venv/bin:/usr/bin"), ("HOME", "/home/smenv")), user="10001:10001",
                     workdir="/home/smenv", cmd=("python", "/opt/smenv/verify.py"), labels={"b": "2", "a": "1"},
                     created="2024-03-08T23:59:59Z")
    base = {"Env": ["PATH=/usr/bin", "LANG=C.UTF-8"], "Labels": {"a": "base", "c": "base"}}
    one = image_config(base, ("sha256:" + "1" * 64,), [(layer.diff_id, "smenv: model")], spec, "amd64", "linux")
    two = image_config(base, ("sha256:" + "1" * 64,), [(layer.diff_id, "smenv: model")], spec, "amd64", "linux")
    assert one == two and one.image_id.startswith("sha256:")
    assert b'"Env":["PATH=/opt/venv/bin:/usr/bin","LANG=C.UTF-8","HOME=/home/smenv"]' in one.data  # ENV semantics
    assert b'"Labels":{"a":"1","b":"2","c":"base"}' in one.data  # LABEL semantics: the base's, ours over them
    served = image_config(base, (), [], replace(spec, exposed_ports=("8501/tcp",), healthcheck={"Test": ["CMD", "true"]}),
                          "amd64", "linux")
    assert b'"ExposedPorts":{"8501/tcp":{}}' in served.data and b'"Healthcheck":{"Test":["CMD","true"]}' in served.data
    stream = b"".join(docker_archive(Archive((ImageToLoad(one, ("smenv/x:1",)),), {layer.diff_id: layer.path})))
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        names = tar.getnames()
        manifest = tar.extractfile("manifest.json").read()
    # The base's layer is listed but not sent: the engine has it (only the new layer travels).
    assert f"{'1' * 64}/layer.tar".encode() in manifest and f"{'1' * 64}/layer.tar" not in names
    assert f"{layer.diff_id.split(':')[1]}/layer.tar" in names
