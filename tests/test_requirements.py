from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable

import pytest

from flashc._toml import loads
from flashc.deps.requirements import (
    IndexOptions,
    Origin,
    Requirement,
    RequirementSet,
    collect,
    from_functions,
    parse_requirements_file,
    pyproject_dependencies,
    read_project_requirements,
)
from flashc.diagnostics import Diagnostic, Note, Span, render
from flashc.models import Location, RemoteFunction


def reader(files: dict[str, str]) -> Callable[[str], str]:
    """The `read` callback over an in-memory project; a missing file raises like the disk does."""

    def read(path: str) -> str:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return textwrap.dedent(files[path])

    return read


def parse_pyproject_dependencies(text: str, path: str = "pyproject.toml") -> tuple[list[Requirement], list[Diagnostic]]:
    return pyproject_dependencies(loads(text), text, path)


def parse(
    text: str, files: dict[str, str] | None = None, path: str = "requirements.txt"
) -> tuple[list[Requirement], IndexOptions, list[Diagnostic]]:
    return parse_requirements_file(textwrap.dedent(text), path, reader(files or {}))


def texts(reqs: list[Requirement] | tuple[Requirement, ...]) -> list[str]:
    return [r.text for r in reqs]


def messages(problems: list[Diagnostic] | tuple[Diagnostic, ...]) -> list[tuple[str, int | None, str, str]]:
    return [(d.path, d.span.line if d.span else None, d.severity, d.message) for d in problems]


def function(fid: str, line: int, *dependencies: str) -> RemoteFunction:
    module, _, qualname = fid.partition(":")
    return RemoteFunction(
        id=fid,
        module=module,
        qualname=qualname,
        kind="function",
        location=Location(module.replace(".", "/") + ".py", line, 1),
        resource="r",
        is_async=False,
        is_generator=False,
        params=(),
        methods=(),
        route=None,
        dependencies=dependencies,
        system_dependencies=(),
        accelerate_downloads=True,
        local=False,
        calls=(),
    )


def merged(*functions: RemoteFunction, file: str = "", pyproject: str = "") -> RequirementSet:
    file_reqs, options, file_problems = parse(file)
    pyproject_reqs, pyproject_problems = parse_pyproject_dependencies(textwrap.dedent(pyproject))
    assert file_problems == [] and pyproject_problems == []
    return collect(from_functions(functions), file_reqs, pyproject_reqs, options)


# --- requirements.txt --------------------------------------------------------------------------


def test_comments_blank_lines_and_continuations() -> None:
    reqs, options, problems = parse(
        """\
        # a comment line
        numpy==1.26.4  # pinned for the GPU image

        torch \\
            >=2.1 \\
            ; python_version >= "3.10"
        # a comment ending in a backslash does not continue \\
        pkg @ https://example.com/pkg.zip#sha256=abc
        """
    )
    assert problems == []
    assert options == IndexOptions()
    assert [(r.text, r.origin.line) for r in reqs] == [
        ("numpy==1.26.4", 2),
        ('torch     >=2.1     ; python_version >= "3.10"', 4),
        ("pkg @ https://example.com/pkg.zip#sha256=abc", 8),
    ]
    assert reqs[1].specifier == ">=2.1"
    assert reqs[0].origin == Origin("requirements.txt", 2, "requirements.txt")


def test_requirement_fields_are_normalised_and_markers_are_kept_not_evaluated() -> None:
    (req,), _, problems = parse("Scikit_Learn[Extra_B,extra-a] >= 1.3 ; python_version < '3.0'\n")
    assert problems == []
    assert req == Requirement(
        name="scikit-learn",
        text="Scikit_Learn[Extra_B,extra-a] >= 1.3 ; python_version < '3.0'",
        specifier=">=1.3",
        extras=("extra-a", "extra-b"),
        marker='python_version < "3.0"',
        url=None,
        origin=Origin("requirements.txt", 1, "requirements.txt"),
    )


