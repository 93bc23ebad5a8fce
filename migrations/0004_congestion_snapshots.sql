-- 0004_congestion_snapshots: what `ingestd congestion` needs beyond 0001.
--
-- The congestion counters live in Redis (rkeys.h: ev:cg:{statId}:{chgerId});
-- `ingestd congestion` copies all of them into PostgreSQL as one snapshot:
-- one row per charger x weekday x hour (168 a charger: 38.6M rows for
-- 230,000 chargers) in congestion_history, plus one row per charger in
-- congestion_charger (the value's last-sample second, so a restore writes
-- Redis back byte for byte). Both are partitioned by snapshot: a run loads
-- its own pair of tables in the congestion_snap schema (COPY, then the
-- primary keys, then ANALYZE) and, in the same transaction, attaches them
-- and makes its snapshot current. Readers go through the `congestion` view,
-- which shows the current snapshot: they see the previous one or the new
-- one, never a mix, and are never blocked (no DDL touches the view; the
-- swap is a row update). The last INGESTD_CONGESTION_KEEP snapshots stay;
-- older partitions are detached CONCURRENTLY and dropped. docs/congestion.md
-- has the whole story and the figures.

-- The partitions, and nothing else: ingestd sweeps what is not attached
-- (a detach interrupted by a crash). Readable by evcharger_ro (0002) for
-- analysis of one snapshot's table; the parents are in public.
CREATE SCHEMA congestion_snap;
COMMENT ON SCHEMA congestion_snap IS 'ingestd congestion: one hours_<id> and chargers_<id> table per kept snapshot';
GRANT USAGE ON SCHEMA congestion_snap TO evcharger_ro;
ALTER DEFAULT PRIVILEGES IN SCHEMA congestion_snap GRANT SELECT ON TABLES TO evcharger_ro;

-- One row per `ingestd congestion` run (also failed ones): the snapshot's
-- identity, its counts and outcome. At most one is current.
CREATE TABLE congestion_snapshot (
	id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	run_id       bigint NOT NULL,                 -- ingest_run.id (provenance; no FK, runs may be purged)
	taken_at     timestamptz NOT NULL DEFAULT now(),  -- the Redis read began (SCAN)
	finished_at  timestamptz,
	outcome      text NOT NULL DEFAULT 'running'
	             CHECK (outcome IN ('running', 'ok', 'failed')),
	is_current   boolean NOT NULL DEFAULT false,  -- the `congestion` view shows this one
	chargers     integer NOT NULL DEFAULT 0 CHECK (chargers >= 0),  -- keys loaded
	rows         bigint NOT NULL DEFAULT 0 CHECK (rows >= 0),       -- 168 per charger
	rejected     integer NOT NULL DEFAULT 0 CHECK (rejected >= 0),  -- keys refused (ingest_reject)
	samples      bigint NOT NULL DEFAULT 0 CHECK (samples >= 0),    -- sum of all sample counts
	-- The counters' own time: the oldest and newest last-sample second over
	-- the chargers (realtimed samples while the snapshot is read, so
	-- chargers may differ by one sample). NULL when no charger was sampled.
	first_sample timestamptz,
	last_sample  timestamptz,
	dropped_at   timestamptz,                     -- retention removed its partitions
	error        text,                            -- why, when failed
	CONSTRAINT congestion_snapshot_finished CHECK ((outcome = 'running') = (finished_at IS NULL)),
	CONSTRAINT congestion_snapshot_current CHECK (NOT is_current OR (outcome = 'ok' AND dropped_at IS NULL))
);
CREATE UNIQUE INDEX congestion_snapshot_one_current ON congestion_snapshot (is_current) WHERE is_current;
COMMENT ON TABLE congestion_snapshot IS 'One row per ingestd congestion run: counts, outcome, which snapshot is current';

-- The counters of every kept snapshot. Partition per snapshot (LIST on
-- snapshot_id); each partition's primary key is (stat_id, weekday, hour,
-- chger_id): a station's 24 hours of one weekday are one contiguous index
-- range, the statistics query's access path. The constraints are the
-- partitions' too (ATTACH requires them), so every row is checked at COPY.
CREATE TABLE congestion_history (
	snapshot_id integer NOT NULL,
	stat_id     text NOT NULL,
	chger_id    text NOT NULL,
	weekday     smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),  -- Monday = 0, Korea time
	hour        smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
	samples     integer NOT NULL CHECK (samples BETWEEN 0 AND 65535),
	uses        integer NOT NULL CHECK (uses BETWEEN 0 AND samples)
) PARTITION BY LIST (snapshot_id);
COMMENT ON TABLE congestion_history IS 'Congestion counters of every kept snapshot: charger x weekday (Monday = 0) x hour, Korea time';

-- Per snapshot and charger: the Unix second of the last sample counted (the
-- trailing u32 of the Redis value; 0: never sampled).
CREATE TABLE congestion_charger (
	snapshot_id integer NOT NULL,
	stat_id     text NOT NULL,
	chger_id    text NOT NULL,
	last_sample bigint NOT NULL CHECK (last_sample BETWEEN 0 AND 4294967295)
) PARTITION BY LIST (snapshot_id);
COMMENT ON TABLE congestion_charger IS 'Chargers of every kept snapshot, with the last-sample second of their counters';

-- 0001's plain table was never written (the loader arrives with this file);
-- the name now reads the current snapshot, with the same columns, so its
-- readers need no change. Refuse rather than drop rows someone put there.
DO $$
BEGIN
	IF EXISTS (SELECT FROM congestion) THEN
		RAISE EXCEPTION 'table congestion holds rows: move them away before migrating (0004 replaces it with a view)';
	END IF;
END
$$;
DROP TABLE congestion;

-- The current snapshot. The snapshot id is read once per query (an InitPlan),
-- and partition pruning at run time skips every other partition: the plan is
-- one index scan of the current snapshot's primary key.
CREATE VIEW congestion AS
	SELECT h.stat_id, h.chger_id, h.weekday, h.hour, h.samples, h.uses
	FROM congestion_history h
	WHERE h.snapshot_id = (SELECT s.id FROM congestion_snapshot s WHERE s.is_current);
COMMENT ON VIEW congestion IS 'Usage counters of the current snapshot per charger x weekday (Monday = 0) x hour, Korea time';

-- The default privileges of 0002 cover these, as they were created by the
-- migrating role; say it anyway for readers of this file.
GRANT SELECT ON congestion_snapshot, congestion_history, congestion_charger, congestion TO evcharger_ro;
