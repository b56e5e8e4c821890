"""What gunicorn serves (`wsgi:app`): the Flask app of predictor.py, as in AWS's example."""

from predictor import app

__all__ = ["app"]
