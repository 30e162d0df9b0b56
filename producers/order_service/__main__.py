"""``python -m producers.order_service``: serve the order API with uvicorn."""

from __future__ import annotations

import uvicorn

from producers.order_service.app import create_app
from producers.order_service.settings import OrderServiceSettings
from tidings import tracing


def main() -> None:
    settings = OrderServiceSettings()
    tracing.configure_from_environment("order-service")  # OTEL_* variables, if the SDK is here
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="warning")


if __name__ == "__main__":
    main()