def test_include_is_read_relative_to_the_including_file() -> None:
    reqs, _, problems = parse(
        """\
        -r deps/base.txt
        flask
        """,
        {
            "deps/base.txt": "--requirement=../common/shared.txt\nnumpy\n",
            "common/shared.txt": "requests\n",
        },
    )
    assert problems == []
    assert [(r.text, r.origin.path, r.origin.line) for r in reqs] == [
        ("requests", "common/shared.txt", 1),
        ("numpy", "deps/base.txt", 2),
        ("flask", "requirements.txt", 2),
    ]


def test_include_cycle_is_an_error_on_the_line_that_closes_it() -> None:
    reqs, _, problems = parse("-r a.txt\nflask\n", {"a.txt": "numpy\n-r requirements.txt\n"})
    assert texts(reqs) == ["numpy", "flask"]
    assert problems == [
        Diagnostic(
            "a.txt",
            Span(2, 1, 2, 20),
            "error",
            "requirement",
            "requirements files include each other: requirements.txt -> a.txt -> requirements.txt",
            "remove one of the -r lines",
        )
    ]


def test_missing_include_is_an_error_on_the_r_line() -> None:
    _, _, problems = parse("numpy\n  -r missing.txt\n")
    assert problems == [
        Diagnostic(
            "requirements.txt",
            Span(2, 3, 2, 17),
            "error",
            "requirement",
            "cannot read requirements file 'missing.txt': No such file or directory",
        )
    ]


def test_index_options_are_applied_not_taken_as_packages() -> None:
    reqs, options, problems = parse(
        """\
        --index-url https://pypi.example/simple
        -i https://mirror.example/simple
        --extra-index-url=https://download.pytorch.org/whl/cu121
        --extra-index-url https://download.pytorch.org/whl/cu121
        -f ./wheels
        --find-links https://example.com/links
        --no-index --pre
        --trusted-host pypi.example
        -r more.txt
        torch==2.1.0
        """,
        {"more.txt": "--extra-index-url https://extra.example/simple\n"},
    )
    assert problems == []
    assert texts(reqs) == ["torch==2.1.0"]
    assert options == IndexOptions(
        index_url="https://mirror.example/simple",
        extra_index_urls=("https://download.pytorch.org/whl/cu121", "https://extra.example/simple"),
        find_links=("wheels", "https://example.com/links"),
        no_index=True,
        pre=True,
        trusted_hosts=("pypi.example",),
    )


def test_find_links_in_an_include_is_relative_to_that_file() -> None:
    _, options, problems = parse("-r deps/gpu.txt\n", {"deps/gpu.txt": "--find-links ../wheels\n"})
    assert problems == []
    assert options.find_links == ("wheels",)


def test_constraints_file_is_a_warning_not_silently_dropped() -> None:
    reqs, _, problems = parse("-c constraints.txt\nnumpy\n")
    assert texts(reqs) == ["numpy"]
    assert problems == [
        Diagnostic(
            "requirements.txt",
            Span(1, 1, 1, 19),
            "warning",
            "requirement",
            "constraints files are not supported yet; 'constraints.txt' is ignored",
            "pin the versions you need in requirements.txt",
        )
    ]


@pytest.mark.parametrize(
    "line",
    [
        "-e .",
        "--editable=./pkg",
        "./pkg",
        "../sibling",
        "/opt/src/pkg",
        "file:///opt/src/pkg",
        "pkg @ file:///opt/src/pkg",
        "pkg @ ./pkg",
        "dist/pkg-1.0-py3-none-any.whl",
        "pkg-1.0.tar.gz",
    ],
)
def test_local_paths_and_editables_are_errors(line: str) -> None:
    reqs, _, problems = parse(f"numpy\n{line}\n")
    assert texts(reqs) == ["numpy"]
    assert problems == [
        Diagnostic(
            "requirements.txt",
            Span(2, 1, 2, len(line) + 1),
            "error",
            "requirement",
            f"'{line}': local path requirements cannot be resolved for the target",
            "build a wheel and point --find-links at its folder, or publish it to an index",
        )
    ]


