//! The behaviour every backend must have, run against each of them (see the `backends!` list in
//! `main.rs`).

use std::time::{Duration, SystemTime};

use orc_state::{
    Checkpoint, Claim, Error, Lease, LeaseOwner, ModelMetric, RunCursor, RunFilter, RunState,
    StateOptions, Store,
};
use serde_json::json;

use crate::support::{Harness, at, checkpoint, new_run, options};

pub(crate) async fn runs_round_trip(h: &Harness) {
    let s = &h.store;
    let run = new_run("r1", "summarize", 10);
    s.create_run(&run).await.unwrap();
    let row = s.run("r1").await.unwrap().unwrap();
    assert_eq!(row.run_id, "r1");
    assert_eq!(row.pipeline_id, "summarize");
    assert_eq!(row.pipeline_path, "pipelines/summarize.yaml");
    assert_eq!(row.pipeline_hash, "hash-of-summarize");
    assert_eq!(row.status, RunState::Running);
    assert_eq!(
        row.started_at, run.started_at,
        "times keep their microseconds"
    );
    assert_eq!(row.finished_at, None);
    assert_eq!(row.steps_done, 0);
    // Same value and same key order.
    assert_eq!(row.inputs, run.inputs);
    assert_eq!(row.inputs.to_string(), run.inputs.to_string());

    assert!(s.run("nope").await.unwrap().is_none());
    let again = s.create_run(&run).await.unwrap_err();
    assert!(
        matches!(&again, Error::RunExists { run_id } if run_id == "r1"),
        "{again}"
    );
    // The failed create changed nothing.
    assert_eq!(s.run("r1").await.unwrap().unwrap(), row);
    assert!(!s.describe().contains("password"));
    assert_eq!(format!("{s:?}"), format!("Store({:?})", s.describe()));
}

pub(crate) async fn checkpoints_append_in_order(h: &Harness) {
    let s = &h.store;
    s.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let mut want = Vec::new();
    for n in 0..3 {
        let cp = checkpoint(&format!("step-{n}"), n);
        s.append("r1", std::slice::from_ref(&cp)).await.unwrap();
        want.push(cp);
    }
    // A model step with every optional field, a Unicode id and an envelope zstd shrinks.
    let big = Checkpoint {
        step_id: "résumé/for[2]".to_owned(),
        status: "failed".to_owned(),
        envelope: json!({"result": "words ".repeat(2000), "success": false, "error": "boom"}),
        started_at: Some(at(100)),
        completed_at: None,
        attempts: 3,
        model: Some("small".to_owned()),
        usage: Some(json!({"input_tokens": 12, "output_tokens": 3})),
        cost: Some(0.000_125),
    };
    let group: Vec<Checkpoint> = (0..15)
        .map(|n| checkpoint(&format!("loop[{n}]"), 10 + n))
        .chain([big])
        .collect();
    s.append("r1", &group).await.unwrap();
    want.extend(group);
    s.append("r1", &[]).await.unwrap();

    assert_eq!(s.checkpoints("r1").await.unwrap(), want);
    assert_eq!(s.run("r1").await.unwrap().unwrap().steps_done, 19);
    assert!(s.checkpoints("nope").await.unwrap().is_empty());

    let missing = s.append("nope", &[checkpoint("a", 1)]).await.unwrap_err();
    assert!(
        matches!(&missing, Error::RunNotFound { run_id } if run_id == "nope"),
        "{missing}"
    );
    let missing = s
        .append("nope", &[checkpoint("a", 1), checkpoint("b", 2)])
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::RunNotFound { .. }));

    // A step retried after a resume is appended again; both stay, in order.
    s.append("r1", &[checkpoint("step-0", 99)]).await.unwrap();
    let all = s.checkpoints("r1").await.unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(all[19], checkpoint("step-0", 99));
}

