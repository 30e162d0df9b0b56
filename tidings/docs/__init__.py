"""The event catalogue, written from topology.yaml and the Avro schemas.

:func:`~tidings.docs.catalogue.build_catalogue` gathers what the docs show: events,
their schema versions and fields, who publishes and who consumes them, every topic
with its role (declared, retry tier, DLQ, replay). :mod:`.asyncapi` writes it as an
AsyncAPI 3.0 document, :mod:`.html` as a static, offline site.
"""

from tidings.docs.asyncapi import asyncapi_document
from tidings.docs.catalogue import Catalogue, build_catalogue
from tidings.docs.html import write_site

__all__ = ["Catalogue", "asyncapi_document", "build_catalogue", "write_site"]
