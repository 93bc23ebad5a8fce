-- 0001_init: the initial schema.
--
-- Run only through `ingestd migrate`, which wraps each file in one transaction
-- and records it in schema_migrations; never edit this file once merged (the
-- runner refuses a changed applied file). Stock PostgreSQL 15 only.
--
-- Conventions:
--   * Upstream text fields are NOT NULL DEFAULT '': the API answers "" for a
--     missing value, never null, so readers need no COALESCE.
--   * Y/N flags are boolean; NULL when the upstream sent neither.
--   * Upstream times (YYYYMMDDHHMMSS, Korea time) are stored as timestamptz.
--   * Codes (chger_type, zcode, kind...) stay text as sent: the publisher adds
--     codes, and an unknown one is kept, never rejected.
--   * Rows are never deleted by a load: deleted_at marks a station or charger
--     gone from a complete upstream pass; live rows have deleted_at IS NULL.
--   * content_hash is a digest of the upstream-sourced columns, computed by
--     the loader from the normalized record: a merge compares it to skip
--     unchanged rows (a second load of unchanged data rewrites nothing).
--   * created_at/updated_at are set by the merge (no triggers: they would
--     cost every row of a bulk merge).

-- One row per job run (ingestd chargers, ingestd congestion, ...): its outcome
-- and counts, the scheduler's and operator's record. apid on a replica also
-- polls it (LISTEN/NOTIFY does not reach a standby).
CREATE TABLE ingest_run (
	id          bigserial PRIMARY KEY,
	job         text NOT NULL CHECK (job <> ''),        -- 'chargers', 'congestion', ...
	started_at  timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz,
	status      text NOT NULL DEFAULT 'running'
	            CHECK (status IN ('running', 'ok', 'partial', 'failed')),
	pages       integer NOT NULL DEFAULT 0 CHECK (pages >= 0),
	records     bigint NOT NULL DEFAULT 0 CHECK (records >= 0),   -- items read from upstream
	inserted    bigint NOT NULL DEFAULT 0 CHECK (inserted >= 0),
	updated     bigint NOT NULL DEFAULT 0 CHECK (updated >= 0),
	unchanged   bigint NOT NULL DEFAULT 0 CHECK (unchanged >= 0),
	deleted     bigint NOT NULL DEFAULT 0 CHECK (deleted >= 0),   -- marked deleted_at
	repaired    bigint NOT NULL DEFAULT 0 CHECK (repaired >= 0),  -- fixed on load (swapped lat/lng)
	rejected    bigint NOT NULL DEFAULT 0 CHECK (rejected >= 0),  -- rows in ingest_reject
	bytes       bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),     -- upstream bytes received
	error       text,                                             -- why, when not ok
	host        text NOT NULL DEFAULT '',
	pid         integer,
	-- A finished run has an end time; a running one has none (a crashed run
	-- stays 'running' until the next run of its job marks it failed).
	CONSTRAINT ingest_run_finished CHECK ((status = 'running') = (finished_at IS NULL))
);

-- The latest runs of a job (status pages, apid's "has a load finished?",
-- the next run finding an abandoned 'running' row).
CREATE INDEX ingest_run_job_id ON ingest_run (job, id DESC);

-- Every record a run refused, with the reason and the raw text as received.
CREATE TABLE ingest_reject (
	id       bigserial PRIMARY KEY,
	run_id   bigint NOT NULL REFERENCES ingest_run (id) ON DELETE CASCADE,
	page     integer NOT NULL CHECK (page >= 0),
	position integer NOT NULL CHECK (position >= 0),  -- index of the item in its page
	stat_id  text,                                    -- when the record had a usable one
	chger_id text,
	reason   text NOT NULL CHECK (reason <> ''),
	raw      text NOT NULL
);

-- Rejects of a run, in page order.
CREATE INDEX ingest_reject_run ON ingest_reject (run_id, page, position);

-- A charging station: the station-level fields the upstream repeats on every
-- charger item (getChargerInfo).
CREATE TABLE station (
	stat_id      text PRIMARY KEY CHECK (stat_id <> ''),   -- statId
	name         text NOT NULL DEFAULT '',                 -- statNm
	addr         text NOT NULL DEFAULT '',                 -- addr (road address)
	addr_detail  text NOT NULL DEFAULT '',                 -- addrDetail
	location     text NOT NULL DEFAULT '',                 -- location (detail location)
	use_time     text NOT NULL DEFAULT '',                 -- useTime
	lat          double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),     -- WGS84
	lng          double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
	busi_id      text NOT NULL DEFAULT '',                 -- busiId (operator code)
	bnm          text NOT NULL DEFAULT '',                 -- bnm (operator short name)
	busi_nm      text NOT NULL DEFAULT '',                 -- busiNm (operator full name)
	busi_call    text NOT NULL DEFAULT '',                 -- busiCall
	zcode        text NOT NULL DEFAULT '',                 -- province code
	zscode       text NOT NULL DEFAULT '',                 -- district code
	kind         text NOT NULL DEFAULT '',                 -- facility kind
	kind_detail  text NOT NULL DEFAULT '',                 -- kindDetail
	parking_free boolean,                                  -- parkingFree
	limit_yn     boolean,                                  -- limitYn (Y: not open to the public)
	limit_detail text NOT NULL DEFAULT '',                 -- limitDetail
	del_yn       boolean,                                  -- delYn (upstream's own flag)
	del_detail   text NOT NULL DEFAULT '',                 -- delDetail
	note         text NOT NULL DEFAULT '',                 -- note
	traffic_yn   boolean,                                  -- trafficYn
	floor_num    text NOT NULL DEFAULT '',                 -- floorNum ("B1", "3", ...)
	floor_type   text NOT NULL DEFAULT '',                 -- floorType
	content_hash bytea NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),       -- last content change
	deleted_at   timestamptz,                              -- gone from upstream; NULL: live
	-- The run that last inserted, changed or deleted the row. No foreign key:
	-- provenance only, and old runs may be purged.
	last_run_id  bigint
);

