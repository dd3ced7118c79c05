//! The daemon's page at `/`: for support ("did she get an invitation?") and
//! for the people who watch volume. Plain HTML made on the server with
//! maud, which escapes every value it is given; no JavaScript.
//!
//! - `/`: each activation's status (healthy, run failed, refused, rows
//!   failing, stale), last
//!   success, next run and what it sent in the last 24 hours and 30 days;
//!   invitations sent per day (30 days) as inline SVG; the runs, filtered
//!   (`?activation=`, `?status=`) a page at a time (`?before=`).
//! - `/?run=ID`: a run and its rows sorted by outcome, then key, a page at
//!   a time (`&page=N`), each with what was sent (no name, no email).
//! - `/?q=…`: a search by reference, key or the customer's email.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use retl_state::{FoundRow, RowLog, RowOutcome, RunFilter, RunMatch, RunStatus, RunSummary, State};
use serde::Deserialize;

use super::metrics::{Metrics, Planned};

/// `/?…`: what the page shows.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    /// A run to show.
    run: Option<String>,
    /// A reference, key or email to search.
    q: Option<String>,
    /// A page of a run's rows, from 0.
    page: Option<u32>,
    /// Only runs of this activation.
    activation: Option<String>,
    /// Only runs with this status.
    status: Option<String>,
    /// Runs started before this time (the next page).
    before: Option<String>,
}

/// Rows of a run per page.
const ROWS_PAGE: u32 = 500;
/// Runs per page.
const RUNS_PAGE: u32 = 50;
/// Days in the chart.
const CHART_DAYS: i64 = 30;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.sent,.healthy,.completed{color:#176f2c}.rejected,.failed,.run-failed,.rows-failing{color:#a11}\
.uncertain,.refused,.given_up,.stale,.suppressed{color:#a60}form{margin:1em 0}input[type=search]{width:24em}\
.chart{margin:.2em 0}.chart text{font-size:10px;fill:#555}.chart rect{fill:#4a7fb5}code{font-size:90%}";

/// What the page needs besides the state: the daemon's plan and metrics.
pub(crate) struct Context<'a> {
    /// The state's URL, password masked.
    pub state_url: &'a str,
    /// The daemon's metrics (plan, allowances, reload problems).
    pub metrics: &'a Metrics,
}

/// The page for `q`.
pub(crate) async fn render(
    state: &State,
    ctx: &Context<'_>,
    q: &PageQuery,
) -> Result<String, String> {
    let err = |e: retl_state::Error| e.to_string();
    let body = if let Some(needle) = q.q.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        // An address is looked up by its keyed hash: emails are not stored.
        let rows = if needle.contains('@') {
            state.find_rows_by_contact(needle, None, 200).await
        } else {
            state.find_rows(needle, None, 200).await
        }
        .map_err(err)?;
        search(needle, &rows)
    } else if let Some(given) = q.run.as_deref() {
        match state.match_run(given, None).await.map_err(err)? {
            RunMatch::One(id) => {
                let page = q.page.unwrap_or(0);
                let summary = state.run(&id).await.map_err(err)?;
                let (rows, more) = state
                    .run_rows_by_outcome(&id, page.saturating_mul(ROWS_PAGE), ROWS_PAGE)
                    .await
                    .map_err(err)?;
                run(&id, summary.as_ref(), &rows, page, more)
            }
            _ => html! { p { "No run matches " code { (given) } "." } },
        }
    } else {
        let status = q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse::<RunStatus>)
            .transpose()?;
        let activation = q.activation.as_deref().filter(|a| !a.is_empty());
        let filter = RunFilter {
            activation,
            status,
            since: None,
            before: q.before.clone().filter(|b| !b.is_empty()),
        };
        let runs = state.find_runs(&filter, RUNS_PAGE).await.map_err(err)?;
        let overview = overview(state, ctx.metrics).await.map_err(err)?;
        let since = (state.clock().now() - chrono::Duration::days(CHART_DAYS - 1))
            .date_naive()
            .format("%Y-%m-%d")
            .to_string();
        let per_day = state.sent_per_day(&since).await.map_err(err)?;
        let approvals = state.open_approvals().await.map_err(err)?;
        let names: Vec<&str> = overview.iter().map(|o| o.name.as_str()).collect();
        html! {
            (overview_table(&overview))
            (chart(&per_day, &since, state.clock().now()))
            (allowances(ctx.metrics))
            (approvals_section(&approvals))
            (runs_section(&runs, &names, activation, status))
        }
    };
    Ok(page(ctx, q, &body).into_string())
}

