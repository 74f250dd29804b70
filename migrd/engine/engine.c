/*
 * migr engine — the operations the daemon and migr-ckpt call.
 *
 * Owns the order of the phases (freeze, capture, write, release; read,
 * restore; and reincarnate = freeze, capture, hand over, kill, restore in
 * place), their timing figures, and the rule that a failure before the
 * source is killed always gives the source back running.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine_int.h"

int engine_freeze(pid_t pid, int timeout_ms, struct engine_frozen **out)
{
	return eng_freeze(pid, timeout_ms, out);
}

/* Freeze, with the page buffer made ready before (allocating and faulting
 * in memory is the slowest part of a big capture: keep it out of the
 * frozen time).  movable: the pages will be restored on this host, and
 * the restore may move pieces of the buffer into the new process. */
static int freeze_prepared(pid_t pid, int timeout_ms, bool movable, struct engine_frozen **out)
{
	uint64_t est = eng_estimate_pages(pid);
	uint8_t *buf = est ? eng_page_buffer(est, movable) : NULL;

	if (eng_freeze(pid, timeout_ms, out) < 0) {
		if (buf)
			munmap(buf, est);
		return -1;
	}
	(*out)->prebuf = buf;
	(*out)->prebuf_len = buf ? est : 0;
	(*out)->prebuf_movable = movable;
	return 0;
}

int engine_release(struct engine_frozen *fz, int how)
{
	return eng_release(fz, how);
}

void engine_image_free(struct engine_image *img)
{
	eng_image_free(img);
}

static int capture(struct engine_frozen *fz, bool leaves_host, bool lazy,
                   struct engine_image **out, struct engine_stats *st)
{
	struct engine_image *img = eng_xcalloc(1, sizeof(*img));
	uint64_t t0 = eng_now_ns(), t1;

	if (!img)
		return -1;
	if (eng_capture_vmas(fz, img, leaves_host) < 0 || eng_capture_threads(fz, img) < 0 ||
	    eng_capture_process(fz, img) < 0 || eng_capture_fds(fz, img) < 0)
		goto fail;
	t1 = eng_now_ns();
	if (eng_capture_pages(fz, img, lazy) < 0)
		goto fail;
	if (st) {
		st->capture_ns = t1 - t0;
		st->memory_ns = eng_now_ns() - t1;
		st->memory_bytes = img->pages_len;
		st->threads = img->nthreads;
		st->vmas = img->nvmas;
		st->fds = img->nfds;
	}
	*out = img;
	return 0;
fail:
	eng_image_free(img);
	return -1;
}

int engine_capture(struct engine_frozen *fz, struct engine_image **out)
{
	return capture(fz, true, false, out, NULL);
}

int engine_capture_lazy(struct engine_frozen *fz, struct engine_image **out)
{
	return capture(fz, true, true, out, NULL);
}

int engine_image_write(const struct engine_image *img, int out_fd, uint64_t *bytes)
{
	struct eng_out o;

	memset(&o, 0, sizeof(o));
	o.fd = out_fd;
	if (eng_image_write(img, &o, true) < 0)
		return eng_wrap("write image");
	if (bytes)
		*bytes = o.total;
	return 0;
}

int engine_image_read(int in_fd, struct engine_image **out, uint64_t *bytes)
{
	return eng_image_parse(in_fd, NULL, 0, NULL, out, bytes);
}

int engine_pagebuf_prepare(uint64_t len, struct engine_pagebuf *buf)
{
	len = (len + ENG_PAGE - 1) & ~(ENG_PAGE - 1);
	buf->mem = len ? eng_page_buffer(len, true) : NULL;
	buf->len = buf->mem ? len : 0;
	return len && !buf->mem ? -1 : 0;
}

void engine_pagebuf_release(struct engine_pagebuf *buf)
{
	if (buf->mem && munmap(buf->mem, buf->len) < 0)
		eng_warn("munmap page buffer %p (%" PRIu64 " bytes): %s", (void *)buf->mem, buf->len,
		         strerror(errno));
	buf->mem = NULL;
	buf->len = 0;
}

int engine_image_read_into(int in_fd, struct engine_pagebuf *buf, struct engine_image **out,
                           uint64_t *bytes)
{
	return eng_image_parse(in_fd, NULL, 0, buf, out, bytes);
}

struct engine_settle *engine_settle_begin(struct engine_image *img, pid_t pid)
{
	return eng_settle_begin(img, pid);
}

int engine_settle_step(struct engine_settle *s, uint64_t max_bytes)
{
	return eng_settle_step(s, max_bytes);
}

void engine_settle_free(struct engine_settle *s)
{
	eng_settle_free(s);
}

int engine_image_restore(struct engine_image *img, const struct engine_restore_opts *opts,
                         pid_t *restored)
{
	return eng_restore(img, opts, restored, NULL);
}

int engine_dump(pid_t pid, int out_fd, const struct engine_dump_opts *opts,
                struct engine_stats *st)
{
	struct engine_dump_opts defaults = { ENGINE_LEAVE_STOPPED, 0 };
	struct engine_frozen *fz = NULL;
	struct engine_image *img = NULL;
	struct engine_stats local;
	uint64_t t0 = eng_now_ns(), t;

