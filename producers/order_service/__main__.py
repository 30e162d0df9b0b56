"""``python -m producers.order_service``: serve the order API with uvicorn."""

from __future__ import annotations

import uvicorn

from producers.order_service.app import create_app
from producers.order_service.settings import OrderServiceSettings


def main() -> None:
    settings = OrderServiceSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="warning")


if __name__ == "__main__":
    main()
