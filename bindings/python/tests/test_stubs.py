"""The type stubs of the extension module match the compiled functions."""

import ast
import inspect
from pathlib import Path

import xbquant
from xbquant import _xbquant

PACKAGE = Path(xbquant.__file__).parent


def parameters(node):
    return [a.arg for a in node.args.args if a.arg not in ("self", "cls")]


def stubs():
    """Functions by name; a class by its name (its constructor) and `Class.method`."""
    tree = ast.parse((PACKAGE / "_xbquant.pyi").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = parameters(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if not isinstance(item, ast.FunctionDef):
                    continue
                if item.name == "__new__":
                    found[node.name] = parameters(item)
                elif not any(getattr(d, "id", None) == "property" for d in item.decorator_list):
                    found[f"{node.name}.{item.name}"] = parameters(item)
    return found


def compiled():
    found = {}
    for name, obj in vars(_xbquant).items():
        if name.startswith("_") or not callable(obj):
            continue
        try:
            found[name] = [p for p in inspect.signature(obj).parameters if p != "self"]
        except ValueError:  # a class without a constructor (an enum of modes)
            if not isinstance(obj, type):
                raise
        if isinstance(obj, type):
            for attr, member in vars(obj).items():
                # Internal builders (`Scheme._fixed`) are checked too; dunders are Python's.
                if attr.startswith("__") or not callable(getattr(obj, attr)):
                    continue
                method = getattr(obj, attr)
                params = inspect.signature(method).parameters
                found[f"{name}.{attr}"] = [p for p in params if p != "self"]
    return found


def test_stubs_match_the_extension():
    assert stubs() == compiled()


def test_noise_constants_are_typed():
    tree = ast.parse((PACKAGE / "_xbquant.pyi").read_text())
    annotated = {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    constants = {name for name in vars(_xbquant) if name.isupper()}
    assert constants and constants <= annotated


def test_package_is_typed():
    assert (PACKAGE / "py.typed").exists()
    assert isinstance(xbquant.__version__, str) and xbquant.__version__.count(".") == 2
