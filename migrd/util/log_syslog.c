/*
 * log_syslog.c -- see log_syslog.h.
 */
#include "log_syslog.h"

#include <syslog.h>

void log_syslog_open(void)
{
    /* LOG_NDELAY: connect now, before anything can close descriptors */
    openlog("migrd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_syslog_line(int level, const char *line)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    int p = level >= 0 && level < (int)(sizeof prio / sizeof *prio) ? prio[level] : LOG_NOTICE;
    syslog(p, "%s", line);
}
