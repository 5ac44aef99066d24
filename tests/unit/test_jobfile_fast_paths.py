"""The shortcuts of validation and loading give what the full checks and encoders give.

- a plain `@key` entry of `sites` or `depends_on` skips the per-entry checks, and a plain
  cell (printable ASCII, no spreadsheet debris) skips the checks that cannot object to it: on
  a file mixing good rows with every kind of bad entry, validating with the shortcuts and
  without them reports the same problems (line, column, message, order) and stores the same
  specs; each shortcut gives what the full checks give, cell by cell;
- a CSV row without a wrapped value is read without looking for one: the same fields;
- a domain or host name is checked whole: the same verdict as label by label;
- a row's spec is built without OpSpec's generated __init__: it equals the one __init__ makes;
- derived keys and stored spec texts are written without `json.JSONEncoder`: the same text.
"""

from __future__ import annotations

import json
import random
from dataclasses import fields
from pathlib import Path

import pytest

from bulkops import jobreaders, jobrows
from bulkops.errors import JobFileError
from bulkops.jobfile import check_job, load_job
from bulkops.jobrows import check_row, compact_json
from bulkops.model import Action, OpSpec
from bulkops.rowcheckers import spec_plain
from bulkops.store.rows import spec_text
from bulkops.storedspec import spec_of_row, stored_row, stored_text, stored_text_of_plain

JOBS = Path(__file__).resolve().parents[2] / "jobs"
SITE = "11111111-1111-4111-8111-111111111111"
ACCOUNT = "22222222-2222-4222-8222-222222222221"
HEADER = "action,key,site_name,site,to_account,email,role,sites,depends_on\n"
# Entries of sites / depends_on, good and bad in every way an entry can be.
ENTRIES = [
    "@shop", "@a", "@", "@@shop", "@sh@op", "shop", SITE, "@shop ", " @shop", "@E1",
    "@#N/A", "#N/A", "@sh\x07op", "@shöp", "@Ã©", "@shop\u200b", "@a\tb", "Err:502",
]
# The same in JSON lists, where an entry may hold a ';' or be no text at all.
JSON_ENTRIES: list[object] = [*ENTRIES, "@a;b", "a;b", "", " ", 5, None, ["@x"]]


def mixed_csv(tmp_path: Path) -> Path:
    rows = [
        "create_site,shop,Shop,,,,,,",
        "create_site,a,A,,,,,,",
        "create_site,,Blog,,,,,,",
        f"transfer_site,move,,@shop,{ACCOUNT},,,,@a",
        "account_invite,team,,,,t@example.com,Admin,@shop;@a,@move",
    ]
    for n, entry in enumerate(ENTRIES):
        cell = entry.replace('"', '""')
        rows.append(f'account_invite,inv{n},,,,p{n}@example.com,Admin,"{cell};@shop",')
        rows.append(f'transfer_site,mv{n},,@shop,{ACCOUNT},,,,"@a;{cell}"')
        rows.append(f'transfer_site,t{n},,"{cell}",{ACCOUNT},,,,')
    rows.append("transfer_site,loop,,@shop," + ACCOUNT + ",,,,@loop")
    rows.append("transfer_site,dangling,,@shop," + ACCOUNT + ",,,,@nowhere;@a;")
    path = tmp_path / "mixed.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def mixed_json(tmp_path: Path) -> Path:
    ops: list[dict[str, object]] = [
        {"action": "create_site", "key": "shop", "site_name": "Shop"},
        {"action": "create_site", "key": "a", "site_name": "A"},
    ]
    for n, entry in enumerate(JSON_ENTRIES):
        ops.append({"action": "account_invite", "key": f"inv{n}", "email": f"p{n}@example.com",
                    "role": "Admin", "sites": [entry, "@shop"]})
        ops.append({"action": "transfer_site", "key": f"mv{n}", "site": "@shop",
                    "to_account": ACCOUNT, "depends_on": ["@a", entry]})
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(ops), encoding="utf-8")
    return path


