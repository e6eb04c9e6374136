"""Import hygiene of the package: imports of eirnn_fast modules sit at the top of a module unless a
lazy one is needed (an import cycle that moving code cannot remove, or a heavy optional dependency),
and then the import says why with a ``# lazy: <reason>`` comment on its line or the line before;
importing the package and its entry modules loads neither matplotlib, yaml nor ray."""

import ast
import subprocess
import sys
from pathlib import Path

import eirnn_fast

PACKAGE = Path(eirnn_fast.__file__).parent

# files whose function-local imports another rework owns, with the number of undocumented ones they
# hold today: the count may only go down (none left: the CLI and FitConfig rework lifted theirs)
NOT_YET: dict = {}


def undocumented_local_imports(source: str) -> list:
    """Line numbers of the imports of eirnn_fast modules (absolute or relative) inside function
    bodies that carry no ``# lazy:`` comment on their first line or the line before."""
    lines = source.splitlines()
    found = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom):
                ours = node.level > 0 or (node.module or "").split(".")[0] == "eirnn_fast"
            elif isinstance(node, ast.Import):
                ours = any(a.name.split(".")[0] == "eirnn_fast" for a in node.names)
            else:
                continue
            before = lines[node.lineno - 2] if node.lineno >= 2 else ""
            if ours and "# lazy:" not in lines[node.lineno - 1] and "# lazy:" not in before:
                found.add(node.lineno)
    return sorted(found)


def test_the_check_finds_undocumented_local_imports_and_accepts_documented_ones():
    src = (
        "import eirnn_fast.ops\n"  # top level: fine
        "def f():\n"
        "    from eirnn_fast.train import fit\n"  # 3: undocumented
        "    from . import plots  # lazy: matplotlib\n"
        "    # lazy: a cycle through eirnn_fast.train\n"
        "    import eirnn_fast.suites\n"
        "    import json\n"  # not ours
        "    class C:\n"
        "        def g(self):\n"
        "            from .x import y\n"  # 10: nested, relative, undocumented
        "            import eirnn_fast\n"  # 11
    )
    assert undocumented_local_imports(src) == [3, 10, 11]


def test_function_local_imports_of_the_package_say_why_they_are_lazy():
    problems, over = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        found = undocumented_local_imports(path.read_text())
        if rel in NOT_YET:
            if len(found) > NOT_YET[rel]:
                over.append(f"{rel}: {len(found)} undocumented function-local imports, was {NOT_YET[rel]}")
            continue
        problems += [f"eirnn_fast/{rel}:{line}" for line in found]
    assert not problems, (
        "import these at the top of the module, or add '# lazy: <reason>' (an import cycle or a heavy "
        "optional dependency): " + ", ".join(problems)
    )
    assert not over, "; ".join(over)


HEAVY = ("matplotlib", "yaml", "ray")
ENTRY_MODULES = (
    "eirnn_fast",
    "eirnn_fast.data",
    "eirnn_fast.train",
    "eirnn_fast.suites",
    "eirnn_fast.flyvis.train",
    "eirnn_fast.explore",
    "eirnn_fast.cli",
)


def test_importing_the_package_loads_no_plotting_yaml_or_ray():
    code = (
        "import importlib, sys\n"
        f"for m in {ENTRY_MODULES!r}:\n"
        "    importlib.import_module(m)\n"
        f"    loaded = [h for h in {HEAVY!r} if h in sys.modules]\n"
        "    if loaded:\n"
        "        print(m, 'loads', loaded)\n"
        "        break\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", out.stdout
