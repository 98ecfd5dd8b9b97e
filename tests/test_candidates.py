"""Which files are parsed up front (flashc/analyze/candidates.py): SDK code is, a word is not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flashc.analyze import analyze_project
from flashc.analyze.cache import SummaryStore
from flashc.analyze.candidates import anchor, select_candidates, uses_exports
from flashc.modules import ModuleFile, module_files
from flashc.sources import snapshot_project

WORKER = """\
from tetra_rp import LiveServerless, remote


@remote(LiveServerless(name="worker"))
def work(x):
    return x
"""


def make(root: Path, tree: dict[str, str]) -> Path:
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def candidates(tmp_path: Path, tree: dict[str, str]) -> list[str]:
    """The files selected for parsing in a project of `tree`, as `analyze_project` selects them."""
    snapshot = snapshot_project(make(tmp_path / "proj", tree))
    files = module_files(snapshot.files)
    store = SummaryStore(snapshot, use_cache=False, contexts={p: anchor(f) for p, f in files.items()})
    return select_candidates(files, store)


def function_ids(tmp_path: Path, tree: dict[str, str]) -> list[str]:
    analysis = analyze_project(make(tmp_path / "proj", tree), use_cache=False)
    assert not analysis.has_errors, analysis.diagnostics
    return [f.id for f in analysis.functions]


# The sdk rule: a file that imports the SDK, in any form


@pytest.mark.parametrize(
    "source",
    [
        "from tetra_rp import remote\n",
        "import runpod_flash as rf\n",
        "from runpod_flash.endpoint import Endpoint\n",
        "from flashc_runtime import *\n",
        "import tetra_rp\n",
        "import os, tetra_rp.resources\n",
        "from tetra_rp import (\n    LiveServerless,\n    remote,\n)\n",
        "def later():\n    from runpod_flash import remote\n    return remote\n",
    ],
    ids=["from", "import-as", "submodule", "star", "import", "in-a-list", "parenthesised", "in-a-body"],
)
def test_a_file_importing_the_sdk_is_selected(tmp_path: Path, source: str) -> None:
    assert candidates(tmp_path, {"app.py": source, "plain.py": "VALUE = 1\n"}) == ["app.py"]


def test_a_file_decorating_with_remote_is_selected_even_without_an_import(tmp_path: Path) -> None:
    # Its missing import is reported, which needs the file parsed.
    tree = {"app.py": "@remote(cfg)\ndef forgot(x):\n    return x\n"}
    assert candidates(tmp_path, tree) == ["app.py"]
    analysis = analyze_project(make(tmp_path / "proj", tree), use_cache=False)
    assert [d.code for d in analysis.diagnostics] == ["remote-not-imported"]


# Files that only say "remote": not parsed


@pytest.mark.parametrize(
    "source",
    [
        "def client_ip(request):\n    return request.remote_addr\n",
        '"""Fetch the remote branch, as `git fetch` does."""\n',
        "def remote(url):\n    return url\n\n\nMIRROR = remote('https://example.org')\n",
        "from fabric import remote\n\nremote.run('ls')\n",
        "import paramiko\n\nclient = paramiko.SSHClient()  # connects to the remote host\n",
        # The name the worker module binds to the SDK's remote, imported from elsewhere.
        "from fabric import remote  # not the worker's\n\nremote.run('ls')\n",
    ],
    ids=["attribute", "docstring", "own-function", "other-library", "comment", "same-name-other-module"],
)
def test_a_file_that_only_mentions_remote_is_not_parsed(tmp_path: Path, source: str) -> None:
    tree = {"worker.py": WORKER, "other.py": source}
    assert candidates(tmp_path, tree) == ["worker.py"]
    analysis = analyze_project(make(tmp_path / "proj2", tree), use_cache=False)
    assert [f.id for f in analysis.functions] == ["worker:work"]
    assert (analysis.python_files, analysis.parsed_files) == (2, 1)


# The uses rule: names a selected module binds to SDK things


CONFIG = """\
from tetra_rp import LiveServerless, remote
from tetra_rp import remote as endpoint
from runpod_flash import Endpoint
from runpod_flash import Endpoint as E

