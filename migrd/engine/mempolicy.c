/*
 * migr engine — memory policy.
 *
 * Owns what the memory of a process becomes in an image and back:
 *  - reading the layout (/proc/PID/smaps: ranges, protections, VmFlags) and
 *    classifying every region (private anon, private file, shared file,
 *    shared anon, the kernel's [vvar] [vvar_vclock] [vdso] [vsyscall]);
 *  - choosing which pages travel: present or swapped anonymous pages of
 *    private mappings (pagemap), never untouched pages, never clean file
 *    pages; contents of shared objects only when they cannot be found again
 *    (deleted, tmpfs) and the image leaves the host;
 *  - on restore, checking that the files of file mappings are the same
 *    (size, mtime) and opening what each region is mapped from; on the same
 *    host, taking the original objects through /proc/PID/map_files.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/magic.h>

#include "engine_int.h"

#define PM_PRESENT (1ULL << 63)
#define PM_SWAP    (1ULL << 62)
#define PM_FILE    (1ULL << 61)

const char *eng_vma_kind_name(uint32_t kind)
{
	switch (kind) {
	case VMA_ANON: return "anon";
	case VMA_FILE_PRIVATE: return "file-private";
	case VMA_FILE_SHARED: return "file-shared";
	case VMA_SHMEM: return "shared-anon";
	case VMA_VDSO: return "vdso";
	case VMA_VVAR: return "vvar";
	case VMA_VVAR_VCLOCK: return "vvar_vclock";
	case VMA_VSYSCALL: return "vsyscall";
	default: return "?";
	}
}

int eng_vma_kind_is_special(uint32_t kind)
{
	return kind == VMA_VDSO || kind == VMA_VVAR || kind == VMA_VVAR_VCLOCK ||
	       kind == VMA_VSYSCALL;
}

void eng_free_vmas(struct eng_vma *v, uint32_t n)
{
	if (!v)
		return;
	for (uint32_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

static const struct { const char *name; uint32_t bit; } vmflag_names[] = {
	{ "gd", VMF_GROWSDOWN }, { "lo", VMF_LOCKED }, { "lf", VMF_LOCKONFAULT },
	{ "dd", VMF_DONTDUMP }, { "dc", VMF_DONTFORK }, { "wf", VMF_WIPEONFORK },
	{ "hg", VMF_HUGEPAGE }, { "nh", VMF_NOHUGEPAGE }, { "rr", VMF_RANDOM },
	{ "sr", VMF_SEQUENTIAL }, { "mg", VMF_MERGEABLE }, { "ac", VMF_ACCOUNT },
	{ "nr", VMF_NORESERVE },
};

static uint32_t classify(const char *perms, const char *path, uint32_t *flags)
{
	bool shared = perms[3] == 's';

	if (!strcmp(path, "[vdso]"))
		return VMA_VDSO;
	if (!strcmp(path, "[vvar]"))
		return VMA_VVAR;
	if (!strcmp(path, "[vvar_vclock]"))
		return VMA_VVAR_VCLOCK;
	if (!strcmp(path, "[vsyscall]"))
		return VMA_VSYSCALL;
	if (path[0] != '/')
		return shared ? VMA_SHMEM : VMA_ANON;
	if (!strncmp(path, "/SYSV", 5))
		*flags |= VMF_SYSV;
	if (!strncmp(path, "/dev/zero", 9))
		return shared ? VMA_SHMEM : VMA_ANON;
	if (!strncmp(path, "/dev/", 5) && strncmp(path, "/dev/shm/", 9))
		*flags |= VMF_DEVICE;
	return shared ? VMA_FILE_SHARED : VMA_FILE_PRIVATE;
}

/* Parse /proc/PID/smaps (or maps when smaps is false). */
static int parse_layout(pid_t pid, bool smaps, struct eng_vma **out, uint32_t *nout)
{
	char path[64];
	char *text, *line, *save = NULL;
	struct eng_vma *v = NULL;
	uint32_t n = 0, cap = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, smaps ? "smaps" : "maps");
	text = eng_read_file_alloc(path, NULL);
	if (!text)
		return -1;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long start, end, off, ino;
		unsigned maj, min;
		char perms[8];
		int consumed = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off,
		           &maj, &min, &ino, &consumed) >= 7 && consumed > 0) {
			struct eng_vma *e;
			char *p = line + consumed;
			size_t plen;
			if (n == cap) {
				struct eng_vma *nv = realloc(v, (cap ? cap * 2 : 256) * sizeof(*v));
				if (!nv) {
					eng_fail("out of memory parsing %s", path);
					goto fail;
				}
				v = nv;
				cap = cap ? cap * 2 : 256;
			}
			e = &v[n++];
			memset(e, 0, sizeof(*e));
			e->src_fd = -1;
			e->pfd = -1;
			e->start = start;
			e->end = end;
			e->pgoff = off;
			e->dev = ((uint64_t)maj << 32) | min;
			e->ino = ino;
			e->prot = (perms[0] == 'r' ? 1 : 0) | (perms[1] == 'w' ? 2 : 0) |
			          (perms[2] == 'x' ? 4 : 0);
			while (*p == ' ')
				p++;
			plen = strlen(p);
			if (plen > 10 && !strcmp(p + plen - 10, " (deleted)")) {
				p[plen - 10] = 0;
				e->vmflags |= VMF_DELETED;
			}
			e->path = strdup(p);
			if (!e->path) {
				eng_fail("out of memory parsing %s", path);
				goto fail;
			}
			e->kind = classify(perms, p, &e->vmflags);
			continue;
		}
		if (n && !strncmp(line, "VmFlags:", 8)) {
			for (size_t k = 0; k < sizeof(vmflag_names) / sizeof(vmflag_names[0]); k++) {
				char pat[5];
				snprintf(pat, sizeof(pat), " %s", vmflag_names[k].name);
				const char *q = line + 8;
				while ((q = strstr(q, pat))) {
					if (q[3] == ' ' || q[3] == 0) {
						v[n - 1].vmflags |= vmflag_names[k].bit;
						break;
					}
					q += 3;
				}
			}
		}
	}
	free(text);
	*out = v;
	*nout = n;
	return 0;
