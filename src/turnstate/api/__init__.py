"""The HTTP API (FastAPI): sessions and turns, an OpenAI-compatible endpoint, health and metrics."""

from turnstate.api.app import create_app

__all__ = ["create_app"]
