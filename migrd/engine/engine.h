/*
 * migr migration engine — public interface.
 *
 * This header is what migrd (and the migr-ckpt tool) call.  The engine
 * checkpoints a running, possibly multi-threaded Linux process with ptrace,
 * /proc and process_vm_readv, writes it as a self-describing image to any
 * file descriptor (file, pipe, socket), and restores an image into a process
 * with the same pid and tids (clone3 set_tid).  See doc/ARCHITECTURE.md and ENGINE.md.
 *
 * Two levels are offered:
 *  - one-shot calls: engine_dump(), engine_restore(), engine_reincarnate();
 *  - step calls for the daemon, which must keep the source frozen until the
 *    destination acknowledges (rollback): engine_freeze(), engine_capture(),
 *    engine_image_write(), engine_thaw() / engine_kill().
 *
 * Every call returns 0 on success and -1 on error; engine_strerror() then
 * tells what failed, on which pid/tid/fd/address.  No call ever leaves a
 * process frozen or traced because of an error.
 */
#ifndef MIGR_ENGINE_H
#define MIGR_ENGINE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define ENGINE_IMAGE_VERSION 1

/* Log levels for engine_set_log(). */
enum engine_log_level {
	ENGINE_LOG_ERROR = 0,
	ENGINE_LOG_WARN = 1,
	ENGINE_LOG_INFO = 2,
	ENGINE_LOG_DEBUG = 3,
};

/* Where log lines go (default: stderr, level WARN).  sink may be NULL. */
void engine_set_log(int level, void (*sink)(int level, const char *line));

/* Text of the last error of the calling thread. */
const char *engine_strerror(void);

/* Figures of one operation; all times in nanoseconds. */
struct engine_stats {
	uint64_t freeze_ns;     /* seize+interrupt until every thread stopped  */
	uint64_t capture_ns;    /* thread/process/fd state, memory map         */
	uint64_t memory_ns;     /* reading page contents                       */
	uint64_t write_ns;      /* writing the image (dump)                    */
	uint64_t kill_ns;       /* kill + reap of the source (reincarnate)     */
	uint64_t restore_ns;    /* puppet creation until detach                */
	uint64_t frozen_ns;     /* first freeze until the process runs again   */
	uint64_t total_ns;
	uint64_t memory_bytes;  /* page bytes captured / restored              */
	uint64_t image_bytes;   /* bytes written or read                       */
	uint32_t threads, vmas, fds;
};

/* What happens to the source after engine_dump(). */
enum engine_after_dump {
	ENGINE_LEAVE_STOPPED = 0, /* SIGSTOPped: `kill -CONT` resumes it     */
	ENGINE_LEAVE_RUNNING = 1, /* thawed: a checkpoint of a running job   */
	ENGINE_KILL = 2,          /* SIGKILLed once the image is written     */
};

struct engine_dump_opts {
	int after;                /* enum engine_after_dump                   */
	int freeze_timeout_ms;    /* 0: default (5000)                        */
};

struct engine_restore_opts {
	int sibling;              /* restored process becomes a child of the
	                             caller's parent (CLONE_PARENT): a deputy
	                             that runs the engine keeps its rank child */
	int external_null;        /* external fds without an original object
	                             become /dev/null instead of an error      */
	int wait_pid_ms;          /* wait that long for the pid to be freed
	                             (the zombie reaped) before giving up      */
	int keep_files;           /* reincarnate: hand regular files over as
	                             the original open file descriptions      */
	int thp_fill;             /* fill dense anonymous regions with
	                             transparent huge pages (faster; those
	                             regions keep the huge page advice)       */
	/* A lazy move's destination (migrd/pager): non-NULL, the process
	 * creates a userfaultfd (before its credentials are set, so that
	 * faults in the kernel are caught too), which is taken out of it and
	 * given to userfault(arg, pid, uffd) before the process runs; the
	 * callee owns uffd (it registers the ranges whose pages are away).
	 * A failure (-1, the callee set the reason with engine_set_error)
	 * fails the restore.  The process gets SIGKILL as its parent-death
	 * signal: if the restoring thread (its parent) dies, the userfaultfd
	 * goes and its faults would read zeros. */
	int (*userfault)(void *arg, pid_t pid, int uffd);
	void *userfault_arg;
};

