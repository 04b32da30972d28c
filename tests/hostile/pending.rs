//! THE PENDING LIST: rows whose documented outcome the gateway does not give yet, each with
//! the defect it shows. The corpus expects these rows to fail; one that passes fails the
//! test until it is taken off this list, so the list only shrinks. A row's name is given
//! without its ` h1` / ` h2` suffix (both versions are pending).

use super::Row;

/// `(table, row, defect)`. Empty today: every row gives its documented outcome. A row
/// that stops giving it goes here, with its defect, until it is fixed.
pub const PENDING: &[(&str, &str, &str)] = &[];

/// The defect a row shows, if it is pending.
pub fn defect(row: &str) -> Option<&'static str> {
    let name = row.strip_suffix(" h1").or_else(|| row.strip_suffix(" h2")).unwrap_or(row);
    PENDING.iter().find(|(_, r, _)| *r == name).map(|(_, _, d)| *d)
}

/// Every pending entry of `table` names a row that exists (a renamed row must not leave a
/// stale entry that silently passes).
pub fn check_names(table: &str, rows: &[Row]) {
    for (t, name, _) in PENDING.iter().filter(|(t, _, _)| *t == table) {
        assert!(
            rows.iter().any(|r| defect(&r.name).is_some() && r.name.starts_with(name)),
            "pending entry {name} (table {t}) names no row"
        );
    }
}
