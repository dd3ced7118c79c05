//! `retl check` and `retl templates`: what can be verified before a run, with IO.

use retl_source::Source;
use retl_state::State;
use serde::Serialize;

use crate::config::{Activation, Destination, FirstRun};

/// What `retl check` found for one destination.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationCheck {
    /// The destination.
    pub name: String,
    /// Its `type`.
    pub kind: &'static str,
    /// What its healthcheck found (for Trustpilot: token, business units,
    /// templates) and every problem.
    #[serde(flatten)]
    pub report: retl_destination::Report,
    /// Problems of an activation's own settings the destination found (a
    /// template id its target names that does not exist), by activation.
    #[serde(skip)]
    pub activation_problems: Vec<(String, String)>,
}

/// What `retl check` found for one activation.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationCheck {
    /// The activation.
    pub name: String,
    /// Its destination's name.
    pub destination: String,
    /// Its source, when it could be inspected.
    pub source: Option<SourceCheck>,
    /// Things that work but may be slow or surprising (a cursor column
    /// without an index). Not problems: `retl check` still passes.
    pub warnings: Vec<String>,
    /// Whether its first run is still to come, and what it would send.
    pub first_run: Option<FirstRunCheck>,
    /// Its `schedule:` (`manual` when it has none).
    pub schedule: String,
    /// When `retl schedule` runs it next (RFC 3339, UTC), if it is scheduled.
    pub next_run: Option<String>,
    /// Why a safety limit (the first-run guard, the surge guard, a renamed
    /// activation) would refuse its next run, found by previewing it
    /// (`null`: it would not be refused).
    pub next_run_refused: Option<String>,
    /// The monthly allowances it sends under (`limits.max_per_month`) and
    /// what is left of each this month.
    pub allowances: Vec<crate::Allowance>,
    /// The approval (`retl approve`) open for its next run, if one is: that
    /// run goes past the safety limits.
    pub approval: Option<retl_state::Approval>,
    /// Its rows that need attention: failing (and since when), uncertain,
    /// given up (none while no state database exists).
    pub attention: retl_state::Attention,
    /// Every problem found.
    pub problems: Vec<String>,
}

/// An activation's source as `retl check` saw it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceCheck {
    /// The connection URL, password masked.
    pub connection: String,
    /// `table NAME` or `query`.
    pub model: String,
    /// Each column read: name, database type, and the type retl reads it as.
    pub columns: Vec<ColumnCheck>,
    /// `source.diff`: `retl` or `warehouse`.
    pub diff: &'static str,
    /// With `diff: warehouse`: retl's key table (`schema.name`).
    pub key_table: Option<String>,
    /// With `diff: warehouse`: whether the key table is there yet (its first
    /// run makes it otherwise).
    pub key_table_exists: Option<bool>,
    /// With `diff: warehouse` and a key table: how many keys it holds that
    /// this state never settled (each would hide its row; the next run
    /// removes them).
    pub key_table_unknown_keys: Option<u64>,
}

/// One column of a source.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnCheck {
    /// Its name.
    pub name: String,
    /// Its type as the database names it.
    pub db_type: String,
    /// The Arrow type retl reads it as.
    pub reads_as: String,
}

/// Whether an activation's first run is pending, and how many rows it would send.
#[derive(Debug, Clone, Serialize)]
pub struct FirstRunCheck {
    /// No run of the activation has completed yet.
    pub pending: bool,
    /// `send_all` or `skip_existing`.
    pub mode: &'static str,
    /// The model's rows, counted by the database (not read), when the first
    /// run is pending.
    pub rows: Option<u64>,
    /// How many of them the first run would send: all of them with
    /// `send_all`, none with `skip_existing` (they become the baseline).
    pub would_send: Option<u64>,
}

