"""The `flashc` command. The only module that prints or exits.

Exit codes: 0 success (warnings allowed), 1 errors in the project, 2 wrong usage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .diagnostics import render_all
from .errors import DiagnosticsError, FlashcError, UsageError

__all__ = ["main"]


@contextmanager
def _reported() -> Iterator[None]:
    """Turn every FlashcError into a message on stderr and its exit code; never a traceback."""
    try:
        yield
    except FlashcError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("flashc: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`flashc ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except Exception as exc:  # a bug in flashc: still no traceback unless asked for
        if os.environ.get("FLASHC_DEBUG"):
            raise
        click.echo(f"flashc: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  = hint: this is a bug in flashc; run again with FLASHC_DEBUG=1 to see the traceback", err=True)
        sys.exit(1)


def _fail(exc: FlashcError) -> NoReturn:
    _show_error(exc)
    sys.exit(exc.exit_code)


def _ctrl_c_stops() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt even where it was inherited as ignored (a job
    started in the background by a shell without job control, as CI runners do): the commands
    that run until Ctrl-C must stop on it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _show_error(exc: FlashcError) -> None:
    if isinstance(exc, DiagnosticsError):
        click.echo(render_all(exc.diagnostics, _line_reader(exc.root)), err=True)
    click.echo(f"flashc: error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"  = hint: {exc.hint}", err=True)


def _check_sdk() -> None:
    """Warn, first thing, when the Flash SDK installed here took over `tetra_rp`/`runpod_flash`."""
    from .sdkcheck import check_sdk_aliases

    problem = check_sdk_aliases()
    if problem is not None:
        click.echo(f"flashc: warning: {problem.message}", err=True)
        click.echo(f"  = hint: {problem.hint}", err=True)


def _line_reader(root: Path) -> Any:
    @lru_cache(maxsize=64)
    def lines(path: str) -> list[str] | None:
        try:
            return (root / path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None

    def read_line(path: str, number: int) -> str | None:
        text = lines(path)
        if text is None or not 1 <= number <= len(text):
            return None
        return text[number - 1]

    return read_line


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flashc")
def main() -> None:
    """flashc: build, package and deploy @remote functions for serverless GPU and CPU endpoints."""


@main.command()
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON (schema: `flashc schema analysis`).")
@click.option("--no-cache", is_flag=True, help="Parse every file again instead of reusing .flash/cache.")
def analyze(project_dir: Path, as_json: bool, no_cache: bool) -> None:
    """Find every @remote function, class and route, and its resource config, without running the code."""
    from .analyze import analyze_project
    from .models import analysis_to_json

    _check_sdk()
    with _reported():
        serve = None
        if (project_dir / "mothership.py").is_file():  # its app may be named in pyproject.toml
            from .config import CliOptions, read_config

            serve = read_config(project_dir, CliOptions()).serve
        analysis = analyze_project(project_dir, use_cache=not no_cache, serve=serve)
        if as_json:
            click.echo(json.dumps(analysis_to_json(analysis), indent=2, sort_keys=True))
        else:
            click.echo(_summary(analysis))
        if analysis.diagnostics:
            root = project_dir.resolve()
            click.echo(render_all(analysis.diagnostics, _line_reader(root)), err=True)
        errors = sum(1 for d in analysis.diagnostics if d.severity == "error")
        warnings = len(analysis.diagnostics) - errors
        if errors or warnings:
            click.echo(f"flashc: {_count(errors, 'error')}, {_count(warnings, 'warning')}", err=True)
        if errors:
            sys.exit(1)


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    if n < 1_000_000:
        return f"{n / 1000:.1f} KB"
    return f"{n / 1_000_000:.1f} MB"


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(analysis: Any) -> str:
    lines = [
        f"project '{analysis.project}': {_count(analysis.python_files, 'Python file')}, "
        f"{analysis.parsed_files} analyzed"
    ]
    by_id = {f.id: f for f in analysis.functions}
    for r in analysis.resources:
        kind = "load-balanced" if r.kind == "load_balanced" else "queue"
        lines.append("")
        lines.append(f"resource '{r.name}'  {r.type}, {kind}, {r.compute.upper()}  (config {r.config_hash[:12]})")
        if r.app:
            where = f"{r.location.path}:{r.location.line}"
            lines.append(f"  {r.app:<40} {where:<28} the project's app (mothership.py)")
        for fid in r.functions:
            f = by_id[fid]
            detail = ["Endpoint" if f.style == "endpoint" else "@remote"]
            if f.route:
                detail.append(f"{f.route.method} {f.route.path}")
            if f.kind == "class":
                detail.append("class: " + (", ".join(m.name for m in f.methods) or "inherited methods"))
            elif f.is_async:
                detail.append("async")
            if f.dependencies:
                detail.append("deps: " + ", ".join(f.dependencies))
            if f.calls:
                detail.append("calls: " + ", ".join(f.calls))
            where = f"{f.location.path}:{f.location.line}"
            lines.append(f"  {f.id:<40} {where:<28} {'; '.join(detail)}".rstrip())
    lines.append("")
    lines.append(f"{_count(len(analysis.resources), 'resource')}, {_count(len(analysis.functions), 'function')}")
    return "\n".join(lines)


def _dependency_options(f: Any) -> Any:
    """Options that choose the worker and its dependencies, shared by build and lock."""
    for option in reversed(
        [
            click.option(
                "--python-version",
                help="Worker's CPython, e.g. 3.11 (default: [tool.flashc], else the worker images', 3.12).",
            ),
            click.option("--glibc", help="Highest manylinux glibc of the worker image (default 2.35)."),
            click.option("--no-deps", is_flag=True, help="Install only the direct requirements, not theirs."),
            click.option("--exclude", multiple=True, help="Distributions to leave out, comma separated (repeatable)."),
            click.option(
                "--keep-gpu-packages",
                is_flag=True,
                help="Ship torch, torchvision, torchaudio, triton even for GPU-only projects.",
            ),
            click.option("--offline", is_flag=True, help="Use only what is cached; never ask the index."),
        ]
    ):
        f = option(f)
    return f


def _read(project_dir: Path, cli: Any) -> tuple[Any, Any]:
    """The project's snapshot and the build's config: read once, for every stage."""
    from .config import read_config
    from .sources import snapshot_project

    snapshot = snapshot_project(project_dir)
    return snapshot, read_config(snapshot.root, cli)


@main.command()
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Archive path.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary for CI as JSON.")
@click.option("--keep-build", is_flag=True, help="Keep the archive's tree in .flash/.build/ for inspection.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--force", is_flag=True, help="Build even when nothing changed since the last build.")
@_dependency_options
@click.option("--max-size", type=click.IntRange(min=1), default=None, help="Limit in MB, compressed (default 500).")
@click.option(
    "--refresh", is_flag=True, help="Resolve again, for newer releases, instead of reusing the last resolution."
)
def build(
    project_dir: Path,
    output: Path | None,
    as_json: bool,
    keep_build: bool,
    quiet: bool,
    force: bool,
    python_version: str | None,
    glibc: str | None,
    no_deps: bool,
    exclude: tuple[str, ...],
    keep_gpu_packages: bool,
    offline: bool,
    max_size: int | None,
    refresh: bool,
) -> None:
    """Analyze, resolve dependencies, render and pack the project into .flash/archive.tar.gz."""
    from . import buildstate
    from .config import CliOptions

    cli = CliOptions(python_version, glibc, exclude, keep_gpu_packages, no_deps, offline, max_size)
    _check_sdk()
    with _reported():
        from .config import read_config
        from .sources import snapshot_project

        snapshot = snapshot_project(project_dir)
        analysis = _analyze_aside(snapshot)
        try:
            config = read_config(snapshot.root, cli)
            where = {"output": str(output.resolve()) if output else None}
            key = buildstate.inputs_key(snapshot, config.fingerprint(), where)
            summary = None if force or keep_build or refresh else buildstate.up_to_date(snapshot.root, key)
            if summary is None:
                from .pipeline import build as run_build

                analysis.wait()
        finally:
            analysis.stop()
        if summary is not None:
            shutil.rmtree(snapshot.root / ".flash" / ".build", ignore_errors=True)  # staging is kept only on request
            replayed = summary.pop("warnings", "")
            if replayed:  # an unchanged build says again what the build said
                click.echo(replayed, err=True)
        else:
            progress = _progress(quiet or as_json)
            built = run_build(snapshot, config, output, keep_build=keep_build, refresh=refresh, progress=progress)
            warnings = (*built.generated.analysis.diagnostics, *built.warnings)
            shown = render_all(warnings, _line_reader(snapshot.root)) if warnings else ""
            if shown:  # errors stop the build before this point
                click.echo(shown, err=True)
            summary = _build_summary(built)
            buildstate.record(snapshot.root, key, {**summary, "up_to_date": True, "warnings": shown}, built.outside)
        if as_json:
            click.echo(json.dumps(summary, indent=2, sort_keys=True))
        elif not quiet:
            _print_build(summary)


class _Aside:
    """An analysis run in a child process while this one reads the config, checks whether anything
    changed and loads the rest of the pipeline.

    The child fills the analysis cache (`.flash/cache/`), so the build's own analysis then finds
    every file there: parsing an edited file (and loading the parser, libcst) overlaps with the
    rest on a second core. The child reports nothing: whatever fails there, the build's own
    analysis meets again and reports. `stop` ends it early when nothing is to be built (on
    SIGTERM it leaves as an interrupt would, its cache write undone). Linux only: elsewhere the
    build analyzes as usual.
    """

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def wait(self) -> None:
        if self.pid is not None:
            os.waitpid(self.pid, 0)
            self.pid = None

    def stop(self) -> None:
        if self.pid is not None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            self.wait()


def _analyze_aside(snapshot: Any) -> _Aside:
    import threading

    # Only a process with one thread forks safely: another could hold a lock (the import lock, say)
    # that the child would then wait for forever. The command line has no other thread at this point.
    if sys.platform != "linux" or threading.active_count() > 1:
        return _Aside(None)
    from .analyze import analyze_project  # before the fork: the child inherits it loaded

    pid = os.fork()
    if pid == 0:  # the child: no output, no exit handlers, only the cache it writes
        try:
            signal.signal(signal.SIGTERM, _leave)
            analyze_project(snapshot)
        finally:
            os._exit(0)
    return _Aside(pid)


def _leave(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _progress(quiet: bool) -> Any:
    """Status lines for long steps on a terminal; nothing in CI, in pipes or with --quiet."""
    if quiet or os.environ.get("CI") or not sys.stderr.isatty():
        return None

    def say(message: str) -> None:
        click.echo(f"  ... {message}", err=True)

    return say


def _build_summary(built: Any) -> dict[str, Any]:
    archive, deps = built.archive, built.dependencies
    return {
        "archive": str(archive.path.resolve()),
        "sha256": archive.sha256,
        "size": archive.size,
        "uncompressed": archive.uncompressed,
        "files": archive.members,
        "python_files": built.generated.analysis.python_files,
        "python_version": deps.target.python_version,
        "resources": sorted(built.generated.manifest.resources),
        "functions": sorted(built.generated.manifest.functions),
        "dependencies": [f"{p.name}=={p.version}" for p in deps.shipped],
        "excluded": sorted({p.name for p in deps.left_out}),
        "excluded_size": deps.saved,
        "provided_by_runtime": sorted({r.name for r in deps.requirements.provided_by_runtime}),
        "sites": {
            plan.site.path: {
                "resources": list(plan.site.resources),
                "dependencies": [f"{p.name}=={p.version}" for p in plan.ships],
            }
            for plan in deps.plans
        },
        "split": deps.split,
        "locked": deps.locked,
        "up_to_date": False,
    }


def _print_build(summary: dict[str, Any]) -> None:
    if summary["up_to_date"]:
        click.echo("up to date: no input changed since the last build")
    else:
        click.echo(
            f"analyzed {_count(summary['python_files'], 'Python file')}: "
            f"{_count(len(summary['resources']), 'resource')}, {_count(len(summary['functions']), 'function')}"
        )
        source = " (pylock.toml)" if summary["locked"] else ""
        click.echo(
            f"dependencies for CPython {summary['python_version']}{source}: "
            f"{_count(len(summary['dependencies']), 'distribution')}"
        )
        if len(summary["sites"]) > 1:
            for site, content in summary["sites"].items():
                shipped = _count(len(content["dependencies"]), "distribution")
                click.echo(f"  {site}: {', '.join(content['resources'])} ({shipped})")
        if summary["provided_by_runtime"]:
            click.echo(f"  provided by flashc's runtime, not installed: {', '.join(summary['provided_by_runtime'])}")
        if summary["excluded"]:
            saved = summary["excluded_size"]
            detail = f"about {_size(saved)} of wheels saved" if saved else "their size is unknown"
            click.echo(f"  left out: {', '.join(summary['excluded'])} ({detail})")
    click.echo(
        f"packed {_count(summary['files'], 'file')}, {_size(summary['uncompressed'])} "
        f"into {_size(summary['size'])}: {_shown(Path(summary['archive']))}"
    )
    click.echo(f"sha256 {summary['sha256']}")


@main.command()
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@_dependency_options
@click.option("--force", is_flag=True, help="Replace a pylock.toml that another tool wrote.")
def lock(
    project_dir: Path,
    python_version: str | None,
    glibc: str | None,
    no_deps: bool,
    exclude: tuple[str, ...],
    keep_gpu_packages: bool,
    offline: bool,
    force: bool,
) -> None:
    """Resolve the dependencies for the worker and pin every wheel, with its sha256, in pylock.toml."""
    from .analyze import analyze_project
    from .config import CliOptions
    from .deps.lock import LOCK_FILE, ForeignLock, read_lock, write_lock
    from .deps.plan import lock_project, lock_warnings, read_requirements

    cli = CliOptions(python_version, glibc, exclude, keep_gpu_packages, no_deps, offline)
    _check_sdk()
    with _reported():
        snapshot, config = _read(project_dir, cli)
        existing = snapshot.root / LOCK_FILE
        if existing.is_file() and not force:
            try:
                read_lock(snapshot.root, existing.read_text(encoding="utf-8", errors="replace"))
            except ForeignLock as exc:
                raise UsageError(exc.message, exc.hint) from exc
            except FlashcError:
                pass  # a damaged lock of flashc's own is simply replaced
        analysis = analyze_project(snapshot)
        if analysis.has_errors:
            raise DiagnosticsError(analysis.diagnostics, snapshot.root)
        reqs, _ = read_requirements(snapshot, config, analysis)
        locked = lock_project(snapshot.root, reqs, analysis, config)
        path = write_lock(snapshot.root, locked)
        warnings = lock_warnings(locked, reqs)
        if warnings:
            click.echo(render_all(warnings, _line_reader(snapshot.root)), err=True)
        pins = {(p.name, p.version) for plan in locked.plans for p in plan.site.pins}
        left = sorted({p.name for plan in locked.plans for p, _ in plan.left_out_pins})
        line = f"locked {_count(len(pins), 'distribution')} for CPython {locked.target.python_version}"
        if len(locked.plans) > 1:
            line += f" in {len(locked.plans)} site folders (their resources need conflicting versions)"
        if left:
            line += f"; left out of the archive: {', '.join(left)}"
        click.echo(f"{line}: {_shown(path)}")


@main.command()
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--archive", type=click.Path(path_type=Path), help="Deploy this archive, not a fresh build.")
@click.option(
    "--target", type=click.Choice(["local", "runpod"]), help="Where to (default: [tool.flashc] target, else local)."
)
@click.option("--app", help="Runpod app (default: [tool.flashc] app, else the project folder's name).")
@click.option(
    "--env", "environment", help="The app's environment (default: [tool.flashc] environment, else production)."
)
@click.option("--dry-run", is_flag=True, help="Runpod: print the plan and change nothing.")
@click.option(
    "--json", "as_json", is_flag=True, help="The endpoints as JSON on stdout (on Runpod: the plan and the outcome)."
)
def deploy(
    project_dir: Path,
    archive: Path | None,
    target: str | None,
    app: str | None,
    environment: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Deploy every resource: as endpoints on this machine (127.0.0.1), or on Runpod Serverless."""
    import dataclasses

    from .config import CliOptions, read_config
    from .deploy import LocalTarget, archive_sha256
    from .deploy.local import LOGS, endpoint_report

    _check_sdk()
    with _reported(), _Steps() as steps:
        root = project_dir.resolve()
        config = read_config(root, CliOptions(target=target, app=app, environment=environment))
        if archive is None:
            from .pipeline import build_project

            steps("building the archive")
            built = build_project(project_dir, progress=steps)
            warnings = (*built.generated.analysis.diagnostics, *built.warnings)
            if warnings:
                steps.clear()
                click.echo(render_all(warnings, _line_reader(root)), err=True)
            archive, sha256 = built.archive.path, built.archive.sha256
        else:
            sha256 = archive_sha256(archive)
        if config.deploy_target == "runpod":
            steps.clear()
            _deploy_runpod(root, archive, sha256, config, dry_run=dry_run, as_json=as_json)
            return
        if dry_run:
            raise UsageError("--dry-run is for --target runpod", "drop it, or add --target runpod")
        settings = dataclasses.replace(_local_settings(root), progress=steps, steps=steps)
        steps.tick()
        local = LocalTarget(settings)
        state = local.deploy(root, archive, sha256)
        previous = local.previous  # read once this deploy had the project's lock
        steps.clear()
        if as_json:
            stopped = sorted(set(previous.get("endpoints", {})) - set(state["endpoints"]))
            report = endpoint_report(state, previous)
            document = {"target": "local", "archive_sha256": sha256, "endpoints": report, "stopped": stopped}
            click.echo(json.dumps(document, indent=2, sort_keys=True))
            return
        for name, endpoint in sorted(state["endpoints"].items()):
            click.echo(f"{name:<24} {endpoint['url']}  (pid {endpoint['pid']})")
        click.echo(
            f"key in {_shown(root / '.flash' / 'deployment.json')}; logs in {_shown(root / LOGS)} "
            "(`flashc logs NAME`); `flashc undeploy` stops everything"
        )


