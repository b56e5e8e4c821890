"""Where `earthseg detect` gets a scene's probabilities: the model in this process, a
running model server, a SageMaker endpoint (real-time in chunks, or asynchronous with the
whole scene through S3), or a Batch Transform job run over every scene first.

Each gives, per scene, a `ScenePrediction` (earthseg.serve.scene) streamed by rows, and
an `identity`: what a rerun compares to know a scene's results came from this model.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from earthseg.detect.options import DetectOptions
from earthseg.detect.scenes import SceneInput
from earthseg.serve.scene import ScenePrediction

if TYPE_CHECKING:
    from earthseg.aws.security import Security


class SceneModel(Protocol):
    identity: str

    def prepare(self, scenes: Sequence[SceneInput]) -> None:
        """Work done for every scene at once before the first is opened (Batch Transform)."""

    def open(self, scene: SceneInput) -> ScenePrediction: ...


class InProcessModel:
    """The ONNX model of a model folder, run here."""

    def __init__(self, folder: Path, options: DetectOptions) -> None:
        from earthseg.contracts.model_card import ONNX_FILE
        from earthseg.serve.predictor import load_predictor

        self.predictor = load_predictor(folder)
        digest = hashlib.sha256((folder / ONNX_FILE).read_bytes()).hexdigest()
        self.identity = f"onnx sha256:{digest}"
        self.threshold = options.threshold

    def prepare(self, scenes: Sequence[SceneInput]) -> None:
        return None

    def open(self, scene: SceneInput) -> ScenePrediction:
        from earthseg.serve.scene import LocalScene

        return LocalScene(self.predictor, scene.path, self.threshold)


class PredictorModel:
    """A model already deployed for a run: `predict(scene, threshold)` gives a scene's
    prediction (earthseg.pipeline.backends: in-process, a local container, an endpoint)."""

    def __init__(self, predict: Any, identity: str, threshold: float | None) -> None:
        self.predict, self.identity, self.threshold = predict, identity, threshold

    def prepare(self, scenes: Sequence[SceneInput]) -> None:
        return None

    def open(self, scene: SceneInput) -> ScenePrediction:
        prediction: ScenePrediction = self.predict(scene.path, self.threshold)
        return prediction


class RemoteModel:
    """A model server behind a transport (HTTP, a real-time endpoint), in chunks."""

    def __init__(self, transport: Any, identity: str, options: DetectOptions) -> None:
        self.transport, self.identity, self.options = transport, identity, options

    def prepare(self, scenes: Sequence[SceneInput]) -> None:
        return None

    def open(self, scene: SceneInput) -> ScenePrediction:
        from earthseg.serve.scene import RemoteScene

        return RemoteScene(
            self.transport, scene.path, self.options.threshold, self.options.max_payload_mb
        )


class AnswerModel:
    """A service that answers a whole scene with a probability GeoTIFF (an asynchronous
    endpoint per scene, or a Batch Transform job for all): the answer is saved under
    `answers` and read back by rows."""

    def __init__(self, identity: str, answers: Path, options: DetectOptions, fetch: Any) -> None:
        self.identity, self.answers, self.threshold = identity, answers, options.threshold
        self.fetch = fetch  # prepare(scenes, answers folder), then answer(scene, target)

    def prepare(self, scenes: Sequence[SceneInput]) -> None:
        self.answers.mkdir(parents=True, exist_ok=True)
        self.fetch.prepare(scenes, self.answers)

    def open(self, scene: SceneInput) -> ScenePrediction:
        from earthseg.serve.scene import ProbabilityScene

        answer = self.answers / f"{scene.path.stem}.tif"
        self.fetch.answer(scene, answer)
        return ProbabilityScene(answer, self.threshold)


@contextlib.contextmanager
def open_model(
    options: DetectOptions,
    *,
    model: Path | None = None,
    url: str | None = None,
    endpoint: str | None = None,
    session: Any = None,
    answers: Path | None = None,
    encryption: Mapping[str, str] | None = None,
) -> Iterator[SceneModel]:
    """The scene model for exactly one of `model` (a folder or model.tar.gz), `url`, or
    `endpoint` (real-time or asynchronous, asked of SageMaker; `encryption`: the S3
    server-side encryption of the scenes an asynchronous one is sent)."""
    if model is not None:
        from earthseg.serve.artifact import model_folder

        with model_folder(model) as folder:
            yield InProcessModel(folder, options)
        return
    if url is not None:
        from earthseg.serve.client import HttpTransport

        yield RemoteModel(HttpTransport(url), f"url {url}", options)
        return
    if endpoint is not None:
        from earthseg.aws.endpoints import is_async

        if is_async(session, endpoint):
            assert answers is not None
            yield AnswerModel(
                f"endpoint {endpoint}",
                answers,
                options,
                AsyncAnswers(session, endpoint, encryption),
            )
            return
        from earthseg.aws.invoke import EndpointTransport

        yield RemoteModel(EndpointTransport(session, endpoint), f"endpoint {endpoint}", options)
        return
    raise ValueError("open_model needs a model, a url or an endpoint")


class AsyncAnswers:
    """Each scene through an asynchronous endpoint: to S3, InvokeEndpointAsync, answer."""

    def __init__(
        self, session: Any, endpoint: str, encryption: Mapping[str, str] | None = None
    ) -> None:
        self.session, self.endpoint, self.encryption = session, endpoint, encryption

    def prepare(self, scenes: Sequence[SceneInput], answers: Path) -> None:
        return None  # each scene is asked for when it is opened

    def answer(self, scene: SceneInput, target: Path) -> None:
        from earthseg.aws.async_inference import invoke_async

        invoke_async(self.session, self.endpoint, scene.path, target, encryption=self.encryption)


class TransformAnswers:
    """Every scene through one Batch Transform job with the serve image (SageMaker, or the
    SDK's local mode with `local`), asking for probabilities; each answer saved as a
    probability GeoTIFF. A scene the job left without an answer fails with its reason."""

    def __init__(
        self,
        image: str,
        model: str,
        scenes: str,
        *,
        local: bool,
        session: Any = None,
        role: str | None = None,
        output: str | None = None,
        instance_type: str | None = None,
        ami_version: str | None = None,
        security: Security | None = None,
        say: Any = print,
    ) -> None:
        from earthseg.aws.security import NO_SECURITY
        from earthseg.aws.transform import TransformOptions
        from earthseg.validation import validate

        self.image, self.model, self.scenes, self.local = image, model, scenes, local
        self.session, self.role, self.output, self.say = session, role, output, say
        self.security = security or NO_SECURITY
        fields: dict[str, Any] = {"output": "probability"}
        if instance_type is not None:
            fields["instance_type"] = instance_type
        if ami_version is not None:
            fields["ami_version"] = ami_version
        self.options = validate(TransformOptions, fields, key=_flag)
        self.failure: str | None = None

    def prepare(self, scenes: Sequence[SceneInput], answers: Path) -> None:
        from earthseg.errors import InputError

        try:
            if self.local:
                self._local(scenes, answers)
            else:
                self._sagemaker(scenes, answers)
        except InputError as error:  # a refused scene fails the job; its answers are kept
            self.failure = f"{error.source}: {error.problem}"

    def answer(self, scene: SceneInput, target: Path) -> None:
        from earthseg.errors import InputError

        if not target.is_file():
            reason = self.failure or "the job wrote no answer for it"
            raise InputError(
                scene.path,
                f"has no answer from the transform job ({reason})",
                "correct what the reason names and run detect again",
            )

    def _local(self, scenes: Sequence[SceneInput], answers: Path) -> None:
        """The scenes to do, linked into one folder, through the local job."""
        import shutil
        import tempfile

        from earthseg.aws.transform import OUT_SUFFIX, transform_local

        with tempfile.TemporaryDirectory(dir=answers, prefix=".transform-") as work:
            inputs, outputs = Path(work) / "scenes", Path(work) / "answers"
            inputs.mkdir()
            for scene in scenes:
                (inputs / scene.path.name).symlink_to(scene.path.resolve())
            try:
                transform_local(
                    self.image,
                    self.model,
                    inputs,
                    outputs,
                    self.options,
                    security=self.security,
                    say=self.say,
                )
            finally:
                for scene in scenes:
                    answer = outputs / (scene.path.name + OUT_SUFFIX)
                    if answer.is_file():
                        shutil.move(answer, answers / f"{scene.key.scene}.tif")

    def _sagemaker(self, scenes: Sequence[SceneInput], answers: Path) -> None:
        """One job over the scenes' S3 prefix; the answers of the scenes to do downloaded."""
        from sagemaker.core.common_utils import name_from_base

        from earthseg.aws import s3
        from earthseg.aws.transform import OUT_SUFFIX, transform

        output = self.output or str(  # a folder of its own: no earlier job's answers in it
            s3.default_bucket(self.session).child("earthseg", "detect", name_from_base("answers"))
        )
        try:
            transform(
                self.session,
                self.image,
                self.model,
                self.scenes,
                output,
                self.options,
                self.role,
                security=self.security,
                say=self.say,
            )
        finally:
            wanted = {scene.path.name: scene for scene in scenes}
            destination = s3.parse_s3_uri(output, "--transform-output")
            client = self.session.client("s3")
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=destination.bucket, Prefix=destination.key_prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"].rsplit("/", 1)[-1].removesuffix(OUT_SUFFIX)
                    if item["Key"].endswith(OUT_SUFFIX) and name in wanted:
                        s3.download_file(
                            self.session,
                            f"s3://{destination.bucket}/{item['Key']}",
                            answers / f"{wanted[name].key.scene}.tif",
                        )


def _flag(location: tuple[int | str, ...]) -> str:
    """A transform option as `earthseg detect` spells it: --instance-type."""
    return "--" + "-".join(str(part).replace("_", "-") for part in location)
