"""The training image, built from the repository and run the way SageMaker runs it.

`scripts/build-image.sh train cpu` builds it once per session (cached layers make a rebuild
after a source change take seconds). SageMaker training runs `docker run IMAGE train`, SDK v3
local mode the image with no argument, a Processing job `docker run IMAGE preprocess`.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import docker
import numpy as np
import pytest

from earthseg.preprocess.shards import read_channel
from earthseg.synthetic.export import write_sample_export
from tests.docker.conftest import BASE_IMAGE_TAG, REPO, TrainedJob, run_container

pytestmark = pytest.mark.docker

SPLITS = ("train", "validation", "test")

# The host's CA bundle: on this project's machines it holds the TLS-intercepting proxy's CA,
# which the build may use (as a BuildKit secret) but no layer may keep. Local CAs come from
# HOST_LOCAL_CAS (update-ca-certificates); the bundle's other certificates are Debian's.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_LOCAL_CAS = Path("/usr/local/share/ca-certificates")
CA_BUNDLE_IN_IMAGE = "/etc/ssl/certs/ca-certificates.crt"
INTERCEPTION_CA_SUBJECTS = (b"sandboxing-egress-ca", b"Custom Artifactory CA")
PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.DOTALL
)


def test_preprocess_runs_as_a_processing_job(
    docker_client: docker.DockerClient, train_image: str, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    stems = write_sample_export(export, scenes=4, size=256, seed=0)
    output = tmp_path / "output"
    output.mkdir()

    # No paths: the command defaults to the Processing job's mounts.
    status, stdout, stderr = run_container(
        docker_client,
        train_image,
        ["preprocess"],
        {
            export / "images": "/opt/ml/processing/input/images",
            export / "labels": "/opt/ml/processing/input/labels",
            output: "/opt/ml/processing/output",
        },
    )

    assert status == 0, stdout + stderr
    manifest = json.loads((output / "manifest.json").read_text())
    assert sorted(entry["scene"] for entry in manifest["inputs"]) == sorted(stems)
    assert manifest["totals"]["scenes"] == 4
    for name in SPLITS:
        index = json.loads((output / name / "shards.json").read_text())
        assert index["tiles"] == manifest["splits"][name]["tiles"] > 0
        shards = list(read_channel(output / name))
        assert sum(len(images) for images, _ in shards) == index["tiles"]
        assert all(images.shape[1:] == (256, 256, 3) for images, _ in shards)
        assert all(np.isin(masks, (0, 1)).all() for _, masks in shards)


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        (["train", "--help"], "usage: earthseg train"),
        (["preprocess", "--help"], "usage: earthseg preprocess"),
    ],
)
def test_entrypoint_passes_arguments_to_the_subcommand(
    docker_client: docker.DockerClient, train_image: str, command: list[str], usage: str
) -> None:
    status, stdout, stderr = run_container(docker_client, train_image, command)
    assert status == 0, stdout + stderr
    assert stdout.startswith(usage), stdout + stderr


def test_entrypoint_runs_any_other_command_as_given(
    docker_client: docker.DockerClient, train_image: str
) -> None:
    script = "import sys, earthseg; print('args', sys.argv[1:], 'earthseg', earthseg.__version__)"
    status, stdout, stderr = run_container(
        docker_client, train_image, ["python", "-c", script, "a b", "c"]
    )
    assert status == 0, stdout + stderr
    assert stdout.strip() == f"args ['a b', 'c'] earthseg {_project_version()}"


def test_no_argument_runs_training_which_reports_its_failure(
    docker_client: docker.DockerClient, train_image: str, tmp_path: Path
) -> None:
    # SDK v3 local mode runs the image with no argument: that must be `earthseg train`,
    # which, given an /opt/ml without channels, must fail the SageMaker way.
    opt_ml = tmp_path / "opt_ml"
    opt_ml.mkdir()
    status, stdout, stderr = run_container(docker_client, train_image, None, {opt_ml: "/opt/ml"})
    failure = opt_ml / "output" / "failure"
    assert status != 0, stdout + stderr
    assert failure.is_file(), f"no /opt/ml/output/failure after a failed run:\n{stdout}{stderr}"
    assert failure.read_text().strip(), "/opt/ml/output/failure is empty"


def test_image_config_and_leanness(docker_client: docker.DockerClient, train_image: str) -> None:
    config = docker_client.images.get(train_image).attrs["Config"]
    env = dict(entry.split("=", 1) for entry in config["Env"])
    assert config["Entrypoint"] == ["/usr/local/bin/earthseg-entrypoint"]
    assert not config["Cmd"], "a CMD inherited from the base image would replace `train`"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONUNBUFFERED"] == env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert config["Labels"]["org.opencontainers.image.version"] == _project_version()
    assert config["Labels"]["earthseg.flavor"] == "cpu"

    probe = (
        "find / -xdev \\( -name __pycache__ -o -path /root/.cache \\) -print | head -n 5; "
        "for tool in gcc cc make; do command -v $tool; done; "
        "python -c 'import tensorflow, sagemaker_training, rasterio, pyogrio; "
        "print(tensorflow.__version__)'"
    )
    status, stdout, stderr = run_container(docker_client, train_image, ["sh", "-c", probe])
    assert status == 0, stdout + stderr
    # Anything printed before the version is bytecode, a pip cache or a build tool.
    assert stdout.strip().splitlines() == ["2.21.0"], stdout + stderr


def test_no_ca_certificate_from_the_build_host_in_any_layer(
    docker_client: docker.DockerClient, train_image: str
) -> None:
    image = docker_client.images.get(train_image)
    env = image.attrs["Config"]["Env"]
    assert not [entry for entry in env if "/run/secrets" in entry or "CERT" in entry.split("=")[0]]
    assert not [
        step for step in image.history() if b"BEGIN CERTIFICATE" in step["CreatedBy"].encode()
    ]

    # The image's bundle is the base image's own, from Debian's ca-certificates.
    base_bundle = _read_file(docker_client, BASE_IMAGE_TAG, CA_BUNDLE_IN_IMAGE)
    image_bundle = _read_file(docker_client, train_image, CA_BUNDLE_IN_IMAGE)
    assert image_bundle == base_bundle
    for der in _certificates(image_bundle):
        assert not [subject for subject in INTERCEPTION_CA_SUBJECTS if subject in der]

    # No certificate the host added (its local CAs and the interception CAs in its bundle),
    # in PEM or DER form, in any file of any layer; nothing left under the secrets' mount.
    host_added = _host_added_certificates()
    needles = [
        *INTERCEPTION_CA_SUBJECTS,
        *(fragment for der in host_added for fragment in _fragments(der)),
    ]
    found = [
        f"{layer}:{path}"
        for layer, path, content in _layer_files(image.save(named=False))
        if path.startswith("run/secrets/") or any(needle in content for needle in needles)
    ]
    assert not found, f"host CA material in the image: {found}"


def _read_file(client: docker.DockerClient, image: str, path: str) -> bytes:
    """A regular file of an image, read from a created (never started) container."""
    container = client.containers.create(image, network_disabled=True)
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.next()
            assert member is not None and member.isfile(), f"{path} in {image} is not a file"
            return archive.extractfile(member).read()  # type: ignore[union-attr]
    finally:
        container.remove(force=True)


def _certificates(bundle: bytes) -> set[bytes]:
    """The DER form of each PEM certificate in a bundle."""
    return {
        base64.b64decode(b"".join(m.group(1).split())) for m in PEM_CERTIFICATE.finditer(bundle)
    }


def _host_added_certificates() -> set[bytes]:
    """The host's local CAs, and those of its bundle that name an interception CA."""
    local = {
        der
        for path in sorted(HOST_LOCAL_CAS.rglob("*.crt"))
        for der in _certificates(path.read_bytes())
    }
    bundle = _certificates(HOST_CA_BUNDLE.read_bytes()) if HOST_CA_BUNDLE.is_file() else set()
    named = {der for der in bundle if any(name in der for name in INTERCEPTION_CA_SUBJECTS)}
    return local | named