def _runpod_settings(root: Path, config: Any) -> Any:
    from .deploy.local import deploy_variables
    from .deploy.runpod.target import RunpodSettings

    return RunpodSettings(config.app or root.name, config.environment, deploy_variables(root, dict(os.environ)))


def _deploy_runpod(root: Path, archive: Path, sha256: str, config: Any, *, dry_run: bool, as_json: bool) -> None:
    import json

    from .deploy.runpod.target import apply, example_request, open_api, prepare, write_deployment

    settings = _runpod_settings(root, config)
    with open_api(root, os.environ) as api:
        prepared = prepare(api, archive, sha256, settings)
        plan = prepared.plan
        if dry_run:
            if as_json:
                click.echo(json.dumps(plan.to_json(), indent=2, sort_keys=True))
                return
            click.echo(f"plan for {settings.app}/{settings.environment} on Runpod (nothing is changed):")
            if plan.create_app or plan.create_environment:
                click.echo(f"  create {'app and ' if plan.create_app else ''}environment {settings.environment}")
            click.echo(f"  {'upload the archive' if plan.upload else 'the archive is there already'} ({sha256[:12]})")
            for volume in plan.volumes:
                click.echo(f"  create network volume {volume.name} ({volume.size} GB, {volume.data_center})")
            for step in plan.steps:
                detail = f" ({', '.join(step.changed)})" if step.changed and step.action == "update" else ""
                reason = f"; {step.reason}" if step.reason and step.action != "keep" else ""
                click.echo(f"  {step.action:<10} {step.name}{detail}{reason}")
            return

        def progress(sent: int, total: int) -> None:
            if not as_json and sys.stderr.isatty():
                click.echo(f"\r  ... uploading {sent * 100 // max(total, 1)}%", err=True, nl=sent >= total)

        outcomes = apply(
            api, prepared, settings, say=lambda line: click.echo(f"  ... {line}", err=True), progress=progress
        )
        write_deployment(root, settings, outcomes)
        if as_json:
            click.echo(json.dumps({"plan": plan.to_json(), "endpoints": [o.__dict__ for o in outcomes]}, indent=2))
            return
        for o in outcomes:
            click.echo(f"{o.action:<12} {o.name:<24} {o.url}".rstrip())
        for o in outcomes:
            if o.url:
                example = example_request(prepared.manifest, o.name, o.url)
                if example:
                    click.echo(f"\n# {o.name}\n{example}")


