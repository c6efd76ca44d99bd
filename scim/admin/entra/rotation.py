"""``entra rotate``: replace the token Entra uses with a new one, in an order that never leaves Entra holding a token
the endpoint refuses, so no provisioning cycle fails.

1. Add a new token beside the old ones where the endpoint reads its tokens (the endpoint now accepts both).
2. Have Entra test the new token against the endpoint until the endpoint accepts it (it may first have to reload).
3. Save it in Entra, and have Entra test the saved credentials.
4. Only then retire the old tokens.

If step 2 never succeeds, the new token is withdrawn again and Entra keeps the old one, which still works."""

import time
from collections.abc import Callable
from typing import Protocol

from scim.admin.entra import provisioning
from scim.admin.entra.graph import GraphClient
from scim.admin.entra.provisioning import App, Credentials, ProvisioningError


class TokenStore(Protocol):
    """Where the endpoint reads one tenant's bearer tokens from: Key Vault, or its own credentials table."""

    @property
    def where(self) -> str: ...

    def issue(self) -> tuple[str, int]:
        """A new token the endpoint will accept beside the old ones; with how many old ones there are."""
        ...

    def withdraw(self) -> None:
        """Remove the token :meth:`issue` made."""
        ...

    def retire_others(self) -> int:
        """Remove the tokens that were there before :meth:`issue`; how many."""
        ...


def rotate(
    graph: GraphClient,
    app: App,
    job: dict,
    tenant_url: str,
    store: TokenStore,
    *,
    say: Callable[[str], None],
    hide: Callable[[str], None],
    wait: float,
    poll: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    new, old = store.issue()
    hide(new)
    say(f"Added a new token to {store.where} ({old} old token(s) still accepted)")
    credentials = Credentials(tenant_url, new)
    deadline = time.monotonic() + wait
    while (verdict := provisioning.validate(graph, app, job, credentials)) is not None:
        if time.monotonic() >= deadline:
            store.withdraw()
            raise ProvisioningError(
                f"The endpoint did not accept the new token within {wait:g} s, so it was withdrawn and Entra keeps "
                f"the old one (which still works). Entra's last verdict: {verdict.splitlines()[0]}\n"
                "  With Key Vault, restart the function app (az functionapp restart) so it re-reads the secret; "
                "stored credentials take effect within 30 s. Then run rotate again, with a longer --wait."
            )
        say(f"The endpoint does not accept the new token yet; asking Entra again in {poll:g} s")
        sleep(poll)
    say("Test Connection with the new token: OK")
    provisioning.save_credentials(graph, app, credentials)
    verdict = provisioning.validate(graph, app, job, None)
    if verdict is not None:
        raise ProvisioningError(f"Entra saved the new token but its saved credentials fail: {verdict}; old tokens kept")
    say("Saved the new token in Entra; Test Connection with the saved credentials: OK")
    retired = store.retire_others()
    if retired:
        say(f"Retired {retired} old token(s) from {store.where}")
