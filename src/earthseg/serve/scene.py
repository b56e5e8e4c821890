"""A whole scene predicted from a file: in-process with a model folder (or model.tar.gz),
or through a running model server, with the options `earthseg predict` takes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from earthseg.contracts.serving import DEFAULT_MAX_PAYLOAD_MB
from earthseg.errors import InputError
from earthseg.validation import Number, Options, invalid

if TYPE_CHECKING:
    from rasterio.crs import CRS

    from earthseg.serve.predictor import Prediction


class RequestOptions(Options):
    """How a scene is asked of a model."""

    threshold: Number | None = Field(
        None, ge=0, le=1, description="decision threshold (default the model card's)"
    )
    max_payload_mb: Number = Field(
        DEFAULT_MAX_PAYLOAD_MB,
        gt=0,
        description="largest request the server takes; bigger scenes go in chunks",
    )


class SceneOptions(RequestOptions):
    """`earthseg predict` and `invoke`: the request, and the CRS of the polygons."""

    crs: str | None = Field(
        None, description="CRS of the polygons (default the scene's), e.g. EPSG:4326"
    )

    @field_validator("crs")
    @classmethod
    def _known(cls, crs: str | None) -> str | None:
        from rasterio.crs import CRS
        from rasterio.errors import CRSError

        if crs is not None:
            try:
                CRS.from_user_input(crs)
            except CRSError as error:
                raise invalid(f"{crs!r} is not a CRS ({error})", "use e.g. EPSG:4326") from None
        return crs

    def target_crs(self) -> CRS | None:
        """The polygons' CRS, None for the scene's own."""
        from rasterio.crs import CRS

        return None if self.crs is None else CRS.from_user_input(self.crs)


def predict_file(
    image: Path, options: RequestOptions, model: Path | None = None, url: str | None = None
) -> Prediction:
    """Predict the scene GeoTIFF `image` with the model folder or model.tar.gz `model`
    in-process, or through the model server at `url` in chunks under the payload limit.
    What the server would refuse is refused here as an InputError naming the scene."""
    from earthseg.serve.errors import RequestError

    try:
        if url is not None:
            from earthseg.serve.client import predict_remote

            return predict_remote(url, image, options.threshold, options.max_payload_mb)
        if model is None:
            raise ValueError("predict_file needs a model or a url")
        from earthseg.serve.artifact import model_folder
        from earthseg.serve.predictor import load_predictor

        with model_folder(model) as folder:
            return load_predictor(folder).predict_file(image, options.threshold)
    except RequestError as error:  # the checks the server makes, made here in-process
        raise InputError(image, error.problem, error.fix) from None
