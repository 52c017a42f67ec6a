/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "driver/base/dlib.h"
#include "driver/base/fileio.h"
#include "driver/base/macro.h"
#include "plugin/kube_api.h"

#define SSL_SONAME "libssl.so.3"
#define TOKEN_MAX  (64U * 1024U)
#define HOST_MAX   256

/* The libssl functions used, resolved once (driver/base/dlib.h). X509_VERIFY_PARAM_* are in
 * libcrypto, which the binary links anyway. */
#define SSL_FUNCTIONS(X)                 \
	X(SSL_CTX_ctrl)                  \
	X(SSL_CTX_free)                  \
	X(SSL_CTX_load_verify_locations) \
	X(SSL_CTX_new)                   \
	X(SSL_CTX_set_options)           \
	X(SSL_CTX_set_verify)            \
	X(SSL_connect)                   \
	X(SSL_ctrl)                      \
	X(SSL_free)                      \
	X(SSL_get0_param)                \
	X(SSL_get_error)                 \
	X(SSL_get_verify_result)         \
	X(SSL_new)                       \
	X(SSL_read)                      \
	X(SSL_set1_host)                 \
	X(SSL_set_fd)                    \
	X(SSL_shutdown)                  \
	X(SSL_write)                     \
	X(TLS_client_method)

static struct ssl_table {
#define SSL_FIELD(f) __typeof__(f) *f;
	SSL_FUNCTIONS(SSL_FIELD)
#undef SSL_FIELD
} ssl;
static pthread_once_t ssl_once = PTHREAD_ONCE_INIT;
static int ssl_error;

static void ssl_load_once(void)
{
	static const struct dlib_symbol symbols[] = {
#define SSL_SYMBOL(f) { #f, offsetof(struct ssl_table, f) },
		SSL_FUNCTIONS(SSL_SYMBOL)
#undef SSL_SYMBOL
	};
	struct ssl_table t = {};

	ssl_error = dlib_resolve(SSL_SONAME, symbols, ELEMENTSOF(symbols), &t);
	if (ssl_error >= 0)
		ssl = t;
}

