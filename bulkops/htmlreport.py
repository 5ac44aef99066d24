"""The HTML report: one self-contained page (inline CSS and SVG, no scripts, no fetched assets).

`render_html` turns a job's overview and its failed/blocked rows into the page. All layout
arithmetic (shares, chart geometry, formatting) happens here; the Jinja2 template
`templates/report.html.j2` only places it, with autoescaping on, so every value from the
store is escaped wherever it lands (text, attributes, SVG).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import jinja2

from bulkops.identity import when
from bulkops.model import Action, ErrorCount, JobOverview, OpRecord, OpState, RunRecord
from bulkops.report import note_of

# The order states are shown in everywhere (tiles, bar, table columns), with their colours:
# each colour keeps a contrast of at least 4.5:1 on white, so it also works as text colour.
STATE_ORDER: tuple[OpState, ...] = (
    OpState.SUCCEEDED, OpState.FAILED, OpState.BLOCKED, OpState.PENDING,
    OpState.UNKNOWN, OpState.RUNNING, OpState.CANCELLED,
)
STATE_COLOURS: Mapping[OpState, str] = {
    OpState.SUCCEEDED: "#1a7f37",
    OpState.FAILED: "#cf222e",
    OpState.BLOCKED: "#9a6700",
    OpState.PENDING: "#6e7781",
    OpState.UNKNOWN: "#8250df",
    OpState.RUNNING: "#0969da",
    OpState.CANCELLED: "#424a53",
}

# Chart geometry, in SVG user units (the SVG scales to the page width, keeping its aspect).
CHART_WIDTH = 1000.0
CHART_HEIGHT = 260.0
PLOT_LEFT = 64.0  # room for the y tick labels and the rotated y axis title
PLOT_RIGHT = 24.0
PLOT_TOP = 14.0
PLOT_BOTTOM = 46.0  # room for the x tick labels and the x axis title


@dataclass(frozen=True)
class StateCount:
    """One state's tile and bar segment. `share` and `offset` are percentages (0-100) of
    all counted rows; `offset` is where the segment starts in the stacked bar."""

    state: str
    count: int
    share: float
    offset: float
    colour: str


@dataclass(frozen=True)
class ActionRow:
    """One row of the action × state table: counts in `columns` order, then the row total."""

    action: str
    counts: tuple[int, ...]
    total: int


@dataclass(frozen=True)
class Bar:
    """One bucket of a rate chart, in SVG units. `rate` is requests per minute; `over`: above
    the budget. `title` is the hover text."""

    x: float
    y: float
    width: float
    height: float
    over: bool
    title: str


@dataclass(frozen=True)
class Tick:
    """An axis tick: `pos` in SVG units along its axis, `label` its text."""

    pos: float
    label: str


@dataclass(frozen=True)
class RateChart:
    """A run's requests per minute against its budget, laid out in a CHART_WIDTH × CHART_HEIGHT
    SVG. `budget_y` is None when the run recorded no budget. `summary` describes the chart for
    screen readers (and the <title> of the SVG)."""

    bars: tuple[Bar, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    budget_y: float | None
    budget_label: str
    peak_label: str
    x_title: str
    summary: str


@dataclass(frozen=True)
class RunView:
    """One run as the page shows it; `chart` is None when the run sent no request."""

    number: int
    command: str
    started: str
    finished: str
    duration: str
    outcome: str  # "finished" | "stopped" | "interrupted" | "died" | "unknown"
    reason: str | None
    figures: tuple[tuple[str, str, str], ...]  # (label, value, tone: "" | "warn" | "bad")
    chart: RateChart | None
    bucket_seconds: str


@dataclass(frozen=True)
class ErrorView:
    code: str
    count: int
    hint: str
    first_line: int
    message: str


@dataclass(frozen=True)
class ProblemView:
    """A failed or blocked row; empty strings where the row has no value."""

    line: int
    key: str
    action: str
    status: str
    attempts: int
    code: str
    message: str
    hint: str
    request_id: str
    note: str


def render_html(
    overview: JobOverview,
    problems: Sequence[OpRecord],
    *,
    more_problems: int,
    database: str,
    generated_at: float,
) -> str:
    """The report page for one job, as a complete HTML document (UTF-8 text, no external assets).

    `problems`: the failed and blocked rows to list, in the order to show them (input order);
    `more_problems`: how many more such rows were left out by a cap (0: none). `database` is
    shown as given (a URL or path without secrets). `generated_at`: unix seconds.
    """
    job = overview.job
    counted = sum(overview.counts.get(state, 0) for state in STATE_ORDER)
    columns = _columns(overview)
    runs = sorted(overview.runs, key=lambda run: (run.started_at, run.run_id))
    return _template().render(
        job=job,
        stop_reason=job.stop_reason,
        database=database,
        generated=when(generated_at),
        created=when(job.created_at),
        updated=when(job.updated_at),
        total=job.total,
        counted=counted,
        states=_state_counts(overview.counts, counted),
        headline=_headline(overview.counts, job.total),
        columns=[(state.value, STATE_COLOURS[state]) for state in columns],
        action_rows=_action_rows(overview.by_action, columns),
        column_totals=[overview.counts.get(state, 0) for state in columns],
        runs=[_run_view(number, run) for number, run in enumerate(runs, start=1)],
        errors=[_error_view(error) for error in overview.top_errors],
        problems=[_problem_view(op) for op in problems],
        more_problems=more_problems,
        more_command=f"bulkops report {job.job_id} --only failed,blocked --format csv",
        colours={state.value: colour for state, colour in STATE_COLOURS.items()},
        chart={
            "width": CHART_WIDTH, "height": CHART_HEIGHT, "left": PLOT_LEFT,
            "right": CHART_WIDTH - PLOT_RIGHT, "top": PLOT_TOP,
            "bottom": CHART_HEIGHT - PLOT_BOTTOM,
        },
    )


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bulkops", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    return env.get_template("report.html.j2")


def _num(value: float) -> str:
    """1234 -> `1,234`; 2.5 -> `2.5` (one decimal at most, none when whole)."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _share(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _state_counts(counts: Mapping[OpState, int], counted: int) -> list[StateCount]:
    out: list[StateCount] = []
    offset = 0.0
    for state in STATE_ORDER:
        count = counts.get(state, 0)
        share = _share(count, counted)
        out.append(StateCount(state.value, count, share, offset, STATE_COLOURS[state]))
        offset += share
    return out


