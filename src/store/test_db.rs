//! `TestDb`, the one throw-away PostgreSQL database of the store suite and the integration tests: created uniquely named, dropped with the value.
//!
//! Public (and hidden from the docs) only because the integration tests are
//! another crate; nothing in the exchange uses it.

/// The variable naming the PostgreSQL server tests may create databases on
/// (an admin URL; its database part is replaced by each test's own).
pub const POSTGRES_URL_VAR: &str = "CADREX_TEST_POSTGRES_URL";

/// The PostgreSQL admin URL tests use, or `None` (with a printed notice, so
/// that a skipped variant is visible in the test output) when unset.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "notice: {POSTGRES_URL_VAR} is not set; skipping the PostgreSQL variant of this test"
            );
            None
        }
    }
}

/// A uniquely named PostgreSQL database, dropped when this value is (also
/// when the test panics, so a failed run leaves nothing behind).
pub struct TestDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates the database on the server at [`POSTGRES_URL_VAR`]; panics when
    /// the variable is unset or the server unreachable (callers check
    /// [`postgres_admin_url`] or use [`TestDb::if_configured`] first).
    pub async fn create() -> TestDb {
        use sqlx::Connection;
        let admin_url = postgres_admin_url().expect("postgres URL");
        let name = format!("cadrex_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL at CADREX_TEST_POSTGRES_URL is unreachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let url = replace_db(&admin_url, &name);
        TestDb {
            admin_url,
            name,
            url,
        }
    }

    /// A new database when PostgreSQL is configured, else `None` after the notice.
    pub async fn if_configured() -> Option<TestDb> {
        match postgres_admin_url() {
            Some(_) => Some(TestDb::create().await),
            None => None,
        }
    }
}

/// `url` naming database `db`, keeping scheme, credentials, host and query.
fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..path_start])
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime that must not be blocked on, or
        // outside any; a short-lived thread with its own runtime does the
        // async cleanup either way.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                    let _ = c.close().await;
                }
            })
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::replace_db;

    #[test]
    fn replace_db_keeps_everything_but_the_database() {
        assert_eq!(
            replace_db("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(replace_db("postgres://h", "x"), "postgres://h/x");
    }
}
