-- 0002_readonly_role: the read-only group role apid connects through.
--
-- evcharger_ro is a NOLOGIN group role: it may connect to this database and
-- read every table of the public schema, now and later (default privileges),
-- and write nothing. Operators create the login role apid uses and grant the
-- group to it:
--   CREATE ROLE apid LOGIN PASSWORD '...';
--   GRANT evcharger_ro TO apid;
-- Roles are cluster-wide while this file runs once per database, so creating
-- the role tolerates one that exists already (made for another database of
-- the same cluster, maybe by a runner working at the same moment).
--
-- Default privileges cover tables later created by the role that runs this
-- file: run every migration as the same (owner) role.

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'evcharger_ro') THEN
		BEGIN
			CREATE ROLE evcharger_ro NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN
			NULL; -- created concurrently for another database
		END;
	END IF;
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO evcharger_ro', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO evcharger_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO evcharger_ro;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO evcharger_ro;
