/*
 * migr migration engine — internal model shared by the engine's modules.
 *
 * struct engine_image is the in-memory form of a captured process: capture.c,
 * mempolicy.c and fdpolicy.c fill it, image.c serializes and parses it,
 * restore.c consumes it.  struct engine_frozen is freeze.c's record of a
 * seized process; inject.c runs system calls inside its threads.
 */
#ifndef MIGR_ENGINE_INT_H
#define MIGR_ENGINE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "engine.h"

#define ENG_PAGE        ((uint64_t)4096)
#define ENG_MAX_THREADS 8192
#define ENG_MAX_VMAS    (1u << 20)
#define ENG_MAX_FDS     (1u << 20)
#define ENG_MAX_PATH    4096
#define ENG_MAX_XSTATE  (64u * 1024)
#define ENG_MAX_PENDING 65536
#define ENG_NSIG        64
#define ENG_NRLIMIT     16
#define ENG_TASK_SIZE   ((uint64_t)0x7ffffffff000)

/* ------------------------------------------------------------ logging */
void eng_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set the thread's error text (printf-like, errno text NOT appended) and
 * return -1. */
int eng_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, with ": strerror(errno)" appended. */
int eng_fail_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefix the current error text with "context: ". Returns -1. */
int eng_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define eng_debug(...) eng_log(ENGINE_LOG_DEBUG, __VA_ARGS__)
#define eng_info(...)  eng_log(ENGINE_LOG_INFO, __VA_ARGS__)
#define eng_warn(...)  eng_log(ENGINE_LOG_WARN, __VA_ARGS__)

/* ------------------------------------------------------------ asuser.c */
/* Open path (flags as open(2)) with the file-system credentials and groups
 * of img's process, following no symbolic link, and check that it is of
 * the type of `mode` (S_IFMT bits; 0: any).  The fd (close-on-exec), or -1
 * with the engine's error text starting with `what` (the reason in one
 * line: a link on the way, not allowed to that uid, another type). */
struct engine_image;
int eng_open_as(const struct engine_image *img, const char *what, const char *path, int flags, uint32_t mode);

/* ------------------------------------------------------------ sys.c */
uint64_t eng_now_ns(void);
ssize_t eng_read_file(const char *path, char *buf, size_t cap);   /* NUL-terminated */
char   *eng_read_file_alloc(const char *path, size_t *len);       /* malloc'ed, NUL-terminated */
int     eng_readlink(const char *path, char *buf, size_t cap);
int     eng_read_full(int fd, void *buf, size_t len);             /* 0 ok, -1 err/EOF */
int     eng_write_full(int fd, const void *buf, size_t len);
void   *eng_xcalloc(size_t n, size_t sz);
char   *eng_xstrdup(const char *s);
long    eng_clone3(void *args, size_t size);
int     eng_pidfd_open(pid_t pid);
int     eng_pidfd_getfd(int pidfd, int fd);
int     eng_kcmp_file(pid_t pid, int fd1, int fd2);                /* 0 same, 1 differ, -1 err */
uint64_t eng_xcr0(void);
int     eng_kernel_release(char *rel, size_t rlen, char *mach, size_t mlen);
void    eng_close(int *fd);

/* ------------------------------------------------------------ model */
struct eng_siginfo { uint8_t raw[128]; };

/* kernel's struct sigaction for rt_sigaction */
struct eng_sigaction {
	uint64_t handler, flags, restorer, mask;
};

/* A thread's scheduling (sched_getattr(2)): policy and its parameters,
 * nice value, SCHED_FLAG_RESET_ON_FORK; util clamps are not kept. */
struct eng_sched {
	uint32_t policy, priority;
	int32_t  nice;
	uint32_t reset_on_fork;
	uint64_t runtime, deadline, period;
};

