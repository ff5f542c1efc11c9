"""How every process reaches Temporal: one place for the address, namespace and data converter."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from portal.codec import codec_for
from portal.settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """Encrypts payloads and failure messages (which may quote input); raises without a key."""
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=codec_for(settings),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )
