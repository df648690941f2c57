"""gateway service entry point: ``spot run gateway``."""

import uvicorn

from shared import tracing
from shared.config import Settings
from shared.lifecycle import setup_logging

from .app import SERVICE, create_app
from .fastpath import OrderFastPath


def main() -> None:
    settings = Settings()
    setup_logging(SERVICE, settings.log_level)
    tracing.setup(SERVICE, settings)
    uvicorn.run(
        OrderFastPath(create_app(settings)),  # new orders without FastAPI's layers; all else through them
        host=settings.host,
        port=settings.port_for(SERVICE),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=65536,
    )


if __name__ == "__main__":
    main()
