"""The records built without their dataclass __init__ (`model.frozen_instance`): `OpSpec.from_json`,
`OpRecord.evolve` and the store's `op_record` must make exactly what the constructor and
`dataclasses.replace` make, every field included, so a field added later cannot be left out."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from bulkops.model import Action, OpError, OpRecord, OpSpec, OpState
from bulkops.store.rows import mutable_values, op_record, spec_text

SPECS = [
    OpSpec(line=2, key="acme", action=Action.CREATE_SITE, site_name="Acme",
           template_id="3f0c9a2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f", folder_id="f"),
    OpSpec(line=3, key="inv", action=Action.ACCOUNT_INVITE, email="a@example.com",
           roles=("Admin", "Website Manager"), sites=("@acme",), depends_on=("t",)),
    OpSpec(line=4, key="dns", action=Action.SET_DNS_RECORD, domain="client.com",
           record_type="TXT", host="client.com", values=('v=spf1 -all', "x;y"), ttl=3600,
           implied_depends_on=("conn",)),
    OpSpec(line=5, key="conn", action=Action.CONNECT_DOMAIN, site="@acme", domain="client.com",
           connection="nameservers", assignment="primary", notify=True),
]


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.action.value)
def test_a_spec_read_back_is_the_spec_stored(spec: OpSpec) -> None:
    read = OpSpec.from_json(spec.line, spec.key, spec.to_json())
    assert read == spec
    assert set(vars(read)) == field_names(OpSpec)
    assert hash(read) == hash(spec)


def test_evolve_is_replace() -> None:
    op = OpRecord(op_id=1, job_id="j", seq=0, spec=SPECS[0], note="paused")
    changes = {"state": OpState.RUNNING, "attempts": 2, "note": None, "last_sent_at": 5.0}
    assert op.evolve(**changes) == dataclasses.replace(op, **changes)  # type: ignore[arg-type]
    assert op.note == "paused"  # the original is untouched
    with pytest.raises(TypeError, match="no field 'colour'"):
        op.evolve(colour="red")
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.evolve(attempts=1).attempts = 2  # type: ignore[misc]


def test_a_stored_row_reads_back_as_the_record_saved() -> None:
    op = OpRecord(
        op_id=7, job_id="j", seq=3, spec=SPECS[2], state=OpState.FAILED, attempts=2,
        site_id="s", invite_id="i", details={"before": ["a"]},
        error=OpError(code="C", message="m", hint="h", status=428, request_id="r"),
        first_sent_at=1.0, last_sent_at=2.0, not_before=3.0, checks=1, note="n",
        lease_owner="w", refs={"conn": "site-1"}, maybe_applied=True,
    )
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    values = {**mutable_values(op), "op_id": op.op_id, "job_id": op.job_id, "seq": op.seq,
              "line": op.spec.line, "key": op.spec.key, "spec": spec_text(op.spec)}
    values.pop("fingerprint", None)
    # A row as SQLite returns it, by column name: every value bound as a column of its own.
    select = ", ".join(f':{name} AS "{name}"' for name in values)
    row = conn.execute(f"SELECT {select}", values).fetchone()
    read = op_record(row, op.refs)
    assert read == op
    assert set(vars(read)) == field_names(OpRecord)


def test_a_save_names_every_mutable_column_and_only_those() -> None:
    from bulkops.store.rows import MUTABLE_COLUMNS, save_params

    # An invite that succeeded gets its fingerprint (its @key sites are resolved by then).
    done = OpRecord(op_id=3, job_id="j", seq=1, spec=SPECS[1], state=OpState.SUCCEEDED,
                    refs={"acme": "site-1"})
    params = save_params(done, 12.5)
    assert set(params) == {f"p_{name}" for name in MUTABLE_COLUMNS} | {"p_op_id", "p_updated_at"}
    assert (params["p_op_id"], params["p_updated_at"]) == (3, 12.5)
    assert params["p_fingerprint"]
    # A create's fingerprint is stored with its row, and a pending invite's cannot be known:
    # their saves leave the column out.
    for op in (OpRecord(op_id=4, job_id="j", seq=0, spec=SPECS[0]),
               OpRecord(op_id=5, job_id="j", seq=1, spec=SPECS[1])):
        assert set(mutable_values(op)) == set(MUTABLE_COLUMNS) - {"fingerprint"}


def _waits_for(spec: OpSpec) -> tuple[str, ...]:
    """What `dependency_keys` means, written plainly: every `@key` of site and sites, then
    depends_on and the implied ones, in first-mention order, each once."""
    keys: list[str] = []
    for value in [spec.site or "", *spec.sites]:
        if value.startswith("@") and value[1:] not in keys:
            keys.append(value[1:])
    for key in [*spec.depends_on, *spec.implied_depends_on]:
        if key not in keys:
            keys.append(key)
    return tuple(keys)


@pytest.mark.parametrize("spec", [
    *SPECS,
    OpSpec(line=6, key="one", action=Action.SITE_INVITE, site="@acme", email="b@example.com",
           roles=("Admin",)),
    OpSpec(line=7, key="by-id", action=Action.SITE_INVITE, site="d0a1-site-id",
           email="b@example.com", roles=("Admin",)),
    OpSpec(line=8, key="move", action=Action.TRANSFER_SITE, site="@acme", to_account="a",
           depends_on=("one", "acme")),
    OpSpec(line=9, key="many", action=Action.ACCOUNT_INVITE, email="c@example.com",
           roles=("Admin",), sites=("@acme", "site-id", "@inv", "@acme")),
], ids=lambda spec: spec.key)
def test_dependency_keys_name_each_awaited_row_once_in_first_mention_order(spec: OpSpec) -> None:
    assert spec.dependency_keys() == _waits_for(spec)
