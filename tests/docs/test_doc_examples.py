"""The documentation against the code: marked examples run, quoted messages exist, links resolve.

The marker convention is described in :mod:`tests.docs.doc_blocks`. A quoted message that the
code can no longer produce, an example whose output changed, or a reference to a page that does
not exist fails here, so the docs cannot drift from the code unnoticed.
"""

from __future__ import annotations

import ast
import doctest
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docs.doc_blocks import (
    DOCS,
    REPO,
    Block,
    all_blocks,
    doc_pages,
    quoted_messages,
    shell_steps,
    stray_markers,
)
from tests.docs.messages import explained, explained_piece
from tests.helpers import BIN, LOOPBACK, unique_group, wait_for

#: Texts the docs quote from other programs (the OS, Python, constellationdaq 1.0.2) or that
#: are not messages; each must still be quoted somewhere (checked below).
FOREIGN_TEXTS = {
    "No space left on device": "OS error text (ENOSPC)",
    "Read-only file system": "OS error text (EROFS)",
    "RuntimeError: dictionary changed size during iteration": "constellationdaq 1.0.2 crash",
    "AttributeError: 'H5DataWriter' object has no attribute 'outfile'": "constellationdaq bug",
    "Using interfaces addresses ['127.0.0.1']": "constellationdaq 1.0.2 log line",
    "Terminating ZMQ context.": "constellationdaq 1.0.2 log line",
    "lab (4) ORBIT >": "the console prompt (group, count, state)",
    "RuntimeError in do_launching: bias supply did not answer": "status after a user's exception",
    "error: e6.yaml:4:4: key 'Example.a.list': invalid YAML: while parsing a flow sequence "
    "(from line 3): expected ',' or ']', but got ':'": "ends with PyYAML's own message",
}

_BLOCKS = all_blocks()


def _ids(blocks: list[Block]) -> list[str]:
    return [block.where for block in blocks]


def _of_kind(kind: str) -> list[Block]:
    return [block for block in _BLOCKS if block.kind == kind]


# --- markers --------------------------------------------------------------------------------------


def test_markers_are_well_formed() -> None:
    problems = [problem for page in doc_pages() for problem in stray_markers(page)]
    expected_lang = {"doctest": "pycon", "run": "python", "shell": "console"}
    for block in _BLOCKS:
        if block.lang == "pycon" and block.kind != "doctest":
            problems.append(f"{block.where}: pycon block without <!-- test: doctest -->")
        want = expected_lang.get(block.kind or "")
        if want and block.lang != want:
            problems.append(f"{block.where}: '{block.kind}' marks a {want} block, not {block.lang}")
        if block.kind == "file" and not block.arg:
            problems.append(f"{block.where}: 'file' marker without a file name")
    assert not problems, "\n".join(problems)


# --- doctest, run and shell blocks ----------------------------------------------------------------

_DOCTEST_PAGES = sorted({block.path for block in _of_kind("doctest")})


