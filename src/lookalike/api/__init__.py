"""HTTP API and web page over the lookalike library: `create_app(settings)`.

Routes only parse requests and call the library; every rule lives in `lookalike.catalog`,
`lookalike.users` and `lookalike.recommend`.
"""

from lookalike.api.app import create_app

__all__ = ["create_app"]