fail:
	free(text);
	eng_free_vmas(v, n);
	return -1;
}

int eng_parse_maps(pid_t pid, struct eng_vma **out, uint32_t *n)
{
	return parse_layout(pid, false, out, n);
}

static void map_files_path(char *buf, size_t cap, pid_t pid, const struct eng_vma *v)
{
	snprintf(buf, cap, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start, v->end);
}

int eng_capture_vmas(struct engine_frozen *fz, struct engine_image *img, bool snapshot_shared)
{
	struct eng_vma *v;
	uint32_t n;

	if (parse_layout(fz->pid, true, &v, &n) < 0)
		return eng_wrap("capture memory map of pid %d", fz->pid);
	for (uint32_t i = 0; i < n; i++) {
		struct eng_vma *e = &v[i];
		char mf[128];
		struct stat st;
		struct statfs sfs;

		if (e->vmflags & VMF_SYSV) {
			eng_fail("pid %d: region %#" PRIx64 "-%#" PRIx64 ": System V shared memory: "
			         "not supported", fz->pid, e->start, e->end);
			goto fail;
		}
		if (e->vmflags & VMF_DEVICE) {
			eng_fail("pid %d: region %#" PRIx64 "-%#" PRIx64 ": mapping of device %s: "
			         "not supported", fz->pid, e->start, e->end, e->path);
			goto fail;
		}
		switch (e->kind) {
		case VMA_ANON:
			e->content = VMC_PAGES;
			break;
		case VMA_FILE_PRIVATE:
		case VMA_FILE_SHARED:
		case VMA_SHMEM:
			map_files_path(mf, sizeof(mf), fz->pid, e);
			if (stat(mf, &st) == 0 || stat(e->path, &st) == 0) {
				e->fsize = (uint64_t)st.st_size;
				e->mtime_sec = st.st_mtim.tv_sec;
				e->mtime_nsec = st.st_mtim.tv_nsec;
			}
			if (e->kind != VMA_SHMEM && statfs(mf, &sfs) == 0 &&
			    (sfs.f_type == TMPFS_MAGIC || sfs.f_type == (typeof(sfs.f_type))0x01021994))
				e->vmflags |= VMF_TMPFS;
			if (e->kind == VMA_FILE_PRIVATE)
				e->content = (e->vmflags & VMF_DELETED) && snapshot_shared ? VMC_SNAPSHOT
				                                                          : VMC_PAGES;
			else if (e->kind == VMA_SHMEM ||
			         (e->vmflags & (VMF_DELETED | VMF_TMPFS)))
				e->content = snapshot_shared ? VMC_SNAPSHOT : VMC_NONE;
			else
				e->content = VMC_NONE;
			break;
		default:
			e->content = VMC_NONE;
			break;
		}
	}
	/* object ids: regions mapping the same shared object */
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].kind != VMA_SHMEM && v[i].kind != VMA_FILE_SHARED)
			continue;
		v[i].obj = i + 1;
		for (uint32_t j = 0; j < i; j++) {
			if (v[j].obj && v[j].dev == v[i].dev && v[j].ino == v[i].ino &&
			    v[j].kind == v[i].kind) {
				v[i].obj = v[j].obj;
				break;
			}
		}
	}
	img->vmas = v;
	img->nvmas = n;
	return 0;
