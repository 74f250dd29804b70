/*
 * migr engine — the image format.
 *
 * Owns the byte layout of an image and its checking.  An image is a
 * stream: a 24-byte file header, then typed sections, each
 *     u32 type | u32 version | u64 length | payload | u32 crc32c
 * (the CRC covers section header and payload), ending with an END section.
 * All integers are little-endian; strings and blobs are u32 length + bytes.
 * Sections: PROC (process-wide state), THREAD (one per thread, main thread
 * first), VMAS (memory layout), FDS (descriptors), PAGES (run table, then
 * page contents), END (section count).  Writing needs no seek, so images
 * go to pipes and sockets; reading checks every length, count, CRC and the
 * consistency of the whole before anything is restored.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine_int.h"

#define IMG_MAGIC      "MIGRIMG"
#define IMG_ARCH_X8664 62
#define SEC_PROC   1
#define SEC_THREAD 2
#define SEC_VMAS   3
#define SEC_FDS    4
#define SEC_PAGES  5
#define SEC_END    0x454e44
#define SEC_VERSION 1
#define MAX_META_SECTION (256u << 20)
#define MAX_STR 4096
#define MAX_BLOB (64u << 20)

/* ------------------------------------------------------------ crc32c */

static uint32_t crc_table[8][256];
static int crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}

uint32_t eng_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	if (crc_hw)
		return ~crc_sse42(crc, p, len);
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		v ^= crc;
		crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
		      crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
		      crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
		      crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

/* ------------------------------------------------------------ encoding */

struct ebuf { uint8_t *p; size_t len, cap; bool oom; };

static void eput(struct ebuf *b, const void *v, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		uint8_t *np;
		while (nc < b->len + n)
			nc *= 2;
		np = realloc(b->p, nc);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, v, n);
	b->len += n;
}

static void p32(struct ebuf *b, uint32_t v) { eput(b, &v, 4); }
static void p64(struct ebuf *b, uint64_t v) { eput(b, &v, 8); }
static void pstr(struct ebuf *b, const char *s)
{
	uint32_t l = s ? (uint32_t)strlen(s) : 0;
	p32(b, l);
	eput(b, s ? s : "", l);
}
static void pblob(struct ebuf *b, const void *p, uint32_t l)
{
	p32(b, l);
	eput(b, p, l);
}

/* per thread: a move's stream may be read in a thread of its own */
static __thread void (*tap_fn)(void *arg, const void *p, size_t n);
static __thread void *tap_arg;

void engine_image_tap(void (*fn)(void *arg, const void *p, size_t n), void *arg)
{
	tap_fn = fn;
	tap_arg = arg;
}