fn page(ctx: &Context<'_>, q: &PageQuery, body: &Markup) -> Markup {
    let problems = ctx.metrics.reload_problems();
    let drift = ctx.metrics.config_drift();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "retl" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { a href="/" { "retl" } }
                p { "State: " code { (ctx.state_url) } }
                form method="get" action="/" role="search" {
                    label for="q" { "Find a row by reference, key or the customer's email" }
                    " "
                    input type="search" id="q" name="q" value=(q.q.as_deref().unwrap_or_default());
                    " "
                    button type="submit" { "Search" }
                }
                @if let Some(drift) = &drift {
                    div id="drift" class="failed" { p { (drift) } }
                }
                @if !problems.is_empty() {
                    div id="reload" class="failed" {
                        p { "The configuration has problems; those files keep their previous version until fixed (then send SIGHUP):" }
                        ul { @for problem in &problems { li { code { (problem) } } } }
                    }
                }
                (body)
            }
        }
    }
}

/// One activation at a glance.
struct Glance {
    name: String,
    status: &'static str,
    /// Its rows failing, and since when.
    failing: Option<(u64, String)>,
    last_success: Option<String>,
    next: Option<DateTime<Utc>>,
    sent_day: u64,
    sent_month: u64,
}

/// Every activation the daemon plans or the state has runs of.
async fn overview(state: &State, metrics: &Metrics) -> retl_state::Result<Vec<Glance>> {
    let plan = metrics.plan();
    let mut names: Vec<String> = plan.keys().cloned().collect();
    for name in state.activations_with_runs().await? {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.sort();
    let now = state.clock().now();
    let ago = |d: chrono::Duration| (now - d).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut out = Vec::new();
    for name in names {
        let last = state.list_runs(Some(&name), 1).await?.into_iter().next();
        let last_success = state.last_success(&name).await?;
        let planned = plan.get(&name).cloned().unwrap_or_default();
        let attention = state.attention(&name).await?;
        let failing = (attention.failing > 0).then(|| {
            let since = attention.failing_since.clone().unwrap_or_default();
            (attention.failing, since)
        });
        out.push(Glance {
            status: or_rows_failing(
                status(last.as_ref(), last_success.as_deref(), &planned, now),
                failing.is_some(),
            ),
            failing,
            sent_day: state
                .sent_since(&name, &ago(chrono::Duration::days(1)))
                .await?,
            sent_month: state
                .sent_since(&name, &ago(chrono::Duration::days(30)))
                .await?,
            next: planned.next,
            last_success,
            name,
        });
    }
    Ok(out)
}

/// `status` (found by its runs), but `rows failing` in place of `stale` and
/// `healthy` while rows wait on an error (a failed or refused run says more).
fn or_rows_failing(status: &'static str, failing: bool) -> &'static str {
    match status {
        "stale" | "healthy" if failing => "rows failing",
        status => status,
    }
}

/// An activation's status: `run failed` or `refused` by its last run;
/// `stale` when two of its scheduled runs should have completed since its
/// last successful one (or none ever did); else `healthy`.
fn status(
    last: Option<&RunSummary>,
    last_success: Option<&str>,
    planned: &Planned,
    now: DateTime<Utc>,
) -> &'static str {
    match last.map(|r| r.status) {
        Some(RunStatus::Failed | RunStatus::Abandoned) => return "run failed",
        Some(RunStatus::Refused) => return "refused",
        _ => {}
    }
    let success = last_success
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.to_utc());
    let overdue = match (&planned.schedule, success) {
        (Some(schedule), Some(at)) => schedule
            .next_after(at)
            .and_then(|first| schedule.next_after(first))
            .is_some_and(|second| second < now),
        (Some(schedule), None) => last.is_some() && schedule.is_scheduled(),
        (None, _) => false,
    };
    if overdue { "stale" } else { "healthy" }
}

