"""The documentation runs: every ```python block, the quick-start script, the API page.

Each ```python block of README.md and docs/*.md is executed on its own, in a fresh
namespace and a fresh empty working directory, as a reader would paste it (a block
whose first line is ``# continues the previous block`` runs after the blocks before
it). Blocks that are not meant to run are fenced as ```text or ```bash.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import specdiag as sd

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Pages that must show runnable code.
WITH_CODE = {"README.md", "theory.md", "user-guide.md"}

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def fenced_blocks(path: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block in a Markdown file."""
    return [
        (m.group(1).strip(), m.group(2)) for m in FENCE.finditer(path.read_text(encoding="utf-8"))
    ]


#: First line of a block that goes on from the block before it (same namespace and files).
CONTINUES = "# continues the previous block"


def python_blocks() -> list[tuple[Path, int, str]]:
    """``(page, index, code)``; a block that starts with :data:`CONTINUES` carries the
    code of the blocks before it, so it runs as the reader runs it."""
    blocks = []
    for path in DOCS:
        previous = ""
        for i, code in enumerate(c for lang, c in fenced_blocks(path) if lang == "python"):
            if code.startswith(CONTINUES):
                code = previous + code
            blocks.append((path, i, code))
            previous = code
    return blocks


BLOCKS = python_blocks()


def test_the_documentation_pages_exist() -> None:
    names = {p.name for p in DOCS}
    assert {"README.md", "index.md", "theory.md", "user-guide.md", "api.md"} <= names


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_fence_names_its_language(path: Path) -> None:
    unlabelled = [code[:60] for lang, code in fenced_blocks(path) if not lang]
    assert not unlabelled, f"{path.name}: fence code blocks as ```python, ```text or ```bash"


@pytest.mark.parametrize("name", sorted(WITH_CODE))
def test_page_has_runnable_code(name: str) -> None:
    assert any(path.name == name for path, _, _ in BLOCKS), f"{name} has no ```python block"