def test_editable_vcs_requirement_is_an_error_that_suggests_a_url() -> None:
    _, _, problems = parse("-e git+https://github.com/org/lib#egg=lib\n")
    assert messages(problems) == [
        (
            "requirements.txt",
            1,
            "error",
            "'-e git+https://github.com/org/lib#egg=lib': editable requirements cannot be installed into the bundle",
        )
    ]


def test_remote_url_requirement_is_kept() -> None:
    (req,), _, problems = parse("pkg @ https://example.com/pkg-1.0-py3-none-any.whl\n")
    assert problems == []
    assert (req.name, req.url) == ("pkg", "https://example.com/pkg-1.0-py3-none-any.whl")


def test_unknown_option_is_an_error_naming_it() -> None:
    _, _, problems = parse("--use-feature=x\n--no-deps\nnumpy==1.0 --hash=sha256:abc\n--index-url\n")
    assert messages(problems) == [
        ("requirements.txt", 1, "error", "unknown option '--use-feature' in a requirements file"),
        ("requirements.txt", 2, "error", "unknown option '--no-deps' in a requirements file"),
        ("requirements.txt", 3, "error", "option '--hash' after a requirement is not supported"),
        ("requirements.txt", 4, "error", "option '--index-url' needs a value"),
    ]
    assert problems[2].hint == "hash checking is not supported yet; leave the hashes out"


def test_invalid_requirement_is_an_error_with_its_line_and_text() -> None:
    reqs, _, problems = parse("numpy\nnumpy=1.26\n\ntorch >>= 2\n")
    assert texts(reqs) == ["numpy"]
    assert problems == [
        Diagnostic(
            "requirements.txt",
            Span(2, 1, 2, 11),
            "error",
            "requirement",
            "invalid requirement 'numpy=1.26'",
            "did you mean 'numpy==1.26'?",
        ),
        Diagnostic(
            "requirements.txt",
            Span(4, 1, 4, 12),
            "error",
            "requirement",
            "invalid requirement 'torch >>= 2'",
            "write a PEP 508 requirement such as 'numpy==1.26.4' or 'torch>=2.1'",
        ),
    ]


def test_invalid_requirement_renders_like_a_compiler() -> None:
    source = "numpy\n  torch >>= 2  # gpu\n"
    _, _, (problem,) = parse(source)
    lines = source.splitlines()
    assert render(problem, lambda _path, n: lines[n - 1]) == (
        "requirements.txt:2:3: error: invalid requirement 'torch >>= 2'\n"
        " 2 |   torch >>= 2  # gpu\n"
        "   |   ^~~~~~~~~~~\n"
        "  = hint: write a PEP 508 requirement such as 'numpy==1.26.4' or 'torch>=2.1'"
    )


def test_continued_invalid_line_spans_every_physical_line() -> None:
    _, _, (problem,) = parse("torch \\\n  >>= 2\n")
    assert (problem.message, problem.span) == ("invalid requirement 'torch   >>= 2'", Span(1, 1, 2, 8))


# --- pyproject.toml ----------------------------------------------------------------------------


def test_pyproject_dependencies() -> None:
    reqs, problems = parse_pyproject_dependencies(
        textwrap.dedent(
            """\
            [project]
            name = "app"
            dependencies = ["Pillow>=10", "httpx[http2] ; python_version >= '3.10'"]
            [project.optional-dependencies]
            dev = ["pytest"]
            """
        )
    )
    assert problems == []
    assert [(r.name, r.text, r.origin) for r in reqs] == [
        ("pillow", "Pillow>=10", Origin("pyproject.toml", 3, "[project.dependencies]")),
        ("httpx", "httpx[http2] ; python_version >= '3.10'", Origin("pyproject.toml", 3, "[project.dependencies]")),
    ]


def test_pyproject_without_project_table_has_no_requirements() -> None:
    assert parse_pyproject_dependencies("[tool.ruff]\nline-length = 120\n") == ([], [])


