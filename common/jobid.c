/*
 * jobid.c -- see jobid.h.
 */
#include "jobid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* A decimal number up to max, all of s[0..*end); no sign, no blanks. */
static int number(const char *s, char **end, unsigned long max, unsigned long *v)
{
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *v = strtoul(s, end, 10);
    return errno || *v > max ? -1 : 0;
}

int jobid_parse(const char *s, uint32_t *job)
{
    unsigned long fam, loc;
    char *end;
    if (!s)
        return -1;
    if (*s != '[') {
        if (number(s, &end, 0xffffffffUL, &fam) < 0 || *end)
            return -1;
        *job = (uint32_t)fam;
        return 0;
    }
    if (number(s + 1, &end, 0xffff, &fam) < 0 || *end != ',' ||
        number(end + 1, &end, 0xffff, &loc) < 0 || end[0] != ']' || end[1])
        return -1;
    *job = (uint32_t)(fam << 16 | loc);
    return 0;
}

const char *jobid_format(uint32_t job, char *buf, size_t len)
{
    snprintf(buf, len, "[%u,%u]", job >> 16, job & 0xffff);
    return buf;
}
