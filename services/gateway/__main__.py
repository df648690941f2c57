"""gateway service entry point: ``spot run gateway``."""

from shared import config, tracing
from shared.lifecycle import serve_http, setup_logging

from .app import SERVICE, create_app
from .fastpath import OrderFastPath


def main() -> None:
    settings = config.load()
    setup_logging(SERVICE, settings.log_level)
    tracing.setup(SERVICE, settings)
    serve_http(
        OrderFastPath(create_app(settings)),  # new orders and cancels without FastAPI's layers; all else through them
        settings,
        SERVICE,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=65536,
        # no permessage-deflate: compressing every small JSON event was 7% of the gateway's CPU with user
        # streams open (py-spy, bench fleet --profile-phase paced); a client that offers it gets plain frames
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    main()
