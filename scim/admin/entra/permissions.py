"""Each Graph call this CLI makes, with the least-privileged permission Microsoft documents for it.

One table serves three purposes: the scopes a delegated sign-in asks for, the message when Graph answers 403 (it
names the permission instead of Graph's generic "Insufficient privileges"), and the README's permissions table."""

from dataclasses import dataclass

APP_ADMIN_ROLES = ("Application Administrator", "Cloud Application Administrator")
LOG_READER_ROLES = ("Reports Reader", "Security Reader", "Global Reader", *APP_ADMIN_ROLES)


@dataclass(frozen=True)
class Operation:
    """A Graph call: what it does (for messages), the application and delegated permission it needs, and the
    directory roles that let a signed-in admin use the delegated permission."""

    does: str
    application: str
    delegated: str
    roles: tuple[str, ...] = APP_ADMIN_ROLES


FIND_APP = Operation("find the enterprise app by name", "Application.Read.All", "Application.Read.All")
CREATE_APP = Operation(
    "create the enterprise app from the non-gallery template", "Application.ReadWrite.All", "Application.ReadWrite.All"
)
READ_SYNC = Operation("read the provisioning job", "Synchronization.Read.All", "Synchronization.Read.All")
WRITE_SYNC = Operation(
    "configure the provisioning job", "Synchronization.ReadWrite.All", "Synchronization.ReadWrite.All"
)
READ_LOGS = Operation("read the provisioning logs", "AuditLog.Read.All", "AuditLog.Read.All", roles=LOG_READER_ROLES)
FIND_USER = Operation("look the user up", "User.Read.All", "User.ReadBasic.All", roles=())
FIND_GROUP = Operation("look the group up", "GroupMember.Read.All", "GroupMember.Read.All", roles=())
ASSIGN = Operation(
    "assign a user or group to the app", "AppRoleAssignment.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"
)

# What each command may call: a delegated sign-in asks for exactly these scopes.
COMMANDS: dict[str, tuple[Operation, ...]] = {
    "login": (FIND_APP,),
    "connect": (FIND_APP, CREATE_APP, READ_SYNC, WRITE_SYNC),
    "connect --assign": (FIND_USER, FIND_GROUP, ASSIGN),
    "status": (FIND_APP, READ_SYNC),
    "logs": (FIND_APP, READ_LOGS),
    "provision": (FIND_APP, READ_SYNC, WRITE_SYNC, FIND_USER),
    "restart": (FIND_APP, READ_SYNC, WRITE_SYNC),
    "pause": (FIND_APP, READ_SYNC, WRITE_SYNC),
    "rotate": (FIND_APP, READ_SYNC, WRITE_SYNC),
}


def delegated_scopes(*commands: str) -> list[str]:
    """The permission names a delegated token for these commands needs, without repeats, in a stable order."""
    names: dict[str, None] = {}
    for command in commands:
        for operation in COMMANDS[command]:
            names[operation.delegated] = None
    return list(names)
