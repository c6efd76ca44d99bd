"""``python -m scim entra …``: wire an Entra tenant's provisioning to this endpoint through Microsoft Graph, and
watch and test it without the portal."""
