"""Checks on the project itself: docs/ documents every setting and command, the committed
API contract matches the code, and CI runs README's test command."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import orjson
from click.testing import CliRunner

from tracestore.api.apischema import build_schemas, dumps
from tracestore.cli.main import cli
from tracestore.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETTINGS_DOC = (ROOT / "docs" / "settings.md").read_text()
CLI_DOC = (ROOT / "docs" / "cli.md").read_text()


def test_every_setting_is_documented_in_docs() -> None:
    missing = [f"TRACESTORE_{name.upper()}" for name in Settings.model_fields
               if f"`TRACESTORE_{name.upper()}`" not in SETTINGS_DOC]
    assert missing == []
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_settings_doc_states_the_code_defaults() -> None:
    rows = dict(re.findall(r"^\| `TRACESTORE_([A-Z0-9_]+)` \| ([^|]*) \|", SETTINGS_DOC, re.M))
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        if default in ("", None):
            continue  # documented in words: "(empty = off)"
        shown = orjson.dumps(default).decode() if isinstance(default, list) else str(default)
        row = rows.get(name.upper(), "(no row in docs/settings.md)")
        assert f"`{shown}`" in row, (name, default, row)


def test_committed_api_schema_matches_the_code() -> None:
    for name, doc in build_schemas().items():
        committed = (ROOT / "api_schema" / name).read_bytes()
        assert orjson.loads(committed) == orjson.loads(dumps(doc)), (
            f"api_schema/{name} drifted from the code: run `tracestore export-schema`"
        )


def test_ci_runs_readme_test_command() -> None:
    """.ci/run splits README's test command into its setup and its tests, and runs the type
    and lint gates in between (in the virtualenv the setup built)."""
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r"<!-- test-command -->\n```bash\n(.+)\n```", README)
    assert m and "pytest" in m.group(1)
    assert re.search(r"<!-- demo-command -->\n```bash\n.+tracestore demo\n```", README)
    # The split, run by bash as CI runs it, gives back the command and a setup with the extra.
    split = "\n".join(re.findall(r"^(?:cmd|setup|tests)=.*$", ci, flags=re.M))
    assert "<!-- test-command -->" in split
    out = subprocess.run(["bash", "-c", split + '\nprintf "%s\\n%s" "$setup" "$tests"'],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    setup, tests = out.split("\n")
    assert f"{setup} && {tests}" == m.group(1)
    assert "pip install" in setup and ".[test]" in setup and "pytest" in tests
    # In order: setup, the gates, the tests; each gate's tool is in the test extra.
    steps = ['bash -c "$setup"', "\n.venv/bin/ruff check .\n",
             "\n.venv/bin/mypy --strict tracestore analyzers\n", 'bash -c "$tests"']
    at = [ci.find(s) for s in steps]
    assert -1 not in at and at == sorted(at), at
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["test"]
    assert {"mypy", "ruff"} <= {re.split(r"[=<>\[ ]", d)[0] for d in extra}


def _commands(group: object, prefix: str = "") -> list[tuple[str, object]]:
    import click

    out: list[tuple[str, object]] = []
    assert isinstance(group, click.Group)
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full + " "))
    return out


def test_every_cli_command_has_help_and_is_documented() -> None:
    runner = CliRunner()
    for name, cmd in _commands(cli):
        r = runner.invoke(cli, [*name.split(), "--help"])
        assert r.exit_code == 0, name
        assert getattr(cmd, "help", None), f"`tracestore {name}` has no help text"
        assert f"`tracestore {name}" in CLI_DOC, f"`tracestore {name}` is not in docs/cli.md"


def test_wire_node_kinds_match_the_graph_contract() -> None:
    from typing import get_args

    from analyzers.graph import NODE_KINDS
    from tracestore.schemas import NodeKind

    assert set(get_args(NodeKind)) == set(NODE_KINDS)


# The code map of README.md: tracestore's packages in the order they may import each other
# (each only from the ones before it). The first three are the top-level modules every package
# may use; `client` imports nothing of the server.
LAYERS = ("config", "errors", "schemas", "store", "limits", "auth", "pricing", "reports",
          "ingest", "demo", "analysis", "digest", "alerts", "api", "cli")
_ANALYZER_DEPS = ("numpy", "networkx")


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "tracestore" and len(parts) > 1 else parts[0]


def _imports(path: Path) -> list[str]:
    import ast

    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def test_packages_import_only_downwards_as_the_code_map_says() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    wrong = []
    for path in sorted((ROOT / "tracestore").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        src = _package_of(".".join(rel.parts).replace(".__init__", ""))
        for mod in _imports(path):
            dst = _package_of(mod)
            if not mod.startswith("tracestore.") or dst in (src, "tracestore"):
                continue
            if src == "client" or dst not in rank or src not in rank:
                wrong.append(f"{rel}: imports {mod} (not in the code map)")
            elif rank[dst] >= rank[src] and rank[src] > 2:
                wrong.append(f"{rel}: imports {mod}, a layer above {src}")
    assert wrong == []


def test_analyzers_are_pure() -> None:
    """analyzers/ imports only the standard library, numpy and networkx (README code map)."""
    import sys

    wrong = []
    for path in sorted((ROOT / "analyzers").rglob("*.py")):
        for mod in _imports(path):
            top = mod.split(".")[0]
            if top in ("analyzers", *_ANALYZER_DEPS) or top in sys.stdlib_module_names:
                continue
            wrong.append(f"{path.relative_to(ROOT)}: imports {mod}")
    assert wrong == []


def test_the_store_has_one_json_encoder() -> None:
    """Every JSON column value is encoded by store/jsontext.py's json_text (orjson; a
    non-finite float as null). Another stdlib encoder in tracestore/ would write NaN as the
    NaN token, which PostgreSQL's json type rejects (issue 14: one JSON encoder)."""
    pattern = re.compile(r"\bjson\.(dumps|dump|JSONEncoder)\b")
    others = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tracestore").rglob("*.py"))
              if pattern.search(p.read_text()) and p.name != "jsontext.py"]
    assert others == []
    assert pattern.search((ROOT / "tracestore" / "store" / "jsontext.py").read_text())