def outcome(path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> tuple[list[tuple[int, str | None, str]], list[OpSpec]]:
    """(every problem reported, the specs stored when there is none), with the memo of
    normalised cells empty: each cell is normalised by this run's checks."""
    monkeypatch.setattr(jobrows, "_MEMO", {name: {} for name in jobrows._MEMO})
    try:
        _, specs = load_job(path)
    except JobFileError as error:
        return [(e.line, e.column, e.reason) for e in error.errors], []
    return [], list(specs())


@pytest.mark.parametrize("make", [mixed_csv, mixed_json])
def test_plain_references_give_what_the_full_checks_give(
    tmp_path: Path, make: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    fast = outcome(path, monkeypatch)
    monkeypatch.setattr(jobrows, "_REF_LISTS", frozenset())  # every entry fully checked
    monkeypatch.setattr(jobrows, "_PLAIN_CELLS", {})  # every cell fully checked
    assert outcome(path, monkeypatch) == fast
    assert len(fast[0]) > 20  # the file is refused, for many reasons


@pytest.mark.parametrize("name", ["onboarding.csv", "onboarding.json"])
def test_good_files_give_the_same_specs_with_and_without_the_shortcut(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = outcome(JOBS / name, monkeypatch)
    monkeypatch.setattr(jobrows, "_REF_LISTS", frozenset())
    monkeypatch.setattr(jobrows, "_PLAIN_CELLS", {})
    assert outcome(JOBS / name, monkeypatch) == fast
    assert fast[1] and not fast[0]


def every_spec() -> list[OpSpec]:
    specs = [spec for name in ("onboarding.csv", "onboarding.json")
             for spec in check_job(JOBS / name).specs()]
    assert {spec.action for spec in specs} == set(Action)
    return specs


def test_a_rows_spec_is_the_one_opspecs_init_makes() -> None:
    for spec in every_spec():
        assert spec == OpSpec(**{f.name: getattr(spec, f.name) for f in fields(OpSpec)})
        assert vars(spec).keys() == {f.name for f in fields(OpSpec)}
    result = check_row(4, {"action": "create_site", "site_name": "Shop", "notify": "no"})
    assert result.spec is None  # notify is not a create_site column: no spec is made


def odd_text(rng: random.Random) -> str:
    alphabet = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\x00', '\x7f', 'é', 'Ã', '\u2028',
                '\u200b', '😀', '\ud800', '@', ';', '<', '&']
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))


def test_stored_text_is_spec_text() -> None:
    rng = random.Random(7)
    specs = every_spec()
    for spec in list(specs):
        for _ in range(20):  # the same shapes with text of every kind in every member
            changes: dict[str, object] = {}
            for f in fields(OpSpec):
                value = getattr(spec, f.name)
                if isinstance(value, str) and f.name not in ("key", "action"):
                    changes[f.name] = odd_text(rng)
                elif isinstance(value, tuple) and value:
                    changes[f.name] = tuple(odd_text(rng) for _ in value)
            specs.append(OpSpec(**{**vars(spec), **changes}))
    specs.append(OpSpec(line=1, key="k", action=Action.SET_DNS_RECORD, ttl=0, notify=True))
    specs.append(OpSpec(line=1, key="k", action=Action.CREATE_SITE, site_name=""))
    for spec in specs:
        assert stored_text(spec) == spec_text(spec)
        # As a helper writes it, from the members `spec_plain` sends.
        assert stored_text_of_plain(spec_plain(spec)) == spec_text(spec)
    for spec in every_spec():  # rows a file can hold (no half characters: they are refused)
        assert stored_row(spec, spec_plain(spec)) == stored_row(spec)
        assert spec_of_row(stored_row(spec)) == spec


def test_compact_json_is_the_encoders_text() -> None:
    encoders = {False: json.JSONEncoder(sort_keys=True, separators=(",", ":"),
                                        ensure_ascii=False),
                True: json.JSONEncoder(sort_keys=True, separators=(",", ":"))}
    quotes = {False: json.encoder.encode_basestring, True: json.encoder.encode_basestring_ascii}
    rng = random.Random(11)
    contents: list[dict[str, object]] = [spec.to_json() for spec in every_spec()]
    for _ in range(500):
        content: dict[str, object] = {}
        for _ in range(rng.randrange(0, 6)):
            kind = rng.randrange(5)
            value: object = (odd_text(rng) if kind == 0 else
                             tuple(odd_text(rng) for _ in range(rng.randrange(3))) if kind == 1
                             else rng.choice([True, False]) if kind == 2
                             else rng.randrange(-10**20, 10**20) if kind == 3
                             else [odd_text(rng)])
            content[odd_text(rng) or "k"] = value
        contents.append(content)
    for content in contents:
        for ascii_only in (False, True):
            text = compact_json(content, quotes[ascii_only])
            assert text == encoders[ascii_only].encode(content)
    # Values a row never holds are left to the encoder.
    assert compact_json({"a": 1.5}, quotes[False]) is None
    assert compact_json({"a": None}, quotes[False]) is None
    assert compact_json({"a": [1]}, quotes[False]) is None