@pytest.mark.parametrize("path, index, code", BLOCKS, ids=[f"{p.name}[{i}]" for p, i, _ in BLOCKS])
def test_python_block_runs(
    path: Path, index: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    compiled = compile(code, f"{path.relative_to(ROOT)} (python block {index})", "exec")
    with warnings.catch_warnings():
        # Documentation examples converge and build coupled games, unless they say otherwise.
        warnings.filterwarnings("error", category=sd.ConvergenceWarning)
        warnings.filterwarnings("error", message=".*does not depend on any other player")
        exec(compiled, {"__name__": "__docs__"})


def test_readme_gives_the_two_commands_and_ci_runs_its_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = [code.strip() for lang, code in fenced_blocks_of(section) if lang in ("bash", "sh")]
    assert commands == [
        "pip install torch==2.13.0 && pip install -e . && specdiag demo --out demo",
        'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest -q',
    ]
    test_command = commands[1].rsplit("&&", 1)[1].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert any(line.strip().startswith(test_command) for line in ci), (
        f".ci/run must run the README's test command {test_command!r}"
    )


def fenced_blocks_of(text: str) -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def api_sections() -> dict[str, str]:
    """``{name: text}`` for every ``### `name` `` section of docs/api.md."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    parts = re.split(r"^#{2,3} `([^`]+)`[ \t]*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ", 1)[0] for i in range(1, len(parts), 2)}


@pytest.mark.parametrize("name", sd.__all__)
def test_api_page_documents_public_name(name: str) -> None:
    sections = api_sections()
    assert name in sections, f"docs/api.md has no section ### `{name}`"
    obj = getattr(sd, name)
    if callable(obj) and not (inspect.isclass(obj) and issubclass(obj, BaseException)):
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            return
        missing = [
            p
            for p in signature.parameters
            if p not in ("self", "args", "kwargs")
            and not re.search(rf"\b{re.escape(p)}\b", sections[name])
        ]
        assert not missing, f"docs/api.md, {name}: parameters {missing} not documented"


def run_quickstart(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "quickstart.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


EIGENVALUE = re.compile(
    r"^\s+λ(\d+)\s+= ([+-]\d\.\d{4}e[+-]\d\d) ([+-]\d\.\d{4}e[+-]\d\d)j$", re.MULTILINE
)
PROBE = re.compile(
    r"^step\s+(\d+) \|.*\| J: n = (\d+), (\d+) eigenvalues.* (\d+)/(\d+) converged, (\d+) products",
    re.MULTILINE,
)


def test_quickstart_prints_eigenvalues_while_training() -> None:
    out = run_quickstart("--steps", "20", "--every", "10", "--k", "4", "--seed", "1")
    assert out.returncode == 0, out.stderr
    assert "does not depend on any other player" not in out.stderr
    probes = PROBE.findall(out.stdout)
    assert [int(p[0]) for p in probes] == [0, 10, 20]
    for _, n, k, n_conv, k_again, products in probes:
        assert int(n) > 5000
        assert int(k) in (4, 5)  # 5 when the 4th eigenvalue is one of a conjugate pair
        assert int(n_conv) == int(k) == int(k_again)
        assert int(products) > 0
    values = [complex(float(re_), float(im)) for _, re_, im in EIGENVALUE.findall(out.stdout)]
    assert len(values) == sum(int(p[2]) for p in probes)
    assert all(abs(v) > 0 for v in values)
    assert any(v.imag != 0 for v in values), "a GAN's Jacobian has complex eigenvalues"
    assert "min Re λ" in out.stdout and "max |Im λ|" in out.stdout


def test_quickstart_is_deterministic_for_a_seed() -> None:
    args = ("--steps", "4", "--every", "2", "--k", "3", "--seed", "3")
    first, second = run_quickstart(*args), run_quickstart(*args)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    without_times = lambda s: re.sub(r"\d+\.\d+ s$", "", s, flags=re.MULTILINE)  # noqa: E731
    assert EIGENVALUE.search(first.stdout)
    assert without_times(first.stdout) == without_times(second.stdout)


def test_quickstart_rejects_bad_flags() -> None:
    out = run_quickstart("--every", "0")
    assert out.returncode == 2
    assert "--every" in out.stderr


def quick_start_block() -> str:
    """The README's quick start: the python block that runs a SpectrumMonitor."""
    return next(code for _, _, code in python_blocks()[:4] if "SpectrumMonitor(" in code)


def without_the_monitor(code: str) -> str:
    """The quick start with its monitor lines taken out (the probe batch, the monitor, its
    calls, the plot): the loop a user had before adding specdiag."""
    lines = [
        line for line in code.splitlines() if not line.startswith(("own = ", "probe_batch = "))
    ]
    start = next(i for i, line in enumerate(lines) if line.startswith("with sd.SpectrumMonitor("))
    body = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith(":")) + 1
    end = next(
        (i for i in range(body, len(lines)) if lines[i] and not lines[i][0].isspace()), len(lines)
    )
    inner = [line[4:] for line in lines[body:end] if not line.strip().startswith("monitor.")]
    rest = [line for line in lines[end:] if "plot" not in line]
    return "\n".join(lines[:start] + inner + rest)


def test_the_readme_quick_start_trains_bit_for_bit_as_without_its_monitor(tmp_path, monkeypatch):
    code = quick_start_block()
    plain = without_the_monitor(code)
    assert "SpectrumMonitor" not in plain and "monitor." not in plain
    results = []
    for i, source in enumerate((plain, code)):
        monkeypatch.chdir(tmp_path)
        torch.manual_seed(0)
        namespace: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(source, f"README quick start {i}", "exec"), namespace)
        results.append(
            [
                t.detach().clone()
                for m in (namespace["G"], namespace["D"])
                for t in m.state_dict().values()
            ]
        )
        results[-1].append(torch.get_rng_state())
    assert len(results[0]) == len(results[1])
    for a, b in zip(*results):
        assert torch.equal(a, b)