@main.command()
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", help="Where the API app listens (default: FLASH_HOST, else localhost).")
@click.option("--port", type=int, help="Its port (default: FLASH_PORT, else 8888).")
def run(project_dir: Path, host: str | None, port: int | None) -> None:
    """Develop: deploy locally, serve the project's API app (main.py's `app`) with /docs, and
    redeploy and reload on every saved change. Ctrl-C stops everything."""
    import dataclasses
    import time

    from .config import CliOptions, read_config
    from .deploy import LocalTarget
    from .deploy.local import deploy_variables
    from .devrun import AppServer, Watcher, app_target, loop, python_of_lb_image
    from .pipeline import build_project

    _check_sdk()
    with _reported():
        root = project_dir.resolve()
        config = read_config(root, CliOptions())
        variables = deploy_variables(root, dict(os.environ))
        host = host or variables.get("FLASH_HOST") or "localhost"
        try:
            port = port or int(variables.get("FLASH_PORT") or 8888)
        except ValueError:
            raise UsageError("FLASH_PORT must be a port number", "set FLASH_PORT=8888, say") from None
        app = app_target(root, config.serve)
        # The app server runs the project's app: a mothership serving the same app is not started too.
        settings = dataclasses.replace(_local_settings(root), apps_served=frozenset([":".join(app)] if app else []))
        target = LocalTarget(settings)
        pids: dict[str, int] = {}

        def build_and_deploy() -> tuple[list[str], float]:
            started = time.monotonic()
            built = build_project(root)
            warnings = (*built.generated.analysis.diagnostics, *built.warnings)
            if warnings:
                click.echo(render_all(warnings, _line_reader(root)), err=True)
            if server is not None:
                server.restart()  # the sources build: the app reloads while the endpoints are redeployed
            state = target.deploy(root, built.archive.path, built.archive.sha256)
            restarted = [n for n, e in sorted(state["endpoints"].items()) if pids.get(n) != e["pid"]]
            pids.clear()
            pids.update({n: e["pid"] for n, e in state["endpoints"].items()})
            for name in restarted:
                click.echo(f"endpoint {name:<24} {state['endpoints'][name]['url']}")
            return restarted, time.monotonic() - started

        server: AppServer | None = None

        stopping = False

        def interrupted(signum: int, frame: Any) -> None:
            # Ctrl-C, a terminal closed or `kill`: stop, leaving nothing. Only the first one: a
            # second Ctrl-C while everything stops must not cut the clean-up short.
            nonlocal stopping
            if not stopping:
                stopping = True
                raise KeyboardInterrupt

        for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT even if inherited ignored
            signal.signal(stop_signal, interrupted)
        try:
            _, seconds = build_and_deploy()
            click.echo(f"deployed in {seconds:.1f} s")
            if app is not None:
                server = AppServer(python_of_lb_image(settings), root, app, host, port)
                server.start()
                if not server.wait_ready():
                    raise UsageError(
                        f"the API app {app[0]}:{app[1]} did not start on {host}:{port} (its error is above)",
                        "fix it and run again, or pass --port if the port is taken",
                    )
                click.echo(f"API app  http://{host}:{port}   (interactive docs: http://{host}:{port}/docs)")
            else:
                click.echo("no main.py with an `app`: serving the endpoints only ([tool.flashc] serve names another)")
            click.echo("watching for changes; Ctrl-C stops everything")

            def changed(files: list[str]) -> None:
                shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
                click.echo(f"changed: {shown}; rebuilding")

            for result in loop(build_and_deploy, Watcher(root), changed, lambda: False):
                if isinstance(result, FlashcError):
                    _show_error(result)
                    click.echo("the build failed: the last good deployment keeps serving", err=True)
                    continue
                restarted, seconds = result
                reason = f"restarted {', '.join(restarted)}" if restarted else "no endpoint changed"
                if server is not None and server.wait_ready():
                    reason += "; API app reloaded"
                click.echo(f"redeployed in {seconds:.1f} s: {reason}")
        except KeyboardInterrupt:
            pass
        finally:
            stopping = True  # a signal that came before this line is ignored; those after, too:
            for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(stop_signal, signal.SIG_IGN)  # also while the interpreter exits
            if server is not None:
                server.stop()
            stopped = target.undeploy(root)
            click.echo(f"stopped {_count(len(stopped), 'endpoint')}" + (" and the API app" if server else ""))


