/*
 * migr engine — human summary of an image (migr-ckpt info).
 *
 * Owns the text people read when they debug a migration: the process, its
 * threads, its regions with the bytes that travel, its descriptors with
 * their kinds, and which of them would be forwarded through the home node.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "engine_int.h"

static void human(char *buf, size_t cap, uint64_t b)
{
	if (b >= (1ULL << 30))
		snprintf(buf, cap, "%.1f GiB", b / 1073741824.0);
	else if (b >= (1ULL << 20))
		snprintf(buf, cap, "%.1f MiB", b / 1048576.0);
	else if (b >= 1024)
		snprintf(buf, cap, "%.1f KiB", b / 1024.0);
	else
		snprintf(buf, cap, "%" PRIu64 " B", b);
}

int eng_image_info(const struct engine_image *img, FILE *out)
{
	uint64_t saved_per_vma, total_vm = 0;
	uint32_t r = 0, nforward = 0;
	char h1[32], h2[32];

	fprintf(out, "process %d \"%s\"  exe %s\n", img->pid, img->comm, img->exe);
	fprintf(out, "  cwd %s  uid %u/%u/%u  gid %u/%u/%u  umask %03o  personality %#x\n",
	        img->cwd, img->creds.uid[0], img->creds.uid[1], img->creds.uid[2],
	        img->creds.gid[0], img->creds.gid[1], img->creds.gid[2], img->umask,
	        img->personality);
	fprintf(out, "  kernel %s (%s)  xcr0 %#" PRIx64 "\n", img->kernel, img->machine, img->xcr0);
	fprintf(out, "  brk %#" PRIx64 "-%#" PRIx64 "  pending shared signals %u\n",
	        img->mm.start_brk, img->mm.brk, img->nshared);
	fprintf(out, "threads: %u\n", img->nthreads);
	for (uint32_t i = 0; i < img->nthreads; i++) {
		const struct eng_thread *t = &img->threads[i];
		fprintf(out, "  tid %-7d %-16s rip %#014llx  sigmask %#018" PRIx64
		        "  pending %u%s%s\n", t->tid, t->comm, (unsigned long long)t->regs.rip,
		        t->sigmask, t->npending, t->rseq_ptr ? "  rseq" : "",
		        (t->ss_flags & SS_DISABLE) ? "" : "  altstack");
	}
	fprintf(out, "regions: %u\n", img->nvmas);
	for (uint32_t i = 0; i < img->nvmas; i++) {
		const struct eng_vma *e = &img->vmas[i];
		saved_per_vma = 0;
		while (r < img->nruns && img->runs[r].addr < e->end) {
			saved_per_vma += img->runs[r].npages * ENG_PAGE;
			r++;
		}
		total_vm += e->end - e->start;
		human(h1, sizeof(h1), e->end - e->start);
		human(h2, sizeof(h2), saved_per_vma);
		fprintf(out, "  %012" PRIx64 "-%012" PRIx64 " %c%c%c %-12s %10s  saved %10s  %s\n",
		        e->start, e->end, e->prot & 1 ? 'r' : '-', e->prot & 2 ? 'w' : '-',
		        e->prot & 4 ? 'x' : '-', eng_vma_kind_name(e->kind), h1, h2, e->path);
	}
	human(h1, sizeof(h1), total_vm);
	human(h2, sizeof(h2), img->pages_len);
	fprintf(out, "memory: %s mapped, %s saved in %u runs\n", h1, h2, img->nruns);
	fprintf(out, "descriptors: %u\n", img->nfds);
	for (uint32_t i = 0; i < img->nfds; i++) {
		const struct eng_fd *f = &img->fds[i];
		fprintf(out, "  fd %-4d %-10s flags %07o", f->fd, eng_fd_kind_name(f->kind), f->flags);
		if (f->same_as >= 0)
			fprintf(out, "  dup of fd %d", img->fds[f->same_as].fd);
		switch (f->kind) {
		case FD_FILE:
			fprintf(out, "  %s @%" PRIu64, f->path, f->pos);
			break;
		case FD_PIPE:
		case FD_UNIX:
			fprintf(out, "  %s  other end fd %d  unread %u bytes", f->path,
			        f->peer >= 0 ? img->fds[f->peer].fd : -1, f->datalen);
			break;
		case FD_EVENTFD:
			fprintf(out, "  count %" PRIu64, f->count);
			break;
		case FD_EPOLL:
			fprintf(out, "  %u watched:", f->nep);
			for (uint32_t k = 0; k < f->nep && k < 16; k++)
				fprintf(out, " %d", f->ep[k].tfd);
			break;
		case FD_TIMERFD:
			fprintf(out, "  clock %d next %" PRId64 ".%09" PRId64 " every %" PRId64 ".%09" PRId64,
			        f->clockid, f->val_sec, f->val_nsec, f->int_sec, f->int_nsec);
			break;
		case FD_SIGNALFD:
			fprintf(out, "  mask %#" PRIx64, f->sigmask);
			break;
		case FD_EXTERNAL:
			fprintf(out, "  %s  -> forwarded", f->desc ? f->desc : f->path);
			if (f->same_as < 0)
				nforward++;
			break;
		}
		fputc('\n', out);
	}
	fprintf(out, "forwarded through the home node: %u descriptor%s\n", nforward,
	        nforward == 1 ? "" : "s");
	return 0;
}
