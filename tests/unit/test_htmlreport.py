"""The HTML report: one well-formed, self-contained page that escapes everything it shows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib.resources import files

import pytest

from bulkops.htmlreport import CHART_HEIGHT, PLOT_BOTTOM, PLOT_TOP, rate_chart, render_html
from bulkops.model import (
    Action,
    Elsewhere,
    ErrorCount,
    JobInfo,
    JobOverview,
    JobState,
    OpError,
    OpRecord,
    OpSpec,
    OpState,
    RunRecord,
)

T0 = 1796004000.0  # 2026-11-30 02:00 UTC
JOB = "j-7f3a9c21e04b"
EVIL = "<script>alert('x')</script> & co"

# Run 1 died after 6 buckets (two of them empty); run 2 finished after 10 min 30 s.
TIMELINE_1 = (120, 300, 0, 310, 0, 45)
TIMELINE_2 = (30, 60, 0, 15)  # 15-second buckets: 120, 240, -, 60 requests/min


# --- a minimal DOM, built by html.parser, that refuses unbalanced markup --------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find_all(self, test: Callable[[Node], bool]) -> list[Node]:
        return [node for node in self.walk() if test(node)]

    def by_id(self, wanted: str) -> Node:
        (found,) = self.find_all(lambda n: n.attrs.get("id") == wanted)
        return found

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class StrictTree(HTMLParser):
    """Builds a Node tree; every non-void element must be closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"end tag for void element <{tag}>"
        open_tag = self.stack[-1].tag
        assert open_tag == tag, f"</{tag}> closes <{open_tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    tree = StrictTree()
    tree.feed(page)
    tree.close()
    assert [n.tag for n in tree.stack] == ["#document"], "unclosed elements at the end"
    assert tree.doctype.lower() == "doctype html"
    return tree.root


# --- a realistic job ------------------------------------------------------------------------

def overview() -> JobOverview:
    job = JobInfo(
        job_id=JOB, path="/srv/jobs/q4 migration & cleanup.csv", format="csv", total=1000,
        state=JobState.STOPPED, created_at=T0 - 60, updated_at=T0 + 4000,
        stop_reason="circuit breaker open: 12 consecutive 5xx answers",
        account_id="a1b2c3d4-5e6f-7081-92a3-b4c5d6e7f809", base_url="https://www.wixapis.com",
    )
    runs = (  # stored newest first on purpose: the page shows them oldest first
        RunRecord(
            run_id=2, job_id=JOB, command="resume", started_at=T0 + 3600,
            finished_at=T0 + 3600 + 630, outcome="stopped",
            reason="circuit breaker open: 12 consecutive 5xx answers", requests=10412,
            throttled=3, retries=58, reconciled=4, succeeded=412, failed=29,
            budget_per_second=4.0, bucket_seconds=15.0, timeline=TIMELINE_2,
        ),
        RunRecord(
            run_id=1, job_id=JOB, command="run", started_at=T0, requests=9120, throttled=214,
            retries=231, reconciled=17, succeeded=500, failed=12, budget_per_second=5.0,
            bucket_seconds=60.0, timeline=TIMELINE_1,
        ),
    )
    errors = (
        ErrorCount(code="SITE_NOT_FOUND", hint="check the site id & run the row again",
                   count=19, first_line=14, message=f"Site not found {EVIL}"),
        ErrorCount(code=None, hint=None, count=8, first_line=301,
                   message="Internal Server Error"),
    )
    return JobOverview(
        job=job,
        counts={OpState.SUCCEEDED: 912, OpState.FAILED: 41, OpState.BLOCKED: 23,
                OpState.PENDING: 14, OpState.UNKNOWN: 3, OpState.CANCELLED: 7},
        by_action={
            Action.CREATE_SITE: {OpState.SUCCEEDED: 400, OpState.FAILED: 12,
                                 OpState.PENDING: 14, OpState.UNKNOWN: 3},
            Action.TRANSFER_SITE: {OpState.SUCCEEDED: 312, OpState.FAILED: 20,
                                   OpState.BLOCKED: 10, OpState.CANCELLED: 7},
            Action.SITE_INVITE: {OpState.SUCCEEDED: 200, OpState.FAILED: 9,
                                 OpState.BLOCKED: 13},
        },
        runs=runs,
        top_errors=errors,
    )


def problems() -> list[OpRecord]:
    failed = OpRecord(
        op_id=1, job_id=JOB, seq=14,
        spec=OpSpec(line=14, key="move-<b>bold</b>", action=Action.TRANSFER_SITE,
                    site="3f1e2d4c", to_account="acc-2"),
        state=OpState.FAILED, attempts=3,
        error=OpError(code="SITE_NOT_FOUND", message=f"Site 3f1e2d4c not found {EVIL}",
                      hint="check the site id & run the row again", status=404,
                      request_id="req-0001"),
        note="reconciled: looked up at Wix",
    )
    blocked = OpRecord(
        op_id=2, job_id=JOB, seq=31,
        spec=OpSpec(line=31, key="invite-31", action=Action.SITE_INVITE,
                    site="@move-14", email="ann@example.com"),
        state=OpState.BLOCKED, note="@move-14 failed",
    )
    elsewhere = OpRecord(
        op_id=3, job_id=JOB, seq=48,
        spec=OpSpec(line=48, key="site-48", action=Action.CREATE_SITE, site_name="Shop"),
        state=OpState.FAILED, attempts=1,
        error=OpError(code=None, message="Internal Server Error", request_id="req-0048"),
        elsewhere=Elsewhere(job_id="j-earlier", line=9, at=T0 - 86400),
    )
    return [failed, blocked, elsewhere]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(overview(), problems(), more_problems=37,
                       database="sqlite:////srv/bulkops.db", generated_at=T0 + 5000)