struct eng_thread {
	int32_t  tid;
	struct user_regs_struct regs;   /* restart already applied, orig_rax = -1 */
	uint32_t xstate_len;
	uint8_t *xstate;
	uint64_t sigmask;
	uint32_t npending;
	struct eng_siginfo *pending;
	uint64_t ss_sp, ss_size;
	int32_t  ss_flags;
	uint64_t robust_head, robust_len;
	uint64_t rseq_ptr;
	uint32_t rseq_len, rseq_sig;
	uint64_t clear_tid;
	char     comm[16];
	struct eng_sched sched;
};

enum eng_vma_kind {
	VMA_ANON = 1,          /* private anonymous (heap, stacks, malloc arenas) */
	VMA_FILE_PRIVATE = 2,  /* private file mapping; written pages saved      */
	VMA_FILE_SHARED = 3,   /* shared file mapping; remapped from the file    */
	VMA_SHMEM = 4,         /* shared anonymous memory (/dev/zero, memfd-less) */
	VMA_VDSO = 5,
	VMA_VVAR = 6,
	VMA_VVAR_VCLOCK = 7,
	VMA_VSYSCALL = 8,
};

/* our VmFlags bits (from /proc/PID/smaps) that restore reproduces */
enum {
	VMF_GROWSDOWN = 1u << 0, VMF_LOCKED = 1u << 1, VMF_LOCKONFAULT = 1u << 2,
	VMF_DONTDUMP = 1u << 3, VMF_DONTFORK = 1u << 4, VMF_WIPEONFORK = 1u << 5,
	VMF_HUGEPAGE = 1u << 6, VMF_NOHUGEPAGE = 1u << 7, VMF_RANDOM = 1u << 8,
	VMF_SEQUENTIAL = 1u << 9, VMF_MERGEABLE = 1u << 10, VMF_ACCOUNT = 1u << 11,
	VMF_NORESERVE = 1u << 12,
};

/* markers of capture (not kernel flags): what the region is mapped from */
#define VMF_DELETED (1u << 20)
#define VMF_TMPFS   (1u << 21)
#define VMF_SYSV    (1u << 22)
#define VMF_DEVICE  (1u << 23)

/* how a vma's contents travel */
enum {
	VMC_NONE = 0,          /* nothing saved (clean file pages, untouched)     */
	VMC_PAGES = 1,         /* saved pages overlay the mapping                 */
	VMC_SNAPSHOT = 2,      /* shared object contents saved (restore may use them
	                          when the object is absent)                     */
};

struct eng_vma {
	uint64_t start, end, pgoff;     /* pgoff in bytes */
	uint32_t prot, kind, vmflags, content;
	uint64_t dev, ino, fsize;
	int64_t  mtime_sec, mtime_nsec;
	uint32_t obj;                   /* same object id => same shared object */
	char    *path;
	/* not serialized */
	int      src_fd;                /* restorer: fd to map (or -1) */
	int      pfd;                   /* fd number inside the puppet */
	bool     as_private;            /* restore a shared mapping as private copy */
	bool     taken;                 /* restore: took its piece of the page buffer */
};

enum eng_fd_kind {
	FD_FILE = 1,       /* regular file, directory, device: reopened by path */
	FD_PIPE = 2,       /* pipe with both ends inside the process            */
	FD_UNIX = 3,       /* AF_UNIX socketpair with both ends inside          */
	FD_EVENTFD = 4,
	FD_EPOLL = 5,
	FD_TIMERFD = 6,
	FD_SIGNALFD = 7,
	FD_EXTERNAL = 8,   /* leads outside: original object on the same host,
	                      forwarded through the home across nodes           */
};

struct eng_epitem { int32_t tfd; uint32_t events; uint64_t data; };