fn overview_table(glances: &[Glance]) -> Markup {
    html! {
        h2 { "Activations" }
        @if glances.is_empty() {
            p { "No activation has run yet." }
        } @else {
            table id="overview" {
                tr { th { "Activation" } th { "Status" } th { "Last success" } th { "Next run" } th { "Sent, 24 h" } th { "Sent, 30 days" } }
                @for g in glances {
                    tr {
                        td { a href={ "/?activation=" (g.name) } { (g.name) } }
                        td class=(g.status.replace(' ', "-")) {
                            (g.status)
                            @if let Some((rows, since)) = &g.failing {
                                " (" (rows) " row(s) since " (since) ")"
                            }
                        }
                        td { (g.last_success.as_deref().unwrap_or("never")) }
                        td { (g.next.map_or_else(|| "—".to_owned(), |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))) }
                        td { (g.sent_day) }
                        td { (g.sent_month) }
                    }
                }
            }
        }
    }
}

/// Invitations sent per day per activation, `CHART_DAYS` days from `since`:
/// a bar chart each, as inline SVG.
fn chart(per_day: &[(String, String, u64)], since: &str, now: DateTime<Utc>) -> Markup {
    let mut by: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for (activation, day, n) in per_day {
        by.entry(activation).or_default().insert(day, *n);
    }
    let days: Vec<String> = (0..CHART_DAYS)
        .rev()
        .map(|i| {
            (now - chrono::Duration::days(i))
                .date_naive()
                .format("%Y-%m-%d")
                .to_string()
        })
        .collect();
    let (width, height, bar) = (CHART_DAYS * 14 + 40, 80_i64, 12_i64);
    html! {
        h2 { "Invitations sent per day (since " (since) ")" }
        @if by.is_empty() {
            p id="chart" { "None sent in these " (CHART_DAYS) " days." }
        } @else {
            div id="chart" {
                @for (activation, counts) in &by {
                    @let top = counts.values().copied().max().unwrap_or(1).max(1);
                    p { strong { (activation) } " (most in a day: " (top) ")" }
                    svg class="chart" width=(width) height=(height + 16) role="img" aria-label={ "invitations sent per day by " (activation) } {
                        @for (i, day) in days.iter().enumerate() {
                            @let n = counts.get(day.as_str()).copied().unwrap_or(0);
                            @let h = i64::try_from(n.saturating_mul(u64::try_from(height).unwrap_or(80)) / top).unwrap_or(height);
                            @let x = i64::try_from(i).unwrap_or(0) * 14 + 30;
                            rect x=(x) y=(height - h) width=(bar) height=(h) {
                                title { (day) ": " (n) }
                            }
                        }
                        text x="0" y="10" { (top) }
                        text x="0" y=(height) { "0" }
                        text x="30" y=(height + 14) { (days.first().map_or("", String::as_str)) }
                        text x=(width - 70) y=(height + 14) { (days.last().map_or("", String::as_str)) }
                    }
                }
            }
        }
    }
}

fn allowances(metrics: &Metrics) -> Markup {
    let allowances = metrics.allowance_table();
    html! {
        @if !allowances.is_empty() {
            h2 { "Allowances this month" }
            table id="allowances" {
                tr { th { "Activation" } th { "Of" } th { "Allowance" } th { "Sent" } th { "Left" } }
                @for (activation, a) in &allowances {
                    tr { td { (activation) } td { (a.of) } td { (a.limit) } td { (a.sent) } td { (a.left()) } }
                }
            }
        }
    }
}

