/*
 * log.c -- see log.h.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log_syslog.h"

enum log_sink { SINK_STDERR, SINK_FILE, SINK_SYSLOG };

static enum log_sink log_sink = SINK_STDERR;
static int log_fd = STDERR_FILENO;
static char log_file[PATH_MAX];
static enum log_level log_level = LOG_INFO;
static char log_node[64] = "?";
static void (*log_error_hook)(const char *msg);

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_parse_level(const char *s, enum log_level *out)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof *level_names; i++)
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -EINVAL;
}

void log_set_node(const char *node) { snprintf(log_node, sizeof log_node, "%s", node); }

void log_set_error_hook(void (*hook)(const char *msg)) { log_error_hook = hook; }

static int open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

int log_open(const char *path, enum log_level level, const char *node)
{
    log_level = level;
    if (node)
        log_set_node(node);
    if (!path)
        return 0;
    if (strlen(path) >= sizeof log_file)
        return -ENAMETOOLONG;
    int fd = open_file(path);
    if (fd < 0)
        return fd;
    memcpy(log_file, path, strlen(path) + 1);
    log_fd = fd;
    log_sink = SINK_FILE;
    return 0;
}

void log_to_syslog(void)
{
    log_syslog_open();
    log_sink = SINK_SYSLOG;
}

const char *log_path(void) { return log_sink == SINK_FILE ? log_file : NULL; }

int log_reopen(void)
{
    if (log_sink != SINK_FILE)
        return 0;
    int fd = open_file(log_file);
    if (fd < 0)
        return fd;
    /* dup3 swaps the file under the same descriptor: a line being written
     * meanwhile goes to the old file or the new one, never to a closed fd */
    int rc = dup3(fd, log_fd, O_CLOEXEC) < 0 ? -errno : 1;
    close(fd);
    return rc;
}

int log_enabled(enum log_level lvl) { return lvl <= log_level; }

void mlog(enum log_level lvl, const char *fmt, ...)
{
    if (!log_enabled(lvl))
        return;
    char msg[960], line[sizeof msg + 128]; /* room for the timestamp, node and level */
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    if (lvl == LOG_ERROR && log_error_hook)
        log_error_hook(msg);
    if (log_sink == SINK_SYSLOG) {
        snprintf(line, sizeof line, "[%s] %s: %s", log_node, level_names[lvl], msg);
        log_syslog_line(lvl, line);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02d %02d:%02d:%02d.%03ld migrd[%s] %s: %s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, log_node, level_names[lvl], msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line keeps lines whole when several processes log. */
    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w;
}