static int out_write(struct eng_out *o, const void *p, size_t n)
{
	o->crc = eng_crc32c(o->crc, p, n);
	o->total += n;
	if (o->fd >= 0 && tap_fn)
		tap_fn(tap_arg, p, n);
	if (o->fd >= 0)
		return eng_write_full(o->fd, p, n);
	if (o->len + n > o->cap) {
		size_t nc = o->cap ? o->cap : 65536;
		uint8_t *np;
		while (nc < o->len + n)
			nc *= 2;
		np = realloc(o->buf, nc);
		if (!np)
			return eng_fail("out of memory writing image");
		o->buf = np;
		o->cap = nc;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

static int sec_begin(struct eng_out *o, uint32_t type, uint64_t len)
{
	uint8_t h[16];
	uint32_t v = SEC_VERSION;

	memcpy(h, &type, 4);
	memcpy(h + 4, &v, 4);
	memcpy(h + 8, &len, 8);
	o->crc = 0;
	return out_write(o, h, sizeof(h));
}

static int sec_end(struct eng_out *o)
{
	uint32_t c = o->crc;

	return out_write(o, &c, 4);
}

static int sec_meta(struct eng_out *o, uint32_t type, struct ebuf *b)
{
	int rc;

	if (b->oom) {
		free(b->p);
		return eng_fail("out of memory encoding image section %u", type);
	}
	rc = sec_begin(o, type, b->len) < 0 || out_write(o, b->p, b->len) < 0 || sec_end(o) < 0;
	free(b->p);
	memset(b, 0, sizeof(*b));
	return rc ? -1 : 0;
}

static void enc_siginfos(struct ebuf *b, const struct eng_siginfo *v, uint32_t n)
{
	p32(b, n);
	eput(b, v, (size_t)n * sizeof(*v));
}

static void enc_proc(struct ebuf *b, const struct engine_image *img)
{
	pstr(b, img->kernel);
	pstr(b, img->machine);
	p64(b, img->xcr0);
	p32(b, (uint32_t)img->pid);
	p32(b, (uint32_t)img->ppid);
	p32(b, (uint32_t)img->pgid);
	p32(b, (uint32_t)img->sid);
	pstr(b, img->comm);
	for (int i = 0; i < 4; i++)
		p32(b, img->creds.uid[i]);
	for (int i = 0; i < 4; i++)
		p32(b, img->creds.gid[i]);
	pblob(b, img->creds.groups, img->creds.ngroups * 4);
	p64(b, img->creds.cap_inh);
	p64(b, img->creds.cap_prm);
	p64(b, img->creds.cap_eff);
	p64(b, img->creds.cap_bnd);
	p64(b, img->creds.cap_amb);
	pstr(b, img->cwd);
	pstr(b, img->exe);
	p64(b, img->exe_dev);
	p64(b, img->exe_ino);
	p64(b, img->exe_size);
	p32(b, img->umask);
	p32(b, img->personality);
	p32(b, img->dumpable);
	for (int i = 0; i < ENG_NRLIMIT; i++) {
		p64(b, img->rlim[i][0]);
		p64(b, img->rlim[i][1]);
	}
	eput(b, &img->mm, sizeof(img->mm));
	pblob(b, img->auxv, img->auxv_len);
	for (int i = 0; i < 3; i++) {
		p64(b, (uint64_t)img->itimer[i].int_sec);
		p64(b, (uint64_t)img->itimer[i].int_usec);
		p64(b, (uint64_t)img->itimer[i].val_sec);
		p64(b, (uint64_t)img->itimer[i].val_usec);
	}
	eput(b, img->sigact, sizeof(img->sigact));
	enc_siginfos(b, img->shared, img->nshared);
}

static void enc_thread(struct ebuf *b, const struct eng_thread *t)
{
	p32(b, (uint32_t)t->tid);
	eput(b, &t->regs, sizeof(t->regs));
	pblob(b, t->xstate, t->xstate_len);
	p64(b, t->sigmask);
	enc_siginfos(b, t->pending, t->npending);
	p64(b, t->ss_sp);
	p64(b, t->ss_size);
	p32(b, (uint32_t)t->ss_flags);
	p64(b, t->robust_head);
	p64(b, t->robust_len);
	p64(b, t->rseq_ptr);
	p32(b, t->rseq_len);
	p32(b, t->rseq_sig);
	p64(b, t->clear_tid);
	pstr(b, t->comm);
	p32(b, t->sched.policy);
	p32(b, t->sched.priority);
	p32(b, (uint32_t)t->sched.nice);
	p32(b, t->sched.reset_on_fork);
	p64(b, t->sched.runtime);
	p64(b, t->sched.deadline);
	p64(b, t->sched.period);
}

static void enc_vmas(struct ebuf *b, const struct engine_image *img)
{
	p32(b, img->nvmas);
	for (uint32_t i = 0; i < img->nvmas; i++) {
		const struct eng_vma *e = &img->vmas[i];
		p64(b, e->start);
		p64(b, e->end);
		p64(b, e->pgoff);
		p32(b, e->prot);
		p32(b, e->kind);
		p32(b, e->vmflags);
		p32(b, e->content);
		p64(b, e->dev);
		p64(b, e->ino);
		p64(b, e->fsize);
		p64(b, (uint64_t)e->mtime_sec);
		p64(b, (uint64_t)e->mtime_nsec);
		p32(b, e->obj);
		pstr(b, e->path);
	}
}

static void enc_fds(struct ebuf *b, const struct engine_image *img)
{
	p32(b, img->nfds);
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct eng_fd *f = &img->fds[i];
		p32(b, (uint32_t)f->fd);
		p32(b, f->kind);
		p32(b, f->flags);
		p64(b, f->pos);
		p32(b, (uint32_t)f->same_as);
		p32(b, (uint32_t)f->peer);
		p32(b, f->mode);
		p64(b, f->dev);
		p64(b, f->ino);
		p64(b, f->size);
		p64(b, (uint64_t)f->mtime);
		pstr(b, f->path);
		pstr(b, f->desc);
		p32(b, f->sock_type);
		p32(b, f->pipe_size);
		pblob(b, f->data, f->datalen);
		p64(b, f->count);
		p32(b, f->semaphore);
		p32(b, (uint32_t)f->clockid);
		p64(b, f->ticks);
		p64(b, (uint64_t)f->val_sec);
		p64(b, (uint64_t)f->val_nsec);
		p64(b, (uint64_t)f->int_sec);
		p64(b, (uint64_t)f->int_nsec);
		p64(b, f->sigmask);
		p32(b, f->nep);
		for (uint32_t k = 0; k < f->nep; k++) {
			p32(b, (uint32_t)f->ep[k].tfd);
			p32(b, f->ep[k].events);
			p64(b, f->ep[k].data);
		}
	}
}

/* The page bytes, in pieces small enough to stay in the cache between the
 * checksum and the write: from the capture buffer, or read piece by piece
 * from the frozen process (lazy capture), so that reading and sending
 * overlap. */
#define PAGE_PIECE (2u << 20)

static int write_page_bytes(const struct engine_image *img, struct eng_out *o)
{
	struct eng_page_reader rd;
	uint8_t *piece = NULL;
	int rc = 0;

	if (!img->pages) {
		if (img->pages_from <= 0)
			return eng_fail("image of pid %d: no page contents to write", img->pid);
		piece = malloc(PAGE_PIECE);
		if (!piece)
			return eng_fail("out of memory (%u bytes to read pages through)", PAGE_PIECE);
		eng_page_reader_init(&rd, img->pages_from, img);
	}
	for (uint64_t off = 0; off < img->pages_len && rc == 0; off += PAGE_PIECE) {
		uint64_t n = img->pages_len - off < PAGE_PIECE ? img->pages_len - off : PAGE_PIECE;
		if (piece)
			rc = eng_page_reader_read(&rd, piece, n) < 0 ? -1 : out_write(o, piece, n);
		else
			rc = out_write(o, img->pages + off, n);
	}
	free(piece);
	return rc;
}

int eng_image_write(const struct engine_image *img, struct eng_out *o, bool with_pages)
{
	uint8_t hdr[24];
	uint32_t v = ENGINE_IMAGE_VERSION, flags = 0, arch = IMG_ARCH_X8664, c, nsec = 0;
	struct ebuf b = { 0 };
	uint64_t pages_len = with_pages ? img->pages_len : 0;

	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, IMG_MAGIC, 8);
	memcpy(hdr + 8, &v, 4);
	memcpy(hdr + 12, &flags, 4);
	memcpy(hdr + 16, &arch, 4);
	c = eng_crc32c(0, hdr, 20);
	memcpy(hdr + 20, &c, 4);
	if (out_write(o, hdr, sizeof(hdr)) < 0)
		return -1;
	enc_proc(&b, img);
	if (sec_meta(o, SEC_PROC, &b) < 0)
		return -1;
	nsec++;
	for (uint32_t i = 0; i < img->nthreads; i++, nsec++) {
		enc_thread(&b, &img->threads[i]);
		if (sec_meta(o, SEC_THREAD, &b) < 0)
			return -1;
	}
	enc_vmas(&b, img);
	if (sec_meta(o, SEC_VMAS, &b) < 0)
		return -1;
	enc_fds(&b, img);
	if (sec_meta(o, SEC_FDS, &b) < 0)
		return -1;
	nsec += 2;
	/* pages: run table, then contents straight from the capture buffer */
	{
		uint32_t nruns = with_pages ? img->nruns : 0;
		if (sec_begin(o, SEC_PAGES, 4 + (uint64_t)nruns * 16 + pages_len) < 0 ||
		    out_write(o, &nruns, 4) < 0)
			return -1;
		for (uint32_t i = 0; i < nruns; i++) {
			uint64_t r[2] = { img->runs[i].addr, img->runs[i].npages };
			if (out_write(o, r, 16) < 0)
				return -1;
		}
		if (pages_len && write_page_bytes(img, o) < 0)
			return -1;
		if (sec_end(o) < 0)
			return -1;
		nsec++;
	}
	p32(&b, nsec);
	return sec_meta(o, SEC_END, &b);
}

