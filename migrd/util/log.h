/*
 * log.h -- migrd's one place for messages.
 *
 * Owns: the log destination (stderr, a file, or syslog) and the level
 * filter.  Every line carries a timestamp, the level and the node name
 * (syslog adds its own timestamp and the pid).  A file is reopened by
 * log_reopen (SIGHUP, after logrotate moved it away).
 */
#ifndef MIGRD_LOG_H
#define MIGRD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

int log_open(const char *path, enum log_level level, const char *node); /* 0 or -errno */
void log_to_syslog(void);          /* from now on: syslog "migrd", LOG_DAEMON, with the pid */
int log_reopen(void);              /* 1 reopened, 0 not logging to a file, or -errno */
const char *log_path(void);        /* the log file, or NULL */
int log_parse_level(const char *s, enum log_level *out);                  /* 0 or -EINVAL */
void log_set_node(const char *node);
/* Also hand every error message (without timestamp) to hook; NULL: stop. */
void log_set_error_hook(void (*hook)(const char *msg));
void mlog(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_enabled(enum log_level lvl);

#define log_error(...) mlog(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  mlog(LOG_WARN, __VA_ARGS__)
#define log_info(...)  mlog(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) mlog(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
