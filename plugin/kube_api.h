/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal Kubernetes API client for `rbdcsi doctor --kube-api`: one HTTPS GET with the pod's
 * service account token, the server verified against the service account's CA only (not the
 * system's) and its name or IP checked against the certificate. The HTTP and TLS work is
 * libcurl's, loaded (dlopen) only when used, like libmicrohttpd for the metrics: linked, it and
 * the 27 libraries it adds cost an idle node plugin 4.1 MiB of RSS (13.3 -> 17.4 MiB).
 * The token is read from a file, sent only in the Authorization header (no proxy, no redirect),
 * never logged, and our copies of it are wiped.
 */
#pragma once

#include <stddef.h>

#define KUBE_API_TOKEN_FILE  "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define KUBE_API_CA_FILE     "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
#define KUBE_API_BODY_MAX    (64U * 1024U * 1024U)
#define KUBE_API_TIMEOUT_SEC 30

struct kube_api {
	const char
	        *server; /* "https://HOST:PORT"; NULL: in-cluster (KUBERNETES_SERVICE_HOST/PORT) */
	const char *token_file; /* NULL: KUBE_API_TOKEN_FILE */
	const char *ca_file;    /* NULL: KUBE_API_CA_FILE */
};

/*
 * GETs path ("/api/v1/nodes") and returns the body of a 2xx answer (malloc'ed, NUL-terminated,
 * freed by the caller) and its size. The whole exchange is bounded by KUBE_API_TIMEOUT_SEC.
 * Errors: -EINVAL bad server URL, no in-cluster environment, an empty token, a CA file with no
 * certificate; -ENOENT/-EACCES token or CA file; -ELIBACC/-ELIBBAD libcurl cannot be loaded;
 * -EHOSTUNREACH, -ECONNREFUSED, -ETIMEDOUT, ... from connecting; -EPERM the server's
 * certificate did not verify (CA or name); -EACCES 401/403; -ENOENT 404; -EPROTO any other
 * answer or a malformed one; -EFBIG a body over KUBE_API_BODY_MAX.
 * *ret_error (may be NULL; the caller frees it) gets a description on failure, with the HTTP
 * status, its reason and the message of a Kubernetes Status body; never the token.
 */
int kube_api_get(const struct kube_api *k, const char *path, char **ret_body, size_t *ret_size,
                 char **ret_error);
