/*
 * objects.c -- giving descriptors and regions of an image other objects.
 *
 * Owns: the calls with which the daemon's postal hand-over (migrd/move/
 * migrate_postal.c) finds a process's DiCOM objects in its image and makes
 * the restore use the destination's own instead of recreating, forwarding
 * or snapshotting them: which image fd is one of the daemon's own open files
 * (kcmp), installing a given object at an fd number, mapping a region from
 * a given object, turning a region into private anonymous memory that keeps
 * only its first pages, and reading or writing saved page bytes.
 */

#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int engine_image_fd_same(const struct engine_image *img, pid_t pid, int mine)
{
	for (uint32_t i = 0; i < img->nfds; i++) {
		long r = syscall(SYS_kcmp, getpid(), pid, KCMP_FILE, mine, img->fds[i].fd);
		if (r == 0)
			return img->fds[i].fd;
		if (r < 0 && errno != EBADF)
			return eng_fail_errno("kcmp(our fd %d, fd %d of pid %d)", mine,
			                      img->fds[i].fd, pid);
	}
	return -1;
}

int engine_image_fd_peer(const struct engine_image *img, int mine)
{
	struct stat st;
	uint64_t peer = 0;
	uint32_t state = 0;
	if (fstat(mine, &st) < 0)
		return eng_fail_errno("fstat(our fd %d)", mine);
	if (eng_unix_peer(getpid(), st.st_ino, &peer, &state) < 0)
		return -1;

	for (uint32_t i = 0; peer && i < img->nfds; i++)
		if (img->fds[i].ino == peer && img->fds[i].same_as < 0 &&
		    (img->fds[i].kind == FD_EXTERNAL || img->fds[i].kind == FD_UNIX))
			return img->fds[i].fd;
	return -1;
}

int engine_image_set_fd(struct engine_image *img, int fdnum, int src)
{
	for (uint32_t i = 0; i < img->nfds; i++) {
		struct eng_fd *f = &img->fds[i];
		if (f->fd != fdnum || f->same_as >= 0)
			continue;
		eng_close(&f->src);
		f->src = fcntl(src, F_DUPFD_CLOEXEC, 3);
		if (f->src < 0)
			return eng_fail_errno("fd %d of pid %d: dup of object fd %d", fdnum, img->pid, src);
		return 0;
	}
	return eng_fail("pid %d has no fd %d", img->pid, fdnum);
}

uint32_t engine_image_nregions(const struct engine_image *img) { return img->nvmas; }

int engine_image_region(const struct engine_image *img, uint32_t i, struct engine_region *out)
{
	if (i >= img->nvmas)
		return -1;
	const struct eng_vma *e = &img->vmas[i];
	*out = (struct engine_region){.start = e->start, .end = e->end, .pgoff = e->pgoff,
	                              .dev_major = (uint32_t)(e->dev >> 32),
	                              .dev_minor = (uint32_t)e->dev, .ino = e->ino,
	                              .prot = e->prot,
	                              .shared = e->kind == VMA_FILE_SHARED || e->kind == VMA_SHMEM,
	                              .path = e->path};
	return 0;
}

static struct eng_vma *vma_at(struct engine_image *img, uint64_t start)
{
	for (uint32_t i = 0; i < img->nvmas; i++)
		if (img->vmas[i].start == start)
			return &img->vmas[i];
	eng_fail("pid %d has no region at %#" PRIx64, img->pid, start);
	return NULL;
}

int engine_image_set_region_object(struct engine_image *img, uint64_t start, int src)
{
	struct eng_vma *e = vma_at(img, start);
	if (!e)
		return -1;
	if (e->kind != VMA_FILE_SHARED)
		return eng_fail("pid %d: region %#" PRIx64 " is not a shared file mapping", img->pid, start);
	/* several regions may share one fd; eng_vmas_unprepare closes each once */
	e->src_fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	if (e->src_fd < 0)
		return eng_fail_errno("region %#" PRIx64 " of pid %d: dup of object fd %d", start,
		                      img->pid, src);
	e->as_private = false;
	return 0;
}

/* Source side, lazy capture (runs chosen, bytes not read yet): the saved
 * pages of the region [start, end) become exactly the page spans given
 * (offsets in the region, sorted, not overlapping). */
