"""Only the package list lives here; everything else is in pyproject.toml.

Every subpackage of roadmap_lib (any folder with an __init__.py) is found, and kernels/ is added
as roadmap_lib.kernels (pyproject.toml's package-dir maps it). A TOML-only configuration cannot
combine the two: `packages` there is either a fixed list or a `find` that cannot rename kernels/.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["roadmap_lib", "roadmap_lib.*"]), "roadmap_lib.kernels"])
