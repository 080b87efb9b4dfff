"""Internal tables (``_smithers_*``) as numbered migrations, recorded in ``_smithers_migrations``.

Portable SQL only: integer epoch-millisecond timestamps, JSON as TEXT, no dialect extensions,
except agent memory's full-text index (SQLite FTS5), kept in :mod:`smithers.storage.memory`.
"""

from __future__ import annotations

from .memory import MEMORY_DDL
from .queue import QUEUE_DDL

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "initial",
        [
            """CREATE TABLE _smithers_runs (
                run_id TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                workflow_spec TEXT NOT NULL,
                status TEXT NOT NULL,
                input_json TEXT NOT NULL,
                source_json TEXT NOT NULL,
                cwd TEXT NOT NULL,
                max_concurrency INTEGER NOT NULL,
                created_at_ms INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL,
                finished_at_ms INTEGER,
                owner_id TEXT,
                owner_host TEXT,
                owner_pid INTEGER,
                heartbeat_at_ms INTEGER,
                cancel_requested_at_ms INTEGER,
                error_json TEXT
            )""",
            "CREATE INDEX _smithers_runs_status ON _smithers_runs (status, created_at_ms)",
            """CREATE TABLE _smithers_nodes (
                run_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                iteration INTEGER NOT NULL,
                status TEXT NOT NULL,
                kind TEXT NOT NULL,
                output_table TEXT NOT NULL,
                label TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                failures INTEGER NOT NULL DEFAULT 0,
                retry_at_ms INTEGER,
                updated_at_ms INTEGER NOT NULL,
                error_json TEXT,
                PRIMARY KEY (run_id, node_id, iteration)
            )""",
            """CREATE TABLE _smithers_attempts (
                run_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                iteration INTEGER NOT NULL,
                attempt INTEGER NOT NULL,
                status TEXT NOT NULL,
                started_at_ms INTEGER NOT NULL,
                finished_at_ms INTEGER,
                error_json TEXT,
                heartbeat_at_ms INTEGER,
                heartbeat_json TEXT,
                meta_json TEXT,
                PRIMARY KEY (run_id, node_id, iteration, attempt)
            )""",
            """CREATE TABLE _smithers_events (
                run_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                type TEXT NOT NULL,
                ts_ms INTEGER NOT NULL,
                node_id TEXT,
                iteration INTEGER,
                attempt INTEGER,
                payload_json TEXT,
                PRIMARY KEY (run_id, seq)
            )""",
            """CREATE TABLE _smithers_frames (
                run_id TEXT NOT NULL,
                frame_no INTEGER NOT NULL,
                is_keyframe INTEGER NOT NULL,
                data_json TEXT NOT NULL,
                event_seq INTEGER NOT NULL,
                created_at_ms INTEGER NOT NULL,
                PRIMARY KEY (run_id, frame_no)
            )""",
            """CREATE TABLE _smithers_loops (
                run_id TEXT NOT NULL,
                loop_id TEXT NOT NULL,
                iteration INTEGER NOT NULL,
                done INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (run_id, loop_id)
            )""",
            """CREATE TABLE _smithers_output_tables (
                table_name TEXT PRIMARY KEY,
                model_name TEXT NOT NULL,
                columns_json TEXT NOT NULL
            )""",
        ],
    ),
    (
        2,
        "human and time: approvals, human requests, signals, timers, run lineage",
        [
            "ALTER TABLE _smithers_runs ADD COLUMN parent_run_id TEXT",
            "ALTER TABLE _smithers_runs ADD COLUMN continued_from TEXT",
            "ALTER TABLE _smithers_runs ADD COLUMN carried_json TEXT",
            "ALTER TABLE _smithers_runs ADD COLUMN wake_at_ms INTEGER",
            "ALTER TABLE _smithers_nodes ADD COLUMN meta_json TEXT",
            "ALTER TABLE _smithers_nodes ADD COLUMN waiting_since_ms INTEGER",
            """CREATE TABLE _smithers_approvals (
                run_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                iteration INTEGER NOT NULL,
                status TEXT NOT NULL,
                gate INTEGER NOT NULL,
                request_json TEXT NOT NULL,
                decision_json TEXT,
                requested_at_ms INTEGER NOT NULL,
                decided_at_ms INTEGER,
                decided_by TEXT,
                PRIMARY KEY (run_id, node_id, iteration)
            )""",
            """CREATE TABLE _smithers_human_requests (
                request_id TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                iteration INTEGER NOT NULL,
                status TEXT NOT NULL,
                prompt TEXT NOT NULL,
                schema_json TEXT NOT NULL,
                answer_json TEXT,
                answered_by TEXT,
                created_at_ms INTEGER NOT NULL,
                answered_at_ms INTEGER
            )""",
            "CREATE UNIQUE INDEX _smithers_human_requests_node ON _smithers_human_requests (run_id, node_id, iteration)",
            """CREATE TABLE _smithers_signals (
                run_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                name TEXT NOT NULL,
                correlation_id TEXT,
                payload_json TEXT NOT NULL,
                dedupe_key TEXT NOT NULL,
                received_at_ms INTEGER NOT NULL,
                sent_by TEXT,
                consumed_node_id TEXT,
                consumed_iteration INTEGER,
                PRIMARY KEY (run_id, seq)
            )""",
            "CREATE INDEX _smithers_signals_dedupe ON _smithers_signals (run_id, dedupe_key)",
            "CREATE INDEX _smithers_signals_name ON _smithers_signals (run_id, name, consumed_node_id)",
            """CREATE TABLE _smithers_timers (
                run_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                iteration INTEGER NOT NULL,
                fires_at_ms INTEGER NOT NULL,
                fired_at_ms INTEGER,
                PRIMARY KEY (run_id, node_id, iteration)
            )""",
        ],
    ),
    (3, "agent memory: facts, their full-text index (FTS5), message threads", MEMORY_DDL),
    (
        4,
        "cron schedules, and what triggered a run",
        [
            """CREATE TABLE _smithers_cron (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                pattern TEXT NOT NULL,
                timezone TEXT NOT NULL,
                workflow_spec TEXT NOT NULL,
                workflow_name TEXT NOT NULL,
                input_json TEXT NOT NULL,
                cwd TEXT NOT NULL,
                max_concurrency INTEGER NOT NULL,
                enabled INTEGER NOT NULL,
                next_run_at_ms INTEGER,
                last_run_id TEXT,
                last_fired_for_ms INTEGER,
                created_at_ms INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL
            )""",
            "CREATE INDEX _smithers_cron_due ON _smithers_cron (enabled, next_run_at_ms)",
            "ALTER TABLE _smithers_runs ADD COLUMN triggered_by TEXT",
        ],
    ),
    (
        5,
        "scores and eval runs",
        [
            """CREATE TABLE _smithers_scores (
                run_id TEXT NOT NULL,
                node_id TEXT NOT NULL,
                iteration INTEGER NOT NULL,
                attempt INTEGER NOT NULL,
                scorer TEXT NOT NULL,
                value REAL,
                reason TEXT,
                meta_json TEXT,
                error_json TEXT,
                latency_ms INTEGER NOT NULL,
                created_at_ms INTEGER NOT NULL,
                PRIMARY KEY (run_id, node_id, iteration, attempt, scorer)
            )""",
            """CREATE TABLE _smithers_eval_runs (
                run_id TEXT PRIMARY KEY,
                eval_id TEXT NOT NULL,
                case_id TEXT NOT NULL,
                expected_json TEXT,
                created_at_ms INTEGER NOT NULL
            )""",
            "CREATE INDEX _smithers_eval_runs_eval ON _smithers_eval_runs (eval_id, case_id)",
        ],
    ),
    (
        6,
        "time travel: snapshots of the working tree per attempt, the audit of destructive actions",
        [
            "ALTER TABLE _smithers_attempts ADD COLUMN snapshot_before TEXT",
            "ALTER TABLE _smithers_attempts ADD COLUMN snapshot_after TEXT",
            "ALTER TABLE _smithers_attempts ADD COLUMN snapshot_dir TEXT",
            "ALTER TABLE _smithers_runs ADD COLUMN snapshot_start TEXT",
            "ALTER TABLE _smithers_runs ADD COLUMN snapshot_dir TEXT",
            "ALTER TABLE _smithers_runs ADD COLUMN snapshots_off INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE _smithers_runs ADD COLUMN snapshots_pruned_at_ms INTEGER",
            """CREATE TABLE _smithers_audit (
                id INTEGER NOT NULL PRIMARY KEY,
                run_id TEXT NOT NULL,
                action TEXT NOT NULL,
                actor TEXT NOT NULL,
                at_ms INTEGER NOT NULL,
                detail_json TEXT NOT NULL
            )""",
            "CREATE INDEX _smithers_audit_run ON _smithers_audit (run_id, at_ms)",
        ],
    ),
    (
        7,
        "time travel: fork lineage (parent run and frame) on runs",
        [
            "ALTER TABLE _smithers_runs ADD COLUMN forked_from TEXT",
            "ALTER TABLE _smithers_runs ADD COLUMN fork_frame INTEGER",
            "ALTER TABLE _smithers_runs ADD COLUMN fork_label TEXT",
            "CREATE INDEX _smithers_runs_forked_from ON _smithers_runs (forked_from)",
        ],
    ),
    (
        8,
        "task cache: _smithers_cache and a run's no_cache choice",
        [
            """CREATE TABLE _smithers_cache (
                key TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                node_id TEXT NOT NULL,
                output_table TEXT NOT NULL,
                output_json TEXT NOT NULL,
                output_schema_hash TEXT NOT NULL,
                from_run_id TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL,
                expires_at_ms INTEGER,
                hits INTEGER NOT NULL DEFAULT 0,
                last_hit_at_ms INTEGER
            )""",
            "CREATE INDEX _smithers_cache_workflow ON _smithers_cache (workflow, created_at_ms)",
            "ALTER TABLE _smithers_runs ADD COLUMN no_cache INTEGER NOT NULL DEFAULT 0",
        ],
    ),
    (9, "workers: the shared attempt queue (_smithers_task_queue)", QUEUE_DDL),
]