fn approvals_section(approvals: &[retl_state::Approval]) -> Markup {
    html! {
        @if !approvals.is_empty() {
            h2 { "Open approvals" }
            p { "The next run of each goes past its safety limits once (" code { "retl approve ACTIVATION --revoke" } " withdraws it)." }
            table id="approvals" {
                tr { th { "Activation" } th { "By" } th { "At" } th { "Answers" } th { "Expires" } }
                @for a in approvals {
                    tr {
                        td { (a.activation) }
                        td { (a.approved_by) }
                        td { (a.approved_at) }
                        td { (a.refused_run.as_deref().map_or("ahead of a refusal".to_owned(), |r| format!("refused run {r}"))) }
                        td { (a.expires_at.as_deref().unwrap_or("-")) }
                    }
                }
            }
        }
    }
}

fn runs_section(
    runs: &[RunSummary],
    names: &[&str],
    activation: Option<&str>,
    status: Option<RunStatus>,
) -> Markup {
    let next = runs
        .last()
        .filter(|_| runs.len() == RUNS_PAGE as usize)
        .map(|r| r.started_at.clone());
    html! {
        h2 { "Runs" }
        form method="get" action="/" id="filters" {
            label for="activation" { "Activation " }
            select id="activation" name="activation" {
                option value="" { "all" }
                @for name in names {
                    option value=(name) selected[activation == Some(*name)] { (name) }
                }
            }
            " "
            label for="status" { "Status " }
            select id="status" name="status" {
                option value="" { "all" }
                @for s in RunStatus::ALL {
                    option value=(s.as_str()) selected[status == Some(*s)] { (s.as_str()) }
                }
            }
            " "
            button type="submit" { "Filter" }
        }
        (runs_table(runs))
        @if let Some(before) = next {
            p {
                a id="older" href={ "/?activation=" (activation.unwrap_or_default()) "&status=" (status.map_or("", RunStatus::as_str)) "&before=" (before) } { "Older runs" }
            }
        }
    }
}

fn runs_table(runs: &[RunSummary]) -> Markup {
    html! {
        table id="runs" {
            tr {
                th { "Run" } th { "Activation" } th { "Status" } th { "Started" } th { "Read" } th { "New" }
                th { "Sent" } th { "Rejected" } th { "Failed" } th { "Uncertain" } th { "Given up" }
                th { "Suppressed" } th { "Skipped" } th { "Reason" }
            }
            @for r in runs {
                @let c = &r.counts;
                tr {
                    td { a href={ "/?run=" (r.run_id) } { (r.run_id) } }
                    td { (r.activation) }
                    td class=(r.status.as_str()) { (r.status.as_str()) }
                    td { (r.started_at) }
                    td { (c.read) } td { (c.new) } td { (c.sent) } td { (c.rejected) } td { (c.failed) }
                    td { (c.uncertain) } td { (c.given_up) } td { (c.suppressed) } td { (c.skipped) }
                    td { (r.error.as_deref().unwrap_or_default()) }
                }
            }
        }
    }
}

/// What was sent, in a line: the request without the person (see
/// `Rows::recorded`), its fields as `key: value`.
fn what_was_sent(row: &RowLog) -> String {
    fn flat(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flat(&key, v, out);
                }
            }
            serde_json::Value::Array(items) => {
                let texts: Vec<String> = items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect();
                out.push(format!("{prefix}: {}", texts.join(", ")));
            }
            serde_json::Value::String(s) => out.push(format!("{prefix}: {s}")),
            other => out.push(format!("{prefix}: {other}")),
        }
    }
    let mut out = Vec::new();
    if let Some(request) = &row.request {
        flat("", request, &mut out);
    }
    out.join("; ")
}