@pytest.fixture(scope="module")
def dom(page: str) -> Node:
    return parse(page)


# --- tests ----------------------------------------------------------------------------------

def test_the_template_ships_inside_the_package() -> None:
    assert (files("bulkops") / "templates" / "report.html.j2").is_file()


def test_the_page_is_self_contained(page: str, dom: Node) -> None:
    assert "<script" not in page.lower()  # no script at all: escaped text only
    assert "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"""(src|href|xlink:href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    for node in dom.walk():
        for name in ("src", "href", "xlink:href", "action", "poster", "data"):
            value = node.attrs.get(name)
            assert value is None or value.startswith("#"), (node.tag, name, value)
    assert not dom.find_all(lambda n: n.tag in {"img", "iframe", "object", "embed", "link"})
    assert len(dom.find_all(lambda n: n.tag == "style")) == 1


def test_the_header_names_job_file_database_state_account_and_time(dom: Node) -> None:
    header = dom.find_all(lambda n: n.tag == "header")[0].text()
    assert JOB in header
    assert "/srv/jobs/q4 migration & cleanup.csv" in header
    assert "sqlite:////srv/bulkops.db" in header
    assert "stopped — circuit breaker open: 12 consecutive 5xx answers" in header
    assert "a1b2c3d4-5e6f-7081-92a3-b4c5d6e7f809" in header
    assert "2026-11-30 03:23 UTC" in header  # generated_at, in identity.when's form


def test_counts_per_state_and_per_action(dom: Node) -> None:
    tiles = {
        tile.find_all(lambda n: "tile-label" in n.classes())[0].text().strip():
            tile.find_all(lambda n: "tile-num" in n.classes())[0].text()
        for tile in dom.find_all(lambda n: "tile" in n.classes())
    }
    assert tiles == {"succeeded": "912", "failed": "41", "blocked": "23", "pending": "14",
                     "unknown": "3", "running": "0", "cancelled": "7"}
    stack = dom.find_all(lambda n: "stack" in n.classes())[0]
    segments = stack.find_all(lambda n: n.tag == "rect")
    assert len(segments) == 6  # one per state with rows
    assert sum(float(s.attrs["width"]) for s in segments) == pytest.approx(100, abs=0.01)

    rows = {cells[0]: cells[1:] for cells in _table(dom.by_id("counts"))}
    header = rows.pop("action")
    assert header == ["succeeded", "failed", "blocked", "pending", "unknown", "cancelled",
                      "total"]
    assert rows["transfer_site"] == ["312", "20", "10", "0", "0", "7", "349"]
    assert rows["all actions"] == ["912", "41", "23", "14", "3", "7", "1,000"]


def _table(section: Node) -> list[list[str]]:
    """The texts of the cells of every table row in `section`, row by row."""
    return [
        [c.text().strip() for c in tr.children if isinstance(c, Node) and c.tag in {"td", "th"}]
        for tr in section.find_all(lambda n: n.tag == "tr")
    ]


def test_runs_oldest_first_with_their_figures(dom: Node) -> None:
    first, second = dom.by_id("run-1"), dom.by_id("run-2")
    one, two = " ".join(first.text().split()), " ".join(second.text().split())
    assert "Run 1 · bulkops run" in one
    assert "did not finish: the process died" in one
    assert "died" in {b.text() for b in first.find_all(lambda n: "badge" in n.classes())}
    assert _figures(first) == {"requests": "9,120", "429s": "214", "retries": "231",
                               "reconciled": "17", "rows succeeded": "500", "rows failed": "12"}
    assert "Run 2 · bulkops resume" in two
    assert "Started 2026-11-30 03:00 UTC" in two
    assert "finished 2026-11-30 03:10 UTC · took 10 min 30 s" in two
    assert "Reason: circuit breaker open: 12 consecutive 5xx answers" in two
    assert _figures(second) == {"requests": "10,412", "429s": "3", "retries": "58",
                                "reconciled": "4", "rows succeeded": "412", "rows failed": "29"}


def _figures(run: Node) -> dict[str, str]:
    """A run's figures: label -> value as shown."""
    (figures,) = run.find_all(lambda n: n.tag == "dl")
    labels = [n.text() for n in figures.find_all(lambda n: n.tag == "dt")]
    values = [n.text() for n in figures.find_all(lambda n: n.tag == "dd")]
    return dict(zip(labels, values, strict=True))


def _chart(dom: Node, run: int) -> Node:
    (svg,) = dom.find_all(lambda n: n.tag == "svg" and n.attrs.get("data-run") == str(run))
    return svg


@pytest.mark.parametrize(
    ("run", "timeline", "budget"), [(1, TIMELINE_1, 300), (2, TIMELINE_2, 240)]
)
def test_the_rate_chart_has_a_bar_per_busy_bucket_and_the_budget_line(
    dom: Node, run: int, timeline: tuple[int, ...], budget: int
) -> None:
    svg = _chart(dom, run)
    bars = svg.find_all(lambda n: n.tag == "rect" and "bar" in n.classes())
    assert len(bars) == sum(1 for count in timeline if count)
    xs = [float(bar.attrs["x"]) for bar in bars]
    assert xs == sorted(xs)
    (line,) = svg.find_all(lambda n: n.tag == "line" and "budget" in n.classes())
    assert line.attrs["y1"] == line.attrs["y2"]
    labels = [t.text() for t in svg.find_all(lambda n: n.tag == "text")]
    assert f"budget {budget}/min" in labels
    assert "requests / min" in labels
    assert any(label.startswith("time since the run started") for label in labels)
    # The budget line sits at its height on the same scale as the bars.
    budget_y = float(line.attrs["y1"])
    assert PLOT_TOP <= budget_y < CHART_HEIGHT - PLOT_BOTTOM
    per_minute = 60 / (60 if run == 1 else 15)
    rates = [count * per_minute for count in timeline if count]
    for bar, rate in zip(bars, rates, strict=True):
        top = float(bar.attrs["y"])
        assert (top < budget_y) == (rate > budget)
        assert ("over" in bar.classes()) == (rate > budget)


def test_bars_convert_buckets_to_requests_per_minute() -> None:
    run = RunRecord(run_id=1, job_id=JOB, command="run", started_at=T0, finished_at=T0 + 30,
                    budget_per_second=1.0, bucket_seconds=10.0, timeline=(5, 0, 10))
    chart = rate_chart(run)
    assert chart is not None
    assert [bar.title.split(" = ")[1] for bar in chart.bars] == ["30/min", "60/min"]
    assert chart.bars[1].height == pytest.approx(2 * chart.bars[0].height, rel=0.01)
    assert chart.budget_label == "budget 60/min"
    assert chart.budget_y == pytest.approx(chart.bars[1].y, abs=0.01)


def test_a_run_without_requests_says_so() -> None:
    quiet = RunRecord(run_id=3, job_id=JOB, command="resume", started_at=T0,
                      budget_per_second=5.0)
    assert rate_chart(quiet) is None
    base = overview()
    page = render_html(
        JobOverview(base.job, base.counts, base.by_action, (quiet,), ()), [],
        more_problems=0, database="db", generated_at=T0,
    )
    dom = parse(page)
    assert "no requests recorded" in dom.by_id("run-1").text()
    assert not dom.find_all(lambda n: n.tag == "svg" and "rate" in n.classes())
    assert "No failed or blocked rows." in dom.by_id("rows").text()
    assert "No errors." in dom.by_id("errors").text()
    assert "more —" not in page


def test_top_errors(dom: Node) -> None:
    rows = _table(dom.by_id("errors"))
    assert rows == [
        ["code", "count", "hint", "first line", "message"],
        ["SITE_NOT_FOUND", "19", "check the site id & run the row again", "14",
         f"Site not found {EVIL}"],
        ["no code", "8", "", "301", "Internal Server Error"],
    ]


def test_failed_and_blocked_rows_in_order_with_all_their_columns(dom: Node) -> None:
    rows = _table(dom.by_id("problem-table"))
    assert rows[0] == ["line", "key", "action", "status", "attempts", "error code", "message",
                       "hint", "request id", "note"]
    assert [row[0] for row in rows[1:]] == ["14", "31", "48"]
    assert rows[1] == ["14", "move-<b>bold</b>", "transfer_site", "failed", "3",
                       "SITE_NOT_FOUND", f"Site 3f1e2d4c not found {EVIL}",
                       "check the site id & run the row again", "req-0001",
                       "reconciled: looked up at Wix"]
    assert rows[2] == ["31", "invite-31", "site_invite", "blocked", "0", "", "", "", "",
                       "@move-14 failed"]
    assert rows[3][-1] == "failed in job j-earlier (line 9) on 2026-11-29 02:00 UTC"


def test_the_capped_rows_are_counted_with_the_command_that_lists_them(dom: Node) -> None:
    more = " ".join(dom.by_id("rows").text().split())
    assert (f"and 37 more — see bulkops report {JOB} --only failed,blocked --format csv"
            in more)


def test_everything_is_escaped(page: str, dom: Node) -> None:
    assert "<script>" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in page
    assert "move-&lt;b&gt;bold&lt;/b&gt;" in page
    assert "q4 migration &amp; cleanup.csv" in page
    assert not dom.find_all(lambda n: n.tag in {"script", "b"})
    # Bare ampersands nowhere: each & starts an entity.
    assert not re.search(r"&(?!(?:[a-z]+|#\d+|#x[0-9a-f]+);)", page, re.I)
