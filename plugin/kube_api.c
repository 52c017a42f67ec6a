/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libcurl is called through the table below, never by name: without this, curl.h would wrap
 * curl_easy_setopt() and curl_easy_getinfo() in macros that call the linked functions. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <json-c/json.h>

#include "driver/base/dlib.h"
#include "driver/base/fileio.h"
#include "driver/base/macro.h"
#include "plugin/kube_api.h"

#define LIBCURL_SONAME "libcurl.so.4"
#define TOKEN_MAX      (64U * 1024U)
#define REASON_MAX     200 /* characters of the server's reason kept in an error */

/* The libcurl functions used, resolved once (driver/base/dlib.h). */
#define LIBCURL_FUNCTIONS(X) \
	X(curl_easy_cleanup) \
	X(curl_easy_getinfo) \
	X(curl_easy_init)    \
	X(curl_easy_perform) \
	X(curl_easy_setopt)  \
	X(curl_global_init)  \
	X(curl_slist_append) \
	X(curl_slist_free_all)

static struct libcurl_table {
#define LC_FIELD(f) __typeof__(f) *f;
	LIBCURL_FUNCTIONS(LC_FIELD)
#undef LC_FIELD
} lc;
static pthread_once_t libcurl_once = PTHREAD_ONCE_INIT;
static int libcurl_error;

static void libcurl_load_once(void)
{
	static const struct dlib_symbol symbols[] = {
#define LC_SYMBOL(f) { #f, offsetof(struct libcurl_table, f) },
		LIBCURL_FUNCTIONS(LC_SYMBOL)
#undef LC_SYMBOL
	};
	struct libcurl_table t = {};

	libcurl_error = dlib_resolve(LIBCURL_SONAME, symbols, ELEMENTSOF(symbols), &t);
	if (libcurl_error < 0)
		return;
	/* curl_easy_init() would do this itself, but not thread-safely. */
	if (t.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		libcurl_error = -ELIBBAD;
		return;
	}
	lc = t;
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

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* The header list holds the token: wipe each entry before libcurl frees it. */
static struct curl_slist *headers_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	if (l)
		lc.curl_slist_free_all(l);
	return NULL;
}

/* "https://" then an authority only (a host or [v6], an optional port): no path, query,
 * user info or anything that is not printable. */
static bool server_valid(const char *s)
{
	if (strncmp(s, "https://", 8) != 0 || !s[8])
		return false;
	for (s += 8; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || strchr("/?#@\\", *s))
			return false;
	return true;
}

/* "https://HOST:PORT" from --kube-api, or from the in-cluster environment. */
static int server_url(const struct kube_api *k, char **ret)
{
	const char *h, *p;
	char *url = NULL;

	if (k->server) {
		if (!server_valid(k->server))
			return -EINVAL;
		url = strdup(k->server);
	} else {
		h = secure_getenv("KUBERNETES_SERVICE_HOST");
		p = secure_getenv("KUBERNETES_SERVICE_PORT");
		if (!h || !p || !*p || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
			return -EINVAL;
		if (asprintf(&url, strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s", h, p) < 0)
			url = NULL;
		else if (!server_valid(url)) {
			free(url);
			return -EINVAL;
		}
	}
	if (!url)
		return -ENOMEM;
	*ret = url;
	return 0;
}

/* The body as it arrives, refused beyond KUBE_API_BODY_MAX; the reason of the status line. */
struct answer {
	char *data;
	size_t len;
	size_t cap;
	int error; /* why the write callback refused: -EFBIG, -ENOMEM */
	char reason[64];
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct answer *a = userdata;
	size_t n = size * nmemb; /* size is always 1 */

	if (n > KUBE_API_BODY_MAX - a->len) {
		a->error = -EFBIG;
		return 0;
	}
	if (a->cap - a->len < n + 1) {
		size_t cap = MAX(a->cap ? 2 * a->cap : 65536, a->len + n + 1);
		char *grown;

		cap = MIN(cap, (size_t)KUBE_API_BODY_MAX + 1);
		grown = realloc(a->data, cap);
		if (!grown) {
			a->error = -ENOMEM;
			return 0;
		}
		a->data = grown;
		a->cap = cap;
	}
	memcpy(a->data + a->len, ptr, n);
	a->len += n;
	a->data[a->len] = '\0';
	return n;
}

/* Keeps the reason phrase of the last status line ("HTTP/1.1 403 Forbidden"); HTTP/2 has none. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct answer *a = userdata;
	size_t n = size * nmemb, i = 0, j = 0;

	if (n < 5 || memcmp(ptr, "HTTP/", 5) != 0)
		return n;
	while (i < n && ptr[i] != ' ') /* version */
		i++;
	while (i < n && ptr[i] == ' ')
		i++;
	while (i < n && ptr[i] != ' ' && ptr[i] != '\r' && ptr[i] != '\n') /* status */
		i++;
	while (i < n && ptr[i] == ' ')
		i++;
	for (; i < n && j < sizeof(a->reason) - 1 && ptr[i] != '\r' && ptr[i] != '\n'; i++)
		a->reason[j++] = ptr[i] >= ' ' && ptr[i] < 0x7f ? ptr[i] : '?';
	a->reason[j] = '\0';
	return n;
}

/* The message of a Kubernetes Status body ("nodes is forbidden: User ... cannot list ..."),
 * cut to REASON_MAX printable characters, or NULL. */
static char *status_message(const struct answer *a)
{
	json_object *root, *kind, *msg;
	char *ret = NULL;

	if (!a->data || !(root = json_tokener_parse(a->data)))
		return NULL;
	if (json_object_object_get_ex(root, "kind", &kind) &&
	    json_object_is_type(kind, json_type_string) &&
	    strcmp(json_object_get_string(kind), "Status") == 0 &&
	    json_object_object_get_ex(root, "message", &msg) &&
	    json_object_is_type(msg, json_type_string)) {
		ret = strndup(json_object_get_string(msg), REASON_MAX);
		for (char *p = ret; p && *p; p++)
			if ((unsigned char)*p < ' ' || *p == 0x7f)
				*p = '?';
	}
	json_object_put(root);
	return ret;
}

static int http_error(long status)
{
	switch (status) {
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	default:
		return -EPROTO;
	}
}

/* A libcurl failure as -errno. */
static int errno_of(CURL *h, CURLcode c, const struct answer *a)
{
	long os = 0;

	switch (c) {
	case CURLE_WRITE_ERROR:
		return a->error < 0 ? a->error : -EIO;
	case CURLE_FILESIZE_EXCEEDED:
		return -EFBIG;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
		return -EPERM;
	case CURLE_SSL_CACERT_BADFILE:
		return -EINVAL;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		if (lc.curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os) == CURLE_OK && os > 0)
			return (int)-os;
		return c == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
	default:
		return -EPROTO;
	}
}

/* Sets up h for one GET of url: TLS 1.2+ verified against ca only (no system CAs, no proxy),
 * the host name checked, HTTPS only, no redirects, a total timeout, the body capped. */
static CURLcode easy_setup(CURL *h, const char *url, const char *ca, struct curl_slist *headers,
                           struct answer *a, char *errbuf)
{
	CURLcode c = CURLE_OK;

#define SET(opt, val)                                         \
	do {                                                  \
		if (c == CURLE_OK)                            \
			c = lc.curl_easy_setopt(h, opt, val); \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_PROXY, ""); /* never through an https_proxy from the environment */
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT, (long)KUBE_API_TIMEOUT_SEC);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CAINFO, ca);
	SET(CURLOPT_CAPATH, NULL); /* trust only ca, not the distribution's default path */
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_USERAGENT, "rbdcsi-doctor");
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)KUBE_API_BODY_MAX);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, a);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, a);
	SET(CURLOPT_ERRORBUFFER, errbuf);
