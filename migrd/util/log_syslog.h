/*
 * log_syslog.h -- the syslog destination of log.c (journald takes it under
 * systemd).  Apart from log.c because <syslog.h> defines LOG_INFO and
 * LOG_DEBUG, which are names of enum log_level.
 */
#ifndef MIGRD_LOG_SYSLOG_H
#define MIGRD_LOG_SYSLOG_H

void log_syslog_open(void);                          /* ident "migrd", LOG_DAEMON, LOG_PID */
void log_syslog_line(int level, const char *line);   /* level: enum log_level */

#endif
