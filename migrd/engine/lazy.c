/*
 * lazy.c -- which pages of a lazily moved process travel at the freeze
 * (engine.h: engine_image_lazy_split) and the hold of a frozen source
 * whose pages stay there (engine_frozen_hold).
 *
 * As AMPoM does, a lazy move sends the pages the process is touching at the
 * freeze: around each thread's instruction pointer (its code), around its
 * stack pointer (the frames it runs in and their callers), and the pages
 * its other registers and its TLS base point to (the data it works on).
 * Only private anonymous regions of at least min_region bytes are left
 * behind: small regions cost more in faults than they save; file pages are
 * read from the file anyway and shared memory goes eagerly (userfaultfd
 * would serve only this process's view of it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#include "engine_int.h"

/* pages kept around each kind of pointer: before, after */
#define HOT_IP_BEFORE  4
#define HOT_IP_AFTER   8
#define HOT_SP_BEFORE  16 /* the red zone and what the next calls push */
#define HOT_SP_AFTER   32 /* the frames of the callers */
#define HOT_PTR_AROUND 1

struct hot { uint64_t a, b; };

static int hot_cmp(const void *x, const void *y)
{
	const struct hot *p = x, *q = y;
	return p->a < q->a ? -1 : p->a > q->a;
}

static bool lazy_region(const struct eng_vma *v, uint64_t min_region)
{
	return v->kind == VMA_ANON && v->content == VMC_PAGES && v->end - v->start >= min_region &&
	       !(v->vmflags & (VMF_LOCKED | VMF_LOCKONFAULT));
}

static void add_hot(struct hot *h, uint32_t *n, uint64_t addr, uint64_t before, uint64_t after)
{
	uint64_t pg = addr & ~(ENG_PAGE - 1);
	uint64_t a = pg > before * ENG_PAGE ? pg - before * ENG_PAGE : 0;
	uint64_t b = pg + (after + 1) * ENG_PAGE;
	h[(*n)++] = (struct hot){a, b < pg ? UINT64_MAX & ~(ENG_PAGE - 1) : b};
}

/* The spans the threads touch, sorted and merged; their number. */
static uint32_t hot_spans(const struct engine_image *img, struct hot *h)
{
	uint32_t n = 0, m = 0;
	for (uint32_t t = 0; t < img->nthreads; t++) {
		const struct user_regs_struct *r = &img->threads[t].regs;
		const unsigned long long ptrs[] = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp,
		                                   r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14,
		                                   r->r15, r->fs_base};
		add_hot(h, &n, r->rip, HOT_IP_BEFORE, HOT_IP_AFTER);
		add_hot(h, &n, r->rsp, HOT_SP_BEFORE, HOT_SP_AFTER);
		for (size_t k = 0; k < sizeof ptrs / sizeof ptrs[0]; k++)
			add_hot(h, &n, ptrs[k], HOT_PTR_AROUND, HOT_PTR_AROUND);
	}
	qsort(h, n, sizeof *h, hot_cmp);
	for (uint32_t i = 0; i < n; i++) {
		if (m && h[i].a <= h[m - 1].b) {
			if (h[i].b > h[m - 1].b)
				h[m - 1].b = h[i].b;
		} else {
			h[m++] = h[i];
		}
	}
	return m;
}

/* Append [a, b) to a run list.  Never merged with the last one: runs do
 * not cross regions (capture), and the pieces of one run never touch (the
 * hot spans are merged). */
static void put_run(struct eng_run *out, uint32_t *n, uint64_t *off, uint64_t a, uint64_t b)
{
	if (a >= b)
		return;
	out[(*n)++] = (struct eng_run){a, (b - a) / ENG_PAGE, off ? *off : 0};
	if (off)
		*off += b - a;
}

int engine_image_lazy_split(struct engine_image *img, uint64_t min_region, struct engine_pages **away,
                            uint32_t *naway)
{
	*away = NULL;
	*naway = 0;
	if (img->pages)
		return eng_fail("pid %d: lazy split: the pages are read already", img->pid);
	const uint32_t per_thread = 18;
	if (img->nthreads > UINT32_MAX / per_thread)
		return eng_fail("pid %d: lazy split: too many threads", img->pid);
	struct hot *h = calloc((size_t)img->nthreads * per_thread + 1, sizeof *h);
	/* each run is cut by at most the hot spans inside it: two lists of at
	 * most nruns + nhot runs each */
	uint32_t nh = h ? hot_spans(img, h) : 0;
	size_t cap = (size_t)img->nruns + nh + 1;
	struct eng_run *keep = h ? calloc(cap, sizeof *keep) : NULL;
	struct eng_run *left = keep ? calloc(cap, sizeof *left) : NULL;
	if (!left) {
		free(h);
		free(keep);
		return eng_fail("out of memory (lazy split of pid %d)", img->pid);
	}
	uint32_t nk = 0, nl = 0, v = 0, k = 0;
	uint64_t off = 0;
	for (uint32_t i = 0; i < img->nruns; i++) {
		uint64_t a = img->runs[i].addr, b = a + img->runs[i].npages * ENG_PAGE;
		while (v < img->nvmas && img->vmas[v].end <= a)
			v++;
		if (v >= img->nvmas || !lazy_region(&img->vmas[v], min_region)) {
			put_run(keep, &nk, &off, a, b);
			continue;
		}
		/* runs never cross regions (capture cuts them at region ends) */
		while (k > 0 && h[k - 1].b > a)
			k--;
		while (k < nh && h[k].b <= a)
			k++;
		uint64_t at = a;
		for (uint32_t j = k; j < nh && h[j].a < b && at < b; j++) {
			uint64_t ha = h[j].a > at ? h[j].a : at, hb = h[j].b < b ? h[j].b : b;
			if (hb <= at)
				continue;
			put_run(left, &nl, NULL, at, ha);
			put_run(keep, &nk, &off, ha, hb);
			at = hb;
		}
		put_run(left, &nl, NULL, at, b);
	}
	free(h);
	free(img->runs);
	img->runs = keep;
	img->nruns = nk;
	img->pages_len = off;
	struct engine_pages *out = nl ? calloc(nl, sizeof *out) : NULL;
	if (nl && !out) {
		free(left);
		return eng_fail("out of memory (lazy split of pid %d)", img->pid);
	}
	for (uint32_t i = 0; i < nl; i++)
		out[i] = (struct engine_pages){left[i].addr, left[i].npages};
	free(left);
	*away = out;
	*naway = nl;
	return 0;
}

int engine_frozen_hold(struct engine_frozen *fz)
{
	for (uint32_t i = 0; i < fz->ntasks; i++)
		if (ptrace(PTRACE_SETOPTIONS, fz->tasks[i].tid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) < 0)
			return eng_fail_errno("ptrace(PTRACE_SETOPTIONS, EXITKILL) of tid %d of pid %d",
			                      fz->tasks[i].tid, fz->pid);
	return 0;
}

pid_t engine_frozen_pid(const struct engine_frozen *fz) { return fz->pid; }