def _headline(counts: Mapping[OpState, int], total: int) -> str:
    """`812 of 1,000 rows succeeded · 37 failed · 12 blocked` (zero states left out)."""
    done = counts.get(OpState.SUCCEEDED, 0)
    parts = [f"{_num(done)} of {_num(total)} rows succeeded"]
    parts += [f"{_num(counts[s])} {s.value}" for s in STATE_ORDER[1:] if counts.get(s, 0)]
    return " · ".join(parts)


def _columns(overview: JobOverview) -> list[OpState]:
    """The states the action table shows: those with rows, always including succeeded and
    failed, in STATE_ORDER."""
    used = {s for s, n in overview.counts.items() if n}
    for per_state in overview.by_action.values():
        used.update(s for s, n in per_state.items() if n)
    used.update((OpState.SUCCEEDED, OpState.FAILED))
    return [state for state in STATE_ORDER if state in used]


def _action_rows(
    by_action: Mapping[Action, Mapping[OpState, int]], columns: Sequence[OpState]
) -> list[ActionRow]:
    rows: list[ActionRow] = []
    for action in [a for a in Action if a in by_action]:
        per_state = by_action[action]
        rows.append(ActionRow(
            action.value,
            tuple(per_state.get(state, 0) for state in columns),
            sum(per_state.values()),
        ))
    return rows