GPU = LiveServerless(name="shared-gpu")
task = remote
gpu_task = remote(LiveServerless(name="prebuilt"))
api = Endpoint(name="api", cpu="cpu3c-2-4")
"""


@pytest.mark.parametrize(
    ("user", "source"),
    [
        ("renamed.py", "from config import GPU, endpoint\n\n\n@endpoint(GPU)\ndef f(x):\n    return x\n"),
        ("alias.py", "from config import GPU, task\n\n\n@task(GPU)\ndef f(x):\n    return x\n"),
        ("prebuilt.py", "from config import gpu_task\n\n\n@gpu_task\ndef f(x):\n    return x\n"),
        ("endpoint_class.py", 'from config import E\n\n\n@E(name="e", gpu="AMPERE_80")\ndef f(x):\n    return x\n'),
        ("instance.py", 'from config import api\n\n\n@api.post("/p")\nasync def f(x):\n    return x\n'),
        ("attribute.py", "import config\n\n\n@config.gpu_task\ndef f(x):\n    return x\n"),
        ("star.py", "from config import *\n\n\n@gpu_task\ndef f(x):\n    return x\n"),
        ("listed.py", "from config import (\n    gpu_task,  # built once\n)\n\n\n@gpu_task\ndef f(x):\n    return x\n"),
        ("continued.py", "from config import \\\n    gpu_task\n\n\n@gpu_task\ndef f(x):\n    return x\n"),
        ("after_semicolon.py", "import os; from config import gpu_task\n\n\n@gpu_task\ndef f(x):\n    return x\n"),
    ],
)
def test_a_file_using_a_name_bound_to_the_sdk_elsewhere_is_selected(tmp_path: Path, user: str, source: str) -> None:
    # The user mentions neither `remote` nor an SDK module.
    assert "remote" not in source and "runpod" not in source and "tetra" not in source
    assert candidates(tmp_path, {"config.py": CONFIG, user: source, "plain.py": "api = 'v1'\n"}) == sorted(
        ["config.py", user]
    )


def test_the_functions_made_with_names_from_another_module_are_found(tmp_path: Path) -> None:
    tree = {
        "config.py": CONFIG.replace("from runpod_flash import Endpoint as E\n", ""),
        "renamed.py": "from config import GPU, endpoint\n\n\n@endpoint(GPU)\ndef renamed(x):\n    return x\n",
        "alias.py": "from config import GPU, task\n\n\n@task(GPU)\ndef alias(x):\n    return x\n",
        "prebuilt.py": "from config import gpu_task\n\n\n@gpu_task\ndef prebuilt(x):\n    return x\n",
    }
    assert function_ids(tmp_path, tree) == ["alias:alias", "prebuilt:prebuilt", "renamed:renamed"]


def test_names_are_followed_through_a_package_init_and_relative_imports(tmp_path: Path) -> None:
    tree = {
        "pkg/config.py": 'from runpod_flash import Endpoint\n\napi = Endpoint(name="api", cpu="cpu3c-2-4")\n',
        "pkg/__init__.py": "from .config import api\n",
        "pkg/sibling.py": "from . import config\n\n\n@config.api.post('/s')\nasync def s(x):\n    return x\n",
        "pkg/deeper/routes.py": "from .. import api\n\n\n@api.get('/r')\nasync def r():\n    return 1\n",
        "app.py": "from pkg import api\n\n\n@api.post('/a')\nasync def a(x):\n    return x\n",
        "unrelated.py": "from pandas import api\nimport configparser\n\nconfig = api.types\n",
    }
    assert candidates(tmp_path, tree) == [
        "app.py",
        "pkg/__init__.py",
        "pkg/config.py",
        "pkg/deeper/routes.py",
        "pkg/sibling.py",
    ]


def test_remote_reexported_by_a_project_module_is_followed_without_an_at_remote_line(tmp_path: Path) -> None:
    tree = {
        "pkg/__init__.py": "",
        "pkg/sdk.py": "from tetra_rp import LiveServerless, remote\n",
        "pkg/app.py": (
            "from .sdk import LiveServerless\nfrom .sdk import remote as r\n\n\n"
            '@r(LiveServerless(name="x"))\ndef through_reexport(x):\n    return x\n'
        ),
        "pkg/direct.py": (
            "from .sdk import LiveServerless, remote\n\n\n"
            '@remote(LiveServerless(name="x"))\ndef direct(x):\n    return x\n'
        ),
    }
    assert candidates(tmp_path, tree) == ["pkg/app.py", "pkg/direct.py", "pkg/sdk.py"]
    assert function_ids(tmp_path, tree) == ["pkg.app:through_reexport", "pkg.direct:direct"]


def test_a_name_rebound_to_something_else_is_not_followed(tmp_path: Path) -> None:
    tree = {
        "config.py": "from tetra_rp import remote\n\ntask = remote\ntask = print\n",
        "user.py": "from config import task\n\ntask('hello')\n",
    }
    assert candidates(tmp_path, tree) == ["config.py"]


def test_uses_exports_reads_the_import_forms() -> None:
    f = ModuleFile("pkg/sub/mod.py", "pkg.sub.mod", False)
    exports = {"pkg.config": frozenset({"api"})}

    def uses(source: str) -> bool:
        return uses_exports(f, source.encode(), exports)

    assert uses("from pkg.config import api\n")
    assert uses("from ..config import api as the_api\n")
    assert uses("from .. import config\nconfig.api\n")
    assert uses("import pkg.config as c\nc.api\n")
    assert uses("import pkg\npkg.config.api\n")
    assert uses("if True: from pkg.config import api\n")
    assert not uses("from .config import api\n")  # pkg.sub.config
    assert not uses("from pkg.config import other\napi = 1\n")
    assert not uses("import pkg.config\n")  # the module, but not the name
    assert not uses("from pandas import api\nimport configparser\n")