/* ------------------------------------------------------------ decoding */

struct cur { const uint8_t *p; size_t left; bool bad; };

static void gbytes(struct cur *c, void *dst, size_t n)
{
	if (c->bad || n > c->left) {
		c->bad = true;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, c->p, n);
	c->p += n;
	c->left -= n;
}

static uint32_t g32(struct cur *c) { uint32_t v; gbytes(c, &v, 4); return v; }
static uint64_t g64(struct cur *c) { uint64_t v; gbytes(c, &v, 8); return v; }

/* blob of at most max bytes; always returns a NUL-terminated buffer */
static uint8_t *gblob(struct cur *c, uint32_t max, uint32_t *len)
{
	uint32_t l = g32(c);
	uint8_t *p;

	if (c->bad || l > max || l > c->left) {
		c->bad = true;
		*len = 0;
		return calloc(1, 1);
	}
	p = malloc((size_t)l + 1);
	if (!p) {
		c->bad = true;
		*len = 0;
		return NULL;
	}
	gbytes(c, p, l);
	p[l] = 0;
	*len = l;
	return p;
}

static char *gstr(struct cur *c)
{
	uint32_t l;
	char *s = (char *)gblob(c, MAX_STR, &l);

	if (s && strlen(s) != l)
		c->bad = true;          /* embedded NUL */
	return s;
}