fn answer(row: &RowLog) -> String {
    let mut parts = Vec::new();
    if let Some(status) = row.details.status {
        parts.push(format!("HTTP {status}"));
    }
    if let Some(id) = &row.external_id {
        parts.push(format!("id {id}"));
    }
    if let Some(url) = &row.details.url {
        parts.push(url.clone());
    }
    parts.join(", ")
}

fn run(id: &str, summary: Option<&RunSummary>, rows: &[RowLog], page: u32, more: bool) -> Markup {
    html! {
        h2 { "Run " (id) }
        @if let Some(s) = summary { (runs_table(std::slice::from_ref(s))) }
        p { "Rows by outcome, then key (page " (page + 1) ")." }
        table id="rows" {
            tr { th { "Key" } th { "Reference" } th { "Outcome" } th { "Reason" } th { "Trustpilot" } th { "Sent" } }
            @for r in rows {
                tr {
                    td { (r.key) }
                    td { (r.reference.as_deref().unwrap_or_default()) }
                    td class=(r.outcome.as_str()) { (r.outcome.as_str()) }
                    td { (r.reason.as_deref().unwrap_or_default()) }
                    td { (answer(r)) }
                    td { (what_was_sent(r)) }
                }
            }
        }
        p {
            @if page > 0 {
                a id="previous" href={ "/?run=" (id) "&page=" (page - 1) } { "Previous " (ROWS_PAGE) " rows" }
                " "
            }
            @if more {
                a id="next" href={ "/?run=" (id) "&page=" (page + 1) } { "Next " (ROWS_PAGE) " rows" }
            }
        }
    }
}

fn search(needle: &str, rows: &[FoundRow]) -> Markup {
    let sent = rows.iter().find(|r| r.row.outcome == RowOutcome::Sent);
    html! {
        h2 { "Search: " (needle) }
        p id="verdict" {
            @if let Some(s) = sent {
                "Sent at " (s.at) " by run " a href={ "/?run=" (s.run_id) } { (s.run_id) } " (" (s.activation) ")."
            } @else if rows.is_empty() {
                "No run logged this reference, key or email."
            } @else {
                "Never sent. What the runs logged:"
            }
        }
        @if !rows.is_empty() {
            table id="found" {
                tr { th { "At" } th { "Run" } th { "Activation" } th { "Key" } th { "Reference" } th { "Outcome" } th { "Trustpilot" } th { "Reason" } th { "Sent" } }
                @for r in rows {
                    tr {
                        td { (r.at) }
                        td { a href={ "/?run=" (r.run_id) } { (r.run_id) } }
                        td { (r.activation) }
                        td { (r.row.key) }
                        td { (r.row.reference.as_deref().unwrap_or_default()) }
                        td class=(r.row.outcome.as_str()) { (r.row.outcome.as_str()) }
                        td { (answer(&r.row)) }
                        td { (r.row.reason.as_deref().unwrap_or_default()) }
                        td { (what_was_sent(&r.row)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_state_cannot_become_markup() {
        let hostile = "<script>alert('x') & \"y\"</script>";
        let mut row = RowLog::new(
            hostile,
            Some(hostile),
            RowOutcome::Rejected,
            Some(hostile.to_owned()),
        );
        row.request = Some(serde_json::json!({"locale": hostile}));
        let found = FoundRow {
            run_id: hostile.to_owned(),
            activation: hostile.to_owned(),
            at: hostile.to_owned(),
            row,
        };
        let html = search(hostile, &[found]).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert('x') &amp; &quot;y&quot;&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn what_was_sent_leaves_the_person_out_and_reads_as_a_line() {
        let mut row = RowLog::new("1", Some("1"), RowOutcome::Sent, None);
        row.request = Some(serde_json::json!({
            "locale": "en-US",
            "serviceReviewInvitation": {"templateId": "t1", "tags": ["a", "b"]}
        }));
        assert_eq!(
            what_was_sent(&row),
            "locale: en-US; serviceReviewInvitation.tags: a, b; serviceReviewInvitation.templateId: t1"
        );
    }
}
