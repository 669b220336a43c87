"""The package's shape: its folders are layers that import only downwards, its modules
import one another without a cycle, docs/architecture.md draws every module where it
lives, and what it relies on inside its libraries is listed in one place.

A cycle (even through an import inside a function) means two modules share a fact that
belongs in a third: the graded notebook's record (coursekit.record), the text shown to the
instructor (coursekit.escape), the release (coursekit.authoring.releases). A private name
of nbgrader that a course class overrides or calls, and any nbgrader attribute the course
replaces, is in coursekit/grading/nbgrader_compat.py alone (nbclient's and jupyter_client's
are listed there), and still in the installed library: an upgrade that drops one fails
here, not in a student's grade.
"""
import ast
import re
from pathlib import Path

from conftest import ROOT

PACKAGE = "coursekit"


def module_name(path, package):
    """"grading.grader" for coursekit/grading/grader.py: its name inside the package."""
    return ".".join(path.relative_to(package).with_suffix("").parts)


def imports(path, modules):
    """The package's modules (of `modules`) that `path` imports, anywhere in it (functions
    included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PACKAGE or node.module.startswith(PACKAGE + "."):
                inside = node.module[len(PACKAGE) + 1:]
                for alias in node.names:  # `from coursekit.grading import grader`
                    named = (inside + "." if inside else "") + alias.name
                    found.add(named if named in modules else inside)
        elif isinstance(node, ast.Import):
            found |= {alias.name[len(PACKAGE) + 1:] for alias in node.names
                      if alias.name.startswith(PACKAGE + ".")}
    return found & set(modules)


def package_modules(package=ROOT / PACKAGE):
    """{name inside the package: path} of every module, subpackages included."""
    return {module_name(path, package): path for path in sorted(Path(package).rglob("*.py"))
            if path.stem != "__init__"}


def import_graph(package=ROOT / PACKAGE):
    modules = package_modules(package)
    # A module importing its own name (as a Dask task does) is no cycle.
    return {name: sorted(imports(path, modules) - {name}) for name, path in modules.items()}


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
    assert len(graph) > 20 and "record" in graph["grading.feedback"]
    assert cycles(graph) == [], "\n".join(" -> ".join(c) for c in cycles(graph))


# The package's layers, lowest first: a module imports its own layer and those below it,
# as each subpackage's __init__ says.
LAYERS = ("", "kernel", "authoring", "grading", "classroom", "examples")
# The one import up the layers: outside a notebook (tests, make samples), the checks read
# the numbers right answers give from the answer key itself.
UPWARD = {("kernel.checks", "authoring.reference")}


def layer(module):
    return module.split(".")[0] if "." in module else ""


def test_each_layer_imports_only_itself_and_the_layers_below():
    graph = import_graph()
    assert {layer(module) for module in graph} == set(LAYERS)
    upward = {(module, imported) for module, imports_ in graph.items() for imported in imports_
              if LAYERS.index(layer(imported)) > LAYERS.index(layer(module))}
    assert upward == UPWARD, sorted(upward - UPWARD)


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    (tmp_path / "a.py").write_text("from coursekit import b\n")
    (tmp_path / "b.py").write_text("def late():\n    from coursekit.c import x\n")
    (tmp_path / "c.py").write_text("import coursekit.a\n")
    (tmp_path / "d.py").write_text("from coursekit.a import y\n")
    assert cycles(import_graph(tmp_path)) == [["a", "b", "c", "a"]]


# --- what the course relies on inside its libraries: grading/nbgrader_compat.py ----------

COMPAT = "grading.nbgrader_compat"
# Carried alone into the virtualenv's config, before anything else can fail: it replaces
# nbgrader's autograde with one that refuses, by itself (coursekit/grading/failclosed.py).
STANDS_ALONE = {"grading.failclosed": {"nbgrader.apps.api": ["Autograde"],
                                        "nbgrader.apps.autogradeapp": ["Autograde"]}}


def course_classes():
    """(module's name in the package, dotted class name, class, its ast node) of every
    class the package defines."""
    import importlib
    import inspect

    for name, path in package_modules().items():
        module = importlib.import_module("%s.%s" % (PACKAGE, name))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            found = getattr(module, node.name, None)
            if inspect.isclass(found) and found.__module__ == module.__name__:
                yield name, "%s.%s" % (module.__name__, node.name), found, node


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def private_names_used(node):
    """Private names a class's code defines as methods, or reads on self, cls or super()."""
    used = {sub.name for sub in ast.walk(node) if _private(getattr(sub, "name", "") or "")
            and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef))}
    used |= {sub.attr for sub in ast.walk(node)
             if isinstance(sub, ast.Attribute) and _private(sub.attr) and (
                 isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls")
                 or isinstance(sub.value, ast.Call) and getattr(sub.value.func, "id", "")
                 == "super")}
    return used


