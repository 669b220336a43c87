"""The package's shape: its modules import one another without a cycle, and what it relies
on inside its libraries is listed in one place.

A cycle (even through an import inside a function) means two modules share a fact that
belongs in a third: the graded notebook's record (coursekit.record), the text shown to the
instructor (coursekit.escape), the release (coursekit.releases). A private name of nbgrader,
nbclient or jupyter_client that a course class overrides or calls, or a library attribute
the course replaces, must be listed in coursekit/compat.py, and still be in the installed
library: an upgrade that drops one fails here, not in a student's grade.
"""
import ast
import re
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


# --- what the course relies on inside its libraries: coursekit/compat.py ---------------

def course_classes():
    """(dotted name, class, its ast node) of every class the package defines."""
    import importlib
    import inspect

    for path in sorted((ROOT / PACKAGE).glob("*.py")):
        module = importlib.import_module("%s.%s" % (PACKAGE, path.stem))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            found = getattr(module, node.name, None)
            if inspect.isclass(found) and found.__module__ == module.__name__:
                yield "%s.%s" % (module.__name__, node.name), found, node


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def private_names_relied_on():
    """{course class: (library class, [private names of that library class it overrides
    or calls])}, found in the code."""
    found = {}
    for name, cls, node in course_classes():
        libraries = [base for base in cls.__mro__[1:]
                     if not base.__module__.startswith((PACKAGE, "builtins"))]
        used = {sub.name for sub in ast.walk(node) if _private(getattr(sub, "name", "") or "")
                and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef))}
        used |= {sub.attr for sub in ast.walk(node)
                 if isinstance(sub, ast.Attribute) and _private(sub.attr) and (
                     isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls")
                     or isinstance(sub.value, ast.Call) and getattr(sub.value.func, "id", "")
                     == "super")}
        for private in sorted(used):
            owner = next((base for base in libraries if private in vars(base)), None)
            if owner is not None:
                library = "%s.%s" % (owner.__module__, owner.__qualname__)
                found.setdefault(name, (library, []))[1].append(private)
    return found


LIBRARIES = ("nbgrader", "nbclient", "nbconvert", "jupyter_client", "jupyter_server")


def library_patches():
    """{library module or class: [attributes the package replaces there]}, found in the
    code: a name imported from a library (or a library module looked up in sys.modules)
    given a new attribute."""
    found = {}
    for path in sorted((ROOT / PACKAGE).glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LIBRARIES):
                imported.update({alias.asname or alias.name:
                                 "%s.%s" % (node.module, alias.name) for alias in node.names})
            elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                  and ast.unparse(node.value.func) == "sys.modules.get"
                  and str(node.value.args[0].value).startswith(LIBRARIES)):
                imported[node.targets[0].id] = node.value.args[0].value
        for node in ast.walk(tree):
            for target in getattr(node, "targets", ()):
                if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) \
                        in imported:
                    found.setdefault(imported[target.value.id], set()).add(target.attr)
    return {where: sorted(names) for where, names in found.items()}


def resolve(dotted):
    """The module, or the class in a module, a dotted name stands for."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


def test_every_private_library_name_the_course_relies_on_is_listed_in_compat():
    from coursekit import compat

    found = private_names_relied_on()
    assert "coursekit.validate.CourseValidator" in found  # the scan sees the overrides
    assert found == {name: (library, sorted(names))
                     for name, (library, names) in compat.PRIVATE_NAMES.items()}
    assert library_patches() == compat.PATCHED


def test_every_name_listed_in_compat_is_still_in_the_installed_library():
    from coursekit import compat

    listed = [(library, name) for library, names in compat.PRIVATE_NAMES.values()
              for name in names]
    listed += [(where, name) for where, names in compat.PATCHED.items() for name in names]
    gone = ["%s.%s" % (where, name) for where, name in listed
            if not hasattr(resolve(where), name)]
    assert gone == [], "gone from the installed library: %s" % ", ".join(gone)


def test_the_readmes_map_names_every_module_of_the_package():
    """A newcomer finds each module in the README's map, and no module that is gone."""
    readme = (ROOT / "README.md").read_text()
    mapped = set(re.findall(r"^  (\w+)\.py ", readme, re.MULTILINE))
    modules = {path.stem for path in (ROOT / PACKAGE).glob("*.py") if path.stem != "__init__"}
    assert mapped == modules, ("not in the map: %s; in the map, no such module: %s"
                               % (sorted(modules - mapped), sorted(mapped - modules)))