	if (!opts)
		opts = &defaults;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (freeze_prepared(pid, opts->freeze_timeout_ms, false, &fz) < 0)
		return -1;
	t0 = fz->t_freeze0;
	st->freeze_ns = fz->t_frozen - fz->t_freeze0;
	if (capture(fz, true, false, &img, st) < 0) {
		eng_wrap("dump pid %d", pid);
		eng_release(fz, ENGINE_LEAVE_RUNNING);
		return -1;
	}
	t = eng_now_ns();
	if (engine_image_write(img, out_fd, &st->image_bytes) < 0) {
		eng_wrap("dump pid %d", pid);
		eng_release(fz, ENGINE_LEAVE_RUNNING);
		eng_image_free(img);
		return -1;
	}
	st->write_ns = eng_now_ns() - t;
	eng_image_free(img);
	if (eng_release(fz, opts->after) < 0)
		return eng_wrap("dump pid %d: release", pid);
	st->frozen_ns = eng_now_ns() - t0;
	st->total_ns = st->frozen_ns;
	return 0;
}

int engine_restore(int in_fd, const struct engine_restore_opts *opts, pid_t *restored,
                   struct engine_stats *st)
{
	struct engine_restore_opts defaults;
	struct engine_image *img = NULL;
	struct engine_stats local;
	uint64_t t0 = eng_now_ns();
	int rc;

	memset(&defaults, 0, sizeof(defaults));
	if (!opts)
		opts = &defaults;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (eng_image_parse(in_fd, NULL, 0, NULL, &img, &st->image_bytes) < 0)
		return -1;
	st->threads = img->nthreads;
	st->vmas = img->nvmas;
	st->fds = img->nfds;
	rc = eng_restore(img, opts, restored, st);
	eng_image_free(img);
	st->total_ns = eng_now_ns() - t0;
	return rc;
}

/* Serialize the captured state (without pages) and parse it back: the
 * restore works from exactly what an image can carry. */
static int roundtrip(struct engine_image *img, struct engine_image **out)
{
	struct eng_out o;
	struct engine_image *back = NULL;
	int rc;

	memset(&o, 0, sizeof(o));
	o.fd = -1;
	if (eng_image_write(img, &o, false) < 0) {
		free(o.buf);
		return -1;
	}
	rc = eng_image_parse(-1, o.buf, o.len, NULL, &back, NULL);
	free(o.buf);
	if (rc < 0)
		return -1;
	/* the pages stay where capture put them */
	free(back->runs);
	back->runs = img->runs;
	back->nruns = img->nruns;
	back->pages = img->pages;
	back->pages_len = img->pages_len;
	back->pages_map_len = img->pages_map_len;
	back->pages_movable = img->pages_movable;
	img->runs = NULL;
	img->nruns = 0;
	img->pages = NULL;
	img->pages_len = 0;
	*out = back;
	return 0;
}

int engine_reincarnate(pid_t pid, const struct engine_restore_opts *opts,
                       struct engine_stats *st)
{
	struct engine_restore_opts ro;
	struct engine_frozen *fz = NULL;
	struct engine_image *img = NULL, *back = NULL;
	struct eng_restore *rs = NULL;
	struct engine_stats local;
	uint64_t t0 = eng_now_ns(), t, t_freeze;
	int rc = -1;

	memset(&ro, 0, sizeof(ro));
	if (opts)
		ro = *opts;
	if (!ro.wait_pid_ms)
		ro.wait_pid_ms = 5000;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (freeze_prepared(pid, 0, true, &fz) < 0)
		return -1;
	t_freeze = fz->t_freeze0;
	st->freeze_ns = fz->t_frozen - fz->t_freeze0;
	if (capture(fz, false, false, &img, st) < 0 || roundtrip(img, &back) < 0 ||
	    eng_fds_handover(back, fz->pidfd, ro.keep_files) < 0 ||
	    eng_vmas_handover(back, pid) < 0 || eng_restore_prepare(back, &ro, &rs) < 0) {
		eng_wrap("reincarnate pid %d", pid);
		eng_release(fz, ENGINE_LEAVE_RUNNING);
		eng_image_free(img);
		eng_image_free(back);
		return -1;
	}
	eng_image_free(img);
	/* from here on the source is gone: no way back */
	t = eng_now_ns();
	if (eng_release(fz, ENGINE_KILL) < 0) {
		eng_wrap("reincarnate pid %d: kill", pid);
		eng_restore_abort(rs);
		goto out;
	}
	st->kill_ns = eng_now_ns() - t;
	if (eng_restore_run(rs, NULL, st) < 0) {
		eng_wrap("reincarnate pid %d: the process is lost", pid);
		goto out;
	}
	rc = 0;
	st->frozen_ns = eng_now_ns() - t_freeze;
	eng_restore_settle(back, pid);
	st->total_ns = eng_now_ns() - t0;
out:
	eng_image_free(back);
	return rc;
}

int engine_info(int in_fd, FILE *out)
{
	struct engine_image *img = NULL;
	int rc;

	if (eng_image_parse(in_fd, NULL, 0, NULL, &img, NULL) < 0)
		return -1;
	rc = eng_image_info(img, out);
	eng_image_free(img);
	return rc;
}