pub(crate) async fn compression_is_per_record(h: &Harness) {
    let packed = &h.store;
    let plain = h
        .reopen(StateOptions {
            compression: false,
            ..options(None)
        })
        .await
        .unwrap();
    packed.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let envelope = json!({"result": "the same line again\n".repeat(500), "success": true});
    let cp = Checkpoint {
        envelope,
        ..checkpoint("big", 1)
    };
    packed
        .append("r1", std::slice::from_ref(&cp))
        .await
        .unwrap();
    plain.append("r1", std::slice::from_ref(&cp)).await.unwrap();
    let document = "{\"doc\": true}".repeat(1000);
    packed
        .finish_run("r1", RunState::Completed, Some(document.as_bytes()))
        .await
        .unwrap();
    for store in [packed, &plain] {
        assert_eq!(
            store.checkpoints("r1").await.unwrap(),
            vec![cp.clone(), cp.clone()]
        );
        assert_eq!(
            store.result_document("r1").await.unwrap().unwrap(),
            document.as_bytes()
        );
    }
}

pub(crate) async fn finish_and_reopen(h: &Harness) {
    let s = &h.store;
    s.create_run(&new_run("r1", "p", 1)).await.unwrap();
    assert_eq!(s.result_document("r1").await.unwrap(), None);
    let before = SystemTime::now() - Duration::from_secs(1);
    let document = br#"{"status":"interrupted","steps":{}}"#;
    s.finish_run("r1", RunState::Interrupted, Some(document))
        .await
        .unwrap();
    let row = s.run("r1").await.unwrap().unwrap();
    assert_eq!(row.status, RunState::Interrupted);
    assert!(row.finished_at.unwrap() >= before);
    assert_eq!(s.result_document("r1").await.unwrap().unwrap(), document);

    // A resume reopens the run: running again, no finish time, no stale document.
    s.finish_run("r1", RunState::Running, None).await.unwrap();
    let row = s.run("r1").await.unwrap().unwrap();
    assert_eq!((row.status, row.finished_at), (RunState::Running, None));
    assert_eq!(s.result_document("r1").await.unwrap(), None);

    let binary: Vec<u8> = (0..=255).collect();
    s.finish_run("r1", RunState::Failed, Some(&binary))
        .await
        .unwrap();
    assert_eq!(s.result_document("r1").await.unwrap().unwrap(), binary);
    assert_eq!(s.run("r1").await.unwrap().unwrap().status, RunState::Failed);

    let missing = s
        .finish_run("nope", RunState::Completed, None)
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::RunNotFound { .. }), "{missing}");
    assert_eq!(s.result_document("nope").await.unwrap(), None);
}

