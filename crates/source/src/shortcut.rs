//! `connection: snowflake://…` and `connection: bigquery://…`: the common
//! cloud warehouses written as one URL, read through their ADBC drivers
//! (the `snowflake` and `bigquery` drivers, found by name, or the library
//! a `driver=` parameter names). Each URL part maps to one of the driver's
//! documented database options; anything else in the URL is an error
//! naming what is accepted.
//!
//! ```text
//! snowflake://USER[:PASSWORD]@ACCOUNT/DATABASE[/SCHEMA][?warehouse=W&role=R&private_key_file=PATH]
//! bigquery://PROJECT[/DATASET][?credentials_file=PATH&location=L]
//! ```
//!
//! Snowflake: `username`, `password`, `adbc.snowflake.sql.account`, `.db`,
//! `.schema`, `.warehouse`, `.role`; `private_key_file` is key-pair (JWT)
//! auth (`adbc.snowflake.sql.auth_type=auth_jwt` and
//! `adbc.snowflake.sql.client_option.jwt_private_key`); `host`, `port` and
//! `protocol` reach another endpoint (`adbc.snowflake.sql.uri.*`).
//! For `BigQuery`: `adbc.bigquery.sql.project_id`, `.dataset_id`, `.location`; a
//! service account's JSON file (`credentials_file`), or else the
//! application default credentials.
//!
//! Option names are those of the drivers' 1.x releases (all checked
//! against the names compiled into the 1.11 libraries of both). A
//! driver that renames one needs `source.adbc` with its own options.

use percent_encoding::percent_decode_str;

use crate::Adbc;

const SNOWFLAKE_PARAMETERS: &[&str] = &[
    "warehouse",
    "role",
    "private_key_file",
    "host",
    "port",
    "protocol",
    "driver",
];
const BIGQUERY_PARAMETERS: &[&str] = &["credentials_file", "location", "driver"];

/// The ADBC driver and options of a `snowflake://` or `bigquery://` URL;
/// `None` for any other scheme.
pub(crate) fn adbc_of(connection: &str) -> Option<Result<Adbc, String>> {
    let scheme = connection.split_once("://")?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "snowflake" => Some(snowflake(connection)),
        "bigquery" => Some(bigquery(connection)),
        _ => None,
    }
}

