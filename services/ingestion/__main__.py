"""ingestion service entry point: ``spot run ingestion``."""

import uvicorn

from shared import config, tracing
from shared.lifecycle import setup_logging

from .app import SERVICE, create_app


def main() -> None:
    settings = config.load()
    setup_logging(SERVICE, settings.log_level)
    tracing.setup(SERVICE, settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port_for(SERVICE),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