_printf_(3, 4) static int fail(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;

	if (ret_error) {
		free(*ret_error);
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return r;
}

static int parse_server(const struct kube_api *k, char host[static HOST_MAX], char port[static 8])
{
	const char *h, *p, *s = k->server;
	size_t n;

	if (!s) {
		h = secure_getenv("KUBERNETES_SERVICE_HOST");
		p = secure_getenv("KUBERNETES_SERVICE_PORT");
		if (!h || !p || strlen(h) >= HOST_MAX || strlen(p) >= 8 || !*p ||
		    strspn(p, "0123456789") != strlen(p))
			return -EINVAL;
		snprintf(host, HOST_MAX, "%s", h);
		snprintf(port, 8, "%s", p);
		return 0;
	}
	if (strncmp(s, "https://", 8) != 0)
		return -EINVAL;
	s += 8;
	if (*s == '[') { /* [v6]:port */
		const char *end = strchr(s, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		n = (size_t)(end - s - 1);
		p = end + 2;
		s++;
	} else {
		const char *colon = strrchr(s, ':');

		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - s);
		p = colon + 1;
	}
	if (n == 0 || n >= HOST_MAX || !*p || strlen(p) >= 8 ||
	    strspn(p, "0123456789") != strlen(p))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	snprintf(port, 8, "%s", p);
	return 0;
}

static int connect_tcp(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct timeval tv = { .tv_sec = KUBE_API_TIMEOUT_SEC };
	int fd = -1, r;

	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return r == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	r = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		/* Linux bounds connect() by SO_SNDTIMEO; reads and writes by both. */
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		r = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		fd = safe_close(fd);
	}
	freeaddrinfo(res);
	return fd >= 0 ? fd : r;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* The exchange over an established TLS session; returns the raw answer. */
static int exchange(SSL *s, const char *host, const char *path, const char *token, char **ret,
                    size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	char *req = NULL;
	size_t len = 0, cap = 0;
	int n, r;

	r = asprintf(&req,
	             "GET %s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
	             "Accept: application/json\r\nUser-Agent: rbdcsi-doctor\r\n\r\n",
	             path, host, token);
	if (r < 0)
		return -ENOMEM;
	n = ssl.SSL_write(s, req, r);
	wipe_free(req);
	if (n != r)
		return -EIO;
	for (;;) {
		if (cap - len < 65536) {
			char *grown;

			if (cap >= KUBE_API_BODY_MAX + 65536)
				return -EFBIG;
			cap = cap ? 2 * cap : 65536 * 2;
			grown = realloc(buf, cap + 1);
			if (!grown)
				return -ENOMEM;
			buf = grown;
		}
		n = ssl.SSL_read(s, buf + len, (int)MIN(cap - len, (size_t)INT32_MAX));
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		r = ssl.SSL_get_error(s, n);
		/* HTTP/1.0: the body ends with the connection (a close_notify, or a plain close).
		 */
		if (r == SSL_ERROR_ZERO_RETURN || (r == SSL_ERROR_SYSCALL && errno == 0))
			break;
		return r == SSL_ERROR_SYSCALL && errno ? -errno : -EIO;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

int kube_api_get(const struct kube_api *k, const char *path, char **ret_body, size_t *ret_size,
                 char **ret_error)
{
	char host[HOST_MAX], port[8];
	char *token = NULL, *answer = NULL;
	size_t token_len = 0, answer_len = 0;
	SSL_CTX *ctx = NULL;
	SSL *s = NULL;
	int fd = -1, r, status = 0;
	const char *ca = k->ca_file ? k->ca_file : KUBE_API_CA_FILE;
	const char *token_file = k->token_file ? k->token_file : KUBE_API_TOKEN_FILE;
	char *body;

	if (parse_server(k, host, port) < 0)
		return fail(ret_error, -EINVAL, "--kube-api: '%s' is not https://HOST:PORT%s",
		            k->server ? k->server : "",
		            k->server ? "" : " (and KUBERNETES_SERVICE_HOST/PORT are not set)");
	(void)pthread_once(&ssl_once, ssl_load_once);
	if (ssl_error < 0)
		return fail(ret_error, ssl_error, "cannot load %s", SSL_SONAME);
	r = fileio_read_full(token_file, TOKEN_MAX, &token, &token_len);
	if (r < 0) {
		errno = -r;
		return fail(ret_error, r, "cannot read the token '%s': %m", token_file);
	}
	while (token_len > 0 && strchr("\r\n \t", token[token_len - 1]))
		token[--token_len] = '\0';
	if (token_len == 0 || strcspn(token, "\r\n") != token_len) {
		wipe_free(token);
		return fail(ret_error, -EINVAL, "the token '%s' is empty or malformed", token_file);
	}

	ctx = ssl.SSL_CTX_new(ssl.TLS_client_method());
	if (!ctx) {
		r = fail(ret_error, -ENOMEM, "cannot make a TLS context");
		goto out;
	}
	ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
	ssl.SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Servers may close without close_notify (HTTP/1.0 ends the body so): the length is
	 * checked against Content-Length below, and a cut JSON body does not parse. */
	ssl.SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (ssl.SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		r = fail(ret_error, -ENOENT, "cannot load the CA '%s'", ca);
		goto out;
	}
	fd = connect_tcp(host, port);
	if (fd < 0) {
		errno = -fd;
		r = fail(ret_error, fd, "cannot connect to %s:%s: %m", host, port);
		fd = -1;
		goto out;
	}
	s = ssl.SSL_new(ctx);
	if (!s || ssl.SSL_set_fd(s, fd) != 1) {
		r = fail(ret_error, -ENOMEM, "cannot make a TLS session");
		goto out;
	}
	/* Verify the certificate names this server: an IP address, or a DNS name (+ SNI). */
	if (X509_VERIFY_PARAM_set1_ip_asc(ssl.SSL_get0_param(s), host) != 1) {
		ssl.SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, host);
		if (ssl.SSL_set1_host(s, host) != 1) {
			r = fail(ret_error, -EINVAL, "bad server name '%s'", host);
			goto out;
		}
	}
	if (ssl.SSL_connect(s) != 1) {
		long v = ssl.SSL_get_verify_result(s);

		r = v != X509_V_OK
		            ? fail(ret_error, -EPERM,
		                   "%s:%s: the server's certificate does not verify against "
		                   "'%s' (X509 error %ld)",
		                   host, port, ca, v)
		            : fail(ret_error, -EPROTO, "%s:%s: TLS handshake failed", host, port);
		goto out;
	}
	r = exchange(s, host, path, token, &answer, &answer_len);
	if (r < 0) {
		errno = -r;
		r = fail(ret_error, r, "GET %s from %s:%s: %m", path, host, port);
		goto out;
	}
	ssl.SSL_shutdown(s);
	if (sscanf(answer, "HTTP/1.%*1[01] %3d", &status) != 1 ||
	    !(body = strstr(answer, "\r\n\r\n"))) {
		r = fail(ret_error, -EPROTO, "GET %s: not an HTTP answer", path);
		goto out;
	}
	if (status != 200) {
		r = fail(ret_error,
		         status == 401 || status == 403 ? -EACCES
		         : status == 404                ? -ENOENT
		                                        : -EPROTO,
		         "GET %s: HTTP %d", path, status);
		goto out;
	}
	{
		/* Headers are case-insensitive; a chunked body would need decoding (HTTP/1.0 has
		 * none, but refuse rather than misread one). */
		char *h = strndup(answer, (size_t)(body - answer));

		if (!h) {
			r = -ENOMEM;
			goto out;
		}
		for (char *p = h; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		const char *cl = strstr(h, "\ncontent-length:");
		unsigned long long want = cl ? strtoull(cl + 16, NULL, 10) : 0;

		r = strstr(h, "\ntransfer-encoding: chunked") ? -EPROTO : 0;
		free(h);
		if (r < 0) {
			r = fail(ret_error, r, "GET %s: chunked answer to HTTP/1.0", path);
			goto out;
		}
		body += 4;
		*ret_size = answer_len - (size_t)(body - answer);
		if (cl && want != *ret_size) {
			r = fail(ret_error, -EPROTO, "GET %s: %zu bytes of %llu", path, *ret_size,
			         want);
			goto out;
		}
	}
	memmove(answer, body, *ret_size + 1);
	*ret_body = TAKE_PTR(answer);
	r = 0;
out:
	if (s)
		ssl.SSL_free(s);
	if (ctx)
		ssl.SSL_CTX_free(ctx);
	safe_close(fd);
	wipe_free(token);
	free(answer);
	return r;
}