/// The destination's healthcheck (for Trustpilot: a fresh token, and the
/// business units and template ids of its defaults and of `activations`).
pub async fn check_destination(
    destination: &Destination,
    activations: &[&Activation],
) -> DestinationCheck {
    let deliveries: Vec<_> = activations.iter().map(|a| &a.delivery).collect();
    let mut report = destination.check(&deliveries).await;
    let activation_problems = std::mem::take(&mut report.deliveries)
        .into_iter()
        .filter_map(|(i, problem)| Some((activations.get(i)?.name.clone(), problem)))
        .collect();
    DestinationCheck {
        name: destination.name().to_owned(),
        kind: destination.type_name(),
        report,
        activation_problems,
    }
}

/// What `retl check` can tell of the next run from the state: when it is
/// due, its allowances, and (by previewing it) whether a safety limit would
/// refuse it.
async fn foresee(
    state: &State,
    activation: &Activation,
    destination: &Destination,
    check: &mut ActivationCheck,
) {
    let now = state.clock().now();
    let last = state.list_runs(Some(&activation.name), 1).await;
    let last_started = last
        .ok()
        .and_then(|runs| runs.into_iter().next())
        .and_then(|r| chrono::DateTime::parse_from_rfc3339(&r.started_at).ok())
        .map(|t| t.to_utc());
    check.next_run = activation
        .schedule
        .first_due(last_started, now)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    match crate::allowances(state, activation).await {
        Ok(found) => check.allowances = found,
        Err(e) => check.warnings.push(format!("allowances: {e}")),
    }
    match state.waiting_approval(&activation.name).await {
        Ok(approval) => check.approval = approval,
        Err(e) => check.warnings.push(format!("approvals: {e}")),
    }
    match state.attention(&activation.name).await {
        Ok(attention) => check.attention = attention,
        Err(e) => check.warnings.push(format!("rows needing attention: {e}")),
    }
    match crate::preview(
        state,
        activation,
        destination,
        &crate::RunOptions::default(),
    )
    .await
    {
        Ok(preview) => {
            check.next_run_refused = preview.refused;
            check.warnings.extend(preview.first_run_note);
        }
        Err(e) => check.warnings.push(format!(
            "{PREVIEW_FAILED}: {}",
            retl_config::with_causes(&e)
        )),
    }
}

/// A dbt model whose SQL file changed after dbt's manifest was written.
fn stale_manifest(activation: &Activation) -> Option<String> {
    let model = activation.dbt.as_ref().filter(|m| m.manifest_is_stale())?;
    Some(format!(
        "dbt's manifest {} is older than {}: the model changed since dbt last parsed the project; run `dbt parse` (or `dbt run -s {}`)",
        model.manifest.display(),
        model
            .sql_file
            .as_deref()
            .unwrap_or(std::path::Path::new("?"))
            .display(),
        model.name
    ))
}

/// What a source problem of a dbt model adds: it may not be built.
fn not_built(model: &retl_source::DbtModel) -> String {
    format!(
        " (dbt model `{}`, relation {}: is it built? `dbt run -s {}`)",
        model.name, model.relation, model.name
    )
}

/// How the warning of a preview that failed begins.
pub(crate) const PREVIEW_FAILED: &str = "the next run could not be previewed";

/// The first-run guard's verdict on a first run of `rows` rows, without a
/// state database to preview it with.
fn first_run_guard(activation: &Activation, rows: Option<u64>) -> Option<String> {
    let max = activation.limits.first_run_max();
    let rows = rows.filter(|rows| *rows > max && !activation.first_run_explicit)?;
    Some(format!(
        "refused by a safety limit; nothing sent: this is its first run and it would send {rows} rows, more than limits.first_run_max ({max}). Choose first_run: send_all or skip_existing, or run it with --limit N as a canary"
    ))
}

/// Connects to the activation's source and checks, without reading a row,
/// that every key and mapped column exists with a usable type (all problems
/// at once); reports whether its first run is pending and how many rows it
/// would send.
pub async fn check_activation(
    state: Option<&State>,
    activation: &Activation,
    destination: &Destination,
) -> ActivationCheck {
    let mut check = check_unmasked(state, activation, destination).await;
    // A driver's or a server's message may quote an option it was given.
    for text in check.problems.iter_mut().chain(&mut check.warnings) {
        *text = activation.secrets.mask(text);
    }
    check
}

