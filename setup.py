"""Builds the Cython extensions in ext/ into the ember package.

Every extension has a pure-Python twin in src/ember/, so a failed compile is
reported loudly but still leaves an installable package that works (slower).
Set EMBER_REQUIRE_CYTHON=1 to make a failed compile fail the install instead.
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXTENSIONS = [
    Extension("ember._capture", ["ext/_capture.pyx"], include_dirs=["ext"],
              depends=["ext/ember_cpython.h"]),
    Extension("ember._folded", ["ext/_folded.pyx"]),
    Extension("ember._flame", ["ext/_flame.pyx"]),
    Extension("ember._wake", ["ext/_wake.pyx"], include_dirs=["ext"],
              depends=["ext/ember_cpython.h", "ext/ember_threads.h"]),
]


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # the pure-Python twins take over
            if os.environ.get("EMBER_REQUIRE_CYTHON") == "1":
                raise
            print(f"WARNING: ember's Cython extensions failed to build ({exc}); "
                  "installing the pure-Python implementation only")


def cythonized() -> list[Extension]:
    from Cython.Build import cythonize

    return cythonize(
        EXTENSIONS,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )


setup(ext_modules=cythonized(), cmdclass={"build_ext": OptionalBuildExt})