static void gstrn(struct cur *c, char *dst, size_t cap)
{
	char *s = gstr(c);

	if (s && strlen(s) >= cap)
		c->bad = true;
	snprintf(dst, cap, "%s", s ? s : "");
	free(s);
}

static struct eng_siginfo *gsiginfos(struct cur *c, uint32_t *n)
{
	uint32_t cnt = g32(c);
	struct eng_siginfo *v;

	if (c->bad || cnt > ENG_MAX_PENDING || (uint64_t)cnt * sizeof(*v) > c->left) {
		c->bad = true;
		*n = 0;
		return NULL;
	}
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v) {
		c->bad = true;
		*n = 0;
		return NULL;
	}
	gbytes(c, v, (size_t)cnt * sizeof(*v));
	*n = cnt;
	return v;
}

static int dec_proc(struct cur *c, struct engine_image *img)
{
	uint32_t l;

	gstrn(c, img->kernel, sizeof(img->kernel));
	gstrn(c, img->machine, sizeof(img->machine));
	img->xcr0 = g64(c);
	img->pid = (int32_t)g32(c);
	img->ppid = (int32_t)g32(c);
	img->pgid = (int32_t)g32(c);
	img->sid = (int32_t)g32(c);
	gstrn(c, img->comm, sizeof(img->comm));
	for (int i = 0; i < 4; i++)
		img->creds.uid[i] = g32(c);
	for (int i = 0; i < 4; i++)
		img->creds.gid[i] = g32(c);
	img->creds.groups = (uint32_t *)gblob(c, 65536 * 4, &l);
	if (l % 4)
		c->bad = true;
	img->creds.ngroups = l / 4;
	img->creds.cap_inh = g64(c);
	img->creds.cap_prm = g64(c);
	img->creds.cap_eff = g64(c);
	img->creds.cap_bnd = g64(c);
	img->creds.cap_amb = g64(c);
	img->cwd = gstr(c);
	img->exe = gstr(c);
	img->exe_dev = g64(c);
	img->exe_ino = g64(c);
	img->exe_size = g64(c);
	img->umask = g32(c);
	img->personality = g32(c);
	img->dumpable = g32(c);
	for (int i = 0; i < ENG_NRLIMIT; i++) {
		img->rlim[i][0] = g64(c);
		img->rlim[i][1] = g64(c);
	}
	gbytes(c, &img->mm, sizeof(img->mm));
	img->auxv = gblob(c, 4096, &img->auxv_len);
	for (int i = 0; i < 3; i++) {
		img->itimer[i].int_sec = (int64_t)g64(c);
		img->itimer[i].int_usec = (int64_t)g64(c);
		img->itimer[i].val_sec = (int64_t)g64(c);
		img->itimer[i].val_usec = (int64_t)g64(c);
	}
	gbytes(c, img->sigact, sizeof(img->sigact));
	img->shared = gsiginfos(c, &img->nshared);
	return c->bad || c->left ? eng_fail("image: PROC section malformed") : 0;
}

static int dec_thread(struct cur *c, struct eng_thread *t)
{
	t->tid = (int32_t)g32(c);
	gbytes(c, &t->regs, sizeof(t->regs));
	t->xstate = gblob(c, ENG_MAX_XSTATE, &t->xstate_len);
	t->sigmask = g64(c);
	t->pending = gsiginfos(c, &t->npending);
	t->ss_sp = g64(c);
	t->ss_size = g64(c);
	t->ss_flags = (int32_t)g32(c);
	t->robust_head = g64(c);
	t->robust_len = g64(c);
	t->rseq_ptr = g64(c);
	t->rseq_len = g32(c);
	t->rseq_sig = g32(c);
	t->clear_tid = g64(c);
	gstrn(c, t->comm, sizeof(t->comm));
	/* scheduling: absent from images of migr 0.1.0 (SCHED_OTHER, nice 0) */
	if (c->left) {
		t->sched.policy = g32(c);
		t->sched.priority = g32(c);
		t->sched.nice = (int32_t)g32(c);
		t->sched.reset_on_fork = g32(c);
		t->sched.runtime = g64(c);
		t->sched.deadline = g64(c);
		t->sched.period = g64(c);
	}
	if (t->sched.reset_on_fork > 1 || t->sched.nice < -20 || t->sched.nice > 19)
		return eng_fail("image: THREAD %d: bad scheduling (nice %d)", t->tid, t->sched.nice);
	return c->bad || c->left ? eng_fail("image: THREAD section malformed") : 0;
}