/* Dump pid to out_fd (streamed; no temporary files). */
int engine_dump(pid_t pid, int out_fd, const struct engine_dump_opts *opts,
                struct engine_stats *stats);

/* Read an image from in_fd, check it completely, then restore it. */
int engine_restore(int in_fd, const struct engine_restore_opts *opts,
                   pid_t *restored, struct engine_stats *stats);

/* Freeze, capture into memory, hand external fds over as the original
 * objects (pidfd_getfd), kill, restore in place with the same pid/tids. */
int engine_reincarnate(pid_t pid, const struct engine_restore_opts *opts,
                       struct engine_stats *stats);

/* Human summary of an image: threads, regions, fds, what is forwarded. */
int engine_info(int in_fd, FILE *out);

/* ---- step interface (for migrd's rollback-safe migration) ---- */
struct engine_frozen;          /* a frozen (seized) process               */
struct engine_image;           /* a captured process, in memory           */

int  engine_freeze(pid_t pid, int timeout_ms, struct engine_frozen **out);
int  engine_capture(struct engine_frozen *fz, struct engine_image **out);
/* The same without reading the page contents: engine_image_write() reads
 * them from the process in pieces as it writes them, so that capture and
 * stream overlap and no buffer of the process's size is needed.  fz must
 * stay frozen until the image is written. */
int  engine_capture_lazy(struct engine_frozen *fz, struct engine_image **out);
int  engine_image_write(const struct engine_image *img, int out_fd,
                        uint64_t *bytes);
int  engine_image_read(int in_fd, struct engine_image **out, uint64_t *bytes);

/* Receiving an image to restore on this host.  A page buffer allocated and
 * faulted in beforehand (before the source freezes: for a big process that
 * is the slowest part of a restore); engine_image_read_into() reads the
 * pages straight into it when they fit (buf is then emptied; otherwise it
 * is left as it was and a buffer is made), and engine_image_restore() gives
 * whole regions their pages by moving pieces of it into the new process
 * instead of copying them (ENGINE.md, "taking pages over").  After such a
 * restore, once the process runs, engine_settle_begin() lets the buffer go
 * and returns the work of settling the taken pages (NULL: none), done by
 * engine_settle_step() calls of at most max_bytes each (1: more to do,
 * 0: done) so that a daemon can do other work in between; it stays valid
 * after engine_image_free(img). */
struct engine_pagebuf {
	uint8_t *mem;
	uint64_t len;
};
int  engine_pagebuf_prepare(uint64_t len, struct engine_pagebuf *buf);
void engine_pagebuf_release(struct engine_pagebuf *buf);
int  engine_image_read_into(int in_fd, struct engine_pagebuf *buf,
                            struct engine_image **out, uint64_t *bytes);
/* Every byte of an image written to or read from a file descriptor
 * (engine_image_write, engine_image_read, engine_image_read_into) is also
 * shown to fn, in order (a MAC over the stream); NULL: nothing. */
void engine_image_tap(void (*fn)(void *arg, const void *p, size_t n), void *arg);
struct engine_settle;
struct engine_settle *engine_settle_begin(struct engine_image *img, pid_t pid);
int  engine_settle_step(struct engine_settle *s, uint64_t max_bytes);
void engine_settle_free(struct engine_settle *s);
int  engine_image_restore(struct engine_image *img,
                          const struct engine_restore_opts *opts,
                          pid_t *restored);
/* Resume (ENGINE_LEAVE_RUNNING) or stop-and-release (ENGINE_LEAVE_STOPPED)
 * or kill (ENGINE_KILL) a frozen process and free fz. */
