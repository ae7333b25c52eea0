//! The bad-input table in `docs/reliability.md` names, in every row, the tests that show what
//! the user gets. This keeps it honest: every row names at least one test, written
//! `` `path/to/file.rs::test_name` ``, and that file defines that function.

use std::path::Path;

const SECTION: &str = "## Bad input";

#[test]
fn every_row_of_the_bad_input_table_names_tests_that_exist() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(repo.join("docs/reliability.md"))
        .unwrap_or_else(|e| panic!("cannot read docs/reliability.md: {e}"));
    let start = doc
        .find(SECTION)
        .unwrap_or_else(|| panic!("docs/reliability.md has no {SECTION:?} section"));
    let section = &doc[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let rows: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| input"))
        .collect();
    assert!(rows.len() >= 40, "only {} rows in the table", rows.len());
    let mut missing = Vec::new();
    let mut named = 0;
    for row in &rows {
        let refs: Vec<&str> = row
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|r| r.contains(".rs::"))
            .collect();
        assert!(!refs.is_empty(), "a row names no test: {row}");
        for r in refs {
            let (file, name) = r.split_once("::").unwrap_or((r, ""));
            let text = std::fs::read_to_string(repo.join(file)).unwrap_or_default();
            if !text.contains(&format!("fn {name}(")) {
                missing.push(r.to_string());
            }
            named += 1;
        }
    }
    assert!(
        missing.is_empty(),
        "the table names tests that do not exist: {missing:#?}"
    );
    assert!(named >= rows.len());
}
