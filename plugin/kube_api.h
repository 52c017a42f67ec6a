/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal Kubernetes API client for `rbdcsi doctor --kube-api`: one HTTPS GET with the pod's
 * service account token, the server verified against the service account's CA (name or IP in
 * the certificate), HTTP/1.0 so the body ends with the connection. libssl is loaded (dlopen)
 * only when used, like libmicrohttpd for the metrics: the plugin never pays for it.
 * The token is read from a file, sent only in the Authorization header, never logged, and wiped.
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
 * GETs path ("/api/v1/nodes") and returns the body of a 200 answer (malloc'ed, NUL-terminated)
 * and its size. Errors: -EINVAL bad server URL or no in-cluster environment; -ENOENT/-EACCES
 * token or CA file; -ELIBACC/-ELIBBAD libssl cannot be loaded; -ECONNREFUSED, -ETIMEDOUT, ...
 * from connecting; -EPERM the server's certificate did not verify; -EACCES 401/403;
 * -ENOENT 404; -EPROTO any other answer or a malformed one; -EFBIG a body over
 * KUBE_API_BODY_MAX. *ret_error (may be NULL) gets a malloc'ed description on failure.
 */
int kube_api_get(const struct kube_api *k, const char *path, char **ret_body, size_t *ret_size,
                 char **ret_error);
