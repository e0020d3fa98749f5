//! Both backends' migrations are numbered identically (no database needed).

use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_names() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let postgres = names(&here.join("migrations"));
    let sqlite = names(&here.join("../ward-store-sqlite/migrations"));
    assert!(!postgres.is_empty(), "no migrations found");
    assert!(
        postgres
            .iter()
            .all(|n| Path::new(n).extension().is_some_and(|e| e == "sql"))
    );
    assert_eq!(postgres, sqlite);
}