pub(crate) async fn history_lists_newest_first(h: &Harness) {
    let s = &h.store;
    // a1..a6 of pipeline a, b1..b3 of b; a5 and a6 start at the same time.
    let runs = [
        ("a1", "a", 1, RunState::Completed),
        ("b1", "b", 2, RunState::Failed),
        ("a2", "a", 3, RunState::Failed),
        ("a3", "a", 4, RunState::Running),
        ("b2", "b", 5, RunState::Completed),
        ("a4", "a", 6, RunState::Completed),
        ("a5", "a", 7, RunState::Interrupted),
        ("a6", "a", 7, RunState::Completed),
        ("b3", "b", 8, RunState::Running),
    ];
    for (id, pipeline, secs, status) in runs {
        s.create_run(&new_run(id, pipeline, secs)).await.unwrap();
        if status != RunState::Running {
            s.finish_run(id, status, None).await.unwrap();
        }
    }
    let ids = |filter: RunFilter| async move {
        let rows = s.list_runs(&filter).await.unwrap();
        rows.into_iter().map(|r| r.run_id).collect::<Vec<_>>()
    };
    let all = RunFilter {
        limit: 0,
        ..RunFilter::default()
    };
    assert_eq!(
        ids(all.clone()).await,
        ["b3", "a6", "a5", "a4", "b2", "a3", "a2", "b1", "a1"]
    );
    assert_eq!(
        ids(RunFilter {
            limit: 2,
            ..all.clone()
        })
        .await,
        ["b3", "a6"]
    );
    assert_eq!(
        ids(RunFilter {
            status: Some(RunState::Completed),
            ..all.clone()
        })
        .await,
        ["a6", "a4", "b2", "a1"]
    );
    assert_eq!(
        ids(RunFilter {
            pipeline_id: Some("b".into()),
            ..all.clone()
        })
        .await,
        ["b3", "b2", "b1"]
    );
    let a_completed = RunFilter {
        status: Some(RunState::Completed),
        pipeline_id: Some("a".into()),
        ..all.clone()
    };
    assert_eq!(ids(a_completed.clone()).await, ["a6", "a4", "a1"]);
    assert_eq!(
        ids(RunFilter {
            limit: 2,
            ..a_completed
        })
        .await,
        ["a6", "a4"]
    );
    assert!(
        ids(RunFilter {
            pipeline_id: Some("none".into()),
            ..all.clone()
        })
        .await
        .is_empty()
    );
    let rows = s.list_runs(&all).await.unwrap();
    assert_eq!(rows[0], s.run("b3").await.unwrap().unwrap());
    assert_eq!(rows[1].status, RunState::Completed);
    // A reopened run moves between the status lists.
    s.finish_run("a1", RunState::Running, None).await.unwrap();
    assert_eq!(
        ids(RunFilter {
            status: Some(RunState::Running),
            ..all.clone()
        })
        .await,
        ["b3", "a3", "a1"]
    );

    // Page by page, each after the last run of the one before: every run once, in order,
    // the two that started at the same time included.
    let pages = |filter: RunFilter, size: u32| async move {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .list_runs(&RunFilter {
                    limit: size,
                    after: after.clone(),
                    ..filter.clone()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(RunCursor {
                started_at: last.started_at,
                run_id: last.run_id.clone(),
            });
            seen.extend(page.into_iter().map(|r| r.run_id));
        }
        seen
    };
    for size in [1, 2, 4] {
        assert_eq!(
            pages(all.clone(), size).await,
            ["b3", "a6", "a5", "a4", "b2", "a3", "a2", "b1", "a1"],
            "pages of {size}"
        );
    }
    assert_eq!(
        pages(
            RunFilter {
                pipeline_id: Some("a".into()),
                ..all.clone()
            },
            2
        )
        .await,
        ["a6", "a5", "a4", "a3", "a2", "a1"]
    );
    assert_eq!(
        pages(
            RunFilter {
                status: Some(RunState::Completed),
                ..all
            },
            1
        )
        .await,
        ["a6", "a4", "b2"]
    );
    // A run started between two pages is newer than every page: it neither repeats a run
    // nor hides one.
    let first = s
        .list_runs(&RunFilter {
            limit: 2,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    s.create_run(&new_run("c1", "c", 9)).await.unwrap();
    let second = s
        .list_runs(&RunFilter {
            limit: 2,
            after: first.last().map(|r| RunCursor {
                started_at: r.started_at,
                run_id: r.run_id.clone(),
            }),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let ids_of =
        |rows: &[orc_state::RunRow]| rows.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
    assert_eq!(
        (ids_of(&first), ids_of(&second)),
        (
            vec!["b3".to_owned(), "a6".into()],
            vec!["a5".to_owned(), "a4".into()]
        )
    );
}

/// Whether `owner` got the lease.
async fn claims(s: &Store, run_id: &str, owner: &str, lease: Duration) -> bool {
    matches!(s.claim(run_id, owner, lease).await.unwrap(), Claim::Held(_))
}

pub(crate) async fn leases_exclude_other_owners(h: &Harness) {
    let s = &h.store;
    s.create_run(&new_run("r1", "p", 1)).await.unwrap();
    assert!(!s.run("r1").await.unwrap().unwrap().held);
    let long = Duration::from_secs(60);
    assert!(claims(s, "r1", "a", long).await);
    assert!(s.run("r1").await.unwrap().unwrap().held);
    assert_eq!(
        s.claim("r1", "b", long).await.unwrap(),
        Claim::Refused { holder: "a".into() }
    );
    assert!(claims(s, "r1", "a", long).await, "the holder renews");
    s.release("r1", "b").await.unwrap();
    assert!(
        !claims(s, "r1", "b", long).await,
        "b cannot release a's lease"
    );
    s.release("r1", "a").await.unwrap();
    assert!(!s.run("r1").await.unwrap().unwrap().held);
    assert!(claims(s, "r1", "b", long).await);
    s.release("r1", "b").await.unwrap();

    // An expired lease is free, and the run shows as held by nobody.
    assert!(claims(s, "r1", "a", Duration::from_millis(100)).await);
    assert!(!claims(s, "r1", "b", long).await);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!s.run("r1").await.unwrap().unwrap().held);
    assert!(!s.list_runs(&RunFilter::default()).await.unwrap()[0].held);
    assert!(claims(s, "r1", "b", long).await);
    assert!(s.list_runs(&RunFilter::default()).await.unwrap()[0].held);

    let missing = s.claim("nope", "a", long).await.unwrap_err();
    assert!(matches!(missing, Error::RunNotFound { .. }), "{missing}");
    s.release("nope", "a").await.unwrap();
}

pub(crate) async fn fenced_writes_are_refused_after_a_takeover(h: &Harness) {
    let s = &h.store;
    s.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let short = Duration::from_millis(100);
    let long = Duration::from_secs(60);
    let a = s.claim("r1", "a", short).await.unwrap().lease().unwrap();
    s.append_leased(&a, &[checkpoint("one", 1)]).await.unwrap();
    s.renew(&a, short).await.unwrap();
    assert_eq!(
        s.claim("r1", "a", short).await.unwrap(),
        Claim::Held(a.clone()),
        "claiming again renews, same generation"
    );
    // `a` stalls past its lease; `b` takes the run over.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let b = s.claim("r1", "b", long).await.unwrap().lease().unwrap();
    assert!(b.generation > a.generation, "{a:?} {b:?}");
    for refused in [
        s.append_leased(&a, &[checkpoint("two", 2), checkpoint("three", 3)])
            .await
            .unwrap_err(),
        s.append_leased(&a, &[checkpoint("two", 2)])
            .await
            .unwrap_err(),
        s.finish_leased(&a, RunState::Completed, Some(b"{}"))
            .await
            .unwrap_err(),
        s.renew(&a, long).await.unwrap_err(),
    ] {
        assert!(
            matches!(&refused, Error::LeaseLost { run_id, holder: Some(h) } if run_id == "r1" && h == "b"),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("lost the run's lease to b"),
            "{refused}"
        );
    }
    // Nothing `a` tried was written; `b` writes.
    assert_eq!(s.checkpoints("r1").await.unwrap().len(), 1);
    let row = s.run("r1").await.unwrap().unwrap();
    assert_eq!((row.status, row.steps_done), (RunState::Running, 1));
    s.append_leased(&b, &[checkpoint("two", 2)]).await.unwrap();
    s.finish_leased(&b, RunState::Completed, Some(b"{}"))
        .await
        .unwrap();
    s.release("r1", "b").await.unwrap();
    // Released: `b`'s lease writes nothing more either; a released lease has no holder.
    let e = s.renew(&b, long).await.unwrap_err();
    assert!(matches!(&e, Error::LeaseLost { holder: None, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("lost the run's lease to another orc process"),
        "{e}"
    );
    assert!(s.append_leased(&b, &[checkpoint("x", 9)]).await.is_err());
    assert_eq!(s.checkpoints("r1").await.unwrap().len(), 2);
    // `a` claiming again is a new owner as far as the fence goes.
    let a2 = s.claim("r1", "a", long).await.unwrap().lease().unwrap();
    assert!(a2.generation > b.generation);
    assert!(s.append_leased(&a, &[checkpoint("x", 9)]).await.is_err());

    // A lease that expired with nobody taking the run still fences nothing out.
    s.create_run(&new_run("r2", "p", 2)).await.unwrap();
    let c = s.claim("r2", "c", short).await.unwrap().lease().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    s.append_leased(&c, &[checkpoint("late", 1)]).await.unwrap();
    s.renew(&c, long).await.unwrap();
    assert!(!claims(s, "r2", "d", long).await, "renewed again");

    let missing = Lease {
        run_id: "nope".into(),
        owner: "a".into(),
        generation: 1,
    };
    for e in [
        s.renew(&missing, long).await.unwrap_err(),
        s.append_leased(&missing, &[checkpoint("x", 1)])
            .await
            .unwrap_err(),
        s.finish_leased(&missing, RunState::Failed, None)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, Error::RunNotFound { .. }), "{e}");
    }
}

/// The token of a process that has exited (and been reaped), on this machine.
async fn dead_owner() -> LeaseOwner {
    let me = LeaseOwner::this_process().await;
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    LeaseOwner { pid, ..me }
}

pub(crate) async fn a_dead_holders_lease_is_taken_over_at_once(h: &Harness) {
    if !cfg!(target_os = "linux") {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("SKIPPED: telling a dead holder needs Linux's /proc");
        }
        return;
    }
    let s = &h.store;
    s.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let long = Duration::from_secs(60);
    let dead = dead_owner().await.to_string();
    let old = s.claim("r1", &dead, long).await.unwrap().lease().unwrap();
    // A process of this machine that is gone, or whose pid another process has now.
    let me = LeaseOwner::this_process().await;
    let reused = LeaseOwner {
        start: "1".into(),
        ..me.clone()
    }
    .to_string();
    let new = s
        .claim("r1", &me.to_string(), long)
        .await
        .unwrap()
        .lease()
        .unwrap();
    assert!(new.generation > old.generation);
    let e = s
        .append_leased(&old, &[checkpoint("a", 1)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::LeaseLost { .. }), "{e}");

    s.create_run(&new_run("r2", "p", 2)).await.unwrap();
    assert!(claims(s, "r2", &reused, long).await);
    assert!(
        claims(s, "r2", &LeaseOwner::this_process().await.to_string(), long).await,
        "the holder's pid is another process now"
    );
}

pub(crate) async fn a_live_or_unknown_holders_lease_is_refused(h: &Harness) {
    let s = &h.store;
    let long = Duration::from_secs(60);
    let dead = dead_owner().await;
    let holders = [
        // This process: alive.
        LeaseOwner::this_process().await.to_string(),
        // The same pid in another pid namespace (a container), or on another host or boot.
        LeaseOwner {
            pid_ns: "1".into(),
            ..dead.clone()
        }
        .to_string(),
        LeaseOwner {
            host: "elsewhere".into(),
            ..dead.clone()
        }
        .to_string(),
        LeaseOwner {
            boot: "another-boot".into(),
            ..dead.clone()
        }
        .to_string(),
        // An older orc's owner, which says only its pid.
        format!("pid {}", dead.pid),
    ];
    for (n, holder) in holders.iter().enumerate() {
        let run_id = format!("r{n}");
        s.create_run(&new_run(&run_id, "p", n as u64))
            .await
            .unwrap();
        assert!(claims(s, &run_id, holder, long).await);
        let me = LeaseOwner::this_process().await.to_string();
        assert_eq!(
            s.claim(&run_id, &me, long).await.unwrap(),
            Claim::Refused {
                holder: holder.clone()
            },
            "{holder}"
        );
    }
}

pub(crate) async fn only_one_concurrent_claim_wins(h: &Harness) {
    let other = h.reopen(options(None)).await.unwrap();
    h.store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let mut generations = Vec::new();
    for round in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = if i % 2 == 0 {
                h.store.clone()
            } else {
                other.clone()
            };
            tasks.spawn(async move {
                store
                    .claim("r1", &format!("owner-{round}-{i}"), Duration::from_secs(60))
                    .await
                    .unwrap()
            });
        }
        let winners: Vec<Lease> = tasks
            .join_all()
            .await
            .into_iter()
            .filter_map(Claim::lease)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}");
        generations.push(winners[0].generation);
        // Free the lease for the next round by letting every owner release.
        for i in 0..8 {
            h.store
                .release("r1", &format!("owner-{round}-{i}"))
                .await
                .unwrap();
        }
    }
    assert!(
        generations.windows(2).all(|w| w[0] < w[1]),
        "{generations:?}"
    );
}