async fn check_unmasked(
    state: Option<&State>,
    activation: &Activation,
    destination: &Destination,
) -> ActivationCheck {
    let name = activation.name.as_str();
    let mut check = ActivationCheck {
        name: name.to_owned(),
        destination: activation.destination.clone(),
        source: None,
        first_run: None,
        schedule: activation.schedule.to_string(),
        next_run: None,
        next_run_refused: None,
        allowances: Vec::new(),
        approval: None,
        attention: retl_state::Attention::default(),
        warnings: Vec::new(),
        problems: Vec::new(),
    };
    match state {
        Some(state) => foresee(state, activation, destination, &mut check).await,
        // No state database yet: nothing has run.
        None => {
            check.next_run = activation
                .schedule
                .first_due(None, chrono::Utc::now())
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }
    // No state database yet: nothing has run.
    let completed = match state {
        Some(state) => state.has_completed_run(name).await,
        None => Ok(false),
    };
    let pending = match completed {
        Ok(done) => !done,
        Err(e) => {
            check.problems.push(format!("state database: {e}"));
            false
        }
    };
    check.warnings.extend(stale_manifest(activation));
    let inspection = match Source::inspect(&activation.source_spec(), pending).await {
        Ok(inspection) => inspection,
        Err(error) => {
            // A dbt model that is in the manifest but not in the warehouse.
            let built = activation.dbt.as_ref().map_or_else(String::new, not_built);
            check.problems.extend(
                error
                    .problems()
                    .into_iter()
                    .map(|p| format!("source of activation `{name}`: {p}{built}")),
            );
            return check;
        }
    };
    check.source = Some(SourceCheck {
        connection: retl_source::redact_url(&activation.source.connection),
        model: match &activation.source.model {
            retl_source::Model::Table(table) => format!("table {table}"),
            retl_source::Model::Query(_) => "query".to_owned(),
        },
        columns: inspection
            .columns
            .iter()
            .zip(inspection.schema.fields())
            .map(|((column, db_type), field)| ColumnCheck {
                name: column.clone(),
                db_type: db_type.clone(),
                reads_as: field.data_type().to_string(),
            })
            .collect(),
        diff: activation.source.diff.as_str(),
        key_table: None,
        key_table_exists: None,
        key_table_unknown_keys: None,
    });
    if activation.source.diff == retl_source::Diff::Warehouse {
        check_key_table(state, activation, &inspection, &mut check).await;
    }
    check_cursor_index(activation, &mut check).await;
    let skip = activation.first_run == FirstRun::SkipExisting;
    if state.is_none() && pending {
        check.next_run_refused = first_run_guard(activation, inspection.rows);
    }
    check.first_run = Some(FirstRunCheck {
        pending,
        mode: activation.first_run.as_str(),
        rows: inspection.rows,
        would_send: inspection.rows.map(|n| if skip { 0 } else { n }),
    });
    let misfit =
        match destination.rows(&activation.delivery, &inspection.schema, chrono::Utc::now()) {
            Ok(fits) => fits.err().map(|e| e.to_string()),
            Err(bug) => Some(bug.to_string()),
        };
    if let Some(e) = misfit {
        check.problems.push(format!("activation `{name}`: {e}"));
    }
    check
}

/// Cursor mode: a warning when no index serves the cursor column.
async fn check_cursor_index(activation: &Activation, check: &mut ActivationCheck) {
    if let Some(incremental) = &activation.source.incremental {
        match Source::inspect_cursor(&activation.source_spec(), &incremental.cursor).await {
            Some(false) => check.warnings.push(format!(
                "source.incremental.cursor `{}` leads no index: each cursor run scans the whole table; create one (e.g. CREATE INDEX ON {} ({}))",
                incremental.cursor,
                match &activation.source.model {
                    retl_source::Model::Table(table) => table.as_str(),
                    retl_source::Model::Query(_) => "…",
                },
                incremental.cursor
            )),
            Some(true) => {}
            None => check.warnings.push(format!(
                "source.incremental.cursor `{}`: whether an index serves it cannot be told {}; make sure one does (or, on a warehouse without indexes, that the table is clustered or partitioned by it)",
                incremental.cursor,
                if activation.source.adbc.is_some() {
                    "through an ADBC driver"
                } else {
                    "for a query"
                }
            )),
        }
    }
}

/// `source.diff: warehouse`: the key columns can be kept, and retl may
/// make (or write to) its key table; a problem names the GRANT to run.
async fn check_key_table(
    state: Option<&State>,
    activation: &Activation,
    inspection: &retl_source::Inspection,
    check: &mut ActivationCheck,
) {
    let name = activation.name.as_str();
    for column in &activation.primary_key {
        if let Ok(field) = inspection.schema.field_with_name(column)
            && !retl_source::KeyTable::keeps(field.data_type())
        {
            check.problems.push(format!(
                "activation `{name}`: source.diff: warehouse keeps keys of integer, text, decimal and UUID columns; primary key column `{column}` is {}",
                inspection
                    .columns
                    .iter()
                    .find(|(c, _)| c == column)
                    .map_or_else(|| field.data_type().to_string(), |(_, t)| t.clone())
            ));
        }
    }
    // The table is this state's: without a state identity, no run made one.
    let owner = match state {
        Some(state) => state.existing_identity().await.ok().flatten(),
        None => None,
    };
    // An ADBC source's dialect, where the configuration does not say it,
    // is the vendor name its driver reports.
    let adbc = match &activation.source.adbc {
        Some(adbc) => {
            let limits = (
                activation.source.connect_timeout,
                activation.source.read_timeout,
            );
            match adbc.resolved(limits).await {
                Ok(adbc) => Some(adbc),
                Err(e) => {
                    check
                        .problems
                        .push(format!("source of activation `{name}`: {e}"));
                    return;
                }
            }
        }
        None => None,
    };
    let table = match retl_source::KeyTable::new(
        &activation.source.connection,
        &activation.source.model,
        adbc.as_ref(),
        &activation.source.diff_schema,
        name,
        owner.as_deref().unwrap_or_default(),
        &activation.primary_key,
    ) {
        Ok(table) => table,
        Err(e) => {
            check
                .problems
                .push(format!("source of activation `{name}`: {e}"));
            return;
        }
    };
    let shown = table.display();
    match table.probe().await {
        Ok((exists, allowed)) => {
            if let Some(source) = &mut check.source {
                source.key_table = owner.is_some().then(|| shown.clone());
                source.key_table_exists = Some(exists && owner.is_some());
            }
            if let (true, Some(state)) = (exists && owner.is_some(), state) {
                check_key_table_keys(state, activation, &table, check).await;
            }
            if allowed == Some(false) {
                check.problems.push(format!(
                    "activation `{name}`: source.diff: warehouse: retl may not {} its key table `{shown}`; run: {}",
                    if exists { "read and write" } else { "make" },
                    table.grant()
                ));
            }
        }
        Err(e) => check
            .problems
            .push(format!("source of activation `{name}`: {e}")),
    }
}

/// Keys in the key table that this state never settled: reported (the
/// next run removes them), never trusted.
async fn check_key_table_keys(
    state: &State,
    activation: &Activation,
    table: &retl_source::KeyTable,
    check: &mut ActivationCheck,
) {
    let name = activation.name.as_str();
    match crate::run::unknown_keys(state, activation, table, &activation.source_spec()).await {
        Ok(unknown) => {
            if let Some(source) = &mut check.source {
                source.key_table_unknown_keys = Some(unknown.keys.len() as u64);
            }
            if let Some(first) = unknown.first {
                check.problems.push(format!(
                    "activation `{name}`: retl's key table `{}` holds {} key(s) this state never settled (the first: {first}): written by a person or a script, they would hide their rows; the next run removes them and decides those rows",
                    table.display(),
                    unknown.keys.len()
                ));
            }
        }
        Err(e) => check
            .problems
            .push(format!("source of activation `{name}`: {e}")),
    }
}
