"""requirements.txt is read the way pip reads it; what cannot be locked is refused naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from smenv.env.requirements import RequirementsError, parse_requirements


def write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_includes_markers_extras_hashes_and_index_options(tmp_path):
    write(tmp_path, "sub/base.txt", "pandas==2.0.3  # pinned\n-c ../cons.txt\n--extra-index-url https://extra.example/simple\n")
    write(tmp_path, "cons.txt", "urllib3<2\n")
    main = write(
        tmp_path,
        "requirements.txt",
        "# training requirements\n"
        "--index-url https://index.example/simple\n"
        "--find-links ./wheels\n"
        "-r sub/base.txt\n"
        'tensorflow==2.15.0 ; python_version >= "3.9"\n'
        "requests[socks,security]>=2.31\n"
        "numpy==1.26.4 --hash=sha256:aaaa --hash=sha256:bbbb\n",
    )
    reqs = parse_requirements(main)
    by_name = {r.name: r for r in reqs.requirements}
    assert by_name["pandas"].file.endswith("sub/base.txt") and by_name["pandas"].line == 1
    assert by_name["urllib3"].constraint and by_name["urllib3"].specifier == "<2"
    assert by_name["tensorflow"].marker == 'python_version >= "3.9"'
    assert by_name["tensorflow"].pinned_version() == "2.15.0"
    assert by_name["requests"].extras == ("security", "socks")
    assert by_name["requests"].text == "requests[security,socks]>=2.31"
    assert by_name["numpy"].hashes == ("sha256:aaaa", "sha256:bbbb")
    assert reqs.index.index_url == "https://index.example/simple"
    assert reqs.index.extra_index_urls == ("https://extra.example/simple",)
    assert reqs.index.find_links == (str(tmp_path / "wheels"),)
    assert [r.name for r in reqs.installs()] == ["pandas", "tensorflow", "requests", "numpy"]


def test_local_wheel_is_kept_with_its_absolute_path(tmp_path):
    wheel = write(tmp_path, "dist/mylib-1.0-py3-none-any.whl", "not really a wheel")
    main = write(tmp_path, "requirements.txt", "./dist/mylib-1.0-py3-none-any.whl\n")
    (req,) = parse_requirements(main).requirements
    assert req.name == "mylib" and req.url == wheel.as_uri()


@pytest.mark.parametrize(
    "line, words",
    [
        ("-e ./mypkg", "editable requirement"),
        ("git+https://example.org/a/b.git@v1#egg=b", "VCS requirement"),
        ("./not_a_wheel_dir", "is not a wheel file"),
    ],
)
def test_unlockable_lines_are_refused_naming_the_line(tmp_path, line, words):
    (tmp_path / "not_a_wheel_dir").mkdir()
    main = write(tmp_path, "requirements.txt", "numpy<2\n" + line + "\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirements(main)
    assert info.value.path == str(main)
    assert "line 2" in info.value.message and words in info.value.message


def test_include_cycles_and_missing_files(tmp_path):
    a = write(tmp_path, "a.txt", "-r b.txt\n")
    write(tmp_path, "b.txt", "-r a.txt\n")
    with pytest.raises(RequirementsError, match="includes itself"):
        parse_requirements(a)
    c = write(tmp_path, "c.txt", "-r missing.txt\n")
    with pytest.raises(RequirementsError, match="included requirements file not found") as info:
        parse_requirements(c)
    assert info.value.path.endswith("missing.txt")
    with pytest.raises(RequirementsError, match="requirements file not found"):
        parse_requirements(tmp_path / "nope.txt")


def test_garbage_line_is_an_error(tmp_path):
    main = write(tmp_path, "requirements.txt", "numpy<2\nthis is ( not valid\n")
    with pytest.raises(RequirementsError, match="line 2"):
        parse_requirements(main)


def test_credentials_never_reach_the_written_plan(tmp_path):
    from smenv.env.plan import EnvironmentPlan
    from smenv.env.requirements import redact_url

    assert redact_url("https://user:s3cret@pypi.internal/simple") == "https://***@pypi.internal/simple"
    assert redact_url("https://pypi.org/simple") == "https://pypi.org/simple"
    main = write(tmp_path, "requirements.txt", "--index-url https://user:s3cret@pypi.internal/simple\n--extra-index-url https://tok@x.example/s\nnumpy\n")
    index = parse_requirements(main).index
    assert index.index_url == "https://user:s3cret@pypi.internal/simple"  # kept for use on the host
    plan = EnvironmentPlan("2.15.1", "tensorflow-cpu", ("3.11",), False, "cpu", None, None, None, 2, False,
                           "saved_model", None, "2024-01-01T00:00:00Z", (), (), (), (), index)
    assert "s3cret" not in str(plan.to_json()) and "tok@" not in str(plan.to_json())


# -- paths and URLs the os calls would choke on (issue 13; the first found by tests/test_fuzz.py) --------
# Each is the user's string reaching pathlib, os or urllib: a NUL byte (ValueError), `~nosuchuser`
# (RuntimeError), a name longer than the file system allows (OSError). Each must be a one-line
# requirements error naming the file and the line, never an internal error.

LONG = "a" * 5000


@pytest.mark.parametrize(
    "line, words",
    [
        ("-r \x00x.txt", "included file '\\x00x.txt' contains the control character '\\x00'"),
        ("-c \x00x.txt", "constraints file '\\x00x.txt' contains the control character"),
        ("-r ~smenv-no-such-user/x.txt", "included file '~smenv-no-such-user/x.txt': Could not determine home directory"),
        (f"-r {LONG}.txt", "included file 'aaaa"),
        (f"-c {LONG}.txt", "constraints file 'aaaa"),
        ("--find-links ./w\x00", "--find-links path './w\\x00' contains the control character"),
        ("-f ~smenv-no-such-user/wheels", "--find-links path '~smenv-no-such-user/wheels': Could not determine home"),
        (f"-f {LONG}", "File name too long"),
        ("-f https://x.example/\x01", "--find-links URL 'https://x.example/\\x01' contains the control character"),
        ("--index-url http://x\x00y/simple", "index URL 'http://x\\x00y/simple' contains the control character"),
        ("--extra-index-url http://x\x07y/simple", "extra index URL 'http://x\\x07y/simple' contains the control"),
        ('--index-url "http://x y/simple"', "index URL 'http://x y/simple' contains white space"),
        ("-i http://[::1/simple", "index URL 'http://[::1/simple' is not a valid URL"),
        ("./\x00/", "local path './\\x00/' contains the control character"),
        ("~smenv-no-such-user/a-1.0-py3-none-any.whl", "local path '~smenv-no-such-user/a-1.0-py3-none-any.whl': Could not"),
        (f"./{LONG}-1.0-py3-none-any.whl", "local path '"),
    ],
)
def test_paths_and_urls_the_os_refuses_are_requirements_errors_naming_the_line(tmp_path, line, words):
    main = write(tmp_path, "requirements.txt", "numpy<2\n" + line + "\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirements(main)
    assert info.value.path == str(main), info.value
    assert info.value.message.startswith("line 2: ") and words in info.value.message, info.value.message
    assert "\n" not in info.value.message and len(info.value.message) < 300


def test_a_nul_byte_in_an_included_file_names_that_file_and_line(tmp_path):
    """Issue 13, as reported: `-r other.txt` whose line holds a NUL byte crashed in Path.resolve()."""
    main = write(tmp_path, "requirements.txt", "numpy\n-r other.txt\n")
    other = write(tmp_path, "other.txt", "\x00/\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirements(main)
    assert info.value.path == str(other)
    assert info.value.message == "line 1: local path '\\x00/' contains the control character '\\x00'"


def test_the_cli_reports_a_nul_byte_in_an_included_file_as_a_requirements_error(tmp_path):
    import subprocess
    import sys

    write(tmp_path, "requirements.txt", "numpy\n-r other.txt\n")
    write(tmp_path, "other.txt", "\x00/\n")
    model = Path(__file__).resolve().parents[1] / "examples" / "half_plus_two"
    proc = subprocess.run(
        [sys.executable, "-m", "smenv", "generate", str(model), "-r", "requirements.txt", "--dry-run"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 7, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("smenv: error:")]
    assert errors == ["smenv: error: other.txt: line 1: local path '\\x00/' contains the control character '\\x00'"], proc.stderr


def test_symlink_loops_are_requirements_errors(tmp_path):
    (tmp_path / "loop.txt").symlink_to("loop.txt")
    (tmp_path / "w-1.0-py3-none-any.whl").symlink_to("w-1.0-py3-none-any.whl")
    include = write(tmp_path, "include.txt", "-r loop.txt\n")
    with pytest.raises(RequirementsError, match="Symlink loop") as info:
        parse_requirements(include)
    assert "\n" not in info.value.message
    wheel = write(tmp_path, "wheel.txt", "numpy\n./w-1.0-py3-none-any.whl\n")
    with pytest.raises(RequirementsError, match="line 2: local path './w-1.0-py3-none-any.whl': Symlink loop"):
        parse_requirements(wheel)