pub(crate) async fn concurrent_appends_keep_every_checkpoint(h: &Harness) {
    let other = h.reopen(options(None)).await.unwrap();
    h.store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..6u64 {
        let store = if writer % 2 == 0 {
            h.store.clone()
        } else {
            other.clone()
        };
        tasks.spawn(async move {
            for n in 0..10 {
                let cps = vec![
                    checkpoint(&format!("w{writer}-{n}"), writer * 100 + n);
                    1 + (n as usize % 3)
                ];
                store.append("r1", &cps).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
    let all = h.store.checkpoints("r1").await.unwrap();
    // 6 writers × (4×1 + 3×2 + 3×3) checkpoints.
    assert_eq!(all.len(), 6 * 19);
    assert_eq!(h.store.run("r1").await.unwrap().unwrap().steps_done, 6 * 19);
    // Each writer's checkpoints appear in the order it appended them, groups unbroken.
    for writer in 0..6 {
        let mine: Vec<&str> = all
            .iter()
            .map(|c| c.step_id.as_str())
            .filter(|id| id.starts_with(&format!("w{writer}-")))
            .collect();
        let want: Vec<String> = (0..10u64)
            .flat_map(|n| vec![format!("w{writer}-{n}"); 1 + (n as usize % 3)])
            .collect();
        assert_eq!(mine, want);
    }
    // Each group is contiguous: a run of identical ids exactly as long as its group.
    let mut i = 0;
    while i < all.len() {
        let id = &all[i].step_id;
        let n: usize = id.rsplit('-').next().unwrap().parse().unwrap();
        let size = 1 + n % 3;
        assert!(
            all[i..i + size].iter().all(|c| &c.step_id == id),
            "group {id} at {i} is broken up"
        );
        i += size;
    }
}

pub(crate) async fn prune_deletes_old_unleased_runs(h: &Harness) {
    let s = &h.store;
    for (id, secs) in [("old1", 1), ("old2", 2), ("leased", 3), ("new", 100)] {
        s.create_run(&new_run(id, "p", secs)).await.unwrap();
        s.append(id, &[checkpoint("a", 1), checkpoint("b", 2)])
            .await
            .unwrap();
        s.finish_run(id, RunState::Completed, Some(b"{}"))
            .await
            .unwrap();
    }
    assert!(claims(s, "leased", "me", Duration::from_secs(60)).await);
    assert_eq!(s.prune(at(50)).await.unwrap(), 2);
    for gone in ["old1", "old2"] {
        assert!(s.run(gone).await.unwrap().is_none());
        assert!(s.checkpoints(gone).await.unwrap().is_empty());
        assert_eq!(s.result_document(gone).await.unwrap(), None);
    }
    for kept in ["leased", "new"] {
        assert_eq!(s.checkpoints(kept).await.unwrap().len(), 2);
    }
    let listed: Vec<String> = s
        .list_runs(&RunFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(listed, ["new", "leased"]);
    assert!(
        s.list_runs(&RunFilter {
            status: Some(RunState::Completed),
            pipeline_id: Some("p".into()),
            limit: 0,
            after: None,
        })
        .await
        .unwrap()
        .iter()
        .all(|r| r.run_id == "new" || r.run_id == "leased")
    );
    // Once released, the leased run goes too; nothing is left to prune after that.
    s.release("leased", "me").await.unwrap();
    assert_eq!(s.prune(at(50)).await.unwrap(), 1);
    assert_eq!(s.prune(at(50)).await.unwrap(), 0);
    // Pruned ids can be used again.
    s.create_run(&new_run("old1", "p", 1)).await.unwrap();
    assert_eq!(s.run("old1").await.unwrap().unwrap().steps_done, 0);
}

pub(crate) async fn model_metrics_round_trip(h: &Harness) {
    let s = &h.store;
    let metric = |model: &str, secs: u64, success: bool| ModelMetric {
        model: model.to_owned(),
        provider: "openai".to_owned(),
        at: at(secs),
        latency_ms: 123.5,
        success,
        input_tokens: 100,
        output_tokens: 20,
        cost: 0.0015,
        ..crate::support::upstream()
    };
    for secs in [1, 2, 3, 4] {
        s.record_model_metric(&metric("small", secs, secs % 2 == 0))
            .await
            .unwrap();
    }
    // The same call twice is two records.
    s.record_model_metric(&metric("small", 4, true))
        .await
        .unwrap();
    s.record_model_metric(&metric("large", 5, true))
        .await
        .unwrap();
    let got = s.model_metrics("small", at(2), 0).await.unwrap();
    assert_eq!(
        got,
        vec![
            metric("small", 4, true),
            metric("small", 4, true),
            metric("small", 3, false),
            metric("small", 2, true)
        ]
    );
    assert_eq!(s.model_metrics("small", at(0), 1).await.unwrap().len(), 1);
    assert_eq!(
        s.model_metrics("large", at(0), 0).await.unwrap(),
        vec![metric("large", 5, true)]
    );
    assert!(s.model_metrics("none", at(0), 0).await.unwrap().is_empty());
    // Several calls in one write, for several models; an empty write is no write.
    s.record_model_metrics(&[
        metric("batched", 10, true),
        metric("batched", 11, false),
        metric("large", 12, true),
    ])
    .await
    .unwrap();
    s.record_model_metrics(&[]).await.unwrap();
    assert_eq!(
        s.model_metrics("batched", at(0), 0).await.unwrap(),
        vec![metric("batched", 11, false), metric("batched", 10, true)]
    );
    assert_eq!(
        s.model_metrics("large", at(0), 0).await.unwrap(),
        vec![metric("large", 12, true), metric("large", 5, true)]
    );
}

/// The store refuses to open a store that a newer orc wrote.
pub(crate) async fn newer_schema_is_refused(h: &Harness) {
    h.store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    match h.kind {
        crate::support::Kind::Sqlite => {
            let mut c = h.sqlite_connection().await;
            sqlx::query(
                "INSERT INTO orc_schema_migrations (version, description, success, checksum, execution_time)
                 VALUES (99, 'from the future', TRUE, x'00', 0)",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        crate::support::Kind::Postgres => {
            let mut c = h.pg_connection().await;
            sqlx::query(
                "INSERT INTO orc_schema_migrations (version, description, success, checksum, execution_time)
                 VALUES (99, 'from the future', TRUE, '\\x00', 0)",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        crate::support::Kind::Redis => {
            let mut c = h.redis_connection().await;
            redis::cmd("SET")
                .arg(format!("{}schema", h.redis_prefix()))
                .arg(99)
                .query_async::<()>(&mut c)
                .await
                .unwrap();
        }
    }
    let e = h.reopen(options(None)).await.unwrap_err();
    assert!(matches!(&e, Error::SchemaTooNew { found: 99, .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains("schema version 99"), "{message}");
    assert!(message.contains("hint: upgrade orc"), "{message}");
}

/// A store whose backend goes away mid-run fails calls with a retryable error, and works with
/// nothing lost once the backend is back. Runs through a TCP proxy the test can cut.
pub(crate) async fn backend_going_away_is_an_error(store: &Store, proxy: &crate::support::Proxy) {
    store.create_run(&new_run("r1", "p", 1)).await.unwrap();
    store.append("r1", &[checkpoint("a", 1)]).await.unwrap();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut failures = 0;
    for n in 0..3 {
        match store.append("r1", &[checkpoint("during", n)]).await {
            Ok(()) => panic!("append succeeded with the server gone"),
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                failures += 1;
            }
        }
    }
    assert_eq!(failures, 3);
    assert!(store.run("r1").await.is_err());
    proxy.restore().await;
    // The pool or connection manager reconnects by itself; allow it a few tries.
    let mut ok = false;
    for _ in 0..50 {
        if store.append("r1", &[checkpoint("b", 2)]).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the store never came back");
    let ids: Vec<String> = store
        .checkpoints("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.step_id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(store.run("r1").await.unwrap().unwrap().steps_done, 2);
}

/// What each run spent: its priced checkpoints summed, a retried step's both attempts counted
/// (both were paid), unpriced steps and unknown or cost-free runs left out.
pub(crate) async fn run_costs_sum_each_runs_checkpoints(h: &Harness) {
    let s = &h.store;
    let priced = |step: &str, n: u64, cost: f64| Checkpoint {
        model: Some("small".to_owned()),
        cost: Some(cost),
        ..checkpoint(step, n)
    };
    for (id, secs) in [("a", 1), ("b", 2), ("free", 3)] {
        s.create_run(&new_run(id, "summarize", secs)).await.unwrap();
    }
    s.append("a", &[priced("x", 1, 0.25), checkpoint("y", 2)])
        .await
        .unwrap();
    s.append("a", &[priced("x", 3, 0.5)]).await.unwrap();
    s.append("b", &[priced("x", 1, 0.125)]).await.unwrap();
    s.append("free", &[checkpoint("x", 1)]).await.unwrap();
    let ids: Vec<String> = ["a", "b", "free", "nope"].map(str::to_owned).to_vec();
    let costs = s.run_costs(&ids).await.unwrap();
    assert_eq!(costs.len(), 2, "{costs:?}");
    assert!((costs["a"] - 0.75).abs() < 1e-12, "{costs:?}");
    assert!((costs["b"] - 0.125).abs() < 1e-12, "{costs:?}");
    assert!(s.run_costs(&[]).await.unwrap().is_empty());
}
