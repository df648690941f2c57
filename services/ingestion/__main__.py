"""ingestion service entry point: ``spot run ingestion``."""

from shared import config, tracing
from shared.lifecycle import serve_http, setup_logging

from .app import SERVICE, create_app


def main() -> None:
    settings = config.load()
    setup_logging(SERVICE, settings.log_level)
    tracing.setup(SERVICE, settings)
    serve_http(create_app(settings), settings, SERVICE, loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
