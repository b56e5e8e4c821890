"""Request errors: an HTTP status and a message a person can act on.

They extend the sagemaker-inference toolkit's error, which carries the status the
response must have; anything else raised while serving is our bug (500).
"""

from __future__ import annotations

from http import HTTPStatus

from sagemaker_inference.errors import GenericInferenceToolkitError


class RequestError(GenericInferenceToolkitError):
    """A request the server cannot answer as asked; `message` names the input and the fix."""

    def __init__(self, status: HTTPStatus, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(int(status), f"{problem}. Fix: {fix}", status.phrase)


def bad_request(problem: str, fix: str) -> RequestError:
    """400: the body or an option is malformed, or does not fit the model."""
    return RequestError(HTTPStatus.BAD_REQUEST, problem, fix)


def not_acceptable(problem: str, fix: str) -> RequestError:
    """406: the answer cannot be given in the media type the Accept header asks for."""
    return RequestError(HTTPStatus.NOT_ACCEPTABLE, problem, fix)


def too_large(problem: str, fix: str) -> RequestError:
    """413: the body, or the image it decodes to, is over the server's limit."""
    return RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, problem, fix)


def unsupported_media_type(problem: str, fix: str) -> RequestError:
    """415: the Content-Type is not one the server decodes."""
    return RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, problem, fix)


def timed_out(problem: str, fix: str) -> RequestError:
    """504: the prediction ran past SAGEMAKER_MODEL_SERVER_TIMEOUT and was abandoned."""
    return RequestError(HTTPStatus.GATEWAY_TIMEOUT, problem, fix)
