"""What a careless or hostile project folder could slip into an archive: credentials, secrets, hard links."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from flashc.cli import main
from flashc.sources import snapshot_project

APP = (
    "from tetra_rp import CpuLiveServerless, remote\n\n"
    '@remote(CpuLiveServerless(name="cpu"))\ndef f(x):\n    return x\n'
)


def make(root: Path, tree: dict[str, str]) -> Path:
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def build(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["build", str(root), *args])
    return result.exit_code, result.output


def shipped(archive: Path) -> set[str]:
    with tarfile.open(archive, "r:*") as tar:
        return {n for n in tar.getnames() if not n.startswith("_flashc/")}


CREDENTIALS = {
    "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----",
    "keys/id_ed25519": "key",
    ".ssh/config": "Host x",
    ".aws/credentials": "[default]",
    "sub/.AWS/config": "[default]",
    ".netrc": "machine x password y",
    ".pypirc": "[pypi]",
    ".npmrc": "//registry/:_authToken=x",
    ".envrc": "export TOKEN=x",
    ".git-credentials": "https://u:p@host",
    ".ENV": "TOKEN=x",
    ".Env.Local": "TOKEN=x",
    "pkg/.env.production": "TOKEN=x",
}


def test_credentials_and_env_files_in_any_case_are_left_out_with_a_note(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP, **CREDENTIALS, "id_rsa.pub": "ssh-rsa AAAA"})
    snapshot = snapshot_project(root)
    assert snapshot.files == ("app.py", "id_rsa.pub")
    assert snapshot.credentials == (
        ".aws/",
        ".envrc",
        ".git-credentials",
        ".netrc",
        ".npmrc",
        ".pypirc",
        ".ssh/",
        "id_rsa",
        "keys/id_ed25519",
        "sub/.AWS/",
    )
    code, output = build(root)
    assert code == 0, output
    assert shipped(root / ".flash" / "archive.tar.gz") == {
        "app.py",
        "id_rsa.pub",
        "flash_manifest.json",
        "handler_cpu.py",
    }
    assert "id_rsa: warning: left out of the archive: a file that usually holds credentials" in output
    assert "hint: to ship it on purpose, add the line `!/id_rsa` to .flashignore" in output
    assert ".aws/: warning: left out of the archive: a folder that usually holds credentials" in output
    assert ".ENV" not in output  # a secret is never shipped, so there is nothing to say


def test_a_negation_rule_ships_a_credential_file_on_purpose_but_never_an_env_file(tmp_path: Path) -> None:
    root = make(
        tmp_path / "p",
        {
            "app.py": APP,
            ".flashignore": "!/deploy_key/id_rsa\n!.npmrc\n!.ENV\n",
            **CREDENTIALS,
            "deploy_key/id_rsa": "k",
        },
    )
    snapshot = snapshot_project(root)
    assert "deploy_key/id_rsa" in snapshot.files and ".npmrc" in snapshot.files
    assert "id_rsa" not in snapshot.files and ".ENV" not in snapshot.files
    assert "deploy_key/id_rsa" not in snapshot.credentials


def test_a_gitignored_credential_is_left_out_without_a_note(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP, ".gitignore": ".netrc\n", ".netrc": "x"})
    snapshot = snapshot_project(root)
    assert ".netrc" in snapshot.ignored
    assert snapshot.credentials == ()


@pytest.mark.skipif(not hasattr(os, "link"), reason="no hard links")
def test_a_hard_link_to_a_file_outside_the_project_is_refused(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP})
    secret = tmp_path / "id_rsa"
    secret.write_text("key")
    os.link(secret, root / "notes.txt")
    code, output = build(root)
    assert code == 1
    assert (
        "flashc: error: 'notes.txt' is hard-linked: 1 of its file's 2 links are not among the shipped files" in output
    )
    assert "cp f f.new && mv f.new f" in output
    assert not (root / ".flash" / "archive.tar.gz").exists()


@pytest.mark.skipif(not hasattr(os, "link"), reason="no hard links")
def test_a_hard_link_into_an_ignored_file_is_refused_and_links_among_shipped_files_are_fine(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP, "a.txt": "shared", ".gitignore": "private/\n", "private/key": "k"})
    os.link(root / "a.txt", root / "b.txt")
    code, output = build(root)
    assert code == 0, output
    assert {"a.txt", "b.txt"} <= shipped(root / ".flash" / "archive.tar.gz")
    os.link(root / "private" / "key", root / "c.txt")
    code, output = build(root)
    assert code == 1
    assert "'c.txt' is hard-linked" in output
    assert "'a.txt'" not in output


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_a_symlink_to_a_hard_link_of_an_outside_file_is_refused(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP, ".gitignore": "hidden\n"})
    secret = tmp_path / "secret"
    secret.write_text("key")
    os.link(secret, root / "hidden")
    (root / "alias.txt").symlink_to("hidden")
    code, output = build(root)
    assert code == 1
    assert "'alias.txt' is hard-linked" in output


# Output and names


def test_an_archive_written_inside_the_project_is_not_packed_into_the_next(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP})
    out = root / "out.tar.gz"
    code, output = build(root, "-o", str(out))
    assert code == 0, output
    first = out.read_bytes()
    code, output = build(root, "-o", str(out), "--force")
    assert code == 0, output
    assert "out.tar.gz" not in shipped(out)
    assert out.read_bytes() == first  # nor does it change the fingerprints: the same sources, the same bytes


def test_an_output_that_is_a_project_source_is_refused(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP, "notes.txt": "mine"})
    code, output = build(root, "-o", str(root / "notes.txt"))
    assert code == 2
    assert "is the project file 'notes.txt', which is not an archive: the build would overwrite it" in output
    assert (root / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(os.name != "posix", reason="names are bytes on POSIX only")
def test_a_file_name_that_is_not_utf8_is_a_clear_error_or_ignored(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP})
    (root / os.fsdecode(b"bad\xffname.txt")).write_text("x")
    code, output = build(root)
    assert code == 1
    assert "flashc: error: file names must be UTF-8, and these bytes are not: 'bad\\xffname.txt'" in output
    assert "internal error" not in output
    (root / ".flashignore").write_text("bad*name.txt\n")
    code, output = build(root)
    assert code == 0, output


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_project_builds_with_output_elsewhere(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": APP})
    root.chmod(0o555)
    try:
        code, output = build(root, "-o", str(tmp_path / "a.tar.gz"))
        assert code == 0, output
        assert "app.py" in shipped(tmp_path / "a.tar.gz")
        code, output = build(root)
        assert code == 1
        assert f"cannot make flashc's build folder '{root / '.flash'}'" in output
        assert "write the archive elsewhere with -o" in output
    finally:
        root.chmod(0o755)