static int dec_vmas(struct cur *c, struct engine_image *img)
{
	uint32_t n = g32(c);

	/* a region takes at least 92 bytes */
	if (c->bad || n > ENG_MAX_VMAS || (uint64_t)n * 92 > c->left)
		return eng_fail("image: VMAS section: bad count %u", n);
	img->vmas = calloc(n ? n : 1, sizeof(*img->vmas));
	if (!img->vmas)
		return eng_fail("out of memory");
	img->nvmas = n;
	for (uint32_t i = 0; i < n; i++) {
		struct eng_vma *e = &img->vmas[i];
		e->src_fd = -1;
		e->pfd = -1;
		e->start = g64(c);
		e->end = g64(c);
		e->pgoff = g64(c);
		e->prot = g32(c);
		e->kind = g32(c);
		e->vmflags = g32(c);
		e->content = g32(c);
		e->dev = g64(c);
		e->ino = g64(c);
		e->fsize = g64(c);
		e->mtime_sec = (int64_t)g64(c);
		e->mtime_nsec = (int64_t)g64(c);
		e->obj = g32(c);
		e->path = gstr(c);
		if (!e->path)
			c->bad = true;
	}
	return c->bad || c->left ? eng_fail("image: VMAS section malformed") : 0;
}

static int dec_fds(struct cur *c, struct engine_image *img)
{
	uint32_t n = g32(c);

	if (c->bad || n > ENG_MAX_FDS || (uint64_t)n * 120 > c->left)
		return eng_fail("image: FDS section: bad count %u", n);
	img->fds = calloc(n ? n : 1, sizeof(*img->fds));
	if (!img->fds)
		return eng_fail("out of memory");
	img->nfds = n;
	for (uint32_t i = 0; i < n; i++) {
		struct eng_fd *f = &img->fds[i];
		f->src = -1;
		f->fd = (int32_t)g32(c);
		f->kind = g32(c);
		f->flags = g32(c);
		f->pos = g64(c);
		f->same_as = (int32_t)g32(c);
		f->peer = (int32_t)g32(c);
		f->mode = g32(c);
		f->dev = g64(c);
		f->ino = g64(c);
		f->size = g64(c);
		f->mtime = (int64_t)g64(c);
		f->path = gstr(c);
		f->desc = gstr(c);
		if (f->desc && !f->desc[0]) {
			free(f->desc);
			f->desc = NULL;
		}
		f->sock_type = g32(c);
		f->pipe_size = g32(c);
		f->data = gblob(c, MAX_BLOB, &f->datalen);
		f->count = g64(c);
		f->semaphore = g32(c);
		f->clockid = (int32_t)g32(c);
		f->ticks = g64(c);
		f->val_sec = (int64_t)g64(c);
		f->val_nsec = (int64_t)g64(c);
		f->int_sec = (int64_t)g64(c);
		f->int_nsec = (int64_t)g64(c);
		f->sigmask = g64(c);
		f->nep = g32(c);
		if (c->bad || f->nep > 1000000 || (uint64_t)f->nep * 16 > c->left)
			return eng_fail("image: fd %d: bad epoll item count", f->fd);
		f->ep = calloc(f->nep ? f->nep : 1, sizeof(*f->ep));
		if (!f->ep)
			return eng_fail("out of memory");
		for (uint32_t k = 0; k < f->nep; k++) {
			f->ep[k].tfd = (int32_t)g32(c);
			f->ep[k].events = g32(c);
			f->ep[k].data = g64(c);
		}
		if (!f->path)
			c->bad = true;
	}
	return c->bad || c->left ? eng_fail("image: FDS section malformed") : 0;
}

/* ------------------------------------------------------------ input */

struct ein {
	int fd;
	const uint8_t *mem;
	size_t memlen, pos;
	uint64_t total;
	struct engine_pagebuf *buf;   /* prepared page buffer, or NULL */
};

static int in_read(struct ein *in, void *dst, size_t n)
{
	in->total += n;
	if (in->fd >= 0) {
		if (eng_read_full(in->fd, dst, n) < 0)
			return eng_wrap("image truncated or unreadable");
		if (tap_fn)
			tap_fn(tap_arg, dst, n);
		return 0;
	}
	if (n > in->memlen - in->pos)
		return eng_fail("image truncated");
	memcpy(dst, in->mem + in->pos, n);
	in->pos += n;
	return 0;
}