def private_names_relied_on():
    """{module: {course class: (library class, [private names of that library class it
    overrides or calls])}}, found in the code."""
    found = {}
    for module, name, cls, node in course_classes():
        libraries = [base for base in cls.__mro__[1:]
                     if not base.__module__.startswith((PACKAGE, "builtins"))]
        for private in sorted(private_names_used(node)):
            owner = next((base for base in libraries if private in vars(base)), None)
            if owner is not None:
                library = "%s.%s" % (owner.__module__, owner.__qualname__)
                found.setdefault(module, {}).setdefault(name, (library, []))[1].append(private)
    return found


LIBRARIES = ("nbgrader", "nbclient", "nbconvert", "jupyter_client", "jupyter_server")


def library_patches(path):
    """{library module or class: [attributes the module at `path` replaces there]}, found
    in its code: a name imported from a library (or a library module looked up in
    sys.modules, or any library name reached through it) given a new attribute, or a
    private attribute of one read."""
    found = {}
    tree = ast.parse(path.read_text())
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LIBRARIES):
            imported.update({alias.asname or alias.name:
                             "%s.%s" % (node.module, alias.name) for alias in node.names})
        elif isinstance(node, ast.Import):
            imported.update({alias.asname or alias.name: alias.name for alias in node.names
                             if alias.name.startswith(LIBRARIES)})
        elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
              and ast.unparse(node.value.func) == "sys.modules.get"
              and str(node.value.args[0].value).startswith(LIBRARIES)):
            imported[node.targets[0].id] = node.value.args[0].value
    for node in ast.walk(tree):
        targets = list(getattr(node, "targets", ()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setattr":
            targets.append(ast.Attribute(value=node.args[0], attr="<setattr>"))
        for target in targets:
            if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) \
                    in imported:
                found.setdefault(imported[target.value.id], set()).add(target.attr)
        if (isinstance(node, ast.Attribute) and _private(node.attr)
                and getattr(node.value, "id", None) in imported):
            found.setdefault(imported[node.value.id], set()).add(node.attr)
    return {where: sorted(names) for where, names in found.items()}


def test_nbgrader_is_reached_into_only_through_the_compat_module():
    """No private name of nbgrader is overridden or called outside nbgrader_compat, and no
    attribute of nbgrader's is replaced outside it (failclosed.py stands alone); there,
    the hooks use exactly the private names they list."""
    from coursekit.grading import nbgrader_compat

    relied_on = private_names_relied_on()
    # The scan sees a hook's overrides and calls through its nbgrader base.
    assert relied_on[COMPAT]["coursekit.grading.nbgrader_compat.ValidatorHooks"] == (
        nbgrader_compat.PRIVATE_NAMES["ValidatorHooks"])
    outside = {module: classes for module, classes in relied_on.items()
               if module != COMPAT and any(library.startswith("nbgrader.")
                                           for library, _ in classes.values())}
    assert outside == {}
    for module, path in package_modules().items():
        if module != COMPAT:
            assert library_patches(path) == STANDS_ALONE.get(module, {}), module
    # Each hook's private names, read from its code (ConverterFolders is a mixin: its
    # base is the converter it is mixed into).
    for node in ast.parse((ROOT / PACKAGE / "grading" / "nbgrader_compat.py").read_text()
                          ).body:
        if isinstance(node, ast.ClassDef):
            assert sorted(private_names_used(node)) == (
                nbgrader_compat.PRIVATE_NAMES[node.name][1]), node.name


def test_the_kernel_libraries_private_names_are_listed_in_the_compat_module():
    from coursekit.grading import nbgrader_compat

    found = {name: used for module, classes in private_names_relied_on().items()
             if module != COMPAT for name, used in classes.items()}
    assert found == nbgrader_compat.KERNEL_LIBRARY_NAMES


def test_the_compat_module_replaces_only_what_it_lists():
    import pytest

    from coursekit.grading import nbgrader_compat

    with pytest.raises(ValueError, match="not in nbgrader_compat.REPLACED"):
        nbgrader_compat.replace("nbgrader.apps.api", "Validator", object)


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


def test_every_name_the_compat_module_lists_is_still_in_the_installed_library():
    from importlib.metadata import version

    from coursekit.grading import nbgrader_compat

    # Pinned in requirements.txt: another nbgrader means reading the compat module again.
    assert version("nbgrader") == nbgrader_compat.WRITTEN_AGAINST["nbgrader"]
    listed = [(library, name) for library, names in
              list(nbgrader_compat.PRIVATE_NAMES.values())
              + list(nbgrader_compat.KERNEL_LIBRARY_NAMES.values()) for name in names]
    listed += [(where, name) for where, names in nbgrader_compat.REPLACED.items()
               for name in names]
    gone = ["%s.%s" % (where, name) for where, name in listed
            if not hasattr(resolve(where), name)]
    assert gone == [], "gone from the installed library: %s" % ", ".join(gone)


def test_the_layout_in_the_docs_names_every_module_where_it_lives():
    """A newcomer finds each module, in its folder, in docs/architecture.md's tree, and no
    module that is gone; the README's map names every folder."""
    tree, folder, drawn = (ROOT / "docs" / "architecture.md").read_text(), "", set()
    for indent, name, kind in re.findall(r"^( +)(\w+)(/|\.py) ", tree, re.MULTILINE):
        if kind == "/":
            folder = name + "."
        else:
            drawn.add((folder if len(indent) > 2 else "") + name)
    modules = set(package_modules())
    assert drawn == modules, ("not drawn: %s; drawn, no such module: %s"
                              % (sorted(modules - drawn), sorted(drawn - modules)))
    readme = (ROOT / "README.md").read_text()
    assert {"coursekit/%s/" % name for name in LAYERS if name} <= set(
        re.findall(r"coursekit/\w+/", readme))


def test_the_migration_head_is_the_installed_nbgraders():
    """A new gradebook is stamped with nbgrader_compat.MIGRATION_HEAD: it must be the newest
    of the installed nbgrader's migrations, or nbgrader would later try to upgrade it."""
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    from coursekit.grading import nbgrader_compat

    assert nbgrader_compat.MIGRATION_HEAD == ScriptDirectory(ALEMBIC_DIR).get_current_head()


def test_under_the_course_config_a_new_gradebook_needs_no_alembic_program(tmp_path):
    """nbgrader learns the version to stamp from `alembic heads`, a subprocess found on
    PATH; under the course config it is stamped in process, and PATH may lack alembic."""
    import os
    import subprocess
    import sys

    from coursekit.grading import nbgrader_compat

    probe = (
        "import sys\n"
        "from traitlets.config import Config\n"
        "exec(compile(open('nbgrader_config.py').read(), 'nbgrader_config.py', 'exec'),\n"
        "     {'get_config': Config, '__file__': 'nbgrader_config.py'})\n"
        "from nbgrader.api import Gradebook\n"
        "with Gradebook('sqlite:///' + sys.argv[1]) as gradebook:\n"
        "    print(gradebook.db.execute(__import__('sqlalchemy').text(\n"
        "        'SELECT version_num FROM alembic_version')).scalar())\n")
    said = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "gradebook.db")],
                          cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PATH=str(tmp_path)))  # no program at all
    assert said.returncode == 0, said.stderr[-2000:]
    assert said.stdout.split() == [nbgrader_compat.MIGRATION_HEAD]