def test_invalid_and_local_pyproject_dependencies_are_errors() -> None:
    reqs, problems = parse_pyproject_dependencies(
        '[project]\ndependencies = ["numpy", "torch=2", "lib @ file:///src/lib"]\n', "svc/pyproject.toml"
    )
    assert texts(reqs) == ["numpy"]
    assert messages(problems) == [
        ("svc/pyproject.toml", 2, "error", "invalid requirement 'torch=2' in [project.dependencies]"),
        (
            "svc/pyproject.toml",
            2,
            "error",
            "'lib @ file:///src/lib': local path requirements cannot be resolved for the target",
        ),
    ]


def test_dynamic_or_malformed_pyproject_dependencies_are_reported() -> None:
    _, dynamic = parse_pyproject_dependencies('[project]\ndynamic = ["dependencies"]\n')
    _, malformed = parse_pyproject_dependencies('[project]\ndependencies = "numpy"\n')
    assert messages(dynamic) == [
        (
            "pyproject.toml",
            None,
            "warning",
            "[project.dependencies] is dynamic in pyproject.toml, so flashc cannot read it",
        )
    ]
    assert messages(malformed) == [
        ("pyproject.toml", None, "error", "[project.dependencies] in pyproject.toml must be a list of strings")
    ]


# --- functions and collect ---------------------------------------------------------------------


def test_from_functions_records_the_function_as_origin_in_id_order() -> None:
    reqs = from_functions([function("workers.b:g", 9, "torch"), function("workers.a:f", 5, "NumPy==1.26.2", "bad=1")])
    assert [(r.name, r.origin) for r in reqs] == [
        ("numpy", Origin("workers/a.py", 5, "dependencies of workers.a:f")),
        ("torch", Origin("workers/b.py", 9, "dependencies of workers.b:g")),
    ]


def test_normalised_names_and_deterministic_order() -> None:
    one = merged(
        function("workers.b:g", 9, "Scikit_Learn>=1.3", "zlib-ng"),
        function("workers.a:f", 5, "scikit-learn>=1.3", "numpy"),
        file="Pillow\nNUMPY\nnumpy>=1\n",
        pyproject='[project]\ndependencies = ["aiohttp", "numpy"]\n',
    )
    assert [(r.name, r.text) for r in one.requirements] == [
        ("aiohttp", "aiohttp"),
        ("numpy", "numpy"),
        ("numpy", "numpy>=1"),
        ("pillow", "Pillow"),
        ("scikit-learn", "scikit-learn>=1.3"),
        ("zlib-ng", "zlib-ng"),
    ]
    # exact duplicates keep the first place: functions (by id), then requirements files, then pyproject
    assert one.requirements[1].origin.what == "dependencies of workers.a:f"
    assert one.problems == ()


def test_sdk_distributions_are_provided_by_the_runtime_in_every_spelling() -> None:
    result = merged(
        function("app:f", 3, "tetra_rp", "numpy"),
        file="tetra-rp>=0.5\nrunpod-flash\nrunpod_flash\nRunpod.Flash\nflashc\nflashc-runtime\nflashc_runtime\n",
        pyproject='[project]\ndependencies = ["Tetra_RP"]\n',
    )
    assert texts(result.requirements) == ["numpy"]
    assert [(r.name, r.text) for r in result.provided_by_runtime] == [
        ("flashc", "flashc"),
        ("flashc-runtime", "flashc-runtime"),
        ("runpod-flash", "runpod-flash"),
        ("tetra-rp", "tetra-rp>=0.5"),
        ("tetra-rp", "tetra_rp"),
    ]
    assert result.problems == ()


def test_conflicting_pins_between_functions_name_both_places() -> None:
    result = merged(function("workers.b:g", 9, "numpy>=2"), function("workers.a:f", 5, "numpy==1.26.2"))
    assert texts(result.requirements) == ["numpy==1.26.2", "numpy>=2"]
    assert result.has_errors
    assert result.problems == (
        Diagnostic(
            "workers/a.py",
            Span(5, 1, 6, 1),
            "error",
            "requirement",
            "conflicting requirements for numpy: 'numpy==1.26.2' (dependencies of workers.a:f, workers/a.py:5) "
            "and 'numpy>=2' (dependencies of workers.b:g, workers/b.py:9) cannot both hold",
            "require versions that agree: a resource installs its functions' requirements and the project's files' "
            "together",
            (Note("workers/b.py", Span(9, 1, 10, 1), "'numpy>=2' is required here"),),
        ),
    )


