"""The consumer-group runtime: handlers get typed events exactly once in effect."""

from tidings.consumer.context import (
    BatchContext,
    Delivered,
    EventMeta,
    HandlerContext,
    NonRetryableError,
)

__all__ = ["BatchContext", "Delivered", "EventMeta", "HandlerContext", "NonRetryableError"]
