/*
 * zoo_events — an event loop over epoll with a pipe, a stream and a
 * datagram socketpair, an eventfd, a timerfd and a signalfd (queued
 * real-time signals), always with unread data in flight, checked record by
 * record across reincarnations.
 */
#include "zoo.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

struct rec { uint64_t seq, check; };
#define K 0x9e3779b97f4a7c15ULL
enum { CH_PIPE, CH_STREAM, CH_DGRAM, NCH };

static uint64_t sent[NCH], got[NCH];
static int wr[NCH], rd[NCH];
static uint8_t sbuf[4096];    /* partial stream record */
static size_t sbuf_len;

static void check_rec(int ch, const struct rec *r)
{
	ZOO_CHECK(r->seq == got[ch], "channel %d: got seq %lu, expected %lu", ch,
	          (unsigned long)r->seq, (unsigned long)got[ch]);
	ZOO_CHECK(r->check == r->seq * K, "channel %d: corrupt record %lu", ch,
	          (unsigned long)r->seq);
	got[ch]++;
}

/* read at most max records of a channel (leaves the rest in flight) */
static void consume(int ch, int max)
{
	struct rec r;

	for (int i = 0; i < max; i++) {
		if (ch == CH_STREAM) {
			ssize_t n = read(rd[ch], sbuf + sbuf_len, sizeof(struct rec) - sbuf_len);
			if (n < 0 && errno == EAGAIN)
				return;
			ZOO_CHECK(n > 0, "stream read: %s", n < 0 ? strerror(errno) : "EOF");
			sbuf_len += (size_t)n;
			if (sbuf_len < sizeof(r))
				continue;
			memcpy(&r, sbuf, sizeof(r));
			sbuf_len = 0;
		} else {
			ssize_t n = read(rd[ch], &r, sizeof(r));
			if (n < 0 && errno == EAGAIN)
				return;
			ZOO_CHECK(n == sizeof(r), "channel %d read %zd: %s", ch, n, strerror(errno));
		}
		check_rec(ch, &r);
	}
}

static void produce(int ch, int count)
{
	for (int i = 0; i < count; i++) {
		struct rec r = { sent[ch], sent[ch] * K };
		ssize_t n = write(wr[ch], &r, sizeof(r));
		if (n < 0 && errno == EAGAIN)
			return;
		ZOO_CHECK(n == sizeof(r), "channel %d write %zd: %s", ch, n, strerror(errno));
		sent[ch]++;
	}
}

int main(void)
{
	int p[2], ss[2], ds[2], efd, tfd, sfd, ep;
	uint64_t ev_written = 0, ev_read = 0, ticks = 0, rt_sent = 0, rt_got = 0;
	struct itimerspec its = { { 0, 10000000 }, { 0, 10000000 } };
	sigset_t m;
	double end, t0;
	int sig = SIGRTMIN + 1;

	ZOO_CHECK(pipe2(p, O_NONBLOCK) == 0, "pipe2");
	ZOO_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, ss) == 0, "socketpair");
	ZOO_CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, ds) == 0, "socketpair dgram");
	wr[CH_PIPE] = p[1]; rd[CH_PIPE] = p[0];
	wr[CH_STREAM] = ss[0]; rd[CH_STREAM] = ss[1];
	wr[CH_DGRAM] = ds[0]; rd[CH_DGRAM] = ds[1];
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	ZOO_CHECK(efd >= 0 && tfd >= 0, "eventfd/timerfd");
	ZOO_CHECK(timerfd_settime(tfd, 0, &its, NULL) == 0, "timerfd_settime");
	sigemptyset(&m);
	sigaddset(&m, sig);
	sigprocmask(SIG_BLOCK, &m, NULL);
	sfd = signalfd(-1, &m, SFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ZOO_CHECK(sfd >= 0 && ep >= 0, "signalfd/epoll");
	{
		int fds[] = { p[0], ss[1], ds[1], efd, tfd, sfd };
		for (int i = 0; i < 6; i++) {
			struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1000 + (uint64_t)i };
			ZOO_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) == 0, "epoll_ctl");
		}
	}
	zoo_ready();
	t0 = zoo_now();
	end = t0 + zoo_seconds();
	while (zoo_running(end)) {
		struct epoll_event evs[8];
		int n;
		/* keep a backlog of about 200 records per channel in flight */
		for (int ch = 0; ch < NCH; ch++)
			if (sent[ch] - got[ch] < 200)
				produce(ch, 7);
		{
			uint64_t one = 3;
			ZOO_CHECK(write(efd, &one, 8) == 8, "eventfd write");
			ev_written += 3;
		}
		if (rt_sent - rt_got < 20) {
			union sigval v = { .sival_int = (int)rt_sent };
			ZOO_CHECK(sigqueue(getpid(), sig, v) == 0, "sigqueue");
			rt_sent++;
		}
		n = epoll_wait(ep, evs, 8, 5);
		if (n < 0 && errno == EINTR)
			continue;
		ZOO_CHECK(n >= 0, "epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64, v;
			struct signalfd_siginfo si;
			switch (d) {
			case 1000: consume(CH_PIPE, 5); break;
			case 1001: consume(CH_STREAM, 5); break;
			case 1002: consume(CH_DGRAM, 5); break;
			case 1003:
				if (read(efd, &v, 8) == 8)
					ev_read += v;
				break;
			case 1004:
				if (read(tfd, &v, 8) == 8)
					ticks += v;
				break;
			case 1005:
				if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					ZOO_CHECK(si.ssi_int == (int32_t)rt_got, "signal value %d, expected %lu",
					          si.ssi_int, (unsigned long)rt_got);
					rt_got++;
				}
				break;
			default:
				zoo_fail("epoll data %lu", (unsigned long)d);
			}
		}
		zoo_check_identity(zoo_pid0);
	}
	/* drain and check that nothing was lost or duplicated */
	for (int ch = 0; ch < NCH; ch++) {
		consume(ch, 1 << 30);
		ZOO_CHECK(got[ch] == sent[ch], "channel %d: sent %lu, received %lu", ch,
		          (unsigned long)sent[ch], (unsigned long)got[ch]);
	}
	{
		uint64_t v;
		if (read(efd, &v, 8) == 8)
			ev_read += v;
		ZOO_CHECK(ev_read == ev_written, "eventfd: wrote %lu, read %lu",
		          (unsigned long)ev_written, (unsigned long)ev_read);
	}
	for (;;) {
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			break;
		ZOO_CHECK(si.ssi_int == (int32_t)rt_got, "late signal value %d", si.ssi_int);
		rt_got++;
	}
	ZOO_CHECK(rt_got == rt_sent, "signals: sent %lu, got %lu", (unsigned long)rt_sent,
	          (unsigned long)rt_got);
	{
		double el = zoo_now() - t0;
		uint64_t v;
		if (read(tfd, &v, 8) == 8)
			ticks += v;
		ZOO_CHECK(ticks > el * 100 * 0.5 && ticks < el * 100 * 1.5 + 10,
		          "timerfd: %lu ticks in %.2f s", (unsigned long)ticks, el);
	}
	printf("records %lu/%lu/%lu, eventfd %lu, ticks %lu, rt signals %lu\n",
	       (unsigned long)got[0], (unsigned long)got[1], (unsigned long)got[2],
	       (unsigned long)ev_read, (unsigned long)ticks, (unsigned long)rt_got);
	zoo_pass("zoo_events");
}