static void emit(struct eng_run *out, uint32_t *n, uint64_t *off, uint64_t a, uint64_t b)
{
	if (a >= b)
		return;
	if (*n && out[*n - 1].addr + out[*n - 1].npages * ENG_PAGE > a)
		a = out[*n - 1].addr + out[*n - 1].npages * ENG_PAGE; /* spans may touch */
	if (a >= b)
		return;
	out[*n] = (struct eng_run){a, (b - a) / ENG_PAGE, *off};
	*off += b - a;
	(*n)++;
}

static int region_select(struct engine_image *img, const struct eng_vma *e,
                         const struct engine_span *spans, uint32_t nspans)
{
	if (img->pages)
		return eng_fail("pid %d: region %#" PRIx64 ": pages already read", img->pid, e->start);
	struct eng_run *out = calloc(img->nruns * 2 + nspans + 1, sizeof(*out));
	uint32_t n = 0;
	uint64_t off = 0;
	if (!out)
		return eng_fail("out of memory (page runs)");
	for (uint32_t i = 0; i < img->nruns; i++) { /* before the region */
		uint64_t a = img->runs[i].addr, b = a + img->runs[i].npages * ENG_PAGE;
		emit(out, &n, &off, a, b < e->start ? b : e->start);
	}
	for (uint32_t k = 0; k < nspans; k++) {
		uint64_t a = e->start + (spans[k].off & ~(ENG_PAGE - 1));
		uint64_t b = e->start + ((spans[k].off + spans[k].len + ENG_PAGE - 1) & ~(ENG_PAGE - 1));
		emit(out, &n, &off, a, b < e->end ? b : e->end);
	}
	for (uint32_t i = 0; i < img->nruns; i++) { /* after it */
		uint64_t a = img->runs[i].addr, b = a + img->runs[i].npages * ENG_PAGE;
		emit(out, &n, &off, a > e->end ? a : e->end, b);
	}
	free(img->runs);
	img->runs = out;
	img->nruns = n;
	img->pages_len = off;
	return 0;
}

int engine_image_region_select(struct engine_image *img, uint64_t start, const struct engine_span *spans,
                               uint32_t nspans)
{
	struct eng_vma *e = vma_at(img, start);
	return e ? region_select(img, e, spans, nspans) : -1;
}

int engine_image_region_to_anon(struct engine_image *img, uint64_t start, uint64_t keep)
{
	struct eng_vma *e = vma_at(img, start);
	if (!e)
		return -1;
	struct engine_span first = {0, keep};
	if (region_select(img, e, &first, 1) < 0)
		return -1;
	e->kind = VMA_ANON;
	e->content = VMC_PAGES;
	e->vmflags &= ~(uint32_t)(VMF_DELETED | VMF_TMPFS);
	e->obj = 0;
	e->pgoff = 0;
	e->dev = e->ino = 0;
	char *empty = strdup("");
	if (!empty)
		return eng_fail("out of memory");
	free(e->path);
	e->path = empty;
	return 0;
}

/* Where the saved bytes of [addr, addr + len) are in img->pages, or NULL. */
static uint8_t *saved(struct engine_image *img, uint64_t addr, uint64_t len)
{
	if (!img->pages)
		return NULL;
	for (uint32_t i = 0; i < img->nruns; i++) {
		const struct eng_run *r = &img->runs[i];
		uint64_t rlen = r->npages * ENG_PAGE;
		if (addr >= r->addr && addr - r->addr <= rlen && len <= rlen - (addr - r->addr))
			return img->pages + r->off + (addr - r->addr);
	}
	return NULL;
}

int engine_image_poke(struct engine_image *img, uint64_t addr, const void *buf, uint64_t len)
{
	uint8_t *p = saved(img, addr, len);
	if (!p)
		return -1;
	memcpy(p, buf, len);
	return 0;
}

uint32_t engine_image_uid(const struct engine_image *img) { return img->creds.uid[0]; }
uint32_t engine_image_creds(const struct engine_image *img, uint32_t uid[4], uint32_t gid[4],
                            const uint32_t **groups)
{
	memcpy(uid, img->creds.uid, sizeof img->creds.uid);
	memcpy(gid, img->creds.gid, sizeof img->creds.gid);
	*groups = img->creds.groups;
	return img->creds.ngroups;
}
pid_t engine_image_pid(const struct engine_image *img) { return img->pid; }
