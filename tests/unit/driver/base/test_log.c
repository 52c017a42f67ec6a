/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of driver/base/log.c: escaping of peer bytes, fields, whole lines (issues 13 and 17). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "driver/base/log.h"

static char line[8192];

/* Runs fn with stderr going to a file, and leaves what it wrote in line[]. */
static void capture(void (*fn)(void))
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	assert_non_null(f);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	n = fread(line, 1, sizeof(line) - 1, f);
	line[n] = 0;
	fclose(f);
}

/* True when s is valid UTF-8 without C0/C1 controls other than the final newline. */
static bool clean_utf8(const char *s)
{
	const unsigned char *c = (const unsigned char *)s;

	while (*c) {
		size_t n = *c < 0x80 ? 1 : (*c & 0xe0) == 0xc0 ? 2 : (*c & 0xf0) == 0xe0 ? 3 : 4;

		if (*c >= 0x80 && (*c < 0xc2 || *c > 0xf4))
			return false;
		for (size_t i = 1; i < n; i++)
			if ((c[i] & 0xc0) != 0x80)
				return false;
		if (n == 2 && c[0] == 0xc2 && c[1] < 0xa0)
			return false; /* C1 */
		if (n == 1 && (*c < 0x20 || *c == 0x7f) && !(*c == '\n' && c[1] == 0))
			return false;
		c += n;
	}
	return true;
}

static void log_peer_bytes(void)
{
	log_error("grpc: bad value=%s", "\xff\xfe\"q\\\n\x1b[31m\xc2\x9b\xed\xa0\x80 caf\xc3\xa9");
}

static void test_log__json_escapes_every_peer_byte(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_JSON);
	capture(log_peer_bytes);
	assert_true(clean_utf8(line));
	assert_non_null(strstr(line, "value=\\\\xff\\\\xfe\\\"q\\\\\\n\\u001b[31m"));
	assert_non_null(strstr(line, "\\\\xc2\\\\x9b\\\\xed\\\\xa0\\\\x80 caf\xc3\xa9\""));
	assert_int_equal(line[strlen(line) - 2], '}');
}

static void test_log__logfmt_escapes_every_peer_byte(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_TEXT);
	capture(log_peer_bytes);
	assert_true(clean_utf8(line));
	assert_non_null(strstr(line, "msg=\"grpc: bad value=\\xff\\xfe\\\"q\\\\\\n\\u001b[31m"));
}

static void log_finished(void)
{
	struct log_context ctx = { .request_id = 7, .method = "ControllerPublishVolume" };
	struct log_field fields[] = {
		{ "code", "OK", false },
		{ "duration_ms", "1.500", true },
	};

	log_context_push(&ctx);
	log_context_set_volume("vol \"1\"");
	log_context_set_node("node-a");
	log_internal_fields(LOG_LEVEL_INFO, 0, __FILE__, __LINE__, fields, 2, "finished");
	log_context_push(NULL);
	log_context_done(&ctx);
}

static void test_log__call_fields_logfmt(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_TEXT);
	capture(log_finished);
	assert_non_null(strstr(line, " level=info req=7 method=ControllerPublishVolume "
	                             "volume=\"vol \\\"1\\\"\" node=\"node-a\" msg=\"finished\" "
	                             "code=OK duration_ms=1.500\n"));
}

static void test_log__call_fields_json(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_JSON);
	capture(log_finished);
	assert_non_null(strstr(line, ",\"level\":\"info\",\"req\":7,\"method\":"
	                             "\"ControllerPublishVolume\",\"volume\":\"vol \\\"1\\\"\","
	                             "\"node\":\"node-a\",\"msg\":\"finished\",\"code\":\"OK\","
	                             "\"duration_ms\":1.500}\n"));
}

static void log_long(void)
{
	char big[3000];

	/* Two-byte characters and escapes up to the end: the cut must stay whole. */
	for (size_t i = 0; i + 2 < sizeof(big); i += 2)
		memcpy(big + i, i % 4 ? "\xc3\xa9" : "\x01\xff", 2);
	big[sizeof(big) - 2] = 0;
	log_error("%s%s", big, big);
}

static void test_log__long_line_stays_valid(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_JSON);
	capture(log_long);
	assert_true(strlen(line) < 4096);
	assert_true(clean_utf8(line));
	assert_non_null(strstr(line, "...\"}\n"));
	log_set_format(LOG_FORMAT_TEXT);
	capture(log_long);
	assert_true(clean_utf8(line));
	assert_non_null(strstr(line, "...\"\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log__json_escapes_every_peer_byte),
		cmocka_unit_test(test_log__logfmt_escapes_every_peer_byte),
		cmocka_unit_test(test_log__call_fields_logfmt),
		cmocka_unit_test(test_log__call_fields_json),
		cmocka_unit_test(test_log__long_line_stays_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