fail:
	eng_free_vmas(v, n);
	return -1;
}

/* ---- page selection ---- */

struct runvec {
	struct eng_run *r;
	uint32_t n, cap;
	uint32_t barrier;          /* runs before this index never grow */
	uint64_t pages;
};

static int run_add(struct runvec *rv, uint64_t addr, uint64_t npages)
{
	if (rv->n > rv->barrier &&
	    rv->r[rv->n - 1].addr + rv->r[rv->n - 1].npages * ENG_PAGE == addr) {
		rv->r[rv->n - 1].npages += npages;
	} else {
		if (rv->n == rv->cap) {
			uint32_t nc = rv->cap ? rv->cap * 2 : 1024;
			struct eng_run *nr = realloc(rv->r, nc * sizeof(*nr));
			if (!nr)
				return eng_fail("out of memory (page runs)");
			rv->r = nr;
			rv->cap = nc;
		}
		rv->r[rv->n].addr = addr;
		rv->r[rv->n].npages = npages;
		rv->r[rv->n].off = rv->pages * ENG_PAGE;
		rv->n++;
	}
	rv->pages += npages;
	return 0;
}

static int select_by_pagemap(int pmfd, const struct eng_vma *e, struct runvec *rv, pid_t pid)
{
	static uint64_t buf[32768];
	uint64_t npages = (e->end - e->start) / ENG_PAGE;

	for (uint64_t first = 0; first < npages;) {
		uint64_t cnt = npages - first;
		ssize_t got;
		if (cnt > 32768)
			cnt = 32768;
		got = pread(pmfd, buf, cnt * 8, (off_t)((e->start / ENG_PAGE + first) * 8));
		if (got != (ssize_t)(cnt * 8))
			return eng_fail_errno("pid %d: read pagemap at %#" PRIx64, pid,
			                      e->start + first * ENG_PAGE);
		for (uint64_t k = 0; k < cnt; k++) {
			uint64_t pm = buf[k];
			bool keep = (pm & PM_SWAP) || ((pm & PM_PRESENT) && !(pm & PM_FILE));
			if (keep && run_add(rv, e->start + (first + k) * ENG_PAGE, 1) < 0)
				return -1;
		}
		first += cnt;
	}
	return 0;
}

