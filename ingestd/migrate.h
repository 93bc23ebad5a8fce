/* migrate: the schema migration runner behind `ingestd migrate`.
 * Owns the rules for migrations/: files named NNNN_name.sql, applied in
 * version order, each in its own transaction together with its row in
 * schema_migrations (version, name, checksum = SHA-256 hex of the file's
 * bytes, applied_at); an applied file whose checksum changed is refused by
 * name and nothing is applied; an applied version without a file is
 * reported; a session-level advisory lock (PGX_LOCK_MIGRATE) serializes
 * concurrent runners, so a second one waits and then finds nothing to do.
 * The runner creates schema_migrations itself; the files never mention it. */
#ifndef EV_MIGRATE_H
#define EV_MIGRATE_H

#include <stdbool.h>

/* Apply pending migrations from migrations_dir to database_url (libpq URI or
 * conninfo; "" = libpq defaults), or with status_only list every migration
 * on stdout (version, name, applied_at or "pending") without changing
 * anything. Returns a sysexits code:
 *   EXIT_OK           done (also: nothing to do)
 *   EXIT_CONFIG       bad directory or file name, a changed applied file,
 *                     an unparsable URL, or the server refusing the login
 *   EXIT_UNAVAILABLE  the database is unreachable (after bounded retries)
 *                     or the connection was lost
 *   EXIT_SOFTWARE     a migration failed (its transaction rolled back) */
int migrate_main(const char *database_url, const char *migrations_dir, bool status_only);

#endif