class _Steps:
    """What a long command is doing, on stderr, a line per step. On a terminal: one line rewritten
    as each step starts, with the seconds it has taken so far once `tick` is called (a thread
    redraws it: uv's downloads say nothing until they end), erased at the end, kept when the
    command fails. Elsewhere (a pipe, a file, CI): one plain line per step, no carriage return.
    Warnings get a line of their own either way."""

    def __init__(self) -> None:
        import threading

        self.tty = sys.stderr.isatty() and not os.environ.get("CI")
        self.lock = threading.RLock()
        self.step, self.since = "", 0.0
        self.done = threading.Event()
        self.ticker: threading.Thread | None = None

    def __call__(self, line: str) -> None:
        import time

        with self.lock:
            if line.startswith("warning: "):
                self._erase()
                click.echo(f"flashc: {line}", err=True)
                self._draw()
            elif self.tty:
                self.step, self.since = line, time.monotonic()
                self._draw()
            else:
                click.echo(f"  ... {line}", err=True)

    def tick(self) -> None:
        """Redraw the step every second from now on (not before: a build forks, which wants one thread)."""
        import threading

        if self.tty and self.ticker is None:
            self.ticker = threading.Thread(target=self._tick, name="flashc-steps", daemon=True)
            self.ticker.start()

    def clear(self) -> None:
        with self.lock:
            self._erase()
            self.step = ""

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, kind: Any, *rest: Any) -> None:
        self.done.set()
        if self.ticker is not None:
            self.ticker.join()
        with self.lock:
            if self.tty and self.step and kind is not None:
                click.echo("", err=True)  # the step that failed stays in sight, above the error
            else:
                self._erase()
            self.step = ""

    def _tick(self) -> None:
        while not self.done.wait(1.0):
            with self.lock:
                self._draw()

    def _draw(self) -> None:
        import time

        if self.tty and self.step:
            seconds = int(time.monotonic() - self.since)
            text = f"  ... {self.step}" + (f" ({seconds} s)" if seconds else "")
            width = max(shutil.get_terminal_size().columns - 1, 20)
            click.echo(f"\r\x1b[K{text[:width]}", err=True, nl=False)

    def _erase(self) -> None:
        if self.tty and self.step:
            click.echo("\r\x1b[K", err=True, nl=False)