static int select_by_object(pid_t pid, const struct eng_vma *e, struct runvec *rv)
{
	char mf[128];
	int fd;
	off_t lo = (off_t)e->pgoff, hi = (off_t)(e->pgoff + (e->end - e->start));

	map_files_path(mf, sizeof(mf), pid, e);
	fd = open(mf, O_RDONLY | O_CLOEXEC);
	if (fd < 0)   /* cannot look at the object: take the whole range */
		return run_add(rv, e->start, (e->end - e->start) / ENG_PAGE);
	while (lo < hi) {
		off_t d = lseek(fd, lo, SEEK_DATA), h;
		if (d < 0 || d >= hi)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > hi)
			h = hi;
		d &= ~(off_t)(ENG_PAGE - 1);
		h = (h + (off_t)ENG_PAGE - 1) & ~(off_t)(ENG_PAGE - 1);
		if (h > hi)
			h = hi;
		if (run_add(rv, e->start + (uint64_t)(d - (off_t)e->pgoff),
		            (uint64_t)(h - d) / ENG_PAGE) < 0) {
			close(fd);
			return -1;
		}
		lo = h;
	}
	close(fd);
	return 0;
}

/* Page bytes of an image, read in order from the process they were
 * captured from (frozen).  A batch of runs goes in one process_vm_readv;
 * if that comes up short (a region not readable), each piece of the batch
 * is read again by itself (/proc/PID/mem when needed). */
void eng_page_reader_init(struct eng_page_reader *r, pid_t pid, const struct engine_image *img)
{
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	r->img = img;
}

int eng_page_reader_read(struct eng_page_reader *r, uint8_t *dst, uint64_t len)
{
	enum { NIOV = 1024 };
	const uint64_t max_batch = 1ull << 30;
	const struct engine_image *img = r->img;
	struct iovec lio[NIOV], rio[NIOV];

	while (len) {
		uint32_t k = 0;
		uint64_t want = 0;
		ssize_t got;
		for (; len && k < NIOV && want < max_batch && r->run < img->nruns; k++) {
			const struct eng_run *run = &img->runs[r->run];
			uint64_t n = run->npages * ENG_PAGE - r->in_run;
			if (n > len)
				n = len;
			if (n > max_batch - want)
				n = max_batch - want;
			lio[k].iov_base = dst;
			lio[k].iov_len = n;
			rio[k].iov_base = (void *)(uintptr_t)(run->addr + r->in_run);
			rio[k].iov_len = n;
			dst += n;
			len -= n;
			want += n;
			r->in_run += n;
			if (r->in_run == run->npages * ENG_PAGE) {
				r->run++;
				r->in_run = 0;
			}
		}
		if (!k)
			return eng_fail("pid %d: %" PRIu64 " page bytes asked past the last saved run",
			                r->pid, len);
		got = process_vm_readv(r->pid, lio, k, rio, k, 0);
		if (got == (ssize_t)want)
			continue;
		for (uint32_t j = 0; j < k; j++)
			if (eng_mem_read(r->pid, (uint64_t)(uintptr_t)rio[j].iov_base, lio[j].iov_base,
			                 lio[j].iov_len) < 0)
				return eng_wrap("pid %d: read saved pages", r->pid);
	}
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* A movable buffer is mapped like an ordinary private writable mapping
 * (accounted, no huge page advice): its pieces can become regions of the
 * restored process as they are (restore.c moves them there). */
uint8_t *eng_page_buffer(uint64_t len, bool movable)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | (movable ? 0 : MAP_NORESERVE), -1, 0);

	if (p == MAP_FAILED) {
		eng_fail_errno("mmap %" PRIu64 " bytes for page contents", len);
		return NULL;
	}
	if (!movable)
		madvise(p, len, MADV_HUGEPAGE);
	madvise(p, len, MADV_DONTFORK);
	/* fault it all in now: faults while it is filled are slow (and a
	 * shortage of memory shows here, not later) */
	if (madvise(p, len, MADV_POPULATE_WRITE) < 0 && errno != EINVAL) {
		eng_fail_errno("fault in %" PRIu64 " bytes for page contents", len);
		munmap(p, len);
		return NULL;
	}
	return p;
}

/* What the pages of pid will need, from /proc/PID/smaps_rollup; 0 if
 * unknown.  Used to prepare the buffer before the freeze. */
