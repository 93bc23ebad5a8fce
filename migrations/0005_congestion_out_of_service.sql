-- 0005_congestion_out_of_service: the out-of-service counter of the
-- congestion counters' layout 2 (common/rkeys.h), in the snapshots.
--
-- realtimed now counts, per charger and weekday x hour, besides samples and
-- uses, the samples in which the charger was out of service
-- (COMMUNICATION_ERROR, OPERATION_SUSPENDED or UNDER_INSPECTION:
-- model_status_out_of_service()), so /stations/{id}/statistics can report
-- reliability apart from busy. `ingestd congestion` copies it as one more
-- column of congestion_history, and a restore writes it back to Redis.
--
-- ADD COLUMN on the partitioned parent adds the column to every partition
-- (the kept snapshots'): the constant default is stored in the catalog, no
-- partition is rewritten, and their rows read 0, which is also what a
-- layout-1 value (no such counter) stands for. The CHECK is the parent's,
-- so it is every partition's (ATTACH of a new snapshot requires it, and its
-- CREATE TABLE ... LIKE ... INCLUDING CONSTRAINTS copies it); adding it
-- reads each kept partition once under this transaction's lock (seconds for
-- 38.6M rows; readers of the `congestion` view wait meanwhile).
ALTER TABLE congestion_history
	ADD COLUMN out_of_service integer NOT NULL DEFAULT 0,
	ADD CONSTRAINT congestion_history_out_of_service_check
		CHECK (out_of_service BETWEEN 0 AND samples);
COMMENT ON COLUMN congestion_history.out_of_service IS 'Of the samples, those in which the charger was out of service (communication error, suspended, under inspection); 0 for counters kept before 0005';

-- The snapshot's sum of it, beside its sum of samples.
ALTER TABLE congestion_snapshot
	ADD COLUMN out_of_service bigint NOT NULL DEFAULT 0 CHECK (out_of_service >= 0);

-- The view of 0004 with the new column (last: CREATE OR REPLACE keeps the
-- existing columns, their names and order, so no reader of it breaks).
CREATE OR REPLACE VIEW congestion AS
	SELECT h.stat_id, h.chger_id, h.weekday, h.hour, h.samples, h.uses, h.out_of_service
	FROM congestion_history h
	WHERE h.snapshot_id = (SELECT s.id FROM congestion_snapshot s WHERE s.is_current);
COMMENT ON VIEW congestion IS 'Usage and out-of-service counters of the current snapshot per charger x weekday (Monday = 0) x hour, Korea time';