def _local_settings(root: Path) -> Any:
    """What a local deploy reads from the config (cache folder, index) and where it speaks: its
    progress (making an environment takes a while, once) and its warnings, always on stderr."""
    from .config import CliOptions, read_config
    from .deploy import LocalSettings
    from .deps.requirements import IndexOptions

    config = read_config(root, CliOptions())

    def say(line: str) -> None:
        click.echo(f"flashc: {line}" if line.startswith("warning: ") else f"  ... {line}", err=True)

    index = IndexOptions(
        index_url=config.index.index_url,
        extra_index_urls=config.index.extra_index_urls,
        find_links=tuple(str((root / f).resolve()) if "://" not in f else f for f in config.index.find_links),
        no_index=config.index.no_index,
    )
    return LocalSettings(config.cache_dir, index, progress=say)


@main.command("envs")
@click.option("--python-version", "python_version", help="The workers' CPython (default: the images', 3.12).")
@click.option("--torch", is_flag=True, help="Add torch to the GPU images' environment (a CPU build if found).")
def envs_command(python_version: str | None, torch: bool) -> None:
    """Make the environments local endpoints run in: each worker image's Python and distributions.

    Deploy makes what it needs the first time anyway; this does it ahead (in CI, say), once.
    """
    from .config import image_python
    from .deploy.envs import TORCH_FAMILY, ensure_env, env_spec
    from .deploy.local import _default_uv, _interpreter
    from .deps.target import parse_python_version
    from .profiles import profiles

    with _reported():
        settings = _local_settings(Path.cwd())
        python = parse_python_version(python_version) if python_version else image_python()
        interpreter = _interpreter(python)
        groups: dict[tuple[tuple[str, str], ...], list[Any]] = {}
        for image in profiles().values():
            key = tuple(sorted((d.name, d.version) for d in image.distributions.values()))
            groups.setdefault(key, []).append(image)
        for key, images in sorted(groups.items(), key=lambda g: g[1][0].name):
            wanted = [t for t in TORCH_FAMILY if torch and images[0].provides(t)]
            spec = env_spec(python, dict(key), [i.description for i in images], wanted)
            env = ensure_env(
                spec,
                interpreter,
                cache_dir=settings.cache_dir,
                index=settings.index,
                uv=_default_uv(settings.cache_dir),
                progress=settings.progress,
            )
            state = "made" if env.created else "ready"
            click.echo(f"{state} in {env.seconds:.1f} s: {env.path}  ({'; '.join(spec.images)})")


