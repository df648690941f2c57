"""Build step of ``pip install``: compile the matching core (``services/matcher/book.py``) with mypyc.

Everything else about the package is in ``pyproject.toml``; this file only adds the extension. The source
stays plain, typed Python: the compiled module and the pure one behave the same (``tests/unit/matcher``),
and ``services.matcher.book.COMPILED`` says which one was imported (``bench core`` records it).

* ``SPOT_PURE_PYTHON=1`` skips compiling: the package installs as pure Python (and extensions an earlier
  editable install built next to ``book.py`` are deleted, since Python would import them first).
* With no working C compiler (gcc and the Python headers), without mypyc (a ``--no-build-isolation``
  install into an environment without mypy) or with type errors, the build warns and installs pure Python.
* An editable install (``pip install -e .``, ``make install``) builds the extension next to ``book.py``; an
  extension older than ``book.py`` would be imported instead of the edited source, which
  ``tests/unit/matcher/test_core_build.py`` catches. Rebuild with ``pip install --no-deps -e .``.

mypy type-checks the compiled module first, with no config file (``--config-file=``): the project's
``[tool.mypy]`` loads the pydantic plugin, which the isolated build environment does not have.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

CORE = ["services/matcher/book.py"]
BUILT_IN_PLACE = ["services/matcher/book.*.so", "services/matcher/book__mypyc.*.so", "services/matcher/book*.pyd"]


def core_extensions() -> list:
    if os.environ.get("SPOT_PURE_PYTHON", "0") not in ("", "0"):
        print("SPOT_PURE_PYTHON is set: installing the matching core as pure Python", file=sys.stderr)
        for pattern in BUILT_IN_PLACE:  # an earlier editable build's extension would shadow book.py
            for built in Path(__file__).parent.glob(pattern):
                built.unlink()
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("mypyc is not available: installing the matching core as pure Python", file=sys.stderr)
        return []
    try:
        extensions = mypycify(["--config-file=", *CORE], opt_level="3", debug_level="0")
    except SystemExit as failed:  # mypy found type errors: `make lint` reports them; the install goes on
        print(f"mypyc could not compile the matching core ({failed}): installing it as pure Python", file=sys.stderr)
        return []
    for ext in extensions:
        ext.optional = True  # no compiler: setuptools warns and skips it, and the pure module is used
    return extensions


setup(ext_modules=core_extensions())
