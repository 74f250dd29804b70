/*
 * move_log.c -- see move_log.h.
 */
#include "move_log.h"

#include <time.h>

#include "common/ctlmsg.h"

static struct ctl_log_move ring[MOVE_LOG_MAX];
static uint64_t added; /* records ever added; the next seq is added + 1 */

void move_log_add(const struct ctl_log_move *r)
{
    struct ctl_log_move *slot = &ring[added % MOVE_LOG_MAX];
    *slot = *r;
    slot->seq = ++added;
}

/* Records in one message: the whole log in a few datagrams, which the
 * requester's socket buffer holds (one message per record would fill it:
 * a non-blocking send then fails half-way). */
#define BATCH ((CTL_MAX_MSG - sizeof(struct ctl_hdr)) / sizeof(struct ctl_log_move))

int move_log_send(int fd, uint32_t reqid, uid_t uid)
{
    static struct ctl_log_move batch[BATCH];
    uint64_t first = added > MOVE_LOG_MAX ? added - MOVE_LOG_MAX : 0;
    size_t n = 0;
    int rc;
    for (uint64_t i = first; i < added; i++) {
        const struct ctl_log_move *r = &ring[i % MOVE_LOG_MAX];
        if (uid != 0 && uid != r->uid)
            continue;
        batch[n++] = *r;
        if (n == BATCH) {
            if ((rc = ctl_send(fd, CTL_LOG_MOVE, reqid, batch, (uint32_t)(n * sizeof *batch), NULL, 0)) < 0)
                return rc;
            n = 0;
        }
    }
    if (n && (rc = ctl_send(fd, CTL_LOG_MOVE, reqid, batch, (uint32_t)(n * sizeof *batch), NULL, 0)) < 0)
        return rc;
    return ctl_send(fd, CTL_END, reqid, NULL, 0, NULL, 0);
}

uint64_t move_log_now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