-- GET /stations and /stations/clusters (box = lat range and lng range over
-- live stations): the range scan on lat, lng checked in the index.
CREATE INDEX station_live_lat_lng ON station (lat, lng) WHERE deleted_at IS NULL;

-- GET /stations/search: substring match over name, address and operator name.
-- Korean queries are often two characters ("강남"), and pg_trgm cannot use an
-- index for patterns under three characters (and is an extension), so the
-- index holds the distinct two-character grams of the lowercased text; a
-- query of two or more characters narrows to rows holding all of its grams,
-- then LIKE rechecks:
--   WHERE station_search_grams(name, addr, busi_nm) @> search_query_grams($1)
--     AND lower(name || ' ' || addr || ' ' || busi_nm) LIKE '%' || lower($1) || '%'
-- (with % and _ in $1 escaped). A one-character query scans the live rows.
CREATE FUNCTION search_query_grams(q text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT coalesce(array_agg(DISTINCT substr(lower(q), i, 2)), '{}')
	FROM generate_series(1, length(q) - 1) AS i
$$;

CREATE FUNCTION station_search_grams(name text, addr text, busi_nm text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT search_query_grams(name || ' ' || addr || ' ' || busi_nm)
$$;

CREATE INDEX station_live_search ON station
	USING gin (station_search_grams(name, addr, busi_nm))
	WHERE deleted_at IS NULL;

-- A charger: (statId, chgerId) is the upstream's key.
CREATE TABLE charger (
	stat_id      text NOT NULL REFERENCES station (stat_id) ON DELETE CASCADE,
	chger_id     text NOT NULL CHECK (chger_id <> ''),
	chger_type   text NOT NULL DEFAULT '',       -- chgerType code as sent ('01'..'07', newer ones too)
	output_kw    numeric(8, 2) CHECK (output_kw >= 0),  -- output; NULL when the upstream sent none
	method       text NOT NULL DEFAULT '',       -- '단독', '동시' or ''
	power_type   text NOT NULL DEFAULT '',       -- powerType
	year         smallint,                       -- install year
	stat         smallint NOT NULL DEFAULT 9,    -- status code at load time (9: unknown)
	stat_upd_dt  timestamptz,                    -- statUpdDt
	last_tsdt    timestamptz,                    -- lastTsdt: last charge start
	last_tedt    timestamptz,                    -- lastTedt: last charge end
	now_tsdt     timestamptz,                    -- nowTsdt: current charge start
	content_hash bytea NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	deleted_at   timestamptz,
	last_run_id  bigint,                         -- as station.last_run_id
	-- GET /stations/{id} and every per-station join read a station's
	-- chargers through this key's stat_id prefix.
	PRIMARY KEY (stat_id, chger_id)
);

-- Usage statistics: per charger, weekday and hour (Korea time), how many
-- samples were taken and in how many the charger was charging.
-- No foreign key to charger: counters come from the live feed and may name a
-- charger before (or after) the master data does, and 37M-row loads must not
-- pay a lookup per row.
CREATE TABLE congestion (
	stat_id  text NOT NULL,
	chger_id text NOT NULL,
	weekday  smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),  -- Monday = 0
	hour     smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
	samples  integer NOT NULL DEFAULT 0 CHECK (samples >= 0),
	uses     integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= samples),
	-- GET /stations/{id}/statistics?dayOfWeek= reads one station's 24 hours
	-- of one weekday: the key leads with (stat_id, weekday, hour) so that is
	-- one contiguous index range.
	PRIMARY KEY (stat_id, weekday, hour, chger_id)
);

COMMENT ON TABLE station IS 'Charging stations from getChargerInfo; live rows: deleted_at IS NULL';
COMMENT ON TABLE charger IS 'Chargers from getChargerInfo, key (stat_id, chger_id); live rows: deleted_at IS NULL';
COMMENT ON TABLE ingest_run IS 'One row per ingestd job run: outcome and counts';
COMMENT ON TABLE ingest_reject IS 'Records refused by a run, with reason and raw text';
COMMENT ON TABLE congestion IS 'Usage counters per charger x weekday (Monday = 0) x hour, Korea time';
COMMENT ON COLUMN station.content_hash IS 'Digest of the upstream-sourced columns as normalized by ingestd; equal digest = unchanged row';
COMMENT ON COLUMN charger.content_hash IS 'Digest of the upstream-sourced columns as normalized by ingestd; equal digest = unchanged row';
