//! Whether the database answers: a trivial query for `/healthz`.

use crate::store::{Store, StoreError};

impl Store {
    /// `SELECT 1` on a pooled connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A test hook: close the pool, as a database that went away (every query fails after it).
    #[doc(hidden)]
    pub async fn close_for_test(&self) {
        self.pool.close().await;
    }
}
