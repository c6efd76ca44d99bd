"""SCIM 2.0 service provider for Microsoft Entra ID provisioning, on Azure Table Storage.

The package is the handler layer: it knows SCIM, not HTTP or Azure Functions. ``function_app.py`` adapts
HTTP to :class:`scim.messages.ScimRequest` and back; :mod:`scim.store` is the only place that knows Table Storage.
"""
