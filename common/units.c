/*
 * units.c -- see units.h.
 */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

/* The leading number of s (decimal, or 0x hex if hex_ok) into *v; *end
 * after it.  -EINVAL without digits, -ERANGE past 2^64 - 1. */
static int leading_number(const char *s, int hex_ok, uint64_t *v, const char **end)
{
    unsigned base = 10;
    uint64_t n = 0;
    const char *p = s;
    if (hex_ok && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    const char *digits = p;
    for (;; p++) {
        unsigned d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned)(*p - '0');
        else if (base == 16 && isxdigit((unsigned char)*p))
            d = (unsigned)(tolower((unsigned char)*p) - 'a' + 10);
        else
            break;
        if (n > (UINT64_MAX - d) / base)
            return -ERANGE;
        n = n * base + d;
    }
    if (p == digits)
        return -EINVAL;
    *v = n;
    *end = p;
    return 0;
}

/* *v * mul with overflow and max checks. */
static int scale(uint64_t v, uint64_t mul, uint64_t max, uint64_t *out)
{
    if (mul && v > UINT64_MAX / mul)
        return -ERANGE;
    if (v * mul > max)
        return -ERANGE;
    *out = v * mul;
    return 0;
}

int parse_size(const char *s, uint64_t max, uint64_t *bytes)
{
    uint64_t v, mul = 1;
    const char *end;
    int rc = leading_number(s, 1, &v, &end);
    if (rc < 0)
        return rc;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    default: return -EINVAL;
    }
    if (*end)
        return -EINVAL;
    return scale(v, mul, max, bytes);
}

int parse_duration(const char *s, uint64_t bare_unit, uint64_t max_us, uint64_t *us)
{
    static const struct {
        const char *suffix;
        uint64_t us;
    } units[] = {{"us", UNITS_US}, {"ms", UNITS_MS}, {"s", UNITS_SEC}, {"min", 60 * UNITS_SEC}};
    uint64_t v;
    const char *end;
    int rc = leading_number(s, 0, &v, &end);
    if (rc < 0)
        return rc;
    if (!*end)
        return scale(v, bare_unit, max_us, us);
    for (unsigned i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix))
            return scale(v, units[i].us, max_us, us);
    return -EINVAL;
}
