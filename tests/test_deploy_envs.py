"""The local endpoints' environments: what they hold, made once in the cache, and which torch they get."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from flashc.deploy.envs import Env, EnvSpec, TorchUnavailable, ensure_env, env_spec
from flashc.deploy.interpreters import Interpreter
from flashc.deps.requirements import IndexOptions
from flashc.errors import ProjectError

INTERPRETER = Interpreter(path="/usr/bin/python3", version="3.12.1")
IMAGE = {
    "fastapi": "0.115.0",
    "pydantic": "2.9.2",
    "torch": "2.9.1",
    "torchvision": "0.24.1",
    "triton": "3.5.1",
    "nvidia-cublas-cu12": "12.8.4.1",
}

Compile = Callable[[list[str], list[str]], tuple[int, str]]  # (requirement lines, uv args) -> (exit code, stdout)


class FakeUv:
    """uv as `ensure_env` runs it: `venv` makes `<folder>/bin/python`, `pip compile` and `pip install` answer
    what the test says. Every call is recorded with the requirement lines it was given."""

    def __init__(
        self,
        *,
        compile: Compile | None = None,
        install_fails: Callable[[list[str]], str | None] | None = None,
        on_venv: Callable[[], None] | None = None,
    ) -> None:
        self.compile = compile or (lambda lines, args: (0, "".join(f"{line}\n" for line in lines)))
        self.install_fails = install_fails or (lambda args: None)
        self.on_venv = on_venv
        self.calls: list[list[str]] = []
        self.compiled: list[list[str]] = []
        self.installed_pins: list[list[str]] = []
        self._lock = threading.Lock()

    def __call__(self, args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        args = list(args)
        with self._lock:
            self.calls.append(args)
        if args[0] == "venv":
            if self.on_venv is not None:
                self.on_venv()
            python = Path(args[1]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.touch()
            return 0, "", ""
        if args[:2] == ["pip", "compile"]:
            lines = (cwd / args[2]).read_text().splitlines()
            self.compiled.append(lines)
            code, out = self.compile(lines, args)
            return code, out, "" if code == 0 else "error: no solution found\n"
        if args[:2] == ["pip", "install"]:
            if "-r" in args:
                self.installed_pins.append((cwd / args[args.index("-r") + 1]).read_text().splitlines())
            failure = self.install_fails(args)
            return (1, "", failure) if failure is not None else (0, "", "")
        raise AssertionError(f"unexpected uv call: {args}")

    def of(self, *command: str) -> list[list[str]]:
        return [call for call in self.calls if call[: len(command)] == list(command)]

    def torch_installs(self) -> list[list[str]]:
        """The `pip install` calls that install torch (after the image's pins)."""
        return [call for call in self.of("pip", "install") if "-r" not in call]


def spec(pins: dict[str, str] | None = None, torch: Sequence[str] = ()) -> EnvSpec:
    return env_spec("3.12", IMAGE if pins is None else pins, ["Runpod's GPU image"], torch)


def ensure(s: EnvSpec, uv: FakeUv, cache: Path, index: IndexOptions | None = None) -> Env:
    return ensure_env(s, INTERPRETER, cache_dir=cache, index=index or IndexOptions(), uv=uv)


def requirement_lines(call: list[str]) -> list[str]:
    """The requirements a torch `pip install` names: its arguments between the options and `-c`."""
    return [arg for arg in call[: call.index("-c")] if "==" in arg]


# --- env_spec -----------------------------------------------------------------------------------


def test_spec_pins_leave_out_torch_and_its_cuda_companions() -> None:
    assert spec().pins == ("fastapi==0.115.0", "pydantic==2.9.2")


def test_spec_torch_lists_the_wanted_names_the_image_has_at_its_versions() -> None:
    s = spec(torch=["torchvision", "torch", "torchaudio"])  # the image has no torchaudio
    assert s.torch == ("torch==2.9.1", "torchvision==0.24.1")


def test_spec_without_wanted_torch_has_none() -> None:
    assert spec().torch == ()


def test_spec_is_the_same_whatever_the_order_of_its_inputs() -> None:
    backwards = dict(reversed(IMAGE.items()))
    one = env_spec("3.12", IMAGE, ["b", "a", "a"], ["torchvision", "torch"])
    other = env_spec("3.12", backwards, ["a", "b"], ["torch", "torchvision"])
    assert one == other
    assert one.images == ("a", "b")


# --- ensure_env: made once, reused --------------------------------------------------------------


def test_first_call_makes_the_environment_with_the_image_pins(tmp_path: Path) -> None:
    uv = FakeUv()
    env = ensure(spec(), uv, tmp_path)
    assert env.created
    assert env.seconds >= 0
    assert env.torch is None
    assert env.python == env.path / "bin" / "python"
    assert env.python.exists()
    assert env.path.parent == tmp_path / "envs"
    assert env.path.name.startswith("py3.12-")
    assert uv.of("venv")[0][:2] == ["venv", str(env.path)]
    assert "/usr/bin/python3" in uv.of("venv")[0]
    assert uv.installed_pins == [["fastapi==0.115.0", "pydantic==2.9.2"]]
    assert "--no-deps" in uv.of("pip", "install")[0]


def test_second_call_with_the_same_spec_reuses_it_without_running_uv(tmp_path: Path) -> None:
    first = ensure(spec(), FakeUv(), tmp_path)
    uv = FakeUv()
    second = ensure(spec(), uv, tmp_path)
    assert uv.calls == []
    assert not second.created
    assert second.seconds >= 0
    assert (second.path, second.python) == (first.path, first.python)


def test_images_with_the_same_distributions_share_one_environment(tmp_path: Path) -> None:
    first = ensure(env_spec("3.12", IMAGE, ["CPU image"]), FakeUv(), tmp_path)
    uv = FakeUv()
    second = ensure(env_spec("3.12", IMAGE, ["GPU image"]), uv, tmp_path)
    assert second.path == first.path
    assert uv.calls == []


def test_another_pin_gives_another_environment(tmp_path: Path) -> None:
    first = ensure(spec(), FakeUv(), tmp_path)
    uv = FakeUv()
    second = ensure(spec({**IMAGE, "fastapi": "0.116.0"}), uv, tmp_path)
    assert second.created
    assert second.path != first.path
    assert first.python.exists()  # the other one is kept for its own deploys
    assert uv.installed_pins == [["fastapi==0.116.0", "pydantic==2.9.2"]]


def test_progress_says_what_is_made_and_when_it_is_ready(tmp_path: Path) -> None:
    said: list[str] = []
    env = ensure_env(spec(), INTERPRETER, cache_dir=tmp_path, index=IndexOptions(), uv=FakeUv(), progress=said.append)
    assert len(said) == 2
    assert "Runpod's GPU image" in said[0]
    assert "CPython 3.12.1" in said[0]
    assert "2 distributions" in said[0]
    assert str(env.path) in said[0]
    assert said[1].startswith("environment ready in ")


def test_failed_install_leaves_nothing_behind_and_says_why(tmp_path: Path) -> None:
    uv = FakeUv(install_fails=lambda args: "Resolved 2 packages\nerror: fastapi==0.115.0 has no wheel for cp312\n")
    with pytest.raises(ProjectError) as caught:
        ensure(spec(), uv, tmp_path)
    assert caught.value.message == (
        "cannot install the local endpoints' environment: Resolved 2 packages\n"
        "error: fastapi==0.115.0 has no wheel for cp312"
    )
    assert caught.value.hint is not None and "index" in caught.value.hint
    made = Path(uv.of("venv")[0][1])
    assert not made.exists()
    # and the next deploy makes it rather than taking a half-made one
    again = FakeUv()
    assert ensure(spec(), again, tmp_path).created
    assert again.of("venv")


def test_failed_venv_is_a_project_error(tmp_path: Path) -> None:
    def no_venv(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        return 2, "", "error: no interpreter at /usr/bin/python3\n"

    with pytest.raises(ProjectError, match="cannot make the local endpoints' environment: error: no interpreter"):
        ensure_env(spec(), INTERPRETER, cache_dir=tmp_path, index=IndexOptions(), uv=no_venv)
    assert [p.suffix for p in (tmp_path / "envs").iterdir()] == [".lock"]  # no environment folder is left


def test_a_folder_left_by_an_interrupted_run_is_made_again(tmp_path: Path) -> None:
    first = ensure(spec(), FakeUv(), tmp_path)
    (first.path / "flashc-env.json").unlink()  # as if the deploy was killed before writing its record
    (first.path / "half-installed.txt").write_text("x")
    uv = FakeUv()
    again = ensure(spec(), uv, tmp_path)
    assert again.created
    assert again.path == first.path
    assert not (first.path / "half-installed.txt").exists()
    assert len(uv.of("venv")) == 1


def test_a_recorded_folder_whose_python_is_gone_is_made_again(tmp_path: Path) -> None:
    first = ensure(spec(), FakeUv(), tmp_path)
    first.python.unlink()
    uv = FakeUv()
    assert ensure(spec(), uv, tmp_path).created
    assert first.python.exists()


def test_two_deploys_at_once_make_the_environment_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first to take the lock holds it (inside `uv venv`) until the second has asked for it too.
    real_flock = fcntl.flock
    asked = threading.Semaphore(0)

    def flock(fd: object, operation: int) -> None:
        if operation & fcntl.LOCK_EX:  # asking, whether it waits or not
            asked.release()
        real_flock(fd, operation)  # type: ignore[arg-type]

    def hold_until_both_asked() -> None:
        assert asked.acquire(timeout=30) and asked.acquire(timeout=30)

    monkeypatch.setattr(fcntl, "flock", flock)  # the module envs locks with
    uv = FakeUv(on_venv=hold_until_both_asked)
    results: list[Env] = []
    errors: list[BaseException] = []

    def deploy() -> None:
        try:
            results.append(ensure(spec(), uv, tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deploy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(uv.of("venv")) == 1
    assert sorted(env.created for env in results) == [False, True]
    assert results[0].path == results[1].path


# --- ensure_env: which torch --------------------------------------------------------------------


def cpu_index(tmp_path: Path) -> IndexOptions:
    wheels = tmp_path / "cpu-wheels"
    wheels.mkdir(exist_ok=True)
    return IndexOptions(find_links=(str(wheels),))


def test_torch_cpu_build_of_the_image_version_from_find_links(tmp_path: Path) -> None:
    index = cpu_index(tmp_path)
    uv = FakeUv(compile=lambda lines, args: (0, "torch==2.9.1+cpu\n"))
    env = ensure(spec(torch=["torch"]), uv, tmp_path / "cache", index)
    assert uv.compiled == [["torch==2.9.1"]]
    compile_args = uv.of("pip", "compile")[0]
    assert "--no-index" in compile_args  # looked for in the CPU sources only
    assert compile_args[compile_args.index("--find-links") + 1] == index.find_links[0]
    [install] = uv.torch_installs()
    assert requirement_lines(install) == ["torch==2.9.1+cpu"]
    assert install[install.index("-c") + 1] == "pins.txt"  # its dependencies keep the image's versions
    assert env.torch is not None
    assert "CPU build torch==2.9.1+cpu" in env.torch
    assert index.find_links[0] in env.torch
    assert "not found" not in env.torch


def test_torch_record_is_kept_for_a_reused_environment(tmp_path: Path) -> None:
    index = cpu_index(tmp_path)
    first = ensure(
        spec(torch=["torch"]), FakeUv(compile=lambda lines, args: (0, "torch==2.9.1+cpu\n")), tmp_path, index
    )
    uv = FakeUv()
    again = ensure(spec(torch=["torch"]), uv, tmp_path, index)
    assert uv.calls == []
    assert again.torch == first.torch


def test_torch_is_part_of_what_the_environment_is(tmp_path: Path) -> None:
    without = ensure(spec(), FakeUv(), tmp_path)
    uv = FakeUv(compile=lambda lines, args: (0, "".join(f"{line}\n" for line in lines)))
    with_torch = ensure(spec(torch=["torch"]), uv, tmp_path)
    assert with_torch.created
    assert with_torch.path != without.path


@pytest.mark.parametrize(
    "pinned_answer",
    [(1, ""), (0, "torch==2.9.1\n")],
    ids=["pinned version not found", "pinned version is not a CPU build"],
)
def test_torch_cpu_build_of_another_version_says_the_image_version_was_not_found(
    tmp_path: Path, pinned_answer: tuple[int, str]
) -> None:
    def compile(lines: list[str], args: list[str]) -> tuple[int, str]:
        return pinned_answer if lines == ["torch==2.9.1"] else (0, "torch==2.13.0+cpu\n")

    uv = FakeUv(compile=compile)
    env = ensure(spec(torch=["torch"]), uv, tmp_path / "cache", cpu_index(tmp_path))
    assert uv.compiled == [["torch==2.9.1"], ["torch"]]
    assert [requirement_lines(call) for call in uv.torch_installs()] == [["torch==2.13.0+cpu"]]
    assert env.torch is not None
    assert "CPU build torch==2.13.0+cpu" in env.torch
    assert "the image has torch==2.9.1; no CPU build of that version was found" in env.torch


def test_torch_family_cpu_builds_are_installed_together(tmp_path: Path) -> None:
    uv = FakeUv(compile=lambda lines, args: (0, "torch==2.9.1+cpu\ntorchvision==0.24.1+cpu\n"))
    env = ensure(spec(torch=["torch", "torchvision"]), uv, tmp_path / "cache", cpu_index(tmp_path))
    assert uv.compiled == [["torch==2.9.1", "torchvision==0.24.1"]]
    assert [requirement_lines(call) for call in uv.torch_installs()] == [
        ["torch==2.9.1+cpu", "torchvision==0.24.1+cpu"]
    ]
    assert env.torch is not None and "not found" not in env.torch


def test_torch_without_cpu_sources_is_the_image_own_build(tmp_path: Path) -> None:
    uv = FakeUv(compile=lambda lines, args: (0, "torch==2.9.1\n"))
    env = ensure(spec(torch=["torch"]), uv, tmp_path)
    assert "--no-index" not in uv.of("pip", "compile")[0]
    assert [requirement_lines(call) for call in uv.torch_installs()] == [["torch==2.9.1"]]
    assert env.torch is not None
    assert "the image's own build torch==2.9.1" in env.torch
    assert "CPU build" not in env.torch


def test_torch_cpu_sources_without_torch_fall_back_to_the_image_own_build(tmp_path: Path) -> None:
    def compile(lines: list[str], args: list[str]) -> tuple[int, str]:
        return (1, "") if "--no-index" in args else (0, "torch==2.9.1\n")

    uv = FakeUv(compile=compile)
    env = ensure(spec(torch=["torch"]), uv, tmp_path / "cache", cpu_index(tmp_path))
    assert [requirement_lines(call) for call in uv.torch_installs()] == [["torch==2.9.1"]]
    assert env.torch is not None and "the image's own build" in env.torch


def test_torch_that_nothing_resolves_is_unavailable_and_leaves_nothing(tmp_path: Path) -> None:
    uv = FakeUv(compile=lambda lines, args: (1, ""))
    with pytest.raises(TorchUnavailable) as caught:
        ensure(spec(torch=["torch"]), uv, tmp_path / "cache", cpu_index(tmp_path))
    assert "torch==2.9.1" in caught.value.message
    assert caught.value.hint is not None and "find-links" in caught.value.hint
    assert uv.torch_installs() == []
    assert not Path(uv.of("venv")[0][1]).exists()


def test_torch_install_failure_is_unavailable_and_leaves_nothing(tmp_path: Path) -> None:
    def fails(args: list[str]) -> str | None:
        return None if "-r" in args else "error: torch-2.9.1+cpu.whl is not a supported wheel on this platform\n"

    uv = FakeUv(compile=lambda lines, args: (0, "torch==2.9.1+cpu\n"), install_fails=fails)
    with pytest.raises(TorchUnavailable) as caught:
        ensure(spec(torch=["torch"]), uv, tmp_path / "cache", cpu_index(tmp_path))
    assert caught.value.message == (
        "cannot install torch==2.9.1+cpu: error: torch-2.9.1+cpu.whl is not a supported wheel on this platform"
    )
    assert not Path(uv.of("venv")[0][1]).exists()