def test_conflict_with_files_names_the_file_places() -> None:
    result = merged(
        function("app:f", 4, "torch==2.1.0"),
        file="# gpu\nTorch==2.2.0\n",
        pyproject='[project]\ndependencies = ["torch<2"]\n',
    )
    assert [d.message for d in result.problems] == [
        "conflicting requirements for torch: 'torch==2.1.0' (dependencies of app:f, app.py:4) "
        "and 'Torch==2.2.0' (requirements.txt:2) cannot both hold",
        "conflicting requirements for torch: 'torch==2.1.0' (dependencies of app:f, app.py:4) "
        "and 'torch<2' ([project.dependencies], pyproject.toml:2) cannot both hold",
        "conflicting requirements for torch: 'Torch==2.2.0' (requirements.txt:2) "
        "and 'torch<2' ([project.dependencies], pyproject.toml:2) cannot both hold",
    ]
    assert result.problems[2].notes == (Note("pyproject.toml", Span(2, 1, 3, 1), "'torch<2' is required here"),)


def test_pins_of_different_resources_may_differ() -> None:
    # Each resource then gets a site folder of its own; only what one resource installs must agree.
    old = dataclasses.replace(function("workers.a:f", 5, "numpy==1.26.2"), resource="old")
    new = dataclasses.replace(function("workers.b:g", 9, "numpy>=2"), resource="new")
    result = merged(old, new)
    assert result.problems == ()
    assert [(r.text, r.resource) for r in result.requirements] == [("numpy==1.26.2", "old"), ("numpy>=2", "new")]
    assert [r.text for r in result.for_resource("old")] == ["numpy==1.26.2"]
    # A project file's pin applies to every resource, so it conflicts with either.
    clash = merged(old, new, file="numpy<1\n")
    assert len(clash.problems) == 2


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("numpy==1.26.2", "numpy==1.26.3"),
        ("numpy==1.26.2", "numpy>=2"),
        ("numpy==2.0", "numpy!=2.0"),
        ("numpy==1.4", "numpy~=1.5"),
        ("numpy==1.26.2", "numpy==2.*"),
        ("numpy>=2", "numpy<2"),
        ("numpy>3", "numpy<=3"),
        ("numpy>=2,<3", "numpy>=3.1"),
        ("numpy~=2.1", "numpy<2"),
    ],
)
def test_conflicting_specifiers(a: str, b: str) -> None:
    result = merged(function("app:f", 1, a), function("app:g", 2, b))
    assert [d.message.split(":")[0] for d in result.problems] == ["conflicting requirements for numpy"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("numpy", "numpy==1.26.2"),
        ("numpy==1.26.2", "numpy>=1.26,<2"),
        ("numpy==1.26", "numpy==1.26.0"),
        ("numpy>=2", "numpy<=2"),
        ("numpy>1", "numpy<2"),  # 1.5 satisfies both, though neither boundary does
        ("numpy>=2,!=2.1", "numpy<3"),
        ("numpy==2.0rc1", "numpy>=2.0rc1"),
        ("torch==2.1.0", "torch==2.1.0+cu121"),
        ("numpy==1.*", "numpy<1.5"),
        ("numpy===1.0", "numpy==2.0"),
        ("numpy @ https://example.com/numpy-2.0.whl", "numpy==1.0"),
        ("numpy[extra]==1.0", "numpy==1.0"),
    ],
)
def test_compatible_specifiers_are_all_kept(a: str, b: str) -> None:
    result = merged(function("app:f", 1, a), function("app:g", 2, b))
    assert result.problems == ()
    assert sorted(texts(result.requirements)) == sorted([a, b])