_TARGET = click.option(
    "--target",
    type=click.Choice(["local", "runpod"]),
    help="Which deployment (default: [tool.flashc] target, else local).",
)
_APP = click.option("--app", help="Runpod app (default: [tool.flashc] app, else the project folder's name).")
_ENV = click.option("--env", "environment", help="The app's environment (default: [tool.flashc] environment).")


def _runpod_config(root: Path, target: str | None, app: str | None, environment: str | None) -> Any:
    """The config when it says the Runpod target; None for the local one."""
    from .config import CliOptions, read_config

    config = read_config(root, CliOptions(target=target, app=app, environment=environment))
    return config if config.deploy_target == "runpod" else None


@main.command()
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@_TARGET
@_APP
@_ENV
@click.option("--json", "as_json", is_flag=True, help="The endpoints as JSON on stdout: name, kind, url, pid, health.")
def status(project_dir: Path, target: str | None, app: str | None, environment: str | None, as_json: bool) -> None:
    """Show the deployed endpoints: URL, process and health. Exits 1 when one is stopped or not answering."""
    from .deploy import read_deployment
    from .deploy.local import endpoint_report

    with _reported():
        root = project_dir.resolve()
        config = _runpod_config(root, target, app, environment)
        if config is not None:
            from .deploy.runpod.execute import endpoint_url, read_state
            from .deploy.runpod.target import open_api

            settings = _runpod_settings(root, config)
            with open_api(root, os.environ) as api:
                server = read_state(api, settings.app, settings.environment, volumes=False)
            if not server.endpoints:
                raise UsageError(
                    f"nothing is deployed in {settings.app}/{settings.environment} on Runpod",
                    "run `flashc deploy --target runpod`",
                )
            listed = []
            for e in sorted(server.endpoints, key=lambda e: (e.name, e.id)):
                record = server.recorded.get(e.name)
                kind = record.kind if record and record.endpoint_id == e.id else "?"
                note = "" if record and record.endpoint_id == e.id else "  (not recorded by a finished deploy)"
                url = endpoint_url(e.id, kind) if kind != "?" else e.id
                listed.append({"name": e.name, "kind": kind, "url": url, "endpoint_id": e.id, "recorded": not note})
                if not as_json:
                    click.echo(f"{e.name:<24} {kind:<10} {url}{note}")
            if as_json:
                click.echo(json.dumps({"endpoints": listed}, indent=2, sort_keys=True))
            return
        state = read_deployment(root)
        if state is None:
            raise UsageError("nothing is deployed from this project", "run `flashc deploy`")
        report = endpoint_report(state)
        if as_json:
            click.echo(json.dumps({"endpoints": report}, indent=2, sort_keys=True))
        for row in report if not as_json else []:
            click.echo(f"{row['name']:<24} {row['health']:<14} pid {row['pid']:<8} {row['url']}")
        sick = [f"{row['name']} ({row['health']})" for row in report if row["health"] != "healthy"]
        if sick:
            click.echo(f"flashc: {_count(len(sick), 'endpoint')} not healthy: {', '.join(sick)}", err=True)
            click.echo("  = hint: `flashc logs NAME` shows what it wrote; `flashc deploy` starts it again", err=True)
            sys.exit(1)


