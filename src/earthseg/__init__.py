"""earthseg: Earth-science segmentation on Amazon SageMaker with custom containers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("earthseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
