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

int move_log_send(int fd, uint32_t reqid, uid_t uid)
{
    static struct ctl_batch b;
    uint64_t first = added > MOVE_LOG_MAX ? added - MOVE_LOG_MAX : 0;
    ctl_batch_init(&b, fd, CTL_LOG_MOVE, reqid, sizeof(struct ctl_log_move));
    for (uint64_t i = first; i < added; i++) {
        const struct ctl_log_move *r = &ring[i % MOVE_LOG_MAX];
        int rc = uid != 0 && uid != r->uid ? 0 : ctl_batch_add(&b, r);
        if (rc < 0)
            return rc;
    }
    return ctl_batch_end(&b);
}

uint64_t move_log_now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
