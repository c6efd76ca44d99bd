"""The admin side: command-line tools that manage an installation or talk to Microsoft Graph.

Only ``scim/__main__.py`` imports this package. ``function_app.py`` and the handler layer never do, so none of it
(msal, requests, Key Vault) is loaded on a cold start of the endpoint."""
