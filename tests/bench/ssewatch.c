/* ssewatch: N Server-Sent Events clients of apid's GET /stations/changes,
 * and how long a status change takes to reach all of them.
 *   ssewatch APID_PORT CLIENTS ROUNDS REDIS_PORT
 * Opens CLIENTS streams (HTTP/1.0: the body is the event text), waits for
 * every head, then ROUNDS times writes one entry to ev:changes as realtimed
 * does (XADD) and times, per client, until the event whose id starts with
 * that entry's id arrived. Prints one line per round (clients reached,
 * p50/p99/max in ms from the XADD's reply) and exits 1 when a client was
 * not reached within 10 s or a stream ended. Built by apid_feed.sh.
 * With SSEWATCH_GO=FILE, the rounds wait (at most 60 s) until FILE exists,
 * so that other load can start once every stream is open; SSEWATCH_GAP_MS
 * is the pause between rounds (default 500). */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TAIL 256

struct client {
	int fd;
	char tail[TAIL * 2 + 1]; /* the last bytes read, to find a marker across reads */
	size_t len;
	double reached_ms;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Read what is there; true when `marker` is now in the tail. -1: closed. */
static int feed_client(struct client *c, const char *marker)
{
	char buf[8192];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -1;
	if (n < 0)
		return 0;
	/* keep the last TAIL bytes before and all of the new bytes' last TAIL */
	size_t take = (size_t)n > TAIL ? TAIL : (size_t)n;
	if (c->len + take > TAIL * 2) {
		memmove(c->tail, c->tail + c->len - TAIL, TAIL);
		c->len = TAIL;
	}
	int found = 0;
	if (marker) {
		/* search the joined text: old tail + new bytes */
		char *joined = malloc(c->len + (size_t)n + 1);
		memcpy(joined, c->tail, c->len);
		memcpy(joined + c->len, buf, (size_t)n);
		joined[c->len + (size_t)n] = '\0';
		found = strstr(joined, marker) != NULL;
		free(joined);
	}
	memcpy(c->tail + c->len, buf + n - take, take);
	c->len += take;
	c->tail[c->len] = '\0';
	return found;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: ssewatch APID_PORT CLIENTS ROUNDS REDIS_PORT\n");
		return 2;
	}
	int port = atoi(argv[1]), n = atoi(argv[2]), rounds = atoi(argv[3]);
	struct client *cs = calloc((size_t)n, sizeof(*cs));
	struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
	double *lat = calloc((size_t)n, sizeof(*lat));
	const char req[] =
		"GET /stations/changes HTTP/1.0\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n";
	for (int i = 0; i < n; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (cs[i].fd < 0 || connect(cs[i].fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
		    send(cs[i].fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
			    (ssize_t)sizeof(req) - 1) {
			fprintf(stderr, "client %d: %s\n", i, strerror(errno));
			return 1;
		}
		pfd[i] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
	}
	/* every stream open (its head read) */
	int open = 0;
	double deadline = now_ms() + 30000;
	while (open < n && now_ms() < deadline) {
		if (poll(pfd, (nfds_t)n, 100) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP)) || cs[i].reached_ms > 0)
				continue;
			int r = feed_client(&cs[i], "\r\n\r\n");
			if (r < 0) {
				fprintf(stderr, "client %d: stream refused or closed: %s\n", i,
					cs[i].tail);
				return 1;
			}
			if (r > 0 || strstr(cs[i].tail, "\r\n\r\n")) {
				cs[i].reached_ms = 1;
				open++;
			}
		}
	}
	if (open < n) {
		fprintf(stderr, "only %d of %d streams opened\n", open, n);
		return 1;
	}
	printf("streams: %d open\n", n);
	fflush(stdout);
	const char *go = getenv("SSEWATCH_GO");
	for (int waited = 0; go && access(go, F_OK) != 0; waited += 10) {
		if (waited >= 60000) {
			fprintf(stderr, "%s never appeared\n", go);
			return 1;
		}
		usleep(10000);
	}
	const char *gap_text = getenv("SSEWATCH_GAP_MS");
	long gap_ms = gap_text ? atol(gap_text) : 500;
	redisContext *redis = redisConnect("127.0.0.1", atoi(argv[4]));
	if (!redis || redis->err) {
		fprintf(stderr, "redis: %s\n", redis ? redis->errstr : "no memory");
		return 1;
	}
	int failed = 0;
	for (int r = 0; r < rounds; r++) {
		char when[24];
		snprintf(when, sizeof(when), "%ld", (long)time(NULL));
		double t0 = now_ms();
		redisReply *reply = redisCommand(
			redis, "XADD ev:changes * s BS0000001 c 01 st %d t %s", 2 + r % 2, when);
		double t_added = now_ms();
		if (!reply || reply->type != REDIS_REPLY_STRING) {
			fprintf(stderr, "XADD failed\n");
			return 1;
		}
		char marker[96];
		snprintf(marker, sizeof(marker), "id: %s.", reply->str);
		freeReplyObject(reply);
		for (int i = 0; i < n; i++)
			cs[i].reached_ms = 0;
		int reached = 0;
		deadline = t_added + 10000;
		while (reached < n && now_ms() < deadline) {
			if (poll(pfd, (nfds_t)n, 50) <= 0)
				continue;
			double t = now_ms();
			for (int i = 0; i < n; i++) {
				if (!(pfd[i].revents & (POLLIN | POLLHUP)) || cs[i].reached_ms > 0)
					continue;
				int got = feed_client(&cs[i], marker);
				if (got < 0) {
					fprintf(stderr, "client %d: stream ended\n", i);
					return 1;
				}
				if (got) {
					cs[i].reached_ms = t;
					lat[reached++] = t - t_added;
				}
			}
		}
		qsort(lat, (size_t)reached, sizeof(*lat), cmp_double);
		printf("round %d: %d/%d clients reached; from the XADD reply: p50 %.1f ms, p99 "
		       "%.1f "
		       "ms, max %.1f ms (XADD took %.1f ms)\n",
		       r + 1, reached, n, reached ? lat[reached / 2] : -1,
		       reached ? lat[(reached * 99) / 100 - (reached * 99 % 100 == 0)] : -1,
		       reached ? lat[reached - 1] : -1, t_added - t0);
		fflush(stdout);
		if (reached < n)
			failed = 1;
		usleep((useconds_t)gap_ms * 1000);
	}
	redisFree(redis);
	for (int i = 0; i < n; i++)
		close(cs[i].fd);
	free(cs);
	free(pfd);
	free(lat);
	return failed;
}