/* ------------------------------------------------------------ checks */

static int validate(const struct engine_image *img)
{
	if (img->nthreads < 1)
		return eng_fail("image: no thread");
	if (img->pid <= 0 || img->threads[0].tid != img->pid)
		return eng_fail("image: first thread %d is not the process %d", img->threads[0].tid,
		                img->pid);
	if (img->auxv_len % 16 || img->auxv_len > 1024)
		return eng_fail("image: auxv of %u bytes", img->auxv_len);
	for (uint32_t i = 0; i < img->nthreads; i++) {
		const struct eng_thread *t = &img->threads[i];
		if (t->tid <= 0 || t->tid > (1 << 22))
			return eng_fail("image: bad tid %d", t->tid);
		if (t->xstate_len < 576)
			return eng_fail("image: tid %d: xstate of %u bytes", t->tid, t->xstate_len);
		for (uint32_t j = 0; j < i; j++)
			if (img->threads[j].tid == t->tid)
				return eng_fail("image: tid %d twice", t->tid);
	}
	for (uint32_t i = 0; i < img->nvmas; i++) {
		const struct eng_vma *e = &img->vmas[i];
		if (e->start >= e->end || (e->start | e->end) & (ENG_PAGE - 1) ||
		    (e->end > ENG_TASK_SIZE && e->kind != VMA_VSYSCALL))
			return eng_fail("image: bad region %#" PRIx64 "-%#" PRIx64, e->start, e->end);
		if (i && e->start < img->vmas[i - 1].end)
			return eng_fail("image: regions overlap or unsorted at %#" PRIx64, e->start);
		if (e->kind < VMA_ANON || e->kind > VMA_VSYSCALL || e->prot > 7 ||
		    e->content > VMC_SNAPSHOT || e->pgoff & (ENG_PAGE - 1))
			return eng_fail("image: region %#" PRIx64 ": bad kind/prot/content", e->start);
	}
	{
		uint32_t v = 0;
		for (uint32_t i = 0; i < img->nruns; i++) {
			const struct eng_run *r = &img->runs[i];
			if (!r->npages || r->addr & (ENG_PAGE - 1) ||
			    (i && r->addr < img->runs[i - 1].addr + img->runs[i - 1].npages * ENG_PAGE))
				return eng_fail("image: bad page run %u at %#" PRIx64, i, r->addr);
			while (v < img->nvmas && img->vmas[v].end <= r->addr)
				v++;
			if (v >= img->nvmas || r->addr < img->vmas[v].start ||
			    r->npages > (img->vmas[v].end - r->addr) / ENG_PAGE ||
			    img->vmas[v].content == VMC_NONE)
				return eng_fail("image: page run at %#" PRIx64 " outside a saved region",
				                r->addr);
		}
	}
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct eng_fd *f = &img->fds[i];
		if (f->fd < 0 || f->fd >= (1 << 20) || (i && f->fd <= img->fds[i - 1].fd))
			return eng_fail("image: bad or unsorted fd %d", f->fd);
		if (f->kind < FD_FILE || f->kind > FD_EXTERNAL)
			return eng_fail("image: fd %d: bad kind %u", f->fd, f->kind);
		if (f->same_as != -1 && (f->same_as < 0 || (uint32_t)f->same_as >= i ||
		                         img->fds[f->same_as].same_as != -1))
			return eng_fail("image: fd %d: bad dup reference", f->fd);
		if (f->peer != -1 && (f->peer < 0 || (uint32_t)f->peer >= img->nfds ||
		                      img->fds[f->peer].peer != (int32_t)i ||
		                      img->fds[f->peer].kind != f->kind))
			return eng_fail("image: fd %d: bad peer reference", f->fd);
		if ((f->kind == FD_PIPE || f->kind == FD_UNIX) && f->same_as < 0 && f->peer < 0)
			return eng_fail("image: fd %d: %s without its other end", f->fd,
			                eng_fd_kind_name(f->kind));
		for (uint32_t k = 0; k < f->nep; k++) {
			bool found = false;
			for (uint32_t j = 0; j < img->nfds && !found; j++)
				found = img->fds[j].fd == f->ep[k].tfd;
			if (!found)
				return eng_fail("image: fd %d: epoll item for absent fd %d", f->fd,
				                f->ep[k].tfd);
		}
	}
	return 0;
}

/* Where the page bytes go: the prepared buffer when they fit, else a new
 * buffer (movable when a prepared one was offered: the restore on this
 * host may take pieces of it over). */