@main.command()
@click.argument("resource")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they come, until Ctrl-C.")
@_TARGET
def logs(resource: str, project_dir: Path, follow: bool, target: str | None) -> None:
    """Print what an endpoint's functions printed and logged, and its jobs that failed.

    Each line: the time (UTC), the job id (`-` outside any job), the source (stdout, stderr, a
    logging level, raw, flashc) and the text. Kept in .flash/logs/ (past 5 MB the older half is
    <name>.log.1), also after `flashc undeploy`.
    """
    from .deploy.local import log_file, read_log

    with _reported():
        if _runpod_config(project_dir.resolve(), target, None, None) is not None:
            raise UsageError(
                "Runpod's API gives no worker logs to flashc: its GraphQL and REST operations have none",
                "see the endpoint's Logs tab in Runpod's console; a job's own output and error come back with it",
            )
        log = log_file(project_dir.resolve(), resource)
        if follow:
            _ctrl_c_stops()
        try:
            for chunk in read_log(log, follow=follow):
                click.echo(chunk, nl=False)
        except KeyboardInterrupt:
            if not follow:
                raise  # Ctrl-C is how --follow ends, and only it


@main.command()
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every endpoint (the default; kept for scripts).")
@_TARGET
@_APP
@_ENV
def undeploy(
    project_dir: Path, names: tuple[str, ...], all_: bool, target: str | None, app: str | None, environment: str | None
) -> None:
    """Stop every endpoint of this project's deployment (on Runpod: delete them, or those NAMES)."""
    from .config import default_cache_dir
    from .deploy import LocalSettings, LocalTarget

    with _reported():
        root = project_dir.resolve()
        config = _runpod_config(root, target, app, environment)
        if config is not None:
            from .deploy.runpod.target import open_api
            from .deploy.runpod.target import undeploy as runpod_undeploy

            settings = _runpod_settings(root, config)
            with open_api(root, os.environ) as api:
                gone = runpod_undeploy(api, settings, set(names) if names and not all_ else None)
            for o in gone:
                click.echo(f"deleted      {o.name:<24} {o.endpoint_id}")
            click.echo(
                f"deleted {_count(len(gone), 'endpoint')} of {settings.app}/{settings.environment}; volumes stay"
            )
            return
        if names:
            raise UsageError("naming endpoints is for --target runpod", "drop the names: every local endpoint stops")
        settings = LocalSettings(default_cache_dir(), progress=lambda line: click.echo(f"  ... {line}", err=True))
        stopped = LocalTarget(settings).undeploy(root)
        click.echo(f"stopped {_count(len(stopped), 'endpoint')}" + (f": {', '.join(stopped)}" if stopped else ""))


