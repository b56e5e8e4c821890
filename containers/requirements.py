"""Print the requirements of the package's extras, read from pyproject.toml.

Each image's dependency layer is built from this list alone, so it is rebuilt only when
the requirements change, not when the rest of pyproject.toml or src/ does.

    python3 requirements.py PYPROJECT EXTRA... [--only NAME... | --except NAME...]

--only keeps just the named packages, --except drops them (names as in pyproject.toml):
an image installs some packages without their dependencies in a second step.
"""

import re
import sys
import tomllib


def main(argv: list[str]) -> None:
    path, *rest = argv
    mode = next((flag for flag in ("--only", "--except") if flag in rest), None)
    extras = rest[: rest.index(mode)] if mode else rest
    names = {name.lower() for name in rest[rest.index(mode) + 1 :]} if mode else set()
    with open(path, "rb") as file:
        project = tomllib.load(file)["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    for requirement in requirements:
        name = re.split(r"[\s\[=<>!~;]", requirement, maxsplit=1)[0].lower()
        if mode is None or (name in names) == (mode == "--only"):
            print(requirement)


if __name__ == "__main__":
    main(sys.argv[1:])