struct eng_fd {
	int32_t  fd;
	uint32_t kind;
	uint32_t flags;        /* open flags from fdinfo incl. O_CLOEXEC */
	uint64_t pos;
	int32_t  same_as;      /* index of an earlier entry sharing the open file description, or -1 */
	int32_t  peer;         /* pipe: other end's entry; unix: peer entry; or -1 */
	uint32_t mode;         /* st_mode */
	uint64_t dev, ino, size;
	int64_t  mtime;
	char    *path;         /* path, or readlink text for anon/pipe/socket */
	char    *desc;         /* human description (external/unsupported) */
	/* pipe / unix */
	uint32_t sock_type, pipe_size;
	uint32_t datalen;      /* unread bytes in this end's receive queue */
	uint8_t *data;         /* stream: raw bytes; dgram: (u32 len, bytes)* */
	/* eventfd */
	uint64_t count;
	uint32_t semaphore;
	/* timerfd */
	int32_t  clockid;
	uint64_t ticks;
	int64_t  val_sec, val_nsec, int_sec, int_nsec;
	/* signalfd */
	uint64_t sigmask;
	/* epoll */
	uint32_t nep;
	struct eng_epitem *ep;
	/* not serialized */
	int      src;          /* restorer: fd to install, or -1 */
};

struct eng_run { uint64_t addr, npages, off; };

struct eng_creds {
	uint32_t uid[4], gid[4];          /* real, effective, saved, fs */
	uint32_t ngroups;
	uint32_t *groups;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
};

struct eng_mm {
	uint64_t start_code, end_code, start_data, end_data, start_brk, brk,
	         start_stack, arg_start, arg_end, env_start, env_end;
};

struct eng_itimer { int64_t int_sec, int_usec, val_sec, val_usec; };

struct engine_image {
	/* header facts */
	char     kernel[65], machine[65];
	uint64_t xcr0;
	/* process */
	int32_t  pid, ppid, pgid, sid;
	char     comm[16];
	struct eng_creds creds;
	char    *cwd, *exe;
	uint64_t exe_dev, exe_ino, exe_size;
	uint32_t umask, personality, dumpable;
	uint64_t rlim[ENG_NRLIMIT][2];
	struct eng_mm mm;
	uint32_t auxv_len;
	uint8_t *auxv;
	struct eng_itimer itimer[3];
	struct eng_sigaction sigact[ENG_NSIG];
	uint32_t nshared;
	struct eng_siginfo *shared;
	/* threads, memory, files */
	uint32_t nthreads;
	struct eng_thread *threads;
	uint32_t nvmas;
	struct eng_vma *vmas;
	uint32_t nfds;
	struct eng_fd *fds;
	uint32_t nruns;
	struct eng_run *runs;
	uint8_t *pages;            /* mmap'ed; runs[i].off indexes it */
	uint64_t pages_len;
	uint64_t pages_map_len;    /* size of that mapping (not serialized) */
	bool     pages_movable;    /* eng_page_buffer(movable): restore may move
	                              whole pieces into the process (not serialized) */
	pid_t    pages_from;       /* pages == NULL: the frozen process they are
	                              read from while the image is written (not
	                              serialized) */
	/* not serialized */
	bool     handover;         /* src fds hold the original objects */
};

void eng_image_free(struct engine_image *img);

/* ------------------------------------------------------------ freeze.c */
struct eng_task {
	pid_t    tid;
	bool     stopped;          /* in a ptrace stop we control */
	bool     injected;         /* regs changed by injection: set thaw regs */
	bool     mask_changed;
	uint64_t orig_mask;
	struct user_regs_struct regs0;   /* as found at freeze */
	uint32_t nstash;           /* signals dequeued during the freeze */
	struct eng_siginfo *stash;
};

struct engine_frozen {
	pid_t    pid;
	int      pidfd;
	uint32_t ntasks;
	struct eng_task *tasks;
	uint64_t syscall_ip;       /* address of a `syscall` insn in the target */
	uint64_t scratch;          /* injected scratch page, or 0 */
	uint8_t *prebuf;           /* page buffer prepared before the freeze */
	uint64_t prebuf_len;
	bool     prebuf_movable;   /* pages are for a restore on this host */
	uint64_t t_freeze0, t_frozen;
};

