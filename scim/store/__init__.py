"""Persistence. :mod:`scim.store.tables` is the only module in the project that imports ``azure.data.tables``."""
