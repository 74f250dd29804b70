/*
 * json.h -- the JSON that `migrctl ... --json` prints (doc/json-schema.md).
 *
 * Owns: writing one JSON document to a stream with correct separators and
 * string escaping.  Strings come from processes and users (command names,
 * node names, reasons): '"', '\\' and control characters are escaped, valid
 * UTF-8 is copied, and every byte that is not part of valid UTF-8 becomes
 * U+FFFD, so that the output is always valid JSON whatever the input.
 *
 *   struct json j; json_start(&j, stdout);
 *   json_obj(&j, NULL); json_int(&j, "schema", 1); json_str(&j, "node", "n1");
 *   json_arr(&j, "moves"); ... json_end(&j); json_end(&j); json_finish(&j);
 */
#ifndef MIGR_TOOLS_JSON_H
#define MIGR_TOOLS_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Every object migrctl prints carries "schema": JSON_SCHEMA (doc/json-schema.md). */
#define JSON_SCHEMA 1
#define JSON_MAX_DEPTH 8

struct json {
    FILE *f;
    int depth;
    bool first[JSON_MAX_DEPTH]; /* nothing written yet at that depth */
    char close[JSON_MAX_DEPTH]; /* '}' or ']' */
};

void json_start(struct json *j, FILE *f);
/* A member (key non-NULL, inside an object) or an element (key NULL). */
void json_obj(struct json *j, const char *key);   /* "{" */
void json_arr(struct json *j, const char *key);   /* "[" */
void json_end(struct json *j);                    /* "}" or "]" of the innermost */
void json_str(struct json *j, const char *key, const char *s);
/* At most n bytes of s (stops early at a NUL): fixed-size fields. */
void json_strn(struct json *j, const char *key, const char *s, size_t n);
void json_int(struct json *j, const char *key, int64_t v);
void json_uint(struct json *j, const char *key, uint64_t v);
void json_num(struct json *j, const char *key, double v); /* 3 decimals */
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
/* An object with "schema" already in it. */
void json_record(struct json *j, const char *key);
/* The final newline; 0, or -1 when writing failed (errno set). */
int json_finish(struct json *j);

#endif
