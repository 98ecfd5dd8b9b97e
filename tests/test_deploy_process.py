"""What an endpoint process gets: its variables, layered like a Runpod worker's, and its network volume."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from flashc.deploy.process import Unset, endpoint_environment, resource_env
from flashc.deploy.volumes import MOUNT_POINT, volume_folder, volume_of, wrap

# --- resource_env -------------------------------------------------------------------------------


def test_resource_env_is_the_template_env_then_env_which_wins() -> None:
    config = {
        "template": {"env": [{"key": "A", "value": "template-a"}, {"key": "B", "value": "template-b"}]},
        "env": {"B": "env-b", "C": "env-c"},
    }
    filled, unset = resource_env("gpu", config, {})
    assert filled == {"A": "template-a", "B": "env-b", "C": "env-c"}
    assert unset == []


def test_resource_env_fills_references_from_the_variables() -> None:
    config = {
        "template": {"env": [{"key": "HF_TOKEN", "value": "${HF_TOKEN}"}]},
        "env": {"DSN": "postgres://${USER}:${PASS}@db/x", "LITERAL": "$${NOT_A_REFERENCE}"},
    }
    variables = {"HF_TOKEN": "hf_abc", "USER": "u", "PASS": "p", "UNUSED": "never"}
    filled, unset = resource_env("gpu", config, variables)
    assert filled == {"HF_TOKEN": "hf_abc", "DSN": "postgres://u:p@db/x", "LITERAL": "${NOT_A_REFERENCE}"}
    assert unset == []


def test_resource_env_reports_each_missing_reference_with_resource_key_and_variable() -> None:
    config = {
        "template": {"env": [{"key": "HF_TOKEN", "value": "${HF_TOKEN}"}]},
        "env": {"DSN": "${USER}:${PASS}@${HOST}", "OTHER": "${PASS}"},
    }
    _, unset = resource_env("worker", config, {"USER": "u"})
    assert unset == [
        Unset("worker", "HF_TOKEN", "HF_TOKEN"),
        Unset("worker", "DSN", "PASS"),
        Unset("worker", "DSN", "HOST"),
        Unset("worker", "OTHER", "PASS"),
    ]


def test_resource_env_does_not_require_references_of_an_overridden_template_value() -> None:
    config = {
        "template": {"env": [{"key": "HF_TOKEN", "value": "${SHARED_HF_TOKEN}"}]},
        "env": {"HF_TOKEN": "${MY_HF_TOKEN}"},
    }
    filled, unset = resource_env("gpu", config, {"MY_HF_TOKEN": "hf_mine"})
    assert filled == {"HF_TOKEN": "hf_mine"}
    assert unset == []


@pytest.mark.parametrize("template", [None, "tmpl-123", ["env"], {"env": None}, {"name": "t"}])
def test_resource_env_ignores_a_template_without_an_env_list(template: object) -> None:
    filled, unset = resource_env("cpu", {"template": template, "env": {"A": "1"}}, {})
    assert (filled, unset) == ({"A": "1"}, [])


def test_resource_env_ignores_template_entries_that_are_not_mappings() -> None:
    config = {"template": {"env": ["A=1", {"key": "B", "value": "2"}]}}
    assert resource_env("cpu", config, {}) == ({"B": "2"}, [])


def test_resource_env_without_env_is_empty() -> None:
    assert resource_env("cpu", {"name": "cpu"}, {"HF_TOKEN": "x"}) == ({}, [])


def test_resource_env_values_become_text() -> None:
    filled, _ = resource_env("cpu", {"env": {"WORKERS": 4, "DEBUG": True}}, {})
    assert filled == {"WORKERS": "4", "DEBUG": "True"}


# --- endpoint_environment -----------------------------------------------------------------------


def layered(**overrides: dict[str, str]) -> dict[str, str]:
    layers: dict[str, dict[str, str]] = {"image": {}, "runpod": {}, "resource": {}, "flashc": {}} | overrides
    return endpoint_environment(env_bin=Path("/cache/envs/py3.12-abc/bin"), home="/home/me", **layers)


def test_endpoint_environment_base_runs_the_env_python_first() -> None:
    env = layered()
    assert env["PATH"].split(":")[0] == "/cache/envs/py3.12-abc/bin"
    assert "/usr/bin" in env["PATH"].split(":")
    assert env["HOME"] == "/home/me"
    assert env["LANG"] == "C.UTF-8"


def test_endpoint_environment_later_layers_win() -> None:
    env = layered(
        image={"TZ": "Etc/UTC", "A": "image", "B": "image", "C": "image", "D": "image", "LANG": "image"},
        runpod={"B": "runpod", "C": "runpod", "D": "runpod", "RUNPOD_ENDPOINT_ID": "ep"},
        resource={"C": "resource", "D": "resource"},
        flashc={"D": "flashc"},
    )
    assert env == {
        "PATH": env["PATH"],
        "HOME": "/home/me",
        "LANG": "image",
        "TZ": "Etc/UTC",
        "A": "image",
        "B": "runpod",
        "C": "resource",
        "D": "flashc",
        "RUNPOD_ENDPOINT_ID": "ep",
    }


def test_endpoint_environment_takes_nothing_from_the_deploying_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHC_TEST_SHELL_SECRET", "leaked")
    monkeypatch.setenv("HOME", "/shell/home")
    monkeypatch.setenv("PATH", "/shell/bin")
    env = layered(resource={"MODEL_ID": "gpt2"})
    assert set(env) == {"PATH", "HOME", "LANG", "MODEL_ID"}
    assert "leaked" not in env.values()
    assert "/shell" not in env["PATH"]
    assert env["HOME"] == "/home/me"


# --- volume_of ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "volume"),
    [
        ({"networkVolume": {"name": "models", "id": "vol-1"}, "networkVolumeId": "vol-2"}, "models"),
        ({"networkVolume": {"id": "vol-1"}, "networkVolumeId": "vol-2"}, "vol-1"),
        ({"networkVolume": {"name": "", "id": ""}, "networkVolumeId": "vol-2"}, "vol-2"),
        ({"networkVolume": {"name": 3}, "networkVolumeId": "vol-2"}, "vol-2"),
        ({"networkVolume": "models", "networkVolumeId": "vol-2"}, "vol-2"),
        ({"networkVolumeId": "vol-2"}, "vol-2"),
        ({"networkVolumeId": ""}, None),
        ({"networkVolume": None}, None),
        ({}, None),
    ],
)
def test_volume_of(config: dict[str, object], volume: str | None) -> None:
    assert volume_of(config) == volume


# --- volume_folder ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("models", "models"),
        ("team/models v2", "team_models_v2"),
        ("../../etc", "etc"),
        ("..hidden..", "hidden"),
        (".", "volume"),
        ("///", "volume"),
        ("", "volume"),
        ("vol-1.data", "vol-1.data"),
    ],
)
def test_volume_folder_is_a_safe_name_under_flash_volumes(tmp_path: Path, name: str, folder: str) -> None:
    found = volume_folder(tmp_path, name)
    assert found == tmp_path / ".flash" / "volumes" / folder
    assert found.resolve().parent == (tmp_path / ".flash" / "volumes").resolve()


# --- wrap ---------------------------------------------------------------------------------------


def test_wrap_runs_the_command_under_unshare_with_the_folder_first(tmp_path: Path) -> None:
    folder = tmp_path / ".flash" / "volumes" / "models"
    command = ["/envs/bin/python", "-m", "flashc_runtime.server", "--flag with space"]
    wrapped = wrap(command, folder)
    assert Path(wrapped[0]).name == "unshare"
    separator = wrapped.index("--")
    assert set(wrapped[1:separator]) == {"--user", "--map-root-user", "--mount"}
    assert wrapped[separator + 1 : separator + 3] == ["/bin/sh", "-c"]
    assert wrapped[separator + 4] == str(folder)  # the script's $0
    assert wrapped[separator + 5 :] == command
    assert folder.is_dir()


def test_wrap_script_binds_the_folder_on_the_mount_point_then_runs_the_command(tmp_path: Path) -> None:
    # Run the namespace's shell part with a `mount` that only records what it was asked.
    fakes = tmp_path / "bin"
    fakes.mkdir()
    log = tmp_path / "mount.log"
    mount = fakes / "mount"
    mount.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\n')
    mount.chmod(0o755)
    folder = tmp_path / "volume folder"
    wrapped = wrap(["printf", "[%s]", "a b", "c"], folder)
    shell_part = wrapped[wrapped.index("--") + 1 :]
    proc = subprocess.run(
        shell_part, capture_output=True, text=True, check=False, env={"PATH": f"{fakes}:{os.defpath}"}
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[a b][c]"
    assert log.read_text().splitlines() == ["--bind", "--", str(folder), MOUNT_POINT]


def test_wrap_script_does_not_run_the_command_when_the_mount_fails(tmp_path: Path) -> None:
    fakes = tmp_path / "bin"
    fakes.mkdir()
    mount = fakes / "mount"
    mount.write_text("#!/bin/sh\nexit 32\n")
    mount.chmod(0o755)
    ran = tmp_path / "ran"
    wrapped = wrap(["touch", str(ran)], tmp_path / "volume")
    shell_part = wrapped[wrapped.index("--") + 1 :]
    proc = subprocess.run(shell_part, capture_output=True, check=False, env={"PATH": f"{fakes}:{os.defpath}"})
    assert proc.returncode == 32
    assert not ran.exists()
