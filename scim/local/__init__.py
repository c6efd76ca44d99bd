"""Local development: a host that serves ``function_app.py`` the way Azure Functions does, and Azurite."""