@pytest.mark.parametrize("page", _DOCTEST_PAGES, ids=[p.name for p in _DOCTEST_PAGES])
def test_doctest_blocks(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All doctest blocks of a page, in order, in one namespace; output must match exactly."""
    monkeypatch.chdir(tmp_path)
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.REPORT_NDIFF)
    globs: dict[str, object] = {"__name__": "__doc_example__"}
    report: list[str] = []
    for block in (b for b in _of_kind("doctest") if b.path == page):
        test = parser.get_doctest(block.text, globs, block.where, str(block.path), block.line)
        assert test.examples, f"{block.where}: doctest block without '>>>' examples"
        runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("block", _of_kind("run"), ids=_ids(_of_kind("run")))
def test_run_blocks(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, f"{block.where} failed:\n{done.stderr.decode(errors='replace')}"


def _command(argv: list[str]) -> list[str]:
    """Console scripts and ``python`` of this project's environment, as a user's shell has them."""
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    local = BIN / argv[0]
    return [str(local), *argv[1:]] if local.exists() else argv


@pytest.mark.parametrize("block", _of_kind("shell"), ids=_ids(_of_kind("shell")))
def test_shell_blocks(block: Block, tmp_path: Path) -> None:
    for step in shell_steps(block):
        done = subprocess.run(
            _command(step.argv),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
        output = done.stdout.decode(errors="replace")
        assert output == step.expected, f"{block.where}: $ {' '.join(step.argv)}"


# --- quoted messages ------------------------------------------------------------------------------


def test_quoted_messages_exist_in_code() -> None:
    """Every message the docs quote can be produced by the code (or is listed as foreign)."""
    quotes = [quote for page in doc_pages() for quote in quoted_messages(page)]
    assert len(quotes) > 20, "the extraction of quoted messages found almost nothing"
    missing = [
        f"{quote.where}: {quote.text}"
        for quote in quotes
        if quote.text not in FOREIGN_TEXTS
        and not explained(quote.text)
        and not explained_piece(quote.text)
    ]
    assert not missing, "quoted in docs/ but not produced by the code:\n" + "\n".join(missing)
    stale = set(FOREIGN_TEXTS) - {quote.text for quote in quotes}
    assert not stale, f"FOREIGN_TEXTS entries no longer quoted: {sorted(stale)}"


def test_message_check_rejects_drifted_text() -> None:
    """The check itself: a real message passes, the same message with changed words does not."""
    assert explained("key '_data.bor_timeout': expected a value >= 1, got 0")
    assert explained("key '<key>': expected a value >= <low>, got <value>")
    assert not explained("key '_data.bor_timeout': must be at least 1, but is 0")
    assert not explained("this sentence is in no source file at all")
    assert explained_piece("... receiver did not keep up ...")
    assert explained_piece("reply queued True")
    assert not explained_piece("receiver did not keep pace")


# --- references -----------------------------------------------------------------------------------

#: Directories that are not part of the repository's content (tools' caches and build output).
_SKIP_DIRS = frozenset(
    {".git", ".venv", ".cache", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
    | {".hypothesis", "build", "dist", "demo_output"}
)


def _repo_files() -> list[Path]:
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        files.extend(Path(root) / name for name in names)
    return sorted(files)


# The spec files the framework was written from are not shipped: citing their sections or
# their path leaves users with a dangling reference.
# The pattern is built from pieces so that this file does not contain what it looks for.
_FORBIDDEN = re.compile(
    "|".join(
        [
            r"\.\./" + "shared",
            r"(?<![\w.])/\w+/" + r"shared\b",  # an absolute path to the spec folder
            r"\b(?:SPEC|PROTOCOLS|DESIGN|CSCP|CHP|CMDP|CDTP|CHIRP)(?:\.md)?\s*" + "§",
            r"\b(?:SPEC|PROTOCOLS|DESIGN)" + r"\.md\b",
        ]
    )
)


def test_no_references_to_specs_outside_the_repository() -> None:
    """Docs, docstrings and comments cite docs/ only, never files that users do not have."""
    hits = []
    for path in _repo_files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        if _FORBIDDEN.search(text) is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if _FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


_DOC_LINK = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page: lower case, punctuation dropped, spaces to '-'."""
    anchors = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        in_code ^= line.startswith("```")
        if line.startswith("#") and not in_code:
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_references_to_docs_resolve() -> None:
    """Every ``docs/<page>.md`` (and ``#anchor``) named in the repository exists."""
    broken = []
    for path in _repo_files():
        if path.suffix not in {".py", ".md", ".toml", ".txt", ".cfg", ".yaml", ".yml"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for page, anchor in _DOC_LINK.findall(line):
                target = DOCS / page
                if not target.exists():
                    broken.append(f"{path.relative_to(REPO)}:{number}: docs/{page} does not exist")
                elif anchor and anchor not in _anchors(target):
                    broken.append(f"{path.relative_to(REPO)}:{number}: no #{anchor} in docs/{page}")
    # In-page links of the docs: [text](#anchor).
    for page in doc_pages():
        for anchor in re.findall(r"\]\(#([\w-]+)\)", page.read_text(encoding="utf-8")):
            if anchor not in _anchors(page):
                broken.append(f"docs/{page.name}: no #{anchor}")
    assert not broken, "\n".join(broken)


# --- the satellite of docs/writing-a-satellite.md, as a file --------------------------------------


def _file_block(page: str, name: str) -> Block:
    found = [b for b in _of_kind("file") if b.path.name == page and b.arg == name]
    assert len(found) == 1, f"docs/{page} must have exactly one <!-- test: file {name} --> block"
    return found[0]


def test_pyproject_example_names_the_example_main() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    project = tomllib.loads(_file_block("writing-a-satellite.md", "pyproject.toml").text)
    target = project["project"]["scripts"]["SatellitePowerSupply"]
    module, _, function = target.partition(":")
    assert module.endswith(".power") and function == "main"
    assert "def main()" in _file_block("writing-a-satellite.md", "power.py").text
    assert "constellation-py" in project["project"]["dependencies"]


def test_power_supply_example_runs_as_a_file(tmp_path: Path) -> None:
    """``python power.py -g <group> -n hv1`` is a satellite that a controller steers."""
    from controller import Controller
    from tests.conftest import FAST_TIMING

    script = tmp_path / "power.py"
    script.write_text(_file_block("writing-a-satellite.md", "power.py").text, encoding="utf-8")
    group = unique_group("doc")
    log = tmp_path / "power.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script), "-g", group, "-n", "hv1", "-i", LOOPBACK],
            cwd=tmp_path,
            env={**os.environ, **FAST_TIMING},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    name = "PowerSupply.hv1"
    try:
        with Controller(group, interface=LOOPBACK) as ctl:
            ctl.await_satellites([name], timeout=20)
            ctl.initialize({"PowerSupply": {"hv1": {"port": "/dev/null", "voltag": 3}}})
            ctl.await_state("INIT", 15)
            status = wait_for(lambda: ctl.statuses.get(name), 5, what="status after initialize")
            assert status == "Connected to /dev/null (1 unused keys: voltag)"
            ctl.launch()
            ctl.await_state("ORBIT", 15)
            reply = ctl.satellites[name].command("set_voltage", [2.5])
            assert (reply.msg_type.name, reply.payload) == ("SUCCESS", 2.5)
            ctl.start("doc_run_1")
            ctl.await_state("RUN", 15)
            assert ctl.satellites[name].command("get_run_id").verb == "doc_run_1"
            ctl.stop()
            ctl.await_state("ORBIT", 15)
            ctl.land()
            ctl.await_state("INIT", 15)
        proc.terminate()
        assert proc.wait(15) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_quickstart_controller_script_steers_two_satellites(
    processes: Any, group: str, tmp_path: Path
) -> None:
    """The controller block of docs/quickstart.md, against ``Example.a`` and ``Example.b``."""
    text = _file_block("quickstart.md", "controller_api.py").text
    assert text.count('group="lab"') == 1, 'the block must name its group once, as group="lab"'
    script = tmp_path / "controller_api.py"
    script.write_text(text.replace('group="lab"', f"group={group!r}"), encoding="utf-8")
    sats = [processes("SatelliteExample", name) for name in ("a", "b")]
    done = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    # The callbacks print from their own thread: a line may be glued to another one.
    states = [ast.literal_eval(found) for found in re.findall(r"\{[^{}]*\}", done.stdout)]
    assert states == [{"Example.a": "RUN", "Example.b": "RUN"}]  # as the block's comment says
    assert "SUCCESS Command returned: 2.5 2.5" in done.stdout
    assert all(sat.proc.poll() is None for sat in sats)
