"""Custom search attributes: plaintext and shown to every operator, so never PII."""

from temporalio.common import SearchAttributeKey

PORTAL = SearchAttributeKey.for_keyword("AccesoPortal")
STEP = SearchAttributeKey.for_keyword("AccesoStep")
REFERENCE = SearchAttributeKey.for_keyword("AccesoReference")
OVERDUE = SearchAttributeKey.for_bool("AccesoOverdue")

ALL = (PORTAL, STEP, REFERENCE, OVERDUE)


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags that register every key above."""
    kinds = {"KEYWORD": "Keyword", "BOOL": "Bool"}
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return flags