int  eng_freeze(pid_t pid, int timeout_ms, struct engine_frozen **out);
/* release: how = ENGINE_LEAVE_RUNNING / ENGINE_LEAVE_STOPPED / ENGINE_KILL */
int  eng_release(struct engine_frozen *fz, int how);
struct eng_task *eng_task_find(struct engine_frozen *fz, pid_t tid);
/* wait for tid's next stop; returns the wait status, -1 on error */
int  eng_wait_stop(pid_t tid, int *status);
/* restart adjustment of an interrupted syscall; live=true for the same task */
void eng_restart_regs(struct user_regs_struct *r, bool live);

/* ------------------------------------------------------------ inject.c */
/* Run syscall nr with args in thread tid; the thread's registers are
 * clobbered (the caller restores them).  sc_ip must hold a syscall insn. */
int eng_inject(pid_t tid, uint64_t sc_ip, long nr, const uint64_t args[6], long *ret);
int eng_inject6(pid_t tid, uint64_t sc_ip, long *ret, long nr, uint64_t a0, uint64_t a1,
                uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5);
int eng_find_syscall_insn(pid_t pid, uint64_t *ip);
/* One system call of a batch, as the trampoline's batch code reads it
 * (64 bytes).  ret: on the way in, ENG_CALL_MAY_FAIL or 0; on the way out,
 * the call's result (raw: -errno on failure). */
struct eng_call {
	uint64_t nr;
	uint64_t a[6];
	uint64_t ret;
};
#define ENG_CALL_MAY_FAIL 1     /* the batch goes on after this call fails */
/* Run calls c[0..n) one after the other in thread tid of pid from the
 * trampoline at tramp (its batch code, the table in its data area), with
 * one stop for all of them instead of two stops per call.  The batch ends
 * at the first call that fails without ENG_CALL_MAY_FAIL (the later ones
 * are not run; their ret keeps what it had).  0 (c[].ret filled in), or -1
 * if the batch itself could not be run.  The thread's registers are
 * clobbered, as with eng_inject. */
int eng_inject_batch(pid_t pid, pid_t tid, uint64_t tramp, struct eng_call *c, uint32_t n);
/* process memory helpers */
int eng_mem_read(pid_t pid, uint64_t addr, void *buf, size_t len);
int eng_mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len);
/* inject with the frozen process bookkeeping (signals blocked, regs saved) */
int eng_fz_inject(struct engine_frozen *fz, struct eng_task *t, long *ret, long nr,
                  uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3);

/* ------------------------------------------------------------ capture.c */
int eng_capture_threads(struct engine_frozen *fz, struct engine_image *img);
/* Thread tid's scheduling into s / from s (sched.c): 0, or -1 (error set). */
int eng_sched_get(pid_t tid, struct eng_sched *s);
int eng_sched_set(pid_t tid, const struct eng_sched *s);
int eng_capture_process(struct engine_frozen *fz, struct engine_image *img);

/* ------------------------------------------------------------ mempolicy.c */
int eng_capture_vmas(struct engine_frozen *fz, struct engine_image *img, bool snapshot_shared);
/* lazy: only choose the runs; the bytes are read when the image is written */
int eng_capture_pages(struct engine_frozen *fz, struct engine_image *img, bool lazy);
/* the saved page bytes, in image order, read from the frozen process */
struct eng_page_reader {
	pid_t    pid;
	const struct engine_image *img;
	uint32_t run;              /* next run to read */
	uint64_t in_run;           /* bytes of it already read */
};
void eng_page_reader_init(struct eng_page_reader *r, pid_t pid, const struct engine_image *img);
int  eng_page_reader_read(struct eng_page_reader *r, uint8_t *dst, uint64_t len);
/* populated, not inherited by fork; huge pages unless movable */
uint8_t *eng_page_buffer(uint64_t len, bool movable);
uint64_t eng_estimate_pages(pid_t pid);
int eng_vma_kind_is_special(uint32_t kind);
const char *eng_vma_kind_name(uint32_t kind);
int eng_parse_maps(pid_t pid, struct eng_vma **out, uint32_t *n);
void eng_free_vmas(struct eng_vma *v, uint32_t n);
/* restore side: check files and open what each vma is mapped from */
int eng_vmas_prepare(struct engine_image *img);
void eng_vmas_unprepare(struct engine_image *img);
/* same host: take original objects of shared/deleted mappings */
int eng_vmas_handover(struct engine_image *img, pid_t pid);