uint64_t eng_estimate_pages(pid_t pid)
{
	char path[64], buf[4096], *p;
	uint64_t kb = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	if (eng_read_file(path, buf, sizeof(buf)) < 0)
		return 0;
	if ((p = strstr(buf, "\nAnonymous:")))
		kb += strtoull(p + 11, NULL, 10);
	if ((p = strstr(buf, "\nSwap:")))
		kb += strtoull(p + 6, NULL, 10);
	return kb ? (kb * 1024 + kb * 1024 / 8 + (8u << 20)) & ~(ENG_PAGE - 1) : 0;
}

int eng_capture_pages(struct engine_frozen *fz, struct engine_image *img, bool lazy)
{
	struct runvec rv = { 0 };
	struct eng_page_reader rd;
	char path[64];
	int pmfd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", fz->pid);
	pmfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pmfd < 0)
		return eng_fail_errno("open %s", path);
	for (uint32_t i = 0; i < img->nvmas; i++) {
		struct eng_vma *e = &img->vmas[i];
		int rc = 0;
		rv.barrier = rv.n;     /* never merge runs across regions */
		if (e->content == VMC_PAGES)
			rc = select_by_pagemap(pmfd, e, &rv, fz->pid);
		else if (e->content == VMC_SNAPSHOT && e->kind == VMA_FILE_PRIVATE)
			rc = run_add(&rv, e->start, (e->end - e->start) / ENG_PAGE);
		else if (e->content == VMC_SNAPSHOT)
			rc = select_by_object(fz->pid, e, &rv);
		if (rc < 0)
			goto fail;
	}
	close(pmfd);
	pmfd = -1;
	img->runs = rv.r;
	img->nruns = rv.n;
	img->pages_len = rv.pages * ENG_PAGE;
	if (lazy) {
		/* read while the image is written: the process stays frozen */
		img->pages_from = fz->pid;
		return 0;
	}
	if (img->pages_len) {
		if (fz->prebuf && fz->prebuf_len >= img->pages_len) {
			/* filled before the freeze: no page allocation while frozen */
			img->pages = fz->prebuf;
			img->pages_map_len = fz->prebuf_len;
			img->pages_movable = fz->prebuf_movable;
			fz->prebuf = NULL;
			fz->prebuf_len = 0;
		} else {
			img->pages = eng_page_buffer(img->pages_len, fz->prebuf_movable);
			if (!img->pages)
				goto fail_out;
			img->pages_map_len = img->pages_len;
			img->pages_movable = fz->prebuf_movable;
		}
	}
	eng_page_reader_init(&rd, fz->pid, img);
	if (eng_page_reader_read(&rd, img->pages, img->pages_len) < 0)
		goto fail_out;
	return 0;
fail:
	free(rv.r);
	if (pmfd >= 0)
		close(pmfd);
fail_out:
	return eng_wrap("capture memory of pid %d", fz->pid);
}

/* ---- restore side ---- */

int eng_vmas_handover(struct engine_image *img, pid_t pid)
{
	for (uint32_t i = 0; i < img->nvmas; i++) {
		struct eng_vma *e = &img->vmas[i];
		char mf[128];
		bool need = e->kind == VMA_SHMEM || e->kind == VMA_FILE_SHARED ||
		            (e->kind == VMA_FILE_PRIVATE && (e->vmflags & VMF_DELETED));
		if (!need || e->src_fd >= 0)
			continue;
		/* share one fd between regions of the same object */
		for (uint32_t j = 0; j < i; j++) {
			if (img->vmas[j].src_fd >= 0 && img->vmas[j].kind == e->kind &&
			    img->vmas[j].dev == e->dev && img->vmas[j].ino == e->ino &&
			    (img->vmas[j].prot & 2) >= (e->prot & 2)) {
				e->src_fd = img->vmas[j].src_fd;
				break;
			}
		}
		if (e->src_fd >= 0)
			continue;
		map_files_path(mf, sizeof(mf), pid, e);
		e->src_fd = open(mf, ((e->kind != VMA_FILE_PRIVATE) && (e->prot & 2) ? O_RDWR
		                                                                   : O_RDONLY) |
		                         O_CLOEXEC);
		if (e->src_fd < 0)
			return eng_fail_errno("pid %d: take the object of region %#" PRIx64 "-%#" PRIx64
			                      " (%s)", pid, e->start, e->end, e->path);
	}
	return 0;
}

