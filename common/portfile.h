/* portfile: tells a test or a supervisor which port a daemon bound.
 *
 * Daemons started on port 0 (tests, `make run`) write the port they got to a
 * file once they accept; readers poll for the file. The write is atomic (a
 * temp file renamed over the path), so a reader sees no file or the whole
 * number, never a partial one. bin/upstream-sim keeps its own copy on purpose:
 * it links no common/ code. */
#ifndef EV_PORTFILE_H
#define EV_PORTFILE_H

#include <stdbool.h>

/* Writes "PORT\n" to path atomically. On failure returns false with errno set
 * and leaves no temp file behind. */
bool portfile_write(const char *path, int port);

#endif