/* ------------------------------------------------------------ fdpolicy.c */
int eng_capture_fds(struct engine_frozen *fz, struct engine_image *img);
const char *eng_fd_kind_name(uint32_t kind);
/* peer inode of the AF_UNIX socket with inode ino, seen from pid's netns */
int eng_unix_peer(pid_t pid, uint64_t ino, uint64_t *peer, uint32_t *state);
/* same host: take original objects of external fds (and files if keep_files) */
int eng_fds_handover(struct engine_image *img, int pidfd, bool keep_files);
/* restore side, in the restorer: create/open every source object */
int eng_fds_prepare(struct engine_image *img, bool external_null);
void eng_fds_unprepare(struct engine_image *img);
/* restore side, inside the puppet child: install at target numbers */
int eng_fds_install(struct engine_image *img, int helper_base);

/* ------------------------------------------------------------ image.c */
/* output sink: a fd, or a growing memory buffer */
struct eng_out {
	int      fd;
	uint8_t *buf;
	size_t   len, cap;
	uint64_t total;
	uint32_t crc;
};
int eng_image_write(const struct engine_image *img, struct eng_out *out, bool with_pages);
/* buf: a prepared page buffer the pages are read into when they fit (it is
 * then emptied), else a movable one is made; NULL: an ordinary buffer */
int eng_image_parse(int fd, const uint8_t *mem, size_t memlen, struct engine_pagebuf *buf,
                    struct engine_image **out, uint64_t *bytes);
uint32_t eng_crc32c(uint32_t crc, const void *buf, size_t len);

/* ------------------------------------------------------------ restore.c */
int eng_restore(struct engine_image *img, const struct engine_restore_opts *opts,
                pid_t *restored, struct engine_stats *st);
/* the same in two steps: everything that can fail without the pid, then
 * the puppet (reincarnate kills the source in between) */
struct eng_restore;
int  eng_restore_prepare(struct engine_image *img, const struct engine_restore_opts *opts,
                         struct eng_restore **out);
int  eng_restore_run(struct eng_restore *rs, pid_t *restored, struct engine_stats *st);
void eng_restore_abort(struct eng_restore *rs);
/* after a restore that took pieces of the page buffer, once the process
 * runs: let the buffer go and settle the taken pages (see restore.c), at
 * once or in steps */
void eng_restore_settle(struct engine_image *img, pid_t pid);
struct engine_settle *eng_settle_begin(struct engine_image *img, pid_t pid);
int  eng_settle_step(struct engine_settle *s, uint64_t max_bytes);
void eng_settle_free(struct engine_settle *s);

/* ------------------------------------------------------------ trampoline.c */
#define TRAMP_SIZE       32768
#define TRAMP_BATCH      64      /* offset of the batch code (eng_inject_batch) */
#define TRAMP_DATA       256     /* data area offset: structures passed by pointer,
                                    or the table of a batch */
#define ENG_BATCH_MAX    ((TRAMP_SIZE - TRAMP_DATA) / sizeof(struct eng_call))
int  eng_find_hole(const struct eng_vma *a, uint32_t na, const struct eng_vma *b,
                   uint32_t nb, uint64_t size, uint64_t *addr);
int  eng_tramp_install(uint64_t addr);      /* in the puppet child */
long eng_spawn_thread(pid_t tid);           /* in the puppet child */

/* ------------------------------------------------------------ info.c */
int eng_image_info(const struct engine_image *img, FILE *out);

#endif /* MIGR_ENGINE_INT_H */
