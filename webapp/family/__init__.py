# The blueprint lives with its routes, so the routes never import their own package.
from .routes import bp

__all__ = ["bp"]