#undef SET
	return c;
}

int kube_api_get(const struct kube_api *k, const char *path, char **ret_body, size_t *ret_size,
                 char **ret_error)
{
	const char *ca = k->ca_file ? k->ca_file : KUBE_API_CA_FILE;
	const char *token_file = k->token_file ? k->token_file : KUBE_API_TOKEN_FILE;
	_cleanup_free_ char *server = NULL, *url = NULL, *message = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct answer a = {};
	struct curl_slist *headers = NULL, *l;
	char *token = NULL, *auth = NULL;
	size_t token_len = 0;
	long status = 0;
	CURL *h = NULL;
	CURLcode c;
	int fd, r;

	r = server_url(k, &server);
	if (r < 0)
		return r == -ENOMEM
		               ? r
		               : fail(ret_error, r, "'%s' is not https://HOST:PORT%s",
		                      k->server ? k->server : "",
		                      k->server
		                              ? ""
		                              : " (and KUBERNETES_SERVICE_HOST/PORT are not set)");
	if (asprintf(&url, "%s%s", server, path) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	(void)pthread_once(&libcurl_once, libcurl_load_once);
	if (libcurl_error < 0)
		return fail(ret_error, libcurl_error, "cannot load %s", LIBCURL_SONAME);
	/* libcurl says only "error setting certificate file": find out why first. */
	fd = open(ca, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fail(ret_error, -errno, "cannot read the CA '%s': %m", ca);
	close(fd);
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
	r = asprintf(&auth, "Authorization: Bearer %s", token);
	wipe_free(token);
	if (r < 0)
		return -ENOMEM;
	headers = lc.curl_slist_append(NULL, auth);
	wipe_free(auth);
	if (!headers)
		return -ENOMEM;
	l = lc.curl_slist_append(headers, "Accept: application/json");
	if (!l) {
		headers_free(headers);
		return -ENOMEM;
	}

	h = lc.curl_easy_init();
	if (!h) {
		headers_free(headers);
		return -ENOMEM;
	}
	c = easy_setup(h, url, ca, headers, &a, errbuf);
	if (c != CURLE_OK) {
		r = fail(ret_error, -ENOTSUP, "%s: libcurl refused option setup (error %d)",
		         LIBCURL_SONAME, (int)c);
		goto out;
	}
	c = lc.curl_easy_perform(h);
	if (c != CURLE_OK) {
		r = errno_of(h, c, &a);
		if (r == -EPERM)
			r = fail(ret_error, r,
			         "%s: the server's certificate does not verify against '%s' (%s)",
			         server, ca, errbuf);
		else if (c == CURLE_SSL_CACERT_BADFILE)
			r = fail(ret_error, r, "the CA '%s' holds no usable certificate", ca);
		else if (r == -EFBIG)
			r = fail(ret_error, r, "GET %s: the answer is larger than %u MiB", path,
			         KUBE_API_BODY_MAX >> 20);
		else
			r = fail(ret_error, r, "GET %s from %s: %s", path, server,
			         *errbuf ? errbuf : "failed");
		goto out;
	}
	(void)lc.curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		message = status_message(&a);
		r = fail(ret_error, http_error(status), "GET %s: HTTP %ld%s%s%s%s", path, status,
		         *a.reason ? " " : "", a.reason, message ? ": " : "", strempty(message));
		goto out;
	}
	if (!a.data) { /* an empty body */
		a.data = strdup("");
		if (!a.data) {
			r = -ENOMEM;
			goto out;
		}
	}
	*ret_size = a.len;
	*ret_body = TAKE_PTR(a.data);
	r = 0;
out:
	lc.curl_easy_cleanup(h);
	headers_free(headers);
	free(a.data);
	return r;
}
