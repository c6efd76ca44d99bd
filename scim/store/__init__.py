"""Persistence. Only this package imports ``azure.data.tables``: :mod:`scim.store.tables` for the service, and
:mod:`scim.store.maintenance` for the raw rows ``python -m scim check`` reads and repairs."""