@main.command("render")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the generated files into (handlers, SDK aliases, flash_manifest.json).",
)
def render_command(project_dir: Path, out: Path) -> None:
    """Write exactly the files flashc generates for the archive, for review or snapshot tests."""
    from .pipeline import generate, write_files

    _check_sdk()
    with _reported():
        generated = generate(project_dir)
        write_files(generated.files, out)
        click.echo(f"wrote {_count(len(generated.files), 'file')} to {out}")


@main.command("init")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite the project's files where they exist.")
def init_command(project_dir: Path, force: bool) -> None:
    """Write a new project: a FastAPI app (main.py) whose routes call a GPU and a CPU worker (workers/)."""
    from .init import plan_project, write_project

    with _reported():
        files = plan_project(project_dir.resolve().name)
        replaced = set(write_project(project_dir, files, force=force))
        where = "" if project_dir == Path() else f" in {project_dir}"
        click.echo(f"wrote {_count(len(files), 'file')}{where}:")
        for f in files:
            click.echo(f"  {f.path}" + ("  (replaced)" if f.path in replaced else ""))
        click.echo("\nnext:")
        if project_dir != Path():
            click.echo(f"  cd {project_dir}")
        click.echo("  flashc run        # deploys the workers here and serves the app at http://localhost:8888")
        click.echo("                    # open http://localhost:8888/docs to call them")
        click.echo("  flashc deploy     # the workers alone; --target runpod with RUNPOD_API_KEY in .env")


@main.command()
@click.argument("name", type=click.Choice(["analysis", "manifest"]))
def schema(name: str) -> None:
    """Print the JSON Schema of flashc's machine-readable output (`analyze --json`, the manifest)."""
    if name == "manifest":
        from .manifest import manifest_json_schema

        click.echo(json.dumps(manifest_json_schema(), indent=2, sort_keys=True))
        return
    from pydantic import TypeAdapter

    from .models import Analysis

    document = TypeAdapter(Analysis).json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = f"flashc {name}"
    click.echo(json.dumps(document, indent=2, sort_keys=True))