static int page_buffer_for(struct ein *in, struct engine_image *img)
{
	struct engine_pagebuf *b = in->buf;

	if (b && b->mem && b->len >= img->pages_len) {
		img->pages = b->mem;
		img->pages_map_len = b->len;
		img->pages_movable = true;
		b->mem = NULL;
		b->len = 0;
		return 0;
	}
	if (b)
		eng_debug("image of pid %d: %" PRIu64 " page bytes, prepared buffer %" PRIu64
		          ": allocating one now", img->pid, img->pages_len, b->len);
	img->pages = eng_page_buffer(img->pages_len, b != NULL);
	if (!img->pages)
		return -1;
	img->pages_map_len = img->pages_len;
	img->pages_movable = b != NULL;
	return 0;
}

/* The PAGES section after its header sh: the run table, then the page
 * bytes.  *crc gets the section's checksum as computed, the page bytes
 * piece by piece as they arrive (while they are in the cache). */
static int read_pages(struct ein *in, const uint8_t *sh, uint64_t len, struct engine_image *img,
                      uint32_t *crc)
{
	uint32_t nruns;
	uint64_t pages = 0;

	*crc = eng_crc32c(0, sh, 16);
	if (len < 4 || in_read(in, &nruns, 4) < 0)
		return eng_fail("image: PAGES section malformed");
	*crc = eng_crc32c(*crc, &nruns, 4);
	if ((uint64_t)nruns * 16 > len - 4)
		return eng_fail("image: PAGES: %u runs do not fit in %" PRIu64 " bytes", nruns, len);
	/* The table grows as runs arrive: memory in proportion to the bytes
	 * received, never to the count a section claims (test/fuzz/fuzz_image
	 * asked for 6 GiB with a few bytes). */
	uint32_t cap = 0;
	img->nruns = 0;
	for (uint32_t i = 0; i < nruns; i++) {
		uint64_t r[2];
		if (in_read(in, r, 16) < 0)
			return -1;
		if (i == cap) {
			uint32_t ncap = cap ? (cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2) : 64;
			struct eng_run *nr = realloc(img->runs, (size_t)ncap * sizeof(*img->runs));
			if (!nr)
				return eng_fail("out of memory");
			img->runs = nr;
			cap = ncap;
		}
		*crc = eng_crc32c(*crc, r, 16);
		if (!r[1] || r[1] > (ENG_TASK_SIZE / ENG_PAGE) || pages + r[1] > (ENG_TASK_SIZE / ENG_PAGE))
			return eng_fail("image: PAGES: bad run %u", i);
		img->runs[i].addr = r[0];
		img->runs[i].npages = r[1];
		img->runs[i].off = pages * ENG_PAGE;
		img->nruns = i + 1;
		pages += r[1];
	}
	if (4 + (uint64_t)nruns * 16 + pages * ENG_PAGE != len)
		return eng_fail("image: PAGES: length %" PRIu64 " does not match %u runs of %" PRIu64
		                " pages", len, nruns, pages);
	img->pages_len = pages * ENG_PAGE;
	if (img->pages_len && page_buffer_for(in, img) < 0)
		return -1;
	for (uint64_t off = 0; off < img->pages_len; off += PAGE_PIECE) {
		uint64_t n = img->pages_len - off < PAGE_PIECE ? img->pages_len - off : PAGE_PIECE;
		if (in_read(in, img->pages + off, n) < 0)
			return -1;
		*crc = eng_crc32c(*crc, img->pages + off, n);
	}
	return 0;
}

int eng_image_parse(int fd, const uint8_t *mem, size_t memlen, struct engine_pagebuf *buf,
                    struct engine_image **out, uint64_t *bytes)
{
	struct ein in = { fd, mem, memlen, 0, 0, buf };
	struct engine_image *img = eng_xcalloc(1, sizeof(*img));
	uint8_t hdr[24];
	uint32_t v, arch, c, nsec = 0, nproc = 0, nv = 0, nf = 0, np = 0;
	bool end = false;

