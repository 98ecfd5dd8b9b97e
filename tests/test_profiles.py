"""Worker-image profiles: the packaged TOML files hold the facts of worker-image.md; the loader answers from them."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources

import pytest

from flashc._toml import loads
from flashc.profiles import (
    KNOWN_DISTRIBUTIONS,
    Profile,
    Provided,
    distribution_for,
    module_names,
    parse_profile,
    profile_for,
    profiles,
)
from flashc.profiles.generate import IMAGES, WORKER_CLOSURE, Image, parse_pins, render, top_level_names

NAMES = ("runpod-cpu", "runpod-gpu", "runpod-lb-cpu", "runpod-lb-gpu")
GPU = ("runpod-gpu", "runpod-lb-gpu")
CPU = ("runpod-cpu", "runpod-lb-cpu")

# shared/research/worker-image.md: the closure the worker's Dockerfiles install, pinned here independently of the
# generator so that a regeneration that drifts from the research fails.
CLOSURE_TEXT = """
    aiodns==4.0.0 aiohappyeyeballs==2.6.1 aiohttp-retry==2.9.1 aiohttp==3.13.3 aiosignal==1.4.0 annotated-doc==0.0.4
    annotated-types==0.7.0 anyio==4.12.1 async-timeout==5.0.1 attrs==25.4.0 backoff==2.2.1 backports-zstd==1.3.0
    bcrypt==5.0.0 boto3==1.42.41 botocore==1.42.41 brotli==1.2.0 brotlicffi==1.2.0.0 certifi==2026.1.4 cffi==2.0.0
    charset-normalizer==3.4.4 click==8.3.1 cloudpickle==3.1.2 colorama==0.4.6 cryptography==45.0.7 dnspython==2.8.0
    email-validator==2.3.0 exceptiongroup==1.3.1 fastapi-cli==0.0.20 fastapi-cloud-cli==0.11.0 fastapi==0.128.0
    fastar==0.8.0 filelock==3.20.3 frozenlist==1.8.0 fsspec==2026.1.0 h11==0.16.0 hf-transfer==0.1.9 hf-xet==1.2.0
    httpcore==1.0.9 httptools==0.7.1 httpx==0.28.1 huggingface-hub==1.3.7 idna==3.11 inquirerpy==0.3.4 invoke==2.2.1
    itsdangerous==2.2.0 jinja2==3.1.6 jmespath==1.1.0 markdown-it-py==4.0.0 markupsafe==3.0.3 mdurl==0.1.2
    multidict==6.7.1 orjson==3.11.7 packaging==26.0 paramiko==4.0.0 pathspec==1.0.4 pfzy==0.3.4 prettytable==3.17.0
    prompt-toolkit==3.0.52 propcache==0.4.1 py-cpuinfo==9.0.0 pycares==5.0.1 pycparser==3.0 pydantic-core==2.41.5
    pydantic-extra-types==2.11.0 pydantic-settings==2.12.0 pydantic==2.12.5 pygments==2.19.2 pynacl==1.6.2
    python-dateutil==2.9.0.post0 python-dotenv==1.2.1 python-multipart==0.0.22 pyyaml==6.0.3 questionary==2.1.1
    requests==2.32.5 rich-toolkit==0.18.1 rich==14.3.2 rignore==0.7.6 runpod-flash==1.0.0 runpod==1.8.1
    s3transfer==0.16.0 sentry-sdk==2.51.0 shellingham==1.5.4 six==1.17.0 starlette==0.50.0 tomli==2.4.0
    tomlkit==0.14.0 tqdm-loggable==0.2 tqdm==4.67.3 typer-slim==0.21.1 typer==0.21.1 typing-extensions==4.15.0
    typing-inspection==0.4.2 ujson==5.11.0 urllib3==2.6.3 uvicorn==0.40.0 uvloop==0.22.1 watchdog==6.0.0
    watchfiles==1.1.1 wcwidth==0.5.3 websockets==16.0 yarl==1.22.0
