#include "stopsig.h"

#include <errno.h>
#include <string.h>

static volatile sig_atomic_t stop_signal;
static PGcancel *volatile cancel_handle;

static void on_signal(int sig)
{
	int saved = errno;
	if (!stop_signal)
		stop_signal = sig;
	PGcancel *cancel = cancel_handle;
	if (cancel) {
		char ignored[64];
		(void)PQcancel(cancel, ignored, sizeof(ignored));
	}
	errno = saved;
}

void stopsig_install(struct stopsig_saved *saved)
{
	stop_signal = 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &saved->old_int);
	sigaction(SIGTERM, &sa, &saved->old_term);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &saved->old_pipe);
}

void stopsig_restore(const struct stopsig_saved *saved)
{
	cancel_handle = NULL;
	sigaction(SIGINT, &saved->old_int, NULL);
	sigaction(SIGTERM, &saved->old_term, NULL);
	sigaction(SIGPIPE, &saved->old_pipe, NULL);
}

int stopsig_caught(void)
{
	return stop_signal;
}

void stopsig_arm(PGcancel *cancel)
{
	cancel_handle = cancel;
}