fn decoded(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The URL's path parts, decoded, empty ones left out.
fn path_parts(url: &url::Url) -> Vec<String> {
    url.path()
        .split('/')
        .filter(|p| !p.is_empty())
        .map(decoded)
        .collect()
}

/// The query parameters, each checked against `allowed`.
fn parameters(url: &url::Url, allowed: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (key, value) in url.query_pairs() {
        if !allowed.contains(&key.as_ref()) {
            return Err(format!(
                "unknown parameter `{key}`; accepted: {}",
                allowed.join(", ")
            ));
        }
        out.push((key.into_owned(), value.into_owned()));
    }
    Ok(out)
}

fn parse(connection: &str) -> Result<url::Url, String> {
    // The error names no part of the URL: it may hold a password.
    url::Url::parse(connection).map_err(|e| format!("not a URL: {e}"))
}

fn snowflake(connection: &str) -> Result<Adbc, String> {
    let url = parse(connection)?;
    let account = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("no account: snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA")?;
    let mut options = vec![("adbc.snowflake.sql.account".to_owned(), decoded(account))];
    if !url.username().is_empty() {
        options.push(("username".to_owned(), decoded(url.username())));
    }
    if let Some(password) = url.password() {
        options.push(("password".to_owned(), decoded(password)));
    }
    let parts = path_parts(&url);
    if parts.len() > 2 {
        return Err("the path is DATABASE or DATABASE/SCHEMA".to_owned());
    }
    for (part, key) in parts
        .iter()
        .zip(["adbc.snowflake.sql.db", "adbc.snowflake.sql.schema"])
    {
        options.push((key.to_owned(), part.clone()));
    }
    let mut driver = "snowflake".to_owned();
    for (key, value) in parameters(&url, SNOWFLAKE_PARAMETERS)? {
        let option = match key.as_str() {
            "driver" => {
                driver = value;
                continue;
            }
            "private_key_file" => {
                options.push((
                    "adbc.snowflake.sql.auth_type".to_owned(),
                    "auth_jwt".to_owned(),
                ));
                "adbc.snowflake.sql.client_option.jwt_private_key".to_owned()
            }
            "host" | "port" | "protocol" => format!("adbc.snowflake.sql.uri.{key}"),
            other => format!("adbc.snowflake.sql.{other}"),
        };
        options.push((option, value));
    }
    Ok(Adbc {
        dialect: Some(crate::Dialect::Snowflake),
        ..Adbc::new(driver, options)
    })
}

fn bigquery(connection: &str) -> Result<Adbc, String> {
    let url = parse(connection)?;
    let project = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("no project: bigquery://PROJECT/DATASET")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "a BigQuery URL holds no user or password: use credentials_file=PATH (a service account's JSON key) or the application default credentials".to_owned(),
        );
    }
    let mut options = vec![("adbc.bigquery.sql.project_id".to_owned(), decoded(project))];
    match path_parts(&url).as_slice() {
        [] => {}
        [dataset] => options.push(("adbc.bigquery.sql.dataset_id".to_owned(), dataset.clone())),
        _ => return Err("the path is DATASET".to_owned()),
    }
    let mut driver = "bigquery".to_owned();
    let mut credentials = None;
    for (key, value) in parameters(&url, BIGQUERY_PARAMETERS)? {
        match key.as_str() {
            "driver" => driver = value,
            "credentials_file" => credentials = Some(value),
            _ => options.push((format!("adbc.bigquery.sql.{key}"), value)),
        }
    }
    match credentials {
        Some(path) => {
            options.push((
                "adbc.bigquery.sql.auth_type".to_owned(),
                "adbc.bigquery.sql.auth_type.json_credential_file".to_owned(),
            ));
            options.push(("adbc.bigquery.sql.auth_credentials".to_owned(), path));
        }
        None => options.push((
            "adbc.bigquery.sql.auth_type".to_owned(),
            "adbc.bigquery.sql.auth_type.app_default_credentials".to_owned(),
        )),
    }
    Ok(Adbc {
        dialect: Some(crate::Dialect::Bigquery),
        ..Adbc::new(driver, options)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(adbc: &Adbc) -> Vec<(&str, &str)> {
        adbc.options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn a_snowflake_url_maps_to_the_drivers_options() {
        let adbc = adbc_of(
            "snowflake://retl:p%40ss%3Aword@xy12345.eu-west-1/SHOP/SALES?warehouse=REPORTING&role=RETL",
        )
        .unwrap()
        .unwrap();
        assert_eq!(adbc.driver, "snowflake");
        assert_eq!(
            options(&adbc),
            [
                ("adbc.snowflake.sql.account", "xy12345.eu-west-1"),
                ("username", "retl"),
                ("password", "p@ss:word"),
                ("adbc.snowflake.sql.db", "SHOP"),
                ("adbc.snowflake.sql.schema", "SALES"),
                ("adbc.snowflake.sql.warehouse", "REPORTING"),
                ("adbc.snowflake.sql.role", "RETL"),
            ]
        );
        let jwt = adbc_of("snowflake://retl@acct/SHOP?private_key_file=/keys/retl.p8")
            .unwrap()
            .unwrap();
        assert_eq!(
            options(&jwt)[2..],
            [
                ("adbc.snowflake.sql.db", "SHOP"),
                ("adbc.snowflake.sql.auth_type", "auth_jwt"),
                (
                    "adbc.snowflake.sql.client_option.jwt_private_key",
                    "/keys/retl.p8"
                ),
            ]
        );
    }

    #[test]
    fn a_bigquery_url_maps_to_the_drivers_options() {
        let file =
            adbc_of("bigquery://my-project/analytics?credentials_file=/keys/sa.json&location=EU")
                .unwrap()
                .unwrap();
        assert_eq!(file.driver, "bigquery");
        assert_eq!(
            options(&file),
            [
                ("adbc.bigquery.sql.project_id", "my-project"),
                ("adbc.bigquery.sql.dataset_id", "analytics"),
                ("adbc.bigquery.sql.location", "EU"),
                (
                    "adbc.bigquery.sql.auth_type",
                    "adbc.bigquery.sql.auth_type.json_credential_file"
                ),
                ("adbc.bigquery.sql.auth_credentials", "/keys/sa.json"),
            ]
        );
        let adc = adbc_of("bigquery://my-project").unwrap().unwrap();
        assert_eq!(
            options(&adc)[1],
            (
                "adbc.bigquery.sql.auth_type",
                "adbc.bigquery.sql.auth_type.app_default_credentials"
            )
        );
    }

    #[test]
    fn what_a_shortcut_does_not_know_is_refused_without_its_secrets() {
        let unknown = adbc_of("snowflake://u:hunter2@acct/DB?wharehouse=W")
            .unwrap()
            .unwrap_err();
        assert!(
            unknown.contains("unknown parameter `wharehouse`"),
            "{unknown}"
        );
        assert!(unknown.contains("warehouse, role"), "{unknown}");
        assert!(!unknown.contains("hunter2"));
        assert!(adbc_of("bigquery://u:hunter2@p").unwrap().is_err());
        assert!(adbc_of("snowflake://u@acct/a/b/c").unwrap().is_err());
        assert!(adbc_of("postgres://u@h/db").is_none());
    }
}