"""
CLOSURE = dict(pin.split("==") for pin in CLOSURE_TEXT.split())
PEP503 = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def test_every_file_loads_as_a_profile_of_its_name() -> None:
    assert tuple(profiles()) == NAMES
    for name, profile in profiles().items():
        assert profile.name == name
        assert profile.python == "3.12"
        assert profile.date == "2026-02-04"
        assert profile.workdir == "/app"
        assert profile.volume == "/runpod-volume"
        assert profile.apt == ("curl", "ca-certificates", "git")
        assert profile.source.startswith("runpod-workers/worker-flash 1.0.0 (commit 89f1560)")


# The worker's requirements reach these only on older Pythons or other implementations.
NOT_ON_312 = ("async-timeout", "brotlicffi", "exceptiongroup")


def test_profiles_are_read_once() -> None:
    assert profiles() is profiles()
    assert module_names() is module_names()


@pytest.mark.parametrize("name", NAMES)
def test_every_profile_has_the_worker_closure_at_the_research_versions(name: str) -> None:
    assert len(CLOSURE) == 101
    provided = profiles()[name].distributions
    assert {n: provided[n].version for n in CLOSURE if n in provided} == {
        n: v for n, v in CLOSURE.items() if n not in NOT_ON_312
    }
    # What the worker's markers leave out on CPython 3.12 is not installed there, so not provided.
    assert sorted(set(CLOSURE) - set(provided)) == ["async-timeout", "brotlicffi", "exceptiongroup"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("distribution", "version"),
    [
        ("fastapi", "0.128.0"),
        ("pydantic", "2.12.5"),
        ("httpx", "0.28.1"),
        ("python-dotenv", "1.2.1"),
        ("boto3", "1.42.41"),
        ("huggingface-hub", "1.3.7"),
        ("cloudpickle", "3.1.2"),
        ("uvicorn", "0.40.0"),
        ("runpod", "1.8.1"),
        ("requests", "2.32.5"),
        ("pyyaml", "6.0.3"),
        ("jinja2", "3.1.6"),
        ("runpod-flash", "1.0.0"),
    ],
)
def test_spot_checked_versions(name: str, distribution: str, version: str) -> None:
    provided = profiles()[name].provides(distribution)
    assert provided is not None
    assert provided.version == version


def test_cpu_profiles_hold_exactly_the_closure() -> None:
    for name in CPU:
        distributions = profiles()[name].distributions
        assert {n: p.version for n, p in distributions.items()} == {
            n: v for n, v in CLOSURE.items() if n not in NOT_ON_312
        }
        assert profiles()[name].provides("torch") is None
        assert profiles()[name].module("torch") is None


def test_gpu_profiles_add_torch_and_its_companions_to_the_closure() -> None:
    cpu = profiles()["runpod-cpu"].distributions
    for name in GPU:
        gpu = profiles()[name].distributions
        assert {n: p for n, p in gpu.items() if n in cpu} == dict(cpu)
        added = set(gpu) - set(cpu)
        assert {"torch", "torchvision", "torchaudio", "triton", "networkx", "sympy", "mpmath", "setuptools"} <= added
        cuda = {n for n in added if n.startswith("nvidia-")}
        assert {"nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-nccl-cu12"} <= cuda
        assert {gpu[n].modules for n in cuda} == {("nvidia",)}
        torch = profiles()[name].provides("torch")
        assert torch == Provided("torch", "2.9.1", ("functorch", "torch", "torchgen"))
        assert gpu["torchvision"].version == "0.24.1"
        assert gpu["torchaudio"].version == "2.9.1"


@pytest.mark.parametrize(
    ("kind", "compute", "name"),
    [
        ("queue", "cpu", "runpod-cpu"),
        ("queue", "gpu", "runpod-gpu"),
        ("load_balanced", "cpu", "runpod-lb-cpu"),
        ("load_balanced", "gpu", "runpod-lb-gpu"),
    ],
)
def test_profile_for_picks_the_image(kind: str, compute: str, name: str) -> None:
    profile = profile_for(kind, compute)  # type: ignore[arg-type]
    assert isinstance(profile, Profile)
    assert profile.name == name
    assert (profile.kind, profile.compute) == (kind, compute)


def test_images_and_environment_per_profile() -> None:
    images = {name: profile.image for name, profile in profiles().items()}
    assert images == {
        "runpod-cpu": "runpod/flash-cpu:py3.12-latest",
        "runpod-gpu": "runpod/flash:py3.12-latest",
        "runpod-lb-cpu": "runpod/flash-lb-cpu:py3.12-latest",
        "runpod-lb-gpu": "runpod/flash-lb:py3.12-latest",
    }
    base = {"DEBIAN_FRONTEND": "noninteractive", "TZ": "Etc/UTC"}
    hf = {"HF_HUB_ENABLE_HF_TRANSFER": "1", "HF_HOME": "/hf-cache"}
    for name in CPU:
        assert dict(profiles()[name].env) == base
        assert profiles()[name].glibc == "2.41"
    for name in GPU:
        assert dict(profiles()[name].env) == base | hf
        assert profiles()[name].glibc == "2.35"


def test_provides_takes_any_spelling_of_a_name() -> None:
    profile = profile_for("queue", "cpu")
    assert profile.provides("PyYAML") == profile.provides("pyyaml")
    assert profile.provides("typing_extensions") == Provided("typing-extensions", "4.15.0", ("typing_extensions",))
    assert profile.provides("numpy") is None


@pytest.mark.parametrize(
    ("module", "distribution"),
    [
        ("yaml", "pyyaml"),
        ("_yaml", "pyyaml"),
        ("dotenv", "python-dotenv"),
        ("dateutil", "python-dateutil"),
        ("typing_extensions", "typing-extensions"),
        ("attr", "attrs"),
        ("nacl", "pynacl"),
        ("cpuinfo", "py-cpuinfo"),
        ("typer", "typer"),  # typer-slim installs it too; the distribution named like it wins
        ("runpod_flash", "runpod-flash"),
    ],
)
def test_module_finds_the_distribution_that_installs_it(module: str, distribution: str) -> None:
    for profile in profiles().values():
        provided = profile.module(module)
        assert provided is not None
        assert provided.name == distribution


def test_gpu_only_modules() -> None:
    gpu, cpu = profile_for("queue", "gpu"), profile_for("queue", "cpu")
    for module, distribution in [("torch", "torch"), ("functorch", "torch"), ("PIL", "pillow"), ("numpy", "numpy")]:
        provided = gpu.module(module)
        assert provided is not None
        assert provided.name == distribution
        assert cpu.module(module) is None
    assert gpu.module("yaml.loader") is None  # top-level names only


def test_module_names_cover_every_profile() -> None:
    names = module_names()
    assert names["yaml"] == "pyyaml"
    assert names["torch"] == "torch"
    assert names["PIL"] == "pillow"
    assert names["nvidia"].startswith("nvidia-")
    every = {m for profile in profiles().values() for p in profile.distributions.values() for m in p.modules}
    assert set(names) == every


@pytest.mark.parametrize(
    ("import_name", "distribution"),
    [
        ("cv2", "opencv-python"),
        ("sklearn", "scikit-learn"),
        ("sklearn.linear_model", "scikit-learn"),
        ("bs4", "beautifulsoup4"),
        ("yaml", "pyyaml"),
        ("PIL", "pillow"),
        ("dotenv", "python-dotenv"),
        ("torch", "torch"),
        ("transformers", "transformers"),
    ],
)
def test_distribution_for(import_name: str, distribution: str) -> None:
    assert distribution_for(import_name) == distribution


def test_known_distributions_are_not_in_the_profiles_and_are_normal_names() -> None:
    assert not KNOWN_DISTRIBUTIONS.keys() & module_names().keys()
    assert all(name.isidentifier() for name in KNOWN_DISTRIBUTIONS)
    assert all(PEP503.fullmatch(d) for d in KNOWN_DISTRIBUTIONS.values())
    assert 15 <= len(KNOWN_DISTRIBUTIONS) <= 30


@pytest.mark.parametrize("name", NAMES)
def test_files_list_normal_names_sorted(name: str) -> None:
    text = resources.files("flashc.profiles").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    table = text.split("\n[distributions]\n", 1)[1]
    keys = [line.split(" = ", 1)[0] for line in table.splitlines() if line and not line.startswith("#")]
    assert keys == sorted(keys)
    assert all(PEP503.fullmatch(k) for k in keys)
    assert keys == list(loads(text)["distributions"])
    for provided in profiles()[name].distributions.values():
        assert provided.modules == tuple(sorted(set(provided.modules)))
        assert all(m.isidentifier() for m in provided.modules)


def test_profiles_are_frozen() -> None:
    profile = profile_for("queue", "cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        profile.env["TZ"] = "Europe/Paris"  # type: ignore[index]
    with pytest.raises(TypeError):
        profiles()["x"] = profile  # type: ignore[index]
    assert hash(profile) == hash(profile_for("queue", "cpu"))


def test_generator_facts_match_the_research() -> None:
    assert parse_pins(WORKER_CLOSURE) == CLOSURE
    assert [(i.name, i.kind, i.compute) for i in IMAGES] == [(p.name, p.kind, p.compute) for p in profiles().values()]


def test_top_level_names_from_record_paths() -> None:
    paths = [
        "yaml/__init__.py",
        "yaml/__pycache__/x.pyc",
        "_yaml/__init__.py",
        "six.py",
        "_cffi_backend.cpython-312-x86_64-linux-gnu.so",
        "numpy.libs/libgfortran.so.5",
        "distutils-precedence.pth",
        "stub.pyi",
        "pkg-1.0.dist-info/RECORD",
        "pkg-1.0.data/scripts/tool",
        "pkg-1.0.data/purelib/extra/__init__.py",
        "nvidia/cublas/lib/libcublas.so.12",
        "__pycache__/six.cpython-312.pyc",
    ]
    assert top_level_names(paths) == ("_cffi_backend", "_yaml", "extra", "nvidia", "six", "yaml")


def test_rendered_text_reads_back_as_the_same_profile() -> None:
    image = Image("runpod-gpu", "runpod/flash", "A test image", "Dockerfile", "queue", "gpu", "python handler.py")
    text = render(
        image,
        {"torch": ("2.9.1", ("torch",)), "pyyaml": ("6.0.3", ("_yaml", "yaml")), "sympy": ("1.14.0", ("sympy",))},
        companions={"torch", "sympy"},
        dropped={"pyyaml"},
    )
    assert '\nsympy = { version = "1.14.0", modules = ["sympy"] }  # torch resolution\n' in text
    assert '\ntorch = { version = "2.9.1", modules = ["torch"] }  # base image\n' in text
    assert "so the image lacks them: pyyaml." in text
    profile = parse_profile("runpod-gpu", loads(text))
    assert list(profile.distributions) == ["sympy", "torch"]
    assert profile.env["HF_HOME"] == "/hf-cache"
    assert (profile.kind, profile.compute, profile.glibc) == ("queue", "gpu", "2.35")


def test_malformed_data_is_refused_with_the_file_named() -> None:
    good = loads(resources.files("flashc.profiles").joinpath("runpod-cpu.toml").read_text(encoding="utf-8"))
    with pytest.raises(ValueError, match=r"^worker-image profile other\.toml: `name` is 'runpod-cpu', not the file"):
        parse_profile("other", good)
    bad = good | {"distributions": {"PyYAML": {"version": "6.0.3", "modules": ["yaml"]}}}
    with pytest.raises(
        ValueError, match=r"^worker-image profile runpod-cpu\.toml: distribution 'PyYAML' is not in PEP"
    ):
        parse_profile("runpod-cpu", bad)
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        parse_profile("runpod-cpu", good | {"extra": 1})
    with pytest.raises(ValueError, match=r"unknown kind 'batch'"):
        parse_profile("runpod-cpu", good | {"kind": "batch"})