def test_different_markers_never_conflict() -> None:
    result = merged(
        function("app:f", 1, 'numpy==1.26.4; python_version < "3.11"'),
        function("app:g", 2, 'numpy>=2; python_version >= "3.11"', "torch==2.1"),
        file="torch==2.2 ; sys_platform == 'linux'\n",
    )
    assert result.problems == ()
    assert len(result.requirements) == 4


def test_same_marker_spelled_differently_still_conflicts() -> None:
    result = merged(
        function("app:f", 1, "numpy==1.26.4 ; python_version<'3.11'"),
        function("app:g", 2, 'numpy>=2; python_version < "3.11"'),
    )
    assert len(result.problems) == 1


def test_local_url_in_function_dependencies_is_an_error() -> None:
    result = merged(function("app:f", 7, "lib @ file:///src/lib", "numpy"))
    assert texts(result.requirements) == ["numpy"]
    assert messages(result.problems) == [
        ("app.py", 7, "error", "'lib @ file:///src/lib': local path requirements cannot be resolved for the target")
    ]


# --- reading a project -------------------------------------------------------------------------


def test_read_project_requirements_reads_both_files() -> None:
    files = {
        "requirements.txt": "--extra-index-url https://x.example/simple\n-r deps/gpu.txt\ntetra_rp\n",
        "deps/gpu.txt": "torch==2.1.0\n-r missing.txt\n",
    }
    pyproject = '[project]\ndependencies = ["httpx"]\n'
    result = read_project_requirements(
        [function("app:f", 3, "numpy", "torch>=2.2")], files.get, (loads(pyproject), pyproject)
    )
    assert texts(result.requirements) == ["httpx", "numpy", "torch==2.1.0", "torch>=2.2"]
    assert texts(result.provided_by_runtime) == ["tetra_rp"]
    assert result.options.extra_index_urls == ("https://x.example/simple",)
    assert messages(result.problems) == [
        (
            "app.py",
            3,
            "error",
            "conflicting requirements for torch: 'torch>=2.2' (dependencies of app:f, app.py:3) "
            "and 'torch==2.1.0' (deps/gpu.txt:1) cannot both hold",
        ),
        ("deps/gpu.txt", 2, "error", "cannot read requirements file 'deps/missing.txt': No such file or directory"),
    ]


def test_an_unreadable_requirements_file_is_reported() -> None:
    def read(path: str) -> str | None:
        raise PermissionError(13, "Permission denied", path)

    result = read_project_requirements([], read)
    assert messages(result.problems) == [
        ("requirements.txt", None, "error", "cannot read requirements.txt: Permission denied")
    ]


def test_read_project_requirements_without_files() -> None:
    result = read_project_requirements([function("app:f", 3, "numpy")], {}.get)
    assert result == RequirementSet(
        requirements=(
            Requirement("numpy", "numpy", "", (), None, None, Origin("app.py", 3, "dependencies of app:f"), "r"),
        ),
        options=IndexOptions(),
        provided_by_runtime=(),
        problems=(),
    )


def test_pins_whose_markers_do_not_hold_on_the_worker_do_not_conflict() -> None:
    from flashc.deps.target import Target

    a = function("app:f", 1, 'beta==1.0; python_version < "3.10"')
    b = function("app:g", 2, 'beta>=1.5; python_version < "3.10"')
    files, options, _ = parse("")
    assert collect(from_functions([a, b]), files, [], options).has_errors  # no target: cannot tell
    assert not collect(from_functions([a, b]), files, [], options, Target("3.11")).has_errors
    assert collect(from_functions([a, b]), files, [], options, Target("3.9")).has_errors


def test_pips_binary_options_are_understood() -> None:
    reqs, _, problems = parse("--only-binary :all:\n--prefer-binary\nnumpy\n--no-binary numpy\n")
    assert texts(reqs) == ["numpy"]
    assert messages(problems) == [
        (
            "requirements.txt",
            4,
            "warning",
            "'--no-binary numpy' is ignored: the worker gets wheels only, never a source build",
        )
    ]