void eng_vmas_unprepare(struct engine_image *img)
{
	for (uint32_t i = 0; i < img->nvmas; i++) {
		int fd = img->vmas[i].src_fd;
		if (fd < 0)
			continue;
		for (uint32_t j = i; j < img->nvmas; j++)
			if (img->vmas[j].src_fd == fd)
				img->vmas[j].src_fd = -1;
		close(fd);
	}
}

int eng_vmas_prepare(struct engine_image *img)
{
	for (uint32_t i = 0; i < img->nvmas; i++) {
		struct eng_vma *e = &img->vmas[i];
		bool wr = (e->prot & 2) && e->kind != VMA_FILE_PRIVATE;
		struct stat st;

		e->as_private = false;
		if (e->src_fd >= 0 || eng_vma_kind_is_special(e->kind) || e->kind == VMA_ANON)
			continue;
		for (uint32_t j = 0; j < i; j++) {
			struct eng_vma *o = &img->vmas[j];
			if (o->src_fd >= 0 && o->kind == e->kind && o->obj == e->obj &&
			    o->dev == e->dev && o->ino == e->ino && !strcmp(o->path, e->path) &&
			    (!wr || (o->prot & 2))) {
				e->src_fd = o->src_fd;
				break;
			}
		}
		if (e->src_fd >= 0)
			continue;
		if (e->kind == VMA_SHMEM) {
			uint64_t size = 0;
			for (uint32_t j = 0; j < img->nvmas; j++)
				if (img->vmas[j].kind == VMA_SHMEM && img->vmas[j].obj == e->obj &&
				    img->vmas[j].pgoff + (img->vmas[j].end - img->vmas[j].start) > size)
					size = img->vmas[j].pgoff + (img->vmas[j].end - img->vmas[j].start);
			e->src_fd = memfd_create("migr-shared-anon", MFD_CLOEXEC);
			if (e->src_fd < 0 || ftruncate(e->src_fd, (off_t)size) < 0) {
				eng_fail_errno("region %#" PRIx64 "-%#" PRIx64 ": create shared "
				               "memory object", e->start, e->end);
				eng_close(&e->src_fd);
				goto fail;
			}
			continue;
		}
		if (e->kind == VMA_FILE_PRIVATE && e->content == VMC_SNAPSHOT) {
			e->as_private = true;   /* deleted file: restored from its saved pages */
			continue;
		}
		char what[64];
		snprintf(what, sizeof(what), "region %#" PRIx64 "-%#" PRIx64, e->start, e->end);
		/* with the process's own rights, no symlink followed (asuser.c) */
		e->src_fd = eng_open_as(img, what, e->path, wr ? O_RDWR : O_RDONLY, 0);
		if (e->src_fd < 0 || fstat(e->src_fd, &st) < 0) {
			if (e->kind == VMA_FILE_SHARED && e->content == VMC_SNAPSHOT) {
				eng_close(&e->src_fd);
				e->as_private = true;   /* not here: a private snapshot */
				continue;
			}
			if (e->src_fd >= 0)
				eng_fail_errno("%s: fstat %s", what, e->path);
			eng_close(&e->src_fd);
			goto fail;
		}
		if (e->kind == VMA_FILE_PRIVATE &&
		    ((uint64_t)st.st_size != e->fsize || st.st_mtim.tv_sec != e->mtime_sec ||
		     st.st_mtim.tv_nsec != e->mtime_nsec)) {
			eng_fail("region %#" PRIx64 "-%#" PRIx64 ": file %s changed since the dump "
			         "(size %lld/%" PRIu64 ", mtime %lld/%" PRId64 ")", e->start, e->end,
			         e->path, (long long)st.st_size, e->fsize, (long long)st.st_mtim.tv_sec,
			         e->mtime_sec);
			eng_close(&e->src_fd);
			goto fail;
		}
	}
	return 0;
fail:
	eng_vmas_unprepare(img);
	return -1;
}
