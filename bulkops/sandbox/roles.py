"""The roles (policies) the sandbox knows: ids, localised titles and level restrictions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bulkops.sandbox.wire import JsonObject, validation_error


class Restriction(StrEnum):
    """`restrictFromLevel`: where a role may NOT be given."""

    SITE = "Site"  # not on a single site (account-wide only)
    ACCOUNT = "Account"  # not account-wide (per site only)


class RoleLevel(StrEnum):
    """`filter.roleLevel` of GET /roles-management/roles."""

    SITE_LEVEL = "SITE_LEVEL"
    ACCOUNT_LEVEL = "ACCOUNT_LEVEL"
    ALL = "ALL"


@dataclass(frozen=True)
class Role:
    # Ids are long digit strings: clients must keep them as strings, never as integers
    # (19 digits overflow a JavaScript number, which is why Wix sends them quoted).
    id: str
    title: str
    description: str
    restriction: Restriction | None = None
    custom: bool = False
    # Title per locale other than English. Custom roles are named by the user: never translated.
    translations: tuple[tuple[str, str], ...] = ()

    def title_in(self, locale: str) -> str:
        return dict(self.translations).get(locale.lower(), self.title)

    def allowed_at(self, level: RoleLevel) -> bool:
        """Whether the role may be given at `level` (ALL: listed whatever its restriction)."""
        if level is RoleLevel.SITE_LEVEL:
            return self.restriction is not Restriction.SITE
        if level is RoleLevel.ACCOUNT_LEVEL:
            return self.restriction is not Restriction.ACCOUNT
        return True

    def to_json(self, locale: str) -> JsonObject:
        info: JsonObject = {"id": self.id, "title": self.title_in(locale),
                            "description": self.description}
        if self.restriction is not None:
            info["restrictFromLevel"] = self.restriction.value
        return info


ROLES: tuple[Role, ...] = (
    Role("7084512206941830161", "Admin (Co-owner)", "Full access, including billing and team.",
         translations=(("de", "Administrator (Mitinhaber)"),)),
    Role("7084512206941830272", "Website Manager", "Manages the site, apps and content.",
         translations=(("de", "Website-Manager"),)),
    Role("7084512206941830383", "Website Designer", "Edits and publishes the site design.",
         translations=(("de", "Website-Designer"),)),
    Role("7084512206941830494", "Back Office Manager", "Runs the dashboard, not the design.",
         translations=(("de", "Backoffice-Manager"),)),
    Role("7084512206941830505", "Blog Writer", "Writes and publishes blog posts.",
         Restriction.ACCOUNT, translations=(("de", "Blog-Autor"),)),
    Role("7084512206941830616", "Billing Manager", "Manages payments and subscriptions.",
         Restriction.SITE, translations=(("de", "Abrechnungsmanager"),)),
    Role("7084512206941839727", "Client Reviewer", "Reviews sites before they go live.",
         custom=True),
)

_BY_ID = {role.id: role for role in ROLES}


def find_role(policy_id: object) -> Role | None:
    return _BY_ID.get(policy_id) if isinstance(policy_id, str) else None


def check_policies(policy_ids: list[object], level: RoleLevel, field: str) -> None:
    """400 if a policy id is unknown or its role may not be given at `level`."""
    for index, policy_id in enumerate(policy_ids):
        role = find_role(policy_id)
        where = f"{field}[{index}]"
        if role is None:
            raise validation_error(where, f"unknown policy id {policy_id!r}")
        if not role.allowed_at(level):
            kind = "on a site" if level is RoleLevel.SITE_LEVEL else "account-wide"
            raise validation_error(where, f"role {role.title!r} cannot be given {kind}")


def roles_body(locale: str, level: RoleLevel) -> JsonObject:
    """The body of GET /roles-management/roles."""
    listed = [role for role in ROLES if role.allowed_at(level)]
    return {
        "predefinedRoles": [role.to_json(locale) for role in listed if not role.custom],
        "customRoles": [role.to_json(locale) for role in listed if role.custom],
    }
