"""The training channels: their names, and how each describes itself.

`earthseg preprocess` writes one folder per split, and SageMaker mounts each as the
channel of that name at /opt/ml/input/data/<name>: train and validation are required,
test is optional. A channel folder holds packed shards (earthseg.preprocess.shards) and
`shards.json`, its index, so that a channel mounted alone still says what it holds and
which dataset manifest it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final, Literal

from earthseg.contracts.documents import Record, read_document, write_document
from earthseg.contracts.imagery import ImagerySource
from earthseg.errors import InputError

CHANNELS = ("train", "validation", "test")  # also the dataset's split names, in this order
REQUIRED = ("train", "validation")
TEST = "test"
SHARDS_INDEX = "shards.json"
SHARDS_FORMAT: Final = "earthseg.shards/1"
MASK_ENCODING: Final = "packbits"  # numpy.packbits(mask, axis=-1), big bit order
CHANNEL_FIX = (
    "point the channel at a train/, validation/ or test/ folder that `earthseg preprocess` wrote"
)
REPREPROCESS = "re-run `earthseg preprocess` to rewrite the channel"


class Shard(Record):
    """One pair of shard files and how many tiles they hold."""

    images: str
    masks: str
    tiles: int


class ChannelIndex(Record):
    """`shards.json`: what a channel folder holds."""

    format: Literal["earthseg.shards/1"] = SHARDS_FORMAT
    tile_shape: tuple[int, int, int]  # rows, cols, bands
    dtype: str  # the scenes' pixel type
    mask_encoding: Literal["packbits"] = MASK_ENCODING
    tiles: int
    positive_fraction: float
    shards: list[Shard]
    manifest_sha256: str | None = None  # the dataset manifest's digest, once written
    imagery: tuple[ImagerySource, ...] = ()  # where fetched scenes came from, for the model card


def write_channel_index(folder: Path, index: ChannelIndex) -> Path:
    """Write `shards.json` into a channel folder."""
    return write_document(Path(folder) / SHARDS_INDEX, index, indent=2)


def read_channel_index(folder: Path) -> ChannelIndex:
    """The index of a channel folder, or an error naming the folder or file and the fix."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "the channel folder does not exist", CHANNEL_FIX)
    missing = "the folder is not a channel from `earthseg preprocess`"
    return read_document(
        folder / SHARDS_INDEX, ChannelIndex, f"{SHARDS_FORMAT} index", missing, REPREPROCESS
    )


def channel_folders(dataset: Path) -> dict[str, Path]:
    """The channel folders a dataset folder holds, by name, in channel order."""
    return {name: Path(dataset) / name for name in CHANNELS if (Path(dataset) / name).is_dir()}


def check_channel_names(names: Iterable[str], source: str) -> None:
    """Train and validation present, nothing besides the known channels."""
    names = set(names)
    missing = [name for name in REQUIRED if name not in names]
    if missing or names - set(CHANNELS):
        raise InputError(
            source,
            f"are {sorted(names)}",
            f"give {' and '.join(REQUIRED)}, and optionally {TEST}",
        )
