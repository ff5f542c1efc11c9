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


async def connect(settings: Settings, runtime=None) -> Client:
    """`runtime` carries telemetry (the worker's Prometheus exporter); None is the SDK default."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
    )


async def register_search_attributes(client: Client) -> None:
    """Adds Acceso's search attributes to a server that lacks them (the time-skipping server)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    from temporal.search_attributes import ALL

    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in ALL
            },
        )
    )
