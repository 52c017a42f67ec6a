/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers shared by the benchmark tools (loadgen.c, baseline.c): a monotonic clock,
 * latency samples with percentiles, number parsing, reading the cephx key from stdin.
 * Header-only: each tool is one translation unit.
 */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "driver/base/macro.h"

static inline uint64_t bench_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* CPU time (user + system) this process has used so far, in seconds. */
static inline double bench_cpu_sec(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Latency samples in microseconds. */
struct bench_samples {
	uint64_t *v;
	size_t n;
	size_t cap;
};

static inline int bench_samples_add(struct bench_samples *s, uint64_t usec)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *g = reallocarray(s->v, cap, sizeof(*g));

		if (!g)
			return -ENOMEM;
		s->v = g;
		s->cap = cap;
	}
	s->v[s->n++] = usec;
	return 0;
}

static inline void bench_samples_done(struct bench_samples *s)
{
	free(s->v);
	*s = (struct bench_samples){ 0 };
}

static int bench_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (0 < p <= 100) in milliseconds; sorts the samples. 0 when empty. */
static inline double bench_pct_ms(struct bench_samples *s, double p)
{
	size_t rank;

	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof(*s->v), bench_u64_cmp);
	rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return (double)s->v[rank - 1] / 1000.0;
}

static inline double bench_mean_ms(const struct bench_samples *s)
{
	double sum = 0;

	if (s->n == 0)
		return 0;
	for (size_t i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	return sum / (double)s->n / 1000.0;
}

/* Prints "name":{"n":..,"p50_ms":..,"p99_ms":..,"mean_ms":..,"max_ms":..} (no separator). */
static inline void bench_samples_json(FILE *f, const char *name, struct bench_samples *s)
{
	double p50 = bench_pct_ms(s, 50), p99 = bench_pct_ms(s, 99);

	fprintf(f,
	        "\"%s\":{\"n\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"mean_ms\":%.3f,\"max_ms\":%."
	        "3f}",
	        name, s->n, p50, p99, bench_mean_ms(s),
	        s->n ? (double)s->v[s->n - 1] / 1000.0 : 0.0);
}

/* Appends the samples to the file at path (NULL: nothing), one "<tag> <usec>" a line, so that
 * several runs can be merged before percentiles are taken. */
static inline void bench_samples_dump(const char *path, const char *tag,
                                      const struct bench_samples *s)
{
	FILE *f;

	if (!path)
		return;
	f = fopen(path, "ae");
	if (!f)
		return;
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "%s %llu\n", tag, (unsigned long long)s->v[i]);
	fclose(f);
}

/* Parses a decimal number in [min, max]. Returns 0 or -EINVAL. */
static inline int bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != 0 || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Reads one line (the cephx key) from stdin; the key never goes through argv or the
 * environment. Returns a malloc'ed string without the newline, or NULL. */
static inline char *bench_read_key(void)
{
	char buf[512];
	size_t n = 0;

	while (n < sizeof(buf) - 1) {
		ssize_t k = read(STDIN_FILENO, buf + n, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	if (n == 0)
		return NULL;
	return strdup(buf);
}

/* Wipes and frees a key. */
static inline void bench_key_free(char *key)
{
	if (!key)
		return;
	explicit_bzero(key, strlen(key));
	free(key);
}
