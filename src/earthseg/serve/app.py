"""SageMaker's inference HTTP contract as a Flask app: /ping, /invocations, /execution-parameters.

A request's answer is decided in the cheapest order: Content-Type (415), Accept (406),
custom attributes (400), body size (413), body (400), prediction, encoding. Every error
is JSON, `{"error": "<what and the fix>"}`, and none ends the worker: the app catches
everything, so a bad request costs one response.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from flask import Flask, Request, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from earthseg.contracts.serving import MAX_PAYLOAD_ENV
from earthseg.serve.attributes import HEADER, parse_attributes
from earthseg.serve.decoders import DECODERS, PNG, TIFF, decode, media_type
from earthseg.serve.encoders import ANSWER_FOR_REQUEST, ENCODERS, GEOJSON, encode
from earthseg.serve.errors import RequestError, not_acceptable, unsupported_media_type
from earthseg.serve.predictor import Predictor, past_deadline
from earthseg.serve.scene_answer import answer_scene
from earthseg.serve.settings import ServerSettings
from earthseg.serve.windows import DeadlineExceeded

log = logging.getLogger(__name__)


def create_app(predictor: Predictor, settings: ServerSettings) -> Flask:
    """The WSGI app of one worker, serving `predictor`'s model."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes

    @app.get("/ping")
    def ping() -> Response:
        # A worker takes traffic only once its model is loaded (see server.py): answering
        # at all means healthy, and nothing here waits for a model run.
        return Response(status=200)

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        """What SageMaker batch transform should send: whole files, one per request."""
        return jsonify(
            MaxConcurrentTransforms=settings.workers,
            BatchStrategy="SINGLE_RECORD",
            MaxPayloadInMB=max(1, int(settings.max_payload_mb)),
        )

    @app.post("/invocations")
    def invocations() -> Response:
        kind = media_type(request.content_type)
        if kind not in DECODERS:
            raise unsupported_media_type(
                f"Content-Type {request.content_type or '(none)'!r} is not one this server reads",
                f"send one of {', '.join(DECODERS)}",
            )
        accept = negotiate(request, kind, settings.default_accept)
        options = parse_attributes(request.headers.get(HEADER))
        if options.output is None and accept in (TIFF, PNG):
            options = replace(options, output=settings.default_output)
        if kind == TIFF and accept in (TIFF, GEOJSON):  # a scene, streamed by rows
            deadline = time.monotonic() + settings.timeout_s
            try:
                body, threshold = answer_scene(
                    request.get_data(cache=False), accept, options, predictor, deadline
                )
            except DeadlineExceeded as stopped:
                raise past_deadline(settings.timeout_s, stopped) from None
        else:
            payload = decode(request.get_data(cache=False), kind, predictor.card)
            prediction = predictor.predict(payload, options.threshold, settings.timeout_s)
            body, threshold = encode(prediction, accept, options), prediction.threshold
        # The threshold applied, for clients that get probabilities and make masks themselves.
        # SageMaker hands this header back to the caller of InvokeEndpoint.
        attributes = {HEADER: f"threshold={threshold!r}"}
        return Response(body, content_type=accept, headers=attributes)

    @app.errorhandler(RequestError)
    def request_error(error: RequestError) -> tuple[Response, int]:
        log.info("%s %s: %s", request.path, error.status_code, error.message)
        return jsonify(error=error.message), error.status_code

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        size = request.content_length
        sent = f"{size / 1024 / 1024:.1f} MB" if size else "over the limit"
        message = (
            f"the body ({sent}) is over this server's {settings.max_payload_mb:g} MB limit "
            f"({MAX_PAYLOAD_ENV}). Fix: split the scene into parts (`earthseg predict --url` "
            "does this for you)"
        )
        return jsonify(error=message), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        return jsonify(error=f"{error.name}: {error.description}"), status

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> tuple[Response, int]:
        log.exception("internal error while answering %s", request.path)
        message = f"internal error, please report it: {type(error).__name__}: {error}"
        return jsonify(error=message), 500

    return app


def negotiate(incoming: Request, kind: str, default_accept: str | None) -> str:
    """The response type: the best the Accept header allows, else the request's own kind
    (or SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT when set) for a missing or */* Accept."""
    preferred = default_accept or ANSWER_FOR_REQUEST[kind]
    offered = [preferred, *(media for media in ENCODERS if media != preferred)]
    if not incoming.accept_mimetypes:
        return preferred
    chosen = incoming.accept_mimetypes.best_match(offered)
    if chosen is None:
        raise not_acceptable(
            f"Accept {incoming.headers.get('Accept')!r} allows no type this server answers in",
            f"accept one of {', '.join(ENCODERS)}",
        )
    return str(chosen)
