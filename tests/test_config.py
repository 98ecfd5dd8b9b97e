"""The config stage: command line, `[tool.flashc]` and the environment, read once into a `Config`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest

from flashc.config import CliOptions, Config, IndexSettings, PyProject, parse_config, read_config
from flashc.deps.target import Target
from flashc.diagnostics import Diagnostic, Span, render_all
from flashc.errors import DiagnosticsError, UsageError

HOST = "3.11"


def parse(
    pyproject: str | bytes | None = None, cli: CliOptions | None = None, env: Mapping[str, str] | None = None
) -> Config:
    return parse_config(pyproject, cli or CliOptions(), env or {}, HOST)


def diagnostics(
    pyproject: str | bytes, cli: CliOptions | None = None, env: Mapping[str, str] | None = None
) -> list[Diagnostic]:
    with pytest.raises(DiagnosticsError) as info:
        parse(pyproject, cli, env)
    return list(info.value.diagnostics)


def located(line: int, col: int, end_col: int, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic("pyproject.toml", Span(line, col, line, end_col), "error", "config", message, hint)


def usage_error(cli: CliOptions | None = None, env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    with pytest.raises(UsageError) as info:
        parse(None, cli, env)
    return info.value.message, info.value.hint


def rendered(text: str, found: list[Diagnostic]) -> str:
    lines = text.splitlines()
    return render_all(found, lambda path, n: lines[n - 1] if path == "pyproject.toml" and n <= len(lines) else None)


# Defaults and precedence


def test_defaults_without_pyproject_or_environment() -> None:
    config = parse(env={"HOME": "/home/u"})
    assert config == Config(
        python_version="3.11",
        glibc="2.35",
        exclude=(),
        keep_gpu_packages=False,
        no_deps=False,
        offline=False,
        max_size=500_000_000,
        mtime=315532800,
        index=IndexSettings(),
        cache_dir=Path("/home/u/.cache/flashc"),
        pyproject=None,
    )
    assert config.target == Target("3.11", "2.35")


TOOL = """\
[project]
name = "app"
dependencies = ["numpy"]

