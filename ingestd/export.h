/* export: the `ingestd export` job, the open-data dump.
 * Owns the dump's content and its publication: the files (live stations and
 * chargers as CSV and GeoJSON, the current congestion snapshot as CSV, each
 * gzip-compressed), manifest.json (per file: rows, bytes, SHA-256 of the
 * compressed file and of its content; the generation time; the ingest runs
 * the data came from), the lock file that keeps two exports out of one
 * directory, and the order that makes a dump appear whole.
 *
 * Everything streams: one read-only REPEATABLE READ transaction (the files
 * agree with each other and with the manifest), one COPY ... TO STDOUT per
 * table, each row written through deflate and two SHA-256 contexts as it
 * arrives; memory does not grow with the tables. The files are written to
 * hidden temporary names in the directory, flushed to disk, then renamed
 * over the old ones, the manifest last: until that rename the previous dump
 * stays whole, and a failure or a signal removes the temporary files and
 * leaves it so. The manifest is the commit point: a reader takes the names
 * and digests from it. */
#ifndef INGESTD_EXPORT_H
#define INGESTD_EXPORT_H

/* Exit codes, consistent with ingestd's other jobs (--help, README). */
enum {
	EXPORT_EXIT_OK = 0,
	EXPORT_EXIT_SOFTWARE = 70, /* EX_SOFTWARE: internal error (out of memory, a row that
				      does not parse) */
	EXPORT_EXIT_OUTPUT = 73,   /* EX_CANTCREAT: the directory or a file cannot be created
				      or written (missing parent, permissions, disk full) */
	EXPORT_EXIT_DATABASE = 74, /* EX_IOERR: the database failed or is unreachable */
	EXPORT_EXIT_RUNNING = 75,  /* EX_TEMPFAIL: another export writes into the directory */
	EXPORT_EXIT_CONFIG = 78,   /* EX_CONFIG: a bad DATABASE_URL, or not migrated */
	/* interrupted by SIGINT/SIGTERM: 128 + the signal */
};

#define EXPORT_LEVEL_DEFAULT 1 /* gzip level: see docs/ingest.md, Export, for why 1 */

struct export_config {
	const char *database_url;
	const char *out_dir; /* created if missing (not its parents) */
	int level;	     /* gzip level 1..9 */
};

/* Run the export; returns the exit code. */
int export_main(const struct export_config *cfg);

#endif