int  engine_release(struct engine_frozen *fz, int how);
void engine_image_free(struct engine_image *img);

/* ---- the postal hand-over (objects.c): a process's DiCOM objects ----
 * The daemon finds them in a captured image and makes the restore use its
 * own objects instead of recreating, forwarding or snapshotting them. */
struct engine_region {
	uint64_t start, end, pgoff, ino;
	uint32_t dev_major, dev_minor, prot;
	int shared;                /* a shared mapping (file or anonymous)    */
	const char *path;          /* valid while the image is                */
};
pid_t engine_image_pid(const struct engine_image *img);
uint32_t engine_image_uid(const struct engine_image *img);   /* real uid */
/* The credentials the image will be restored with: uid[4] and gid[4] are
 * real, effective, saved and filesystem ids; *groups (valid while the
 * image is) the supplementary groups.  Their number. */
uint32_t engine_image_creds(const struct engine_image *img, uint32_t uid[4], uint32_t gid[4],
                            const uint32_t **groups);
/* The fd number in the image of frozen pid that is the same open file as
 * our fd `mine`, -1 when none is (or -1 with an error: check errno). */
int  engine_image_fd_same(const struct engine_image *img, pid_t pid, int mine);
/* The fd number in the image of the AF_UNIX socket whose peer is our
 * socket `mine` (a connection to us), or -1. */
int  engine_image_fd_peer(const struct engine_image *img, int mine);
/* Install (a dup of) src at fd number fdnum instead of what the image says. */
int  engine_image_set_fd(struct engine_image *img, int fdnum, int src);
/* Open the file that is fd number fdnum of the image now, as the restore
 * would (its own rights, flags, offset), for the restore to install: a dup
 * of it (the caller's: the same open file description the process gets),
 * or -1. */
int  engine_image_open_fd(struct engine_image *img, int fdnum);
uint32_t engine_image_nregions(const struct engine_image *img);
int  engine_image_region(const struct engine_image *img, uint32_t i, struct engine_region *out);
/* Map the shared region at start from (a dup of) src; its saved pages are
 * not written (the caller filled the object). */
int  engine_image_set_region_object(struct engine_image *img, uint64_t start, int src);
/* Source side, after engine_capture_lazy(): the saved pages of the region
 * at start become exactly the pages covering these spans (offsets in the
 * region; sorted). */
struct engine_span { uint64_t off, len; };
int  engine_image_region_select(struct engine_image *img, uint64_t start,
                                const struct engine_span *spans, uint32_t nspans);
/* Source side, after engine_capture_lazy(): the region at start becomes
 * private anonymous memory with only its first `keep` bytes saved. */
int  engine_image_region_to_anon(struct engine_image *img, uint64_t start, uint64_t keep);
/* Source side of a lazy move, after engine_capture_lazy(): the saved pages
 * of private anonymous regions of at least min_region bytes leave the
 * image, except those the threads are touching (around their instruction
 * and stack pointers, the pages their registers point to); *away
 * (malloc'ed, sorted, to free) lists the pages left out, *naway runs. */
struct engine_pages { uint64_t addr, npages; };
int  engine_image_lazy_split(struct engine_image *img, uint64_t min_region,
                             struct engine_pages **away, uint32_t *naway);
/* A frozen source whose pages stay after the move (a lazy move's page
 * store): from now on it dies with the thread that froze it, so that it
 * never runs again if the daemon dies.  Its pid. */
int  engine_frozen_hold(struct engine_frozen *fz);
pid_t engine_frozen_pid(const struct engine_frozen *fz);
/* Set the calling thread's error text (for callbacks such as userfault). */
void engine_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write saved page bytes of a received image: 0, or -1 when not all are saved. */
int  engine_image_poke(struct engine_image *img, uint64_t addr, const void *buf, uint64_t len);

#endif /* MIGR_ENGINE_H */