[tool.flashc]
python_version = "3.12"
glibc = "2.31"
exclude = ["Torch_Audio", "triton"]
keep_gpu_packages = true
max_size = 300
"""


def test_tool_flashc_beats_the_defaults() -> None:
    config = parse(TOOL)
    assert (config.python_version, config.glibc, config.exclude) == ("3.12", "2.31", ("torch-audio", "triton"))
    assert (config.keep_gpu_packages, config.max_size) == (True, 300_000_000)
    assert config.pyproject == PyProject("pyproject.toml", TOOL, {})  # equality looks at the text
    assert config.pyproject is not None and config.pyproject.data["project"]["dependencies"] == ["numpy"]


def test_command_line_beats_tool_flashc_and_excludes_are_merged() -> None:
    cli = CliOptions(
        python_version="3.10.4", glibc="2.28", exclude=("numpy, Triton", "torch"), max_size_mb=20, no_deps=True
    )
    config = parse(TOOL, cli)
    assert (config.python_version, config.glibc, config.max_size) == ("3.10", "2.28", 20_000_000)
    assert config.exclude == ("numpy", "torch", "torch-audio", "triton")
    assert (config.no_deps, config.offline) == (True, False)


def test_kebab_case_keys_are_accepted() -> None:
    config = parse('[tool.flashc]\npython-version = "3.13"\nkeep-gpu-packages = true\nmax-size = 7\n')
    assert (config.python_version, config.keep_gpu_packages, config.max_size) == ("3.13", True, 7_000_000)


def test_an_empty_or_missing_tool_flashc_changes_nothing() -> None:
    assert parse('[project]\nname = "x"\n').python_version == HOST
    assert parse("[tool.flashc]\n").glibc == "2.35"
    assert parse("[tool.black]\nline-length = 1\n").exclude == ()


def test_source_date_epoch_sets_the_mtime() -> None:
    assert parse(env={"SOURCE_DATE_EPOCH": "1700000000"}).mtime == 1700000000


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FLASHC_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/c"),
        ({"FLASHC_CACHE_DIR": "", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/flashc"),
        ({"XDG_CACHE_HOME": "", "HOME": "/h"}, "/h/.cache/flashc"),
    ],
)
def test_cache_dir(env: dict[str, str], expected: str) -> None:
    assert parse(env=env).cache_dir == Path(expected)


# The index, from the environment


def test_pip_variables_give_the_index() -> None:
    env = {
        "PIP_INDEX_URL": "https://pip/simple",
        "PIP_EXTRA_INDEX_URL": "https://e1/simple  https://e2/simple",
        "PIP_FIND_LINKS": "/wheels https://links",
        "PIP_NO_INDEX": "Yes",
    }
    assert parse(env=env).index == IndexSettings(
        "https://pip/simple", ("https://e1/simple", "https://e2/simple"), ("/wheels", "https://links"), True
    )


def test_uv_variables_beat_pip_setting_by_setting() -> None:
    env = {
        "UV_DEFAULT_INDEX": "https://uv-default/simple",
        "UV_INDEX_URL": "https://uv-legacy/simple",
        "PIP_INDEX_URL": "https://pip/simple",
        "UV_INDEX": "internal=https://internal/simple https://other/simple",
        "UV_EXTRA_INDEX_URL": "https://extra/simple",
        "PIP_EXTRA_INDEX_URL": "https://pip-extra/simple",
        "UV_FIND_LINKS": "/a, /b",
        "PIP_FIND_LINKS": "/pip",
        "UV_NO_INDEX": "false",
        "PIP_NO_INDEX": "1",
    }
    assert parse(env=env).index == IndexSettings(
        "https://uv-default/simple",
        ("https://internal/simple", "https://other/simple", "https://extra/simple"),
        ("/a", "/b"),
        False,
    )


def test_pip_fills_in_what_uv_leaves_unset() -> None:
    env = {"UV_INDEX_URL": "https://uv/simple", "PIP_INDEX_URL": "https://pip/simple", "PIP_FIND_LINKS": "/w"}
    assert parse(env=env).index == IndexSettings("https://uv/simple", (), ("/w",), False)


# Fingerprint


def test_fingerprint_follows_what_changes_the_archive_or_the_resolution() -> None:
    base = parse(TOOL)
    assert base.fingerprint() == parse(TOOL).fingerprint()
    changed = [
        parse(TOOL, env={"SOURCE_DATE_EPOCH": "1700000000"}),
        parse(TOOL, CliOptions(python_version="3.10")),
        parse(TOOL, CliOptions(exclude=("numpy",))),
        parse(TOOL, env={"PIP_INDEX_URL": "https://mirror/simple"}),
        parse(TOOL, env={"UV_NO_INDEX": "1"}),
        parse(TOOL, CliOptions(no_deps=True)),
        parse(TOOL.replace('"numpy"', '"numpy<2"')),
    ]
    assert len({base.fingerprint(), *(c.fingerprint() for c in changed)}) == len(changed) + 1
    same = [parse(TOOL, env={"FLASHC_CACHE_DIR": "/elsewhere"}), parse(TOOL, CliOptions(offline=True))]
    assert {c.fingerprint() for c in same} == {base.fingerprint()}


ALTERED = {
    "python_version": "3.10",
    "glibc": "2.28",
    "exclude": ("numpy",),
    "keep_gpu_packages": False,
    "no_deps": True,
    "max_size": 1,
    "mtime": 1,
    "index": IndexSettings(no_index=True),
    "pyproject": None,
    "serve": "api:app",  # a mothership.py deploys it
}


def test_every_field_but_cache_dir_offline_and_where_to_deploy_is_fingerprinted() -> None:
    config = parse(TOOL)
    deploying = {"deploy_target", "app", "environment"}  # where it goes and runs, not what it holds
    assert set(ALTERED) == {field.name for field in dataclasses.fields(Config)} - {"cache_dir", "offline"} - deploying
    for name, value in ALTERED.items():
        assert dataclasses.replace(config, **{name: value}).fingerprint() != config.fingerprint(), name
    for name, value in {"deploy_target": "runpod", "app": "other", "environment": "staging"}.items():
        assert dataclasses.replace(config, **{name: value}).fingerprint() == config.fingerprint(), name


def test_where_to_deploy_comes_from_the_command_line_then_the_table() -> None:
    config = parse('[tool.flashc]\ntarget = "runpod"\napp = "shop"\n')
    assert (config.deploy_target, config.app, config.environment) == ("runpod", "shop", "production")
    assert parse("", CliOptions(target="local")).deploy_target == "local"
    assert diagnostics('[tool.flashc]\ntarget = "mars"\n')[0].message == "target must be local or runpod, not 'mars'"


# Errors in pyproject.toml: located, all at once


def test_unknown_key_is_located_with_a_did_you_mean() -> None:
    text = '[tool.flashc]\npyhton_version = "3.12"\n"max-sise" = 3\nturbo = true\n'
    assert diagnostics(text) == [
        located(2, 1, 15, "unknown key 'pyhton_version' in [tool.flashc]", "did you mean 'python_version'?"),
        located(3, 1, 11, "unknown key 'max-sise' in [tool.flashc]", "did you mean 'max-size'?"),
        located(
            4,
            1,
            6,
            "unknown key 'turbo' in [tool.flashc]",
            "[tool.flashc] takes: app, environment, exclude, glibc, keep_gpu_packages, max_size, "
            "python_version, serve, target",
        ),
    ]


def test_unknown_key_renders_like_a_compiler_error() -> None:
    text = '[project]\nname = "x"\n\n[tool.flashc]\npyhton_version = "3.12"\n'
    assert rendered(text, diagnostics(text)) == (
        "pyproject.toml:5:1: error: unknown key 'pyhton_version' in [tool.flashc]\n"
        ' 5 | pyhton_version = "3.12"\n'
        "   | ^~~~~~~~~~~~~~\n"
        "  = hint: did you mean 'python_version'?"
    )


def test_unknown_sub_table_is_located_at_its_header() -> None:
    text = "[tool.flashc]\nglibc = '2.31'\n\n[tool.flashc.extras]\nx = 1\n"
    assert diagnostics(text) == [
        located(
            4,
            1,
            21,
            "unknown key 'extras' in [tool.flashc]",
            "[tool.flashc] takes: app, environment, exclude, glibc, keep_gpu_packages, max_size, "
            "python_version, serve, target",
        )
    ]


def test_wrong_types_name_the_key_and_the_expected_type_at_the_value() -> None:
    text = (
        "[tool.flashc]\n"
        "python_version = 3.10\n"
        'glibc = ["2.35"]\n'
        'exclude = "torch"\n'
        "keep-gpu-packages = 1\n"
        'max_size = "big"  # MB\n'
    )
    assert diagnostics(text) == [
        located(
            2,
            18,
            22,
            '[tool.flashc] python_version must be a string such as "3.11", not a float',
            'write python_version = "3.11", in quotes (unquoted, 3.10 is the number 3.1)',
        ),
        located(
            3,
            9,
            17,
            '[tool.flashc] glibc must be a string such as "2.35", not an array',
            'write glibc = "2.35", in quotes',
        ),
        located(
            4,
            11,
            18,
            "[tool.flashc] exclude must be a list of distribution names, not a string",
            'write exclude = ["torch", "triton"]',
        ),
        located(
            5,
            21,
            22,
            "[tool.flashc] keep-gpu-packages must be true or false, not 1",
            "write keep-gpu-packages = true",
        ),
        located(
            6,
            12,
            17,
            "[tool.flashc] max_size must be a positive whole number of megabytes, not a string",
            "write max_size = 500, the limit in megabytes",
        ),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_size = 0", "[tool.flashc] max_size must be a positive whole number of megabytes, not 0"),
        ("max_size = true", "[tool.flashc] max_size must be a positive whole number of megabytes, not a boolean"),
        (
            'exclude = ["torch", 3]',
            "[tool.flashc] exclude must be a list of distribution names, not an array holding an integer",
        ),
    ],
)
def test_wrong_values(line: str, message: str) -> None:
    (found,) = diagnostics(f"[tool.flashc]\n{line}\n")
    assert (found.span and found.span.line, found.message) == (2, message)


def test_bad_values_use_the_same_words_as_the_command_line() -> None:
    text = "[tool.flashc]\npython_version = '2.7'\nglibc = \"2.12\"\nexclude = ['torch>=2']\n"
    assert diagnostics(text) == [
        located(2, 18, 23, "unsupported Python version '2.7'", "use a CPython 3 version such as 3.11 (3.8 or newer)"),
        located(
            3,
            9,
            15,
            "glibc '2.12' is too old: workers need glibc 2.17 (manylinux2014) or newer",
            "give the worker image's glibc as MAJOR.MINOR, such as 2.35 (`ldd --version` prints it)",
        ),
        located(
            4,
            11,
            23,
            "[tool.flashc] exclude: 'torch>=2' is not a distribution name",
            'give names only, such as exclude = ["torch", "triton"]',
        ),
    ]


def test_both_spellings_of_one_key_is_an_error_at_the_second() -> None:
    text = '[tool.flashc]\nmax-size = 10\npython_version = "3.12"\nmax_size = 20\n'
    assert diagnostics(text) == [
        located(4, 1, 9, "[tool.flashc] sets max_size twice: as max-size and as max_size", "keep one of them")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[project]\nname = "x"\nversion = \n',
            located(3, 11, 12, "invalid TOML in pyproject.toml: Invalid value"),
        ),
        (
            "[tool.flashc]\nglibc = '2.35'\nglibc = '2.31'\n",
            located(3, 15, 16, "invalid TOML in pyproject.toml: Cannot overwrite a value"),
        ),
        (
            "[tool.flashc]\nexclude = [\n",
            located(2, 12, 13, "invalid TOML in pyproject.toml: Invalid value"),
        ),
    ],
    ids=["bad-value", "duplicate-key", "end-of-document"],
)
def test_invalid_toml_is_an_error_at_its_line_and_column(text: str, expected: Diagnostic) -> None:
    assert diagnostics(text) == [expected]


def test_tool_flashc_that_is_not_a_table() -> None:
    assert diagnostics("[tool]\nflashc = 3\n") == [
        located(
            2, 1, 7, "[tool.flashc] must be a table, not an integer", "write the settings under a [tool.flashc] header"
        )
    ]


def test_key_that_cannot_be_found_in_the_text_has_no_span() -> None:
    # The table named with an escape: the problem is still reported, without a place.
    (found,) = diagnostics('tool."flash\\u0063".turbo = true\n')
    assert (found.span, found.message) == (None, "unknown key 'turbo' in [tool.flashc]")


def test_pyproject_that_is_not_utf8() -> None:
    assert diagnostics(b'[project]\nname = "\xff"\n') == [
        Diagnostic(
            "pyproject.toml",
            Span(2, 1, 3, 1),
            "error",
            "config",
            "pyproject.toml is not valid UTF-8",
            "save it as UTF-8",
        )
    ]


# Errors on the command line and in the environment


def test_bad_source_date_epoch_is_a_usage_error_with_a_hint() -> None:
    assert usage_error(env={"SOURCE_DATE_EPOCH": "2024-01-01"}) == (
        "SOURCE_DATE_EPOCH must be a whole number of seconds since 1970-01-01, not '2024-01-01'",
        "set it to an integer such as the last commit's time: $(git log -1 --format=%ct), or unset it",
    )


@pytest.mark.parametrize(
    ("cli", "expected"),
    [
        (
            CliOptions(python_version="3.x"),
            ("invalid Python version '3.x'", "use a CPython 3 version such as 3.11 (3.8 or newer)"),
        ),
        (
            CliOptions(glibc="2"),
            (
                "invalid glibc version '2'",
                "give the worker image's glibc as MAJOR.MINOR, such as 2.35 (`ldd --version` prints it)",
            ),
        ),
        (
            CliOptions(max_size_mb=0),
            (
                "--max-size must be a positive whole number of megabytes, not 0",
                "give the limit in megabytes, such as --max-size 500",
            ),
        ),
        (
            CliOptions(exclude=("torch,numpy==1",)),
            ("--exclude: 'numpy==1' is not a distribution name", "give names only, such as --exclude torch,triton"),
        ),
    ],
    ids=["python", "glibc", "max-size", "exclude"],
)
def test_bad_option_values_are_usage_errors(cli: CliOptions, expected: tuple[str, str]) -> None:
    assert usage_error(cli) == expected


def test_bad_no_index_flag() -> None:
    assert usage_error(env={"PIP_NO_INDEX": "sure"}) == (
        "PIP_NO_INDEX must be true or false (1 or 0, yes or no, on or off), not 'sure'",
        "set PIP_NO_INDEX=1 to use no index at all, or unset it",
    )


def test_every_usage_problem_is_reported_at_once() -> None:
    message, hint = usage_error(CliOptions(python_version="4.0", max_size_mb=-1), {"SOURCE_DATE_EPOCH": "soon"})
    assert hint is None
    assert message == (
        "3 problems with the command line and the environment:\n"
        "  unsupported Python version '4.0'\n"
        "    = hint: use a CPython 3 version such as 3.11 (3.8 or newer)\n"
        "  --max-size must be a positive whole number of megabytes, not -1\n"
        "    = hint: give the limit in megabytes, such as --max-size 500\n"
        "  SOURCE_DATE_EPOCH must be a whole number of seconds since 1970-01-01, not 'soon'\n"
        "    = hint: set it to an integer such as the last commit's time: $(git log -1 --format=%ct), or unset it"
    )


def test_usage_problems_join_the_diagnostics_when_pyproject_has_errors_too() -> None:
    found = diagnostics("[tool.flashc]\nturbo = 1\n", CliOptions(glibc="x"), {"SOURCE_DATE_EPOCH": "-1"})
    assert [(d.path, d.span is not None, d.message) for d in found] == [
        ("pyproject.toml", True, "unknown key 'turbo' in [tool.flashc]"),
        ("<command line>", False, "invalid glibc version 'x'"),
        ("<environment>", False, "SOURCE_DATE_EPOCH must be a whole number of seconds since 1970-01-01, not '-1'"),
    ]


# read_config: the I/O edge


def test_read_config_reads_the_project_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(TOOL)
    config = read_config(tmp_path, CliOptions(), environ={"SOURCE_DATE_EPOCH": "5"}, host_python="3.9")
    assert config == parse(TOOL, env={"SOURCE_DATE_EPOCH": "5"})
    assert read_config(tmp_path / "empty", CliOptions(), environ={}, host_python="3.9").python_version == "3.9"


def test_read_config_errors_point_at_the_project(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.flashc]\nturbo = 1\n")
    with pytest.raises(DiagnosticsError) as info:
        read_config(tmp_path, CliOptions(), environ={})
    assert info.value.root == tmp_path.resolve()
    assert info.value.message == "1 error found"


def test_keys_in_dotted_form_or_an_inline_table_are_located_too() -> None:
    dotted = 'tool.flashc.pyton_version = "3.11"\n'
    assert diagnostics(dotted) == [
        located(1, 13, 26, "unknown key 'pyton_version' in [tool.flashc]", "did you mean 'python_version'?")
    ]
    inline = "[tool]\nflashc = {python_version = 3, exlcude = []}\n"
    found = diagnostics(inline)
    assert [(d.span.line, d.span.col) if d.span else None for d in found] == [(2, 28), (2, 31)]
    assert found[1].message == "unknown key 'exlcude' in [tool.flashc]"
