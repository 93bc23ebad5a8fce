-- 0003_ingest_stage: what `ingestd chargers` needs beyond 0001.
--
-- ingest_stage holds each run's staging tables (UNLOGGED: a crash loses
-- them, which is what a crashed run's staging deserves; no WAL while
-- loading): ingest_stage.items_<run id> receives every item of the run by
-- COPY, ingest_stage.chargers_<run id> and stations_<run id> the de-duplicated
-- rows the merge reads. A run drops its own at the end; the next run drops
-- whatever an abandoned run (kill -9) left. Nothing else may live here: the
-- schema is swept. It is not granted to evcharger_ro (0002): readers never
-- see half a load.
CREATE SCHEMA ingest_stage;
COMMENT ON SCHEMA ingest_stage IS 'ingestd chargers: per-run staging tables, swept by the next run';

-- The reject's text beside its machine-readable reason code:
-- reason 'bad_coord', detail 'lat: ''0'' is zero'.
ALTER TABLE ingest_reject ADD COLUMN detail text NOT NULL DEFAULT '';
COMMENT ON COLUMN ingest_reject.detail IS 'One line: the field and what is wrong with its value';
