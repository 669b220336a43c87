"""The package's shape: its modules import one another without a cycle.

A cycle (even through an import inside a function) means two modules share a fact that
belongs in a third: the graded notebook's record (coursekit.record), the text shown to the
instructor (coursekit.escape), the release (coursekit.releases).
"""
import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = "coursekit"


def imports(path):
    """The package's modules that `path` imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PACKAGE:
                found |= {alias.name for alias in node.names}
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names
                      if alias.name.startswith(PACKAGE + ".")}
    return found


def import_graph(package=ROOT / PACKAGE):
    modules = {path.stem: path for path in Path(package).glob("*.py")
               if path.stem != "__init__"}
    # A module importing its own name (as a Dask task does) is no cycle.
    return {name: sorted(imports(path) & set(modules) - {name})
            for name, path in modules.items()}


def cycles(graph):
    """Each cycle of `graph` found by a depth-first walk, as the path that closes it."""
    found, done = [], set()

    def walk(module, path):
        if module in path:
            found.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for imported in graph.get(module, ()):
            walk(imported, path + [module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])
    return found


def test_no_module_of_the_package_imports_itself_back():
    graph = import_graph()
    assert len(graph) > 20 and "record" in graph["feedback"]
    assert cycles(graph) == [], "\n".join(" -> ".join(c) for c in cycles(graph))


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    (tmp_path / "a.py").write_text("from coursekit import b\n")
    (tmp_path / "b.py").write_text("def late():\n    from coursekit.c import x\n")
    (tmp_path / "c.py").write_text("import coursekit.a\n")
    (tmp_path / "d.py").write_text("from coursekit.a import y\n")
    assert cycles(import_graph(tmp_path)) == [["a", "b", "c", "a"]]
