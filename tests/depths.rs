//! The dead-letter depths gauges and alerts read come from counts maintained by triggers (a
//! delta row per statement, folded by the leader), not from counting the table. They must
//! stay exact whatever opens or closes dead letters, concurrently, between and during folds.

mod common;

use common::{TestEnv, seed};
use hookgate::store::Store;
use std::collections::BTreeMap;

const PAIRS: [(&str, &str); 3] = [
    ("github", "ci"),
    ("github", "deploy"),
    ("stripe", "billing"),
];

/// One writer's mix of what opens and closes dead letters: bulk inserts (a failed delivery,
/// a bury), replays, replays undone, purges and retention's deletes, with folds in between.
async fn churn(env: &TestEnv, store: &Store, writer: usize) {
    for round in 0..12 {
        let (source, destination) = PAIRS[(writer + round) % PAIRS.len()];
        match round % 4 {
            0 => seed::dead_letters(&env.db, source, destination, 7).await,
            1 => {
                sqlx::query(
                    "UPDATE dead_letters SET replayed_at = now() WHERE id IN
                         (SELECT id FROM dead_letters WHERE source = $1 AND replayed_at IS NULL
                          ORDER BY random() LIMIT 3)",
                )
                .bind(source)
                .execute(&env.db)
                .await
                .unwrap();
            }
            2 => {
                // Half of the rows touched stay closed: no delta for them.
                sqlx::query(
                    "UPDATE dead_letters SET replayed_at = CASE WHEN random() < 0.5
                         THEN NULL ELSE replayed_at END
                     WHERE id IN (SELECT id FROM dead_letters ORDER BY random() LIMIT 6)",
                )
                .execute(&env.db)
                .await
                .unwrap();
            }
            _ => {
                sqlx::query(
                    "DELETE FROM dead_letters WHERE id IN
                         (SELECT id FROM dead_letters ORDER BY random() LIMIT 4)",
                )
                .execute(&env.db)
                .await
                .unwrap();
            }
        }
        if round % 3 == writer % 3 {
            store.fold_dead_letter_counts().await.unwrap();
        }
    }
}

async fn counted(env: &TestEnv) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT source, count(*) FROM dead_letters WHERE replayed_at IS NULL GROUP BY source",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn maintained_depths_equal_a_count_after_concurrent_changes_and_folds() {
    let env = TestEnv::new().await;
    let store = Store::connect_lazy(&env.database_url, 8).unwrap();
    store.migrate().await.unwrap();
    seed::dead_letters(&env.db, "github", "ci", 5).await;

    futures::future::join_all((0..4).map(|writer| churn(&env, &store, writer))).await;
    let depths = |rows: Vec<(String, i64)>| -> BTreeMap<String, i64> {
        rows.into_iter().filter(|(_, n)| *n != 0).collect()
    };
    assert_eq!(
        depths(store.dead_letter_depth().await.unwrap()),
        counted(&env).await
    );

    store.fold_dead_letter_counts().await.unwrap();
    assert_eq!(
        depths(store.dead_letter_depth().await.unwrap()),
        counted(&env).await
    );
    // Folded: one row per pair with open dead letters, however many statements ran.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letter_counts")
        .fetch_one(&env.db)
        .await
        .unwrap();
    let pairs: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT (source, destination)) FROM dead_letters WHERE replayed_at IS NULL",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(rows, pairs);
}
