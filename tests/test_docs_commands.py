"""docs/kaggle.md's commands work as written: every ``arena`` and ``build_dataset.py`` line parses with
the real argument parsers, and every Python snippet runs against copies of the committed notebooks.
(``kaggle`` CLI lines need an account and are not run.)"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "kaggle.md"


def commands(text: str) -> tuple[list[list[str]], list[str]]:
    """(shell commands as argv lists, python heredoc snippets) from the doc's ```bash blocks."""
    argvs, snippets = [], []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines = iter(block.splitlines())
        pending = ""
        for line in lines:
            if line.startswith("python - <<'EOF'"):
                body = []
                for inner in lines:
                    if inner == "EOF":
                        break
                    body.append(inner)
                snippets.append("\n".join(body))
                continue
            line = pending + line
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            words = shlex.split(line, comments=True)
            if words:
                argvs.append(words)
    return argvs, snippets


def build_dataset_parser():
    spec = importlib.util.spec_from_file_location("build_dataset_doc", ROOT / "build_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


# Every page that shows commands to type; a command that no longer parses fails here, not for a user.
DOCS_WITH_COMMANDS = (DOC, ROOT / "README.md", ROOT / "docs" / "recipes.md", ROOT / "docs" / "README.md")


@pytest.mark.parametrize("doc", DOCS_WITH_COMMANDS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_arena_and_build_dataset_command_parses(doc):
    from arena_core.cli.main import build_parser

    argvs, _ = commands(doc.read_text(encoding="utf-8"))
    arena, build = build_parser(), build_dataset_parser()
    seen = {"arena": 0, "build_dataset.py": 0}
    for argv in argvs:
        if argv[0] == "arena":
            arena.parse_args(argv[1:])
            seen["arena"] += 1
        elif argv[:2] == ["python", "build_dataset.py"]:
            args = build.parse_args(argv[2:])
            seen["build_dataset.py"] += 1
            assert args.run or args.wheels_only or args.kernel_dir or args.upload or args.check, argv
        elif argv[0] == "torchrun":
            i = argv.index("arena_core.cli")
            arena.parse_args(argv[i + 1 :])
    if doc == DOC:
        assert seen["arena"] >= 4 and seen["build_dataset.py"] >= 8, seen
    else:
        assert sum(seen.values()) >= 1 or doc.name == "README.md" and doc.parent != ROOT, (doc, seen)


@pytest.mark.parametrize("index", range(2))
def test_every_python_snippet_runs_on_the_committed_notebooks(tmp_path, index):
    _, snippets = commands(DOC.read_text(encoding="utf-8"))
    assert len(snippets) == 2
    snippet = snippets[index]
    path = re.search(r'path = "([^"]+)"', snippet)[1]
    (tmp_path / Path(path).parent).mkdir(parents=True)
    shutil.copyfile(ROOT / "kaggle" / Path(path).name, tmp_path / path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "injected-parameters" in (tmp_path / path).read_text()
