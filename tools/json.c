/*
 * json.c -- see json.h.
 */
#include "json.h"

#include <inttypes.h>
#include <string.h>

void json_start(struct json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->first[0] = true;
}

static void put_string(FILE *f, const char *s, size_t n);

/* The separator before a value, and its key. */
static void sep_key(struct json *j, const char *key)
{
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = false;
    if (key) {
        put_string(j->f, key, strlen(key));
        fputc(':', j->f);
    }
}

/* Deeper than JSON_MAX_DEPTH is a bug of the caller: the output stays
 * balanced, only separators past that depth are shared. */
static void open_(struct json *j, const char *key, char open, char close)
{
    sep_key(j, key);
    fputc(open, j->f);
    if (j->depth + 1 < JSON_MAX_DEPTH)
        j->depth++;
    j->first[j->depth] = true;
    j->close[j->depth] = close;
}

void json_obj(struct json *j, const char *key) { open_(j, key, '{', '}'); }
void json_arr(struct json *j, const char *key) { open_(j, key, '[', ']'); }

void json_record(struct json *j, const char *key)
{
    json_obj(j, key);
    json_int(j, "schema", JSON_SCHEMA);
}

void json_end(struct json *j)
{
    if (j->depth == 0)
        return;
    fputc(j->close[j->depth], j->f);
    j->depth--;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        len = 2, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

static void put_string(FILE *f, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    for (size_t i = 0; i < n && s[i];) {
        unsigned char c = s[i];
        size_t len = utf8_len(s + i, strnlen(str + i, n - i));
        if (c == '"' || c == '\\') {
            fputc('\\', f), fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else if (!len) {
            fputs("\\ufffd", f);
        } else {
            fwrite(s + i, 1, len, f);
        }
        i += len ? len : 1;
    }
    fputc('"', f);
}

void json_strn(struct json *j, const char *key, const char *s, size_t n)
{
    sep_key(j, key);
    put_string(j->f, s, n);
}

void json_str(struct json *j, const char *key, const char *s) { json_strn(j, key, s, strlen(s)); }

void json_int(struct json *j, const char *key, int64_t v)
{
    sep_key(j, key);
    fprintf(j->f, "%" PRId64, v);
}

void json_uint(struct json *j, const char *key, uint64_t v)
{
    sep_key(j, key);
    fprintf(j->f, "%" PRIu64, v);
}

void json_num(struct json *j, const char *key, double v)
{
    sep_key(j, key);
    fprintf(j->f, "%.3f", v);
}

void json_bool(struct json *j, const char *key, bool v)
{
    sep_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *key)
{
    sep_key(j, key);
    fputs("null", j->f);
}

int json_finish(struct json *j)
{
    fputc('\n', j->f);
    return fflush(j->f) == 0 && !ferror(j->f) ? 0 : -1;
}