def _source_files(top: Path) -> list[Path]:
    """The .py and .md files under ``top``, skipping generated and installed trees."""
    import os

    found = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ("out", "__pycache__", "node_modules", ".venv")]
        found += [Path(folder) / f for f in files if f.endswith((".py", ".md"))]
    return sorted(found)


def test_nothing_cites_documents_outside_the_repository() -> None:
    """Docstrings, comments and docs cite docs/ files, never the design notes the project was
    built from or paths on the machine it was built on."""
    # An absolute path under a machine's scratch, home or work folders names that machine.
    outside = re.compile(r"DESIGN(\.md| ?§)|(?<![_/])conventions\.md|shared/reference"
                         r"|(?<![\w.:/])/(?:work|tmp|root|home)/")
    code_only = re.compile(r"(?<!docs/)\bmethods\.md")
    wrong = []
    for top in ("tracestore", "analyzers", "tests", "bench", "fixtures", "docs"):
        for path in _source_files(ROOT / top):
            if path == Path(__file__):
                continue
            text = path.read_text(errors="replace")
            for pattern in (outside, code_only) if path.suffix == ".py" else (outside,):
                wrong += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in pattern.finditer(text)]
    wrong += [f"README.md: {m.group(0)}" for m in outside.finditer(README)]
    assert wrong == []


def test_readme_is_a_short_front_door_linking_every_doc() -> None:
    assert len(README.splitlines()) <= 250, "README.md is the front door: move detail to docs/"
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md"))
                if f"(docs/{p.name}" not in README]
    assert unlinked == [], f"docs/ pages without a link from README.md: {unlinked}"


MAX_FUNCTION_LINES = 60  # house rule (STYLE.md): functions <= 60 lines in both packages
# Functions still over the limit while their owners split them (remove an entry once split).
# Any other function over the limit fails the test.
PENDING_SPLIT: set[str] = set()


def long_functions(root: Path, *packages: str) -> list[str]:
    """``path name`` of every function of ``packages`` (under ``root``) longer than
    :data:`MAX_FUNCTION_LINES`, counted from ``def`` (decorators excluded) to the body's end."""
    import ast

    out = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                        (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES):
                    out.append(f"{path.relative_to(root).as_posix()} {node.name}")
    return out


def test_no_function_is_longer_than_60_lines() -> None:
    found = set(long_functions(ROOT, "tracestore", "analyzers"))
    assert found <= PENDING_SPLIT, (f"over {MAX_FUNCTION_LINES} lines: "
                                    f"{sorted(found - PENDING_SPLIT)}")


def test_the_function_length_check_can_fail(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        f"def short():\n    pass\n\n\ndef long():\n{body}\n\n\nasync def edge():\n"
        + "\n".join(f"    y{i} = {i}" for i in range(MAX_FUNCTION_LINES - 1)) + "\n")
    assert long_functions(tmp_path, "pkg") == ["pkg/m.py long"]