def test_the_course_config_has_nbgrader_build_the_course_classes_everywhere():
    """Loading nbgrader_config.py replaces, through the compat module, every place nbgrader
    builds its autograde, generate_feedback and Validator by name."""
    import json
    import subprocess
    import sys

    probe = (
        "import json, sys\n"
        "import nbgrader.server_extensions.validate_assignment.handlers\n"
        "from traitlets.config import Config\n"
        "exec(compile(open('nbgrader_config.py').read(), 'nbgrader_config.py', 'exec'),\n"
        "     {'get_config': Config, '__file__': 'nbgrader_config.py'})\n"
        "from coursekit.grading import nbgrader_compat\n"
        "print(json.dumps({name: {where: cls.__module__ + '.' + cls.__name__\n"
        "                         for where, cls in nbgrader_compat.built(name).items()}\n"
        "                  for name in ('Autograde', 'GenerateFeedback', 'Validator')}))\n")
    said = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    built = json.loads(said.stdout.splitlines()[-1])
    course = {"Autograde": "coursekit.grading.autograde.CourseAutograde",
              "GenerateFeedback": "coursekit.grading.feedback.CourseGenerateFeedback",
              "Validator": "coursekit.grading.validate.CourseValidator"}
    from coursekit.grading import nbgrader_compat

    for name, classes in built.items():
        places = [where for where, names in nbgrader_compat.REPLACED.items() if name in names]
        assert sorted(classes) == sorted(places), name
        assert set(classes.values()) == {course[name]}, classes
