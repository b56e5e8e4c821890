"""The debootstrapped base image: Dockerfiles build FROM it and its Python runs in containers."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from contextlib import suppress
from pathlib import Path
from textwrap import dedent

import docker
import pytest
from docker.errors import BuildError, NotFound
from docker.models.containers import Container

pytestmark = pytest.mark.docker

# Set on every layer of the throwaway image, so a failed build's layers can be found and removed.
PROBE_LABEL = "earthseg.test-probe"

# What the throwaway image's container prints: the copied file, what the build's RUN wrote,
# the interpreter and /etc/os-release, all read from inside the container.
REPORT = (
    "import json, pathlib, platform; print(json.dumps({"
    "'payload': pathlib.Path('/opt/probe/payload.txt').read_text(), "
    "'built': pathlib.Path('/opt/probe/built.txt').read_text(), "
    "'python': platform.python_version(), "
    "'os': platform.freedesktop_os_release()}))"
)


def test_dockerfile_builds_from_base_and_runs_python(
    docker_client: docker.DockerClient, base_image: str, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex
    (tmp_path / "payload.txt").write_text(f"copied {token}")
    (tmp_path / "Dockerfile").write_text(
        dedent(
            f"""\
            ARG BASE_IMAGE
            FROM ${{BASE_IMAGE}}
            LABEL {PROBE_LABEL}={token}
            COPY payload.txt /opt/probe/payload.txt
            RUN python3 -c "import pathlib, sys; \\
                p = pathlib.Path('/opt/probe/payload.txt').read_text(); \\
                pathlib.Path('/opt/probe/built.txt').write_text(p.upper() + ' on ' + sys.version)"
            CMD ["python3", "-c", {json.dumps(REPORT)}]
            """
        )
    )
    tag = f"earthseg-probe:{token[:12]}"
    container = None
    try:
        try:
            docker_client.images.build(
                path=str(tmp_path),
                tag=tag,
                buildargs={"BASE_IMAGE": base_image},
                network_mode="host",
                rm=True,
                forcerm=True,
            )
        except BuildError as exc:
            log = "".join(
                str(entry.get("stream") or entry.get("error") or "") for entry in exc.build_log
            )
            pytest.fail(f"building FROM {base_image} failed: {exc}\n{log}", pytrace=False)
        container = docker_client.containers.run(tag, network_mode="host", detach=True)
        status = container.wait(timeout=120)
        output = container.logs().decode()
        assert status["StatusCode"] == 0, output
    finally:
        if container is not None:
            with suppress(NotFound):
                container.remove(force=True)
        _remove_labelled_images(docker_client, f"{PROBE_LABEL}={token}")

    report = json.loads(output)
    assert report["payload"] == f"copied {token}"
    assert report["built"].startswith(f"COPIED {token.upper()} on 3.11.")
    assert report["python"].startswith("3.11.")
    assert report["os"]["ID"] == "debian"
    assert report["os"]["VERSION_CODENAME"] == "bookworm"


def test_base_image_config_and_no_build_host_traces(
    docker_client: docker.DockerClient, base_image: str
) -> None:
    config = docker_client.images.get(base_image).attrs["Config"]
    assert "LANG=C.UTF-8" in config["Env"]
    assert "PYTHONUNBUFFERED=1" in config["Env"]
    assert config["Cmd"] == ["/bin/bash"]

    # A created, never started container shows the image's own files: Docker bind-mounts
    # resolv.conf and hostname only into a running one.
    container = docker_client.containers.create(base_image, network_disabled=True)
    try:
        sources = _files(container, "/etc/apt/sources.list.d/debian.sources")
        host_files = _files(container, "/etc/resolv.conf") | _files(container, "/etc/hostname")
        local_cas = _files(container, "/usr/local/share/ca-certificates")
        apt_conf = _files(container, "/etc/apt/apt.conf.d")
    finally:
        container.remove(force=True)
    uris = [
        line.split()[1]
        for line in sources["debian.sources"].decode().splitlines()
        if line.startswith("URIs:")
    ]
    assert uris == ["http://deb.debian.org/debian", "http://deb.debian.org/debian-security"]
    assert host_files == {"resolv.conf": b"", "hostname": b""}
    assert local_cas == {}, "a CA certificate from the build host is in the image"
    assert not [name for name, text in apt_conf.items() if b"proxy" in text.lower()]


def _files(container: Container, path: str) -> dict[str, bytes]:
    """The regular files at `path` (a file or a folder) in the container, by archive name."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def _remove_labelled_images(client: docker.DockerClient, label: str) -> None:
    """Remove the images carrying `label`, intermediate layers included, newest first."""
    images = client.images.list(all=True, filters={"label": label})
    for image in sorted(images, key=lambda image: image.attrs["Created"], reverse=True):
        with suppress(NotFound):
            client.images.remove(image.id, force=True)
