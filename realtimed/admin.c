#include "admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portfile.h"

struct admin {
	struct evhttp *http; /* owned */
	int port;
	struct admin_ops ops;
	void *ctx;
};

static void reply(struct evhttp_request *req, int code, const char *type, const struct buf *body)
{
	struct evbuffer *out = evbuffer_new();
	if (!out) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(out, buf_cstr(body), body->len);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Content-Type", type);
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_send_reply(req, code,
			  code == 200	? "OK"
			  : code == 503 ? "Service Unavailable"
					: "Error",
			  out);
	evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *uri = evhttp_request_get_uri(req);
	size_t path_len = strcspn(uri, "?");
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "GET only");
		return;
	}
	struct buf body = BUF_INIT;
	if (path_len == 8 && strncmp(uri, "/healthz", 8) == 0) {
		int code = a->ops.health(a->ctx, &body);
		if (buf_ok(&body))
			reply(req, code, "application/json", &body);
		else
			evhttp_send_error(req, 500, NULL);
	} else if (path_len == 8 && strncmp(uri, "/metrics", 8) == 0) {
		if (a->ops.metrics(a->ctx, &body) && buf_ok(&body))
			reply(req, 200, "text/plain; version=0.0.4", &body);
		else
			evhttp_send_error(req, 500, NULL);
	} else {
		evhttp_send_error(req, 404, NULL);
	}
	buf_free(&body);
}

struct admin *admin_new(struct event_base *base, int port, const char *port_file,
			const struct admin_ops *ops, void *ctx, char *err, size_t errlen)
{
	struct admin *a = calloc(1, sizeof(*a));
	if (!a || !(a->http = evhttp_new(base))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	a->ops = *ops;
	a->ctx = ctx;
	evhttp_set_gencb(a->http, on_request, a);
	evhttp_set_timeout(a->http, 10);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	struct evhttp_bound_socket *bound =
		evhttp_bind_socket_with_handle(a->http, "127.0.0.1", (uint16_t)port);
	if (!bound) {
		snprintf(err, errlen, "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
		goto fail;
	}
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len) != 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		goto fail;
	}
	a->port = ntohs(sin.sin_port);
	if (port_file && *port_file && !portfile_write(port_file, a->port)) {
		snprintf(err, errlen, "cannot write the port file %s: %s", port_file,
			 strerror(errno));
		goto fail;
	}
	return a;
fail:
	admin_free(a);
	return NULL;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	if (a->http)
		evhttp_free(a->http);
	free(a);
}

int admin_port(const struct admin *a)
{
	return a->port;
}