def _duration(seconds: float) -> str:
    """`45 s`, `3 min 20 s`, `2 h 05 min` (whole seconds)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _run_view(number: int, run: RunRecord) -> RunView:
    died = run.finished_at is None
    if died:
        finished = "did not finish: the process died"
        duration = ""
    else:
        finished = when(run.finished_at)
        duration = _duration(run.duration or 0.0)
    outcome = "died" if died else (run.outcome or "unknown")
    figures = (
        ("requests", _num(run.requests), ""),
        ("429s", _num(run.throttled), "warn" if run.throttled else ""),
        ("retries", _num(run.retries), "warn" if run.retries else ""),
        ("reconciled", _num(run.reconciled), ""),
        ("rows succeeded", _num(run.succeeded), ""),
        ("rows failed", _num(run.failed), "bad" if run.failed else ""),
    )
    return RunView(
        number=number,
        command=run.command,
        started=when(run.started_at),
        finished=finished,
        duration=duration,
        outcome=outcome,
        reason=run.reason,
        figures=figures,
        chart=rate_chart(run),
        bucket_seconds=_duration(run.bucket_seconds),
    )


def _nice_step(span: float, most: int) -> float:
    """The smallest 1-2-2.5-5 × 10^k step that cuts `span` into at most `most` parts."""
    raw = span / most if span > 0 else 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10.0 * magnitude  # pragma: no cover - the loop always returns


# Steps for the time axis, in seconds: round clock intervals.
_TIME_STEPS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
               86400)


def _time_label(seconds: float, step: float) -> str:
    """Elapsed time as a tick label: `0`, `0:30` (steps under a minute), `5 min`, `1 h`,
    `1 h 30`."""
    whole = round(seconds)
    if whole == 0:
        return "0"
    if step < 60:
        minutes, secs = divmod(whole, 60)
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(whole // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes:02d}" if minutes else f"{hours} h"


def rate_chart(run: RunRecord) -> RateChart | None:
    """Lay out the run's request rate (requests per minute, one bar per non-empty bucket of its
    timeline) against its budget (`budget_per_second * 60`); None if it recorded no request.

    The x axis spans the recorded buckets (or the run's duration, if longer), in seconds since
    the run started; the y axis runs from 0 to a round value above both the peak and the
    budget, so the budget line is always inside the plot.
    """
    if not any(run.timeline):
        return None
    bucket = run.bucket_seconds if run.bucket_seconds > 0 else 60.0
    per_minute = 60.0 / bucket
    rates = [count * per_minute for count in run.timeline]
    budget = run.budget_per_second * 60.0
    span = max(len(rates) * bucket, run.duration or 0.0)
    y_step = _nice_step(max(max(rates), budget) * 1.08, 5)
    y_max = y_step * math.ceil(max(max(rates), budget) * 1.08 / y_step)

    left, right = PLOT_LEFT, CHART_WIDTH - PLOT_RIGHT
    top, bottom = PLOT_TOP, CHART_HEIGHT - PLOT_BOTTOM

    def x_of(seconds: float) -> float:
        return left + (right - left) * seconds / span

    def y_of(rate: float) -> float:
        return bottom - (bottom - top) * rate / y_max

    width = x_of(bucket) - left
    gap = width * 0.15 if width >= 3 else 0.0
    bars = tuple(
        Bar(
            x=round(x_of(i * bucket) + gap / 2, 2),
            y=round(min(y_of(rate), bottom - 1), 2),  # at least 1 unit tall: never invisible
            width=round(max(width - gap, 0.5), 2),
            height=round(max(bottom - y_of(rate), 1.0), 2),
            over=budget > 0 and rate > budget,
            title=f"{when(run.started_at + i * bucket)}: {_num(count)} request(s) in "
                  f"{_duration(bucket)} = {_num(rate)}/min",
        )
        for i, (count, rate) in enumerate(zip(run.timeline, rates, strict=True))
        if count
    )
    step = next((s for s in _TIME_STEPS if span / s <= 8), _TIME_STEPS[-1])
    x_ticks = tuple(
        Tick(round(x_of(k * step), 2), _time_label(k * step, step))
        for k in range(int(span // step) + 1)
    )
    y_ticks = tuple(
        Tick(round(y_of(k * y_step), 2), _num(k * y_step))
        for k in range(round(y_max / y_step) + 1)
    )
    peak = max(rates)
    return RateChart(
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        budget_y=round(y_of(budget), 2) if budget > 0 else None,
        budget_label=f"budget {_num(budget)}/min",
        peak_label=f"peak {_num(peak)}/min",
        x_title="time since the run started" + (" (m:ss)" if step < 60 else ""),
        summary=(
            f"Requests per minute over {_duration(span)}: peak {_num(peak)}/min"
            + (f" against a budget of {_num(budget)}/min" if budget > 0 else "")
        ),
    )


def _error_view(error: ErrorCount) -> ErrorView:
    return ErrorView(
        code=error.code or "",
        count=error.count,
        hint=error.hint or "",
        first_line=error.first_line,
        message=error.message,
    )


def _problem_view(op: OpRecord) -> ProblemView:
    error = op.error
    return ProblemView(
        line=op.spec.line,
        key=op.spec.key,
        action=op.spec.action.value,
        status=op.state.value,
        attempts=op.attempts,
        code=(error.code or "") if error else "",
        message=error.message if error else "",
        hint=(error.hint or "") if error else "",
        request_id=(error.request_id or "") if error else "",
        note=note_of(op) or "",
    )
