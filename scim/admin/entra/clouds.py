"""Where each Microsoft cloud signs in and serves Graph: the two addresses every other module needs.

Sovereign clouds have their own sign-in host and Graph host; a token from one is worthless at the other, so they are
chosen together. ``--authority-host``/``--graph-endpoint`` override them (private clouds, local stand-ins)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str
    graph_endpoint: str

    def graph_scope(self, permission: str) -> str:
        """A delegated scope is the Graph resource followed by the permission name."""
        return f"{self.graph_endpoint}/{permission}"

    @property
    def app_only_scope(self) -> str:
        """App-only tokens carry every application permission granted to the app: ``/.default``."""
        return f"{self.graph_endpoint}/.default"


# The national cloud deployments listed in Microsoft Graph's documentation.
CLOUDS = {
    "global": Cloud("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": Cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov-dod": Cloud("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": Cloud("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}


def resolve(name: str, authority_host: str | None = None, graph_endpoint: str | None = None) -> Cloud:
    """The named cloud, with either address replaced when given."""
    base = CLOUDS[name]
    return Cloud(
        name,
        (authority_host or base.authority_host).rstrip("/"),
        (graph_endpoint or base.graph_endpoint).rstrip("/"),
    )