def test_stored_text_writes_every_member_a_spec_has() -> None:
    # A member added to OpSpec later must be written by `stored_text` too, or it would be
    # silently left out of every stored spec: each field with a value shows in the text.
    from bulkops.storedspec import STORED_LAYOUT

    written = {name for name, _, _ in STORED_LAYOUT}
    assert written == {f.name for f in fields(OpSpec)} - {"line", "key"}


# Cells of every column, as files write them: good, bad, and next to a shortcut's edge.
CELLS = [
    *ENTRIES, *(entry for entry in JSON_ENTRIES if isinstance(entry, str)), SITE, ACCOUNT,
    SITE.upper(), SITE[:-1], "shop", "Shop", "E", "Ea", "#", "#shop", "Err:502", "#N/A", "a b",
    "a  b", " a", "a ", "a\tb", "Client 7 Studio", "Client 7  Studio", "x" * 100, "x" * 101,
    "Café", "CafÃ©", "o'brien@example.com", "owner7@client7.com", "Owner7@Client7.COM",
    "bob@", "bob@example", "a@x.com;b@y.com", "Website Manager", "7.08451E+18",
    "7084512206941830272.0", "@site-7;@shop-7", "@site-7; @shop-7", "@site-7;;@shop-7",
    "@site-7;", ";@site-7", "@a@b;@c", "client7.com", "www.client7.com", "Client7.COM.",
    "https://client7.com/", "shop.client7.co.uk", "co.uk", "com", "client7", "client7.nope",
    "xn--caf-dma.com", "café.com", "*.client7.com", "*", "_dmarc.client7.com", "@", "-a.com",
    "a-.com", "a..com", "nameservers", "Pointing", "point", "primary", "MX", "mx", "SOA",
    "NS", "TXT", "10 mx1.client7.com;20 mx2.client7.com", "v=spf1 -all", "yes", "3600",
    "3,600", "3600.0", "-5", "E1", "e1", "a;b", "=1", "'0123",
]


def test_each_plain_cell_shortcut_gives_the_full_checks_result() -> None:
    rng = random.Random(5)
    texts = CELLS + [odd_text(rng) for _ in range(3000)]
    taken = set()
    for name, plain in jobrows._PLAIN_CELLS.items():
        for text in texts:
            result = plain(text)
            if result is not None:
                taken.add(name)
                assert result == jobrows._normalise(name, text), (name, text)
    assert taken == set(jobrows._PLAIN_CELLS)  # every shortcut is taken by some plain cell


def test_a_row_without_wrapped_values_is_read_as_the_full_reader_reads_it() -> None:
    from bulkops.jobreaders import _CsvLayout

    header = ["action", "Key", "", "site name", "key", "notes", "sites", "line", "depends_on"]
    layout = _CsvLayout(1, header)
    rows = [
        ["create_site", "a", "", "Shop", "", "", "", "", ""],
        ["create_site", " a ", "x", "  Shop  Two ", "b", "n", "@a;@b", "5", "@c", "extra"],
        ["account_invite", "", "", "", "", "", " ", "", ""],
        ["transfer_site", "t"],
        [],
        ["  ", "", "", "", "", "", "", "", "", "", ""],
    ]
    lines = (JOBS / "onboarding.csv").read_text(encoding="utf-8").splitlines()
    rows += [line.split(",") for line in lines[1:]]
    for text in [*CELLS, "“Joe’s”", "«a»", "‚a‛", "é'", "é=", "é", "a„"]:
        assert jobreaders._maybe_wrapped(text) == bool(jobreaders._MAYBE_WRAPPED.search(text))
    plain = [cells for cells in rows if not jobreaders._maybe_wrapped("".join(cells))]
    assert len(plain) > len(rows) // 2
    for cells in plain:
        row, _ = layout.row(7, cells, "".join(cells))
        assert row is not None
        assert list(row.fields.items()) == list(layout._unwrapped(cells).items())


def test_a_name_checked_whole_gets_the_verdict_of_its_labels() -> None:
    from bulkops import domainrows

    rng = random.Random(3)
    alphabet = "ab09-_.*"
    names = ["a", "a.b", "a..b", ".a", "a.", "_a", "a_", "_", "-a", "a-", "a" * 63, "a" * 64,
             "_" + "a" * 62, "a-b.c_d", "*.a", "x--y.z"]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9)))
              for _ in range(20000)]
    for name in names:
        for whole, label in ((domainrows._NAME, domainrows._LABEL),
                             (domainrows._HOST_NAME, domainrows._HOST_LABEL)):
            by_label = all(label.fullmatch(part) for part in name.split("."))
            assert (whole.fullmatch(name) is not None) == by_label, name
