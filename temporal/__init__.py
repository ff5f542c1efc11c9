"""Temporal plumbing every process shares: the connection and data converter, the web tier's
client bridge, the transactional outbox and its relay, retry policies and search attributes.

Named `temporal` (the SDK is `temporalio`, so nothing is shadowed); it holds no process logic.
"""
