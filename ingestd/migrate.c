#include "migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base.h"
#include "log.h"
#include "pgx.h"
#include "sha256.h"

/* A migration file is read whole: they are small, and a size far past any
 * schema change is more likely a wrong directory. */
#define MIGRATION_MAX_BYTES (16 * 1024 * 1024)

static const char sql_create_table[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" version integer PRIMARY KEY,"
	" name text NOT NULL,"
	" checksum text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now())";
static const char sql_table_exists[] =
	"SELECT (to_regclass('schema_migrations') IS NOT NULL)::int";
static const char sql_list_applied[] =
	"SELECT version, name, checksum,"
	" to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	" FROM schema_migrations ORDER BY version";
static const char sql_record[] =
	"INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::int, $2, $3)";

/* A file in the migrations directory. */
struct migration {
	int version;
	char *name; /* file name "0001_init.sql", owned */
	char *sql;  /* contents, owned */
	char checksum[SHA256_HEX_LEN + 1];
};

/* A row of schema_migrations. */
struct applied {
	int version;
	char *name;	  /* owned */
	char *checksum;	  /* owned */
	char *applied_at; /* owned, UTC ISO-8601 */
};

/* Everything one run knows; released by plan_free. */
struct plan {
	const char *dir; /* borrowed */
	struct migration *files;
	size_t nfiles;
	struct applied *applied;
	size_t napplied;
};

static void plan_free(struct plan *plan)
{
	for (size_t i = 0; i < plan->nfiles; i++) {
		free(plan->files[i].name);
		free(plan->files[i].sql);
	}
	free(plan->files);
	for (size_t i = 0; i < plan->napplied; i++) {
		free(plan->applied[i].name);
		free(plan->applied[i].checksum);
		free(plan->applied[i].applied_at);
	}
	free(plan->applied);
	memset(plan, 0, sizeof(*plan));
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the directory ------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "0001_init.sql" -> 1. Digits (at most 9), '_', a name of letters, digits,
 * '_' or '-', then ".sql". */
static bool parse_file_name(const char *name, int *version)
{
	const char *p = name;
	long value = 0;
	int digits = 0;
	while (isdigit((unsigned char)*p)) {
		if (++digits > 9)
			return false;
		value = value * 10 + (*p++ - '0');
	}
	if (digits == 0 || value < 1 || *p++ != '_')
		return false;
	const char *stem = p;
	while (isalnum((unsigned char)*p) || *p == '_' || *p == '-')
		p++;
	if (p == stem || strcmp(p, ".sql") != 0)
		return false;
	*version = (int)value;
	return true;
}

static bool read_file(const char *path, char **out, size_t *len, char *why, size_t whylen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(why, whylen, "%s", strerror(errno));
		return false;
	}
	char *data = NULL;
	size_t used = 0, cap = 0;
	bool ok = true;
	for (;;) {
		if (used + 4096 + 1 > cap) {
			if (cap >= MIGRATION_MAX_BYTES) {
				snprintf(why, whylen, "larger than %d bytes", MIGRATION_MAX_BYTES);
				ok = false;
				break;
			}
			size_t new_cap = cap ? cap * 2 : 16384;
			char *grown = realloc(data, new_cap);
			if (!grown) {
				snprintf(why, whylen, "out of memory");
				ok = false;
				break;
			}
			data = grown;
			cap = new_cap;
		}
		size_t n = fread(data + used, 1, cap - used - 1, f);
		used += n;
		if (n == 0) {
			if (ferror(f)) {
				snprintf(why, whylen, "%s", strerror(errno));
				ok = false;
			}
			break;
		}
	}
	fclose(f);
	if (!ok) {
		free(data);
		return false;
	}
	data[used] = '\0';
	*out = data;
	*len = used;
	return true;
}

static int by_version(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

/* Read every NNNN_name.sql in dir, sorted by version. A .sql file with
 * another name, two files of one version, or an unreadable file is a
 * configuration error: skipping one would apply a different schema. */
static bool load_files(struct plan *plan)
{
	DIR *d = opendir(plan->dir);
	if (!d) {
		log_error("migrate: cannot open migrations directory %s: %s", plan->dir,
			  strerror(errno));
		return false;
	}
	bool ok = true;
	size_t cap = 0;
	struct dirent *entry;
	while (ok && (entry = readdir(d)) != NULL) {
		const char *name = entry->d_name;
		if (name[0] == '.' || !has_suffix(name, ".sql"))
			continue; /* README, editor backups, hidden files */
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", plan->dir, name);
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		int version;
		if (!parse_file_name(name, &version)) {
			log_error("migrate: %s in %s is not named NNNN_name.sql (version, '_', "
				  "letters, digits, '_' or '-')",
				  name, plan->dir);
			ok = false;
			break;
		}
		if (plan->nfiles == cap) {
			size_t new_cap = cap ? cap * 2 : 16;
			struct migration *grown = realloc(plan->files, new_cap * sizeof(*grown));
			if (!grown) {
				log_error("migrate: out of memory");
				ok = false;
				break;
			}
			plan->files = grown;
			cap = new_cap;
		}
		struct migration *m = &plan->files[plan->nfiles];
		memset(m, 0, sizeof(*m));
		m->version = version;
		size_t len = 0;
		char why[128];
		if (!(m->name = strdup(name)) || !read_file(path, &m->sql, &len, why, sizeof(why))) {
			log_error("migrate: cannot read %s: %s", path, m->name ? why : "out of memory");
			free(m->name);
			ok = false;
			break;
		}
		plan->nfiles++;
		sha256_hex(m->sql, len, m->checksum);
		if (memchr(m->sql, '\0', len)) {
			log_error("migrate: %s holds a NUL byte: not SQL text", name);
			ok = false;
		}
	}
	closedir(d);
	if (!ok)
		return false;
	qsort(plan->files, plan->nfiles, sizeof(*plan->files), by_version);
	for (size_t i = 1; i < plan->nfiles; i++) {
		if (plan->files[i].version == plan->files[i - 1].version) {
			log_error("migrate: %s and %s have the same version %d", plan->files[i - 1].name,
				  plan->files[i].name, plan->files[i].version);
			return false;
		}
	}
	return true;
}

/* ---- the database ------------------------------------------------------- */

/* The exit code for a failed statement: a lost connection is the database
 * being unavailable; anything else is the migration's (or our) fault. */
static int sql_failure_code(PGconn *conn)
{
	return PQstatus(conn) == CONNECTION_BAD ? EXIT_UNAVAILABLE : EXIT_SOFTWARE;
}

static bool load_applied(PGconn *conn, struct plan *plan, struct pgx_err *err)
{
	PGresult *res = pgx_exec(conn, sql_list_applied, 0, NULL, err);
	if (!res)
		return false;
	int n = PQntuples(res);
	plan->applied = calloc(n > 0 ? (size_t)n : 1, sizeof(*plan->applied));
	bool ok = plan->applied != NULL;
	for (int i = 0; ok && i < n; i++) {
		struct applied *a = &plan->applied[i];
		a->version = atoi(PQgetvalue(res, i, 0));
		a->name = strdup(PQgetvalue(res, i, 1));
		a->checksum = strdup(PQgetvalue(res, i, 2));
		a->applied_at = strdup(PQgetvalue(res, i, 3));
		plan->napplied++;
		ok = a->name && a->checksum && a->applied_at;
	}
	PQclear(res);
	if (!ok)
		snprintf(err->msg, sizeof(err->msg), "out of memory");
	return ok;
}

static const struct applied *find_applied(const struct plan *plan, int version)
{
	for (size_t i = 0; i < plan->napplied; i++)
		if (plan->applied[i].version == version)
			return &plan->applied[i];
	return NULL;
}

static const struct migration *find_file(const struct plan *plan, int version)
{
	for (size_t i = 0; i < plan->nfiles; i++)
		if (plan->files[i].version == version)
			return &plan->files[i];
	return NULL;
}

/* Compare applied rows with the files. Changed files are errors (returned
 * count); applied versions without a file and renamed files are warnings. */
static size_t check_applied(const struct plan *plan, bool quiet)
{
	size_t changed = 0;
	for (size_t i = 0; i < plan->napplied; i++) {
		const struct applied *a = &plan->applied[i];
		const struct migration *m = find_file(plan, a->version);
		if (!m) {
			if (!quiet)
				log_warn("migrate: applied migration %s (version %d, %s) has no file in "
					 "%s",
					 a->name, a->version, a->applied_at, plan->dir);
			continue;
		}
		if (strcmp(m->checksum, a->checksum) != 0) {
			changed++;
			if (!quiet)
				log_error("migrate: %s was changed after it was applied on %s "
					  "(checksum %.12s..., applied %.12s...): restore it and put the "
					  "change in a new migration",
					  m->name, a->applied_at, m->checksum, a->checksum);
		} else if (strcmp(m->name, a->name) != 0 && !quiet) {
			log_warn("migrate: version %d was applied as %s and is now named %s (same "
				 "content)",
				 a->version, a->name, m->name);
		}
	}
	return changed;
}

static int apply_one(PGconn *conn, const struct migration *m)
{
	struct pgx_err err = {{0}, {0}};
	int64_t start = now_ms();
	char version_text[16];
	snprintf(version_text, sizeof(version_text), "%d", m->version);
	const char *values[] = {version_text, m->name, m->checksum};

	if (!pgx_begin(conn, &err))
		goto fail;
	if (!pgx_exec_script(conn, m->sql, &err))
		goto fail;
	/* The file runs inside our transaction: a COMMIT or ROLLBACK in it
	 * would break the one-transaction rule, and our record with it. */
	if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
		snprintf(err.msg, sizeof(err.msg),
			 "the file ended the runner's transaction (COMMIT, ROLLBACK or END in "
			 "it?): what ran before that is committed and must be checked by hand");
		goto fail;
	}
	if (!pgx_cmd(conn, sql_record, 3, values, NULL, &err) || !pgx_commit(conn, &err))
		goto fail;
	log_info("migrate: applied %s in %lld ms", m->name, (long long)(now_ms() - start));
	return EXIT_OK;
fail:
	(void)pgx_rollback(conn);
	log_error("migrate: %s failed, rolled back: %s", m->name, err.msg);
	return sql_failure_code(conn);
}

static int run_apply(PGconn *conn, struct plan *plan)
{
	struct pgx_err err = {{0}, {0}};
	bool acquired = false;
	if (!pgx_lock_try(conn, PGX_LOCK_MIGRATE, &acquired, &err))
		goto sql_fail;
	if (!acquired) {
		int holder = 0;
		if (!pgx_lock_holder(conn, PGX_LOCK_MIGRATE, &holder, &err))
			goto sql_fail;
		log_info("migrate: another runner (backend pid %d) holds the migration lock; "
			 "waiting for it",
			 holder);
		if (!pgx_lock_wait(conn, PGX_LOCK_MIGRATE, 0, &err))
			goto sql_fail;
	}

	int rc = EXIT_OK;
	if (!pgx_cmd(conn, sql_create_table, 0, NULL, NULL, &err) || !load_applied(conn, plan, &err))
		goto sql_fail;

	size_t changed = check_applied(plan, false);
	if (changed > 0) {
		log_error("migrate: %zu applied migration%s changed; nothing applied", changed,
			  changed == 1 ? "" : "s");
		rc = EXIT_CONFIG;
		goto out;
	}

	int max_applied = 0;
	for (size_t i = 0; i < plan->napplied; i++)
		if (plan->applied[i].version > max_applied)
			max_applied = plan->applied[i].version;

	size_t done = 0;
	for (size_t i = 0; i < plan->nfiles && rc == EXIT_OK; i++) {
		const struct migration *m = &plan->files[i];
		if (find_applied(plan, m->version))
			continue;
		if (m->version < max_applied)
			log_warn("migrate: %s is older than the newest applied version %d; applying "
				 "it out of order",
				 m->name, max_applied);
		rc = apply_one(conn, m);
		if (rc == EXIT_OK)
			done++;
	}
	if (rc != EXIT_OK)
		goto out;
	int at_version = max_applied;
	if (plan->nfiles > 0 && plan->files[plan->nfiles - 1].version > at_version)
		at_version = plan->files[plan->nfiles - 1].version;
	if (done == 0)
		log_info("migrate: nothing to do: %zu migration%s applied, schema at version %d",
			 plan->napplied, plan->napplied == 1 ? "" : "s", at_version);
	else
		log_info("migrate: applied %zu migration%s, schema at version %d", done,
			 done == 1 ? "" : "s", at_version);
out:
	/* Ending the session releases the lock too; unlocking says we are done
	 * before the caller's PQfinish. */
	if (PQstatus(conn) == CONNECTION_OK && !pgx_unlock(conn, PGX_LOCK_MIGRATE, &err))
		log_warn("migrate: releasing the migration lock: %s", err.msg);
	return rc;
sql_fail:
	log_error("migrate: %s", err.msg);
	return sql_failure_code(conn);
}

/* --status: one line per migration, applied and pending, on stdout. */
static int run_status(PGconn *conn, struct plan *plan)
{
	struct pgx_err err = {{0}, {0}};
	int64_t exists = 0;
	if (!pgx_query_int64(conn, sql_table_exists, 0, NULL, &exists, &err) ||
	    (exists && !load_applied(conn, plan, &err))) {
		log_error("migrate: %s", err.msg);
		return sql_failure_code(conn);
	}

	printf("%-8s %-40s %s\n", "version", "name", "applied_at");
	size_t pending = 0, changed = 0, missing = 0;
	/* Versions from both sides, in order: walk files and applied rows. */
	size_t fi = 0, ai = 0;
	while (fi < plan->nfiles || ai < plan->napplied) {
		const struct migration *m = fi < plan->nfiles ? &plan->files[fi] : NULL;
		const struct applied *a = ai < plan->napplied ? &plan->applied[ai] : NULL;
		if (m && a && m->version == a->version) {
			bool is_changed = strcmp(m->checksum, a->checksum) != 0;
			changed += is_changed;
			printf("%04d     %-40s %s%s\n", m->version, m->name, a->applied_at,
			       is_changed ? "  CHANGED since applied" : "");
			fi++;
			ai++;
		} else if (m && (!a || m->version < a->version)) {
			pending++;
			printf("%04d     %-40s pending\n", m->version, m->name);
			fi++;
		} else {
			missing++;
			printf("%04d     %-40s %s  file missing\n", a->version, a->name, a->applied_at);
			ai++;
		}
	}
	log_info("migrate: %zu applied, %zu pending%s%s", plan->napplied, pending,
		 changed ? ", changed files (migrate will refuse to run)" : "",
		 missing ? ", applied versions without a file" : "");
	if (changed > 0)
		(void)check_applied(plan, false);
	return changed > 0 ? EXIT_CONFIG : EXIT_OK;
}

int migrate_main(const char *database_url, const char *migrations_dir, bool status_only)
{
	struct plan plan = {.dir = migrations_dir && *migrations_dir ? migrations_dir : "migrations"};
	if (!load_files(&plan)) {
		plan_free(&plan);
		return EXIT_CONFIG;
	}
	if (plan.nfiles == 0)
		log_warn("migrate: no NNNN_name.sql files in %s", plan.dir);

	/* Connection refused while the database restarts is worth a few
	 * seconds; a scheduler retries the whole run after that. */
	const struct pgx_retry retry = {.max_attempts = 5, .max_total_ms = 20000};
	PGconn *conn = NULL;
	struct pgx_err err = {{0}, {0}};
	int rc;
	switch (pgx_connect(database_url, "ingestd migrate", &retry, &conn, &err)) {
	case PGX_CONNECT_OK:
		rc = status_only ? run_status(conn, &plan) : run_apply(conn, &plan);
		break;
	case PGX_CONNECT_BAD_CONNINFO:
	case PGX_CONNECT_REFUSED:
		log_error("migrate: DATABASE_URL: %s", err.msg);
		rc = EXIT_CONFIG;
		break;
	case PGX_CONNECT_UNAVAILABLE:
	default:
		log_error("migrate: database unavailable: %s", err.msg);
		rc = EXIT_UNAVAILABLE;
		break;
	}
	PQfinish(conn);
	plan_free(&plan);
	return rc;
}
