"""The type stubs of the extension module match the compiled functions."""

import ast
import inspect
from pathlib import Path

import xbquant
from xbquant import _xbquant

PACKAGE = Path(xbquant.__file__).parent


def stub_functions():
    tree = ast.parse((PACKAGE / "_xbquant.pyi").read_text())
    return {
        node.name: [a.arg for a in node.args.args]
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def test_stubs_match_the_extension():
    stubs = stub_functions()
    compiled = {
        name: list(inspect.signature(obj).parameters)
        for name, obj in vars(_xbquant).items()
        if callable(obj) and not name.startswith("_")
    }
    assert stubs == compiled


def test_package_is_typed():
    assert (PACKAGE / "py.typed").exists()
    assert isinstance(xbquant.__version__, str) and xbquant.__version__.count(".") == 2