	if (!img)
		return -1;
	if (in_read(&in, hdr, sizeof(hdr)) < 0)
		goto fail;
	memcpy(&v, hdr + 8, 4);
	memcpy(&arch, hdr + 16, 4);
	memcpy(&c, hdr + 20, 4);
	if (memcmp(hdr, IMG_MAGIC, 8)) {
		eng_fail("not a migr image (bad magic)");
		goto fail;
	}
	if (c != eng_crc32c(0, hdr, 20)) {
		eng_fail("image header checksum mismatch");
		goto fail;
	}
	if (v != ENGINE_IMAGE_VERSION) {
		eng_fail("image version %u, this engine reads version %u", v, ENGINE_IMAGE_VERSION);
		goto fail;
	}
	if (arch != IMG_ARCH_X8664) {
		eng_fail("image for machine %u, not x86_64", arch);
		goto fail;
	}
	while (!end) {
		uint8_t sh[16];
		uint32_t type, sver, crc, want;
		uint64_t len;
		uint8_t *payload = NULL;
		struct cur cu;
		int rc = 0;

		if (in_read(&in, sh, sizeof(sh)) < 0)
			goto fail;
		memcpy(&type, sh, 4);
		memcpy(&sver, sh + 4, 4);
		memcpy(&len, sh + 8, 8);
		if (sver != SEC_VERSION) {
			eng_fail("image: section %u has version %u", type, sver);
			goto fail;
		}
		if (type == SEC_PAGES) {
			uint32_t crc_calc;
			if (np++) {
				eng_fail("image: two PAGES sections");
				goto fail;
			}
			if (read_pages(&in, sh, len, img, &crc_calc) < 0)
				goto fail;
			if (in_read(&in, &crc, 4) < 0)
				goto fail;
			if (crc != crc_calc) {
				eng_fail("image: PAGES section checksum mismatch (corrupt image)");
				goto fail;
			}
			nsec++;
			continue;
		}
		if (len > MAX_META_SECTION) {
			eng_fail("image: section %u of %" PRIu64 " bytes is too large", type, len);
			goto fail;
		}
		payload = malloc(len ? len : 1);
		if (!payload) {
			eng_fail("out of memory");
			goto fail;
		}
		if (in_read(&in, payload, len) < 0 || in_read(&in, &crc, 4) < 0) {
			free(payload);
			goto fail;
		}
		want = eng_crc32c(eng_crc32c(0, sh, sizeof(sh)), payload, len);
		if (crc != want) {
			free(payload);
			eng_fail("image: section %u checksum mismatch (corrupt image)", type);
			goto fail;
		}
		cu.p = payload;
		cu.left = len;
		cu.bad = false;
		switch (type) {
		case SEC_PROC:
			rc = nproc++ ? eng_fail("image: two PROC sections") : dec_proc(&cu, img);
			break;
		case SEC_THREAD: {
			struct eng_thread *nt;
			if (img->nthreads >= ENG_MAX_THREADS) {
				rc = eng_fail("image: too many threads");
				break;
			}
			nt = realloc(img->threads, (img->nthreads + 1) * sizeof(*nt));
			if (!nt) {
				rc = eng_fail("out of memory");
				break;
			}
			img->threads = nt;
			memset(&nt[img->nthreads], 0, sizeof(*nt));
			rc = dec_thread(&cu, &nt[img->nthreads++]);
			break;
		}
		case SEC_VMAS:
			rc = nv++ ? eng_fail("image: two VMAS sections") : dec_vmas(&cu, img);
			break;
		case SEC_FDS:
			rc = nf++ ? eng_fail("image: two FDS sections") : dec_fds(&cu, img);
			break;
		case SEC_END:
			if (len != 4 || g32(&cu) != nsec)
				rc = eng_fail("image: END section does not match (%u sections read)", nsec);
			end = true;
			break;
		default:
			rc = eng_fail("image: unknown section type %u", type);
			break;
		}
		free(payload);
		if (rc < 0)
			goto fail;
		nsec++;
	}
	if (nproc != 1 || nv != 1 || nf != 1 || np != 1) {
		eng_fail("image: missing sections (proc %u, vmas %u, fds %u, pages %u)", nproc, nv, nf,
		         np);
		goto fail;
	}
	if (validate(img) < 0)
		goto fail;
	if (bytes)
		*bytes = in.total;
	*out = img;
	return 0;
fail:
	eng_image_free(img);
	return eng_wrap("read image");
}

void eng_image_free(struct engine_image *img)
{
	if (!img)
		return;
	eng_vmas_unprepare(img);
	free(img->creds.groups);
	free(img->cwd);
	free(img->exe);
	free(img->auxv);
	free(img->shared);
	for (uint32_t i = 0; i < img->nthreads; i++) {
		free(img->threads[i].xstate);
		free(img->threads[i].pending);
	}
	free(img->threads);
	eng_free_vmas(img->vmas, img->nvmas);
	for (uint32_t i = 0; i < img->nfds; i++) {
		struct eng_fd *f = &img->fds[i];
		if (f->src >= 0)
			close(f->src);
		free(f->path);
		free(f->desc);
		free(f->data);
		free(f->ep);
	}
	free(img->fds);
	free(img->runs);
	if (img->pages)
		munmap(img->pages, img->pages_map_len ? img->pages_map_len : img->pages_len);
	free(img);
}
