"""Who an invite row invites, and to what: the same person invited twice is one operation.

Wix treats an e-mail address as one person whatever its case: its invite endpoints match
invitees case-insensitively, in the local part as much as in the domain (RFC 5321 lets a mail
server tell `Bob@` from `bob@`, but no mail provider in use does, and Wix's account and
collaborator lists show one member for both). So bulkops compares addresses after trimming
white space and case-folding the whole address; nothing else (dots, `+tags`) is removed, since
for most domains those do name other mailboxes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from bulkops.model import Action, OpSpec, is_ref

INVITE_ACTIONS = frozenset({Action.SITE_INVITE, Action.ACCOUNT_INVITE})


def normalise_email(address: str) -> str:
    """`address` as Wix compares it: trimmed, the whole address case-folded."""
    return address.strip().casefold()


def _same(value: str) -> str:
    return value


def invitee_target(spec: OpSpec, resolve: Callable[[str], str] = _same) -> tuple[str, ...] | None:
    """(action, site, e-mail) of a site invite, (action, e-mail) of an account invite; None for
    other actions. `resolve` maps a site as written (an id or `@key`) to the site id, where known.

    Two rows with the same target invite the same person to the same place, whatever their keys
    or roles say.
    """
    if spec.action not in INVITE_ACTIONS or spec.email is None:
        return None
    email = normalise_email(spec.email)
    if spec.action is Action.SITE_INVITE:
        return (spec.action.value, resolve(spec.site or ""), email)
    return (spec.action.value, email)


def invite_fingerprint(spec: OpSpec, resolve: Callable[[str], str] = _same) -> str | None:
    """A short stable text for "this person, this place, these roles" (None: not an invite).

    An invite that succeeded with the same fingerprint is the same operation, whatever key the
    row that sent it had. Roles compare case-insensitively and in any order; the sites an account
    invite is limited to compare as a set of resolved site ids.
    """

    def site_id(value: str) -> str:
        # Site ids are GUIDs, whatever their case; an unresolved `@key` stays as written.
        resolved = resolve(value)
        return resolved if is_ref(resolved) else resolved.casefold()

    target = invitee_target(spec, site_id)
    if target is None:
        return None
    roles = sorted({role.casefold() for role in spec.roles})
    sites = sorted({site_id(site) for site in spec.sites})
    text = "\x1f".join([*target, ";".join(roles), ";".join(sites)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]