def _fragments(der: bytes) -> list[bytes]:
    """Pieces of a certificate found in any file that holds it, as DER or as PEM lines."""
    pem = base64.b64encode(der)
    middle_line = len(pem) // 64 // 2 * 64
    return [der[len(der) // 2 : len(der) // 2 + 48], pem[middle_line : middle_line + 64]]


def _layer_files(chunks: Iterable[bytes]) -> Iterator[tuple[str, str, bytes]]:
    """(layer, path, content) of every regular file in a `docker save` stream, read once."""
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as saved:
        for entry in saved:
            # Docker's own layout has <id>/layer.tar; the OCI layout (Docker 25+) keeps
            # layers among other blobs, so those that are no tar archive are skipped.
            if not entry.isfile() or not (
                entry.name.endswith("layer.tar") or entry.name.startswith("blobs/")
            ):
                continue
            try:
                # Opened here to tell a layer from another blob; closed by the `with` below.
                layer = tarfile.open(fileobj=saved.extractfile(entry), mode="r|*")  # noqa: SIM115
            except tarfile.ReadError:
                continue
            with layer:
                for member in layer:
                    if member.isfile():
                        content = layer.extractfile(member).read()  # type: ignore[union-attr]
                        yield entry.name, member.name, content


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (the Docker SDK's `save()`)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._chunk:
            try:
                self._chunk = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._chunk))
        buffer[:size] = self._chunk[:size]
        self._chunk = self._chunk[size:]
        return size


def _project_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_train_on_mounted_opt_ml_writes_the_model_artifact(trained_job: TrainedJob) -> None:
    opt_ml, status, stdout, stderr = trained_job
    assert status == 0, stdout + stderr
    assert "epoch=2 loss=" in stdout
    card = json.loads((opt_ml / "model" / "earthseg.json").read_text())
    assert card["input"]["tile_size"] == [64, 64]
    assert (opt_ml / "model" / "model.onnx").is_file()
    assert (opt_ml / "model" / "1" / "saved_model.pb").is_file()
    assert (opt_ml / "output" / "data" / "metrics.json").is_file()
    assert (opt_ml / "checkpoints" / "training_metadata.json").is_file()
