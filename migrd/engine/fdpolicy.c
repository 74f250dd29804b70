/*
 * migr engine — file descriptor policy.
 *
 * Owns what each descriptor of a process becomes in an image and back:
 *  - regular files, directories, memory devices: reopened by path with the
 *    open flags and offset;
 *  - pipes and AF_UNIX socketpairs with both ends inside the process:
 *    recreated, with the unread bytes copied out non-destructively at dump
 *    time (tee(2) for pipes, MSG_PEEK with SO_PEEK_OFF for sockets);
 *  - eventfd, epoll (interest list), timerfd, signalfd: recreated from
 *    /proc/PID/fdinfo;
 *  - everything that leads outside the process (pipes and sockets with a
 *    far end elsewhere, ttys, fifos, deleted files) is "external": on the
 *    same host the original open file description is handed over
 *    (pidfd_getfd); across nodes the image names it for forwarding;
 *  - anything else refuses the dump with "fd N: <kind>: not supported".
 * Dups (several numbers, one open file description) stay dups (kcmp).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include "engine_int.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif
#ifndef F_GETPIPE_SZ
#define F_SETPIPE_SZ 1031
#define F_GETPIPE_SZ 1032
#endif
#define MAX_QUEUE_BYTES (64u << 20)

const char *eng_fd_kind_name(uint32_t kind)
{
	switch (kind) {
	case FD_FILE: return "file";
	case FD_PIPE: return "pipe";
	case FD_UNIX: return "socketpair";
	case FD_EVENTFD: return "eventfd";
	case FD_EPOLL: return "epoll";
	case FD_TIMERFD: return "timerfd";
	case FD_SIGNALFD: return "signalfd";
	case FD_EXTERNAL: return "external";
	default: return "?";
	}
}

/* ---------------------------------------------------------------- capture */

static const char *fdinfo_val(const char *info, const char *key)
{
	const char *p = strstr(info, key);

	return p ? p + strlen(key) : NULL;
}

/* peer inode of an AF_UNIX socket, through sock_diag in pid's netns */
int eng_unix_peer(pid_t pid, uint64_t ino, uint64_t *peer, uint32_t *state)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg;
	union { struct nlmsghdr h; uint8_t b[8192]; } resp;
	char nspath[64];
	int nl, myns, tns;
	ssize_t n;

	snprintf(nspath, sizeof(nspath), "/proc/%d/ns/net", pid);
	tns = open(nspath, O_RDONLY | O_CLOEXEC);
	myns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (tns >= 0 && myns >= 0 && setns(tns, CLONE_NEWNET) < 0)
		eng_debug("setns into net namespace of pid %d: %s", pid, strerror(errno));
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (tns >= 0 && myns >= 0)
		setns(myns, CLONE_NEWNET);
	if (tns >= 0)
		close(tns);
	if (myns >= 0)
		close(myns);
	if (nl < 0)
		return eng_fail_errno("socket(NETLINK_SOCK_DIAG)");
	memset(&msg, 0, sizeof(msg));
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST;
	msg.req.sdiag_family = AF_UNIX;
	msg.req.udiag_ino = (uint32_t)ino;
	msg.req.udiag_show = UDIAG_SHOW_PEER;
	msg.req.udiag_cookie[0] = msg.req.udiag_cookie[1] = ~0U;
	if (send(nl, &msg, sizeof(msg), 0) < 0) {
		close(nl);
		return eng_fail_errno("sock_diag request for socket inode %" PRIu64, ino);
	}
	n = recv(nl, &resp, sizeof(resp), 0);
	close(nl);
	*peer = 0;
	*state = 0;
	if (n < (ssize_t)sizeof(struct nlmsghdr))
		return eng_fail("sock_diag: short answer for socket inode %" PRIu64, ino);
	if (resp.h.nlmsg_type == NLMSG_ERROR)
		return eng_fail("sock_diag: no unix socket with inode %" PRIu64, ino);
	{
		struct unix_diag_msg *um = NLMSG_DATA(&resp.h);
		struct rtattr *rta = (struct rtattr *)(um + 1);
		int len = (int)resp.h.nlmsg_len - (int)NLMSG_LENGTH(sizeof(*um));
		*state = um->udiag_state;
		for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
			if (rta->rta_type == UNIX_DIAG_PEER)
				*peer = *(uint32_t *)RTA_DATA(rta);
	}
	return 0;
}

/* unread bytes of a socket receive queue, without consuming them */
static int peek_socket(int s, uint32_t type, struct eng_fd *f)
{
	int off = 0, minus = -1;
	size_t cap = 65536, len = 0;
	uint8_t *buf = malloc(cap);

	if (!buf)
		return eng_fail("out of memory");
	if (setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) < 0) {
		free(buf);
		return eng_fail_errno("fd %d: setsockopt(SO_PEEK_OFF)", f->fd);
	}
	for (;;) {
		ssize_t n;
		if (cap - len < 65536 + 4) {
			uint8_t *nb;
			if (cap >= MAX_QUEUE_BYTES) {
				free(buf);
				setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &minus, sizeof(minus));
				return eng_fail("fd %d: more than %u bytes queued", f->fd, MAX_QUEUE_BYTES);
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return eng_fail("out of memory");
			}
			buf = nb;
			cap *= 2;
		}
		if (type == SOCK_STREAM) {
			n = recv(s, buf + len, cap - len, MSG_PEEK | MSG_DONTWAIT);
			if (n <= 0)
				break;
			len += (size_t)n;
		} else {
			uint32_t l32;
			n = recv(s, buf + len + 4, cap - len - 4, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
			if (n <= 0)
				break;
			if ((size_t)n > cap - len - 4) {
				free(buf);
				setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &minus, sizeof(minus));
				return eng_fail("fd %d: datagram of %zd bytes too large", f->fd, n);
			}
			l32 = (uint32_t)n;
			memcpy(buf + len, &l32, 4);
			len += 4 + (size_t)n;
		}
	}
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &minus, sizeof(minus));
	f->data = buf;
	f->datalen = (uint32_t)len;
	return 0;
}

/* unread bytes of a pipe, duplicated with tee(2) */
static int peek_pipe(int rd, struct eng_fd *f)
{
	int avail = 0, tp[2];
	size_t got = 0;

	if (ioctl(rd, FIONREAD, &avail) < 0)
		return eng_fail_errno("fd %d: ioctl(FIONREAD)", f->fd);
	if (avail <= 0)
		return 0;
	if (pipe2(tp, O_CLOEXEC | O_NONBLOCK) < 0)
		return eng_fail_errno("pipe2");
	fcntl(tp[1], F_SETPIPE_SZ, f->pipe_size > (uint32_t)avail ? f->pipe_size : (uint32_t)avail);
	f->data = malloc((size_t)avail);
	if (!f->data) {
		close(tp[0]);
		close(tp[1]);
		return eng_fail("out of memory");
	}
	while (got < (size_t)avail) {
		ssize_t n = tee(rd, tp[1], (size_t)avail - got, SPLICE_F_NONBLOCK);
		ssize_t r;
		if (n <= 0) {
			eng_fail_errno("fd %d: tee of %d unread pipe bytes", f->fd, avail);
			goto fail;
		}
		r = read(tp[0], f->data + got, (size_t)n);
		if (r != n) {
			eng_fail_errno("fd %d: read back teed bytes", f->fd);
			goto fail;
		}
		got += (size_t)n;
		/* tee always copies from the head: take all in one go */
		break;
	}
	f->datalen = (uint32_t)got;
	close(tp[0]);
	close(tp[1]);
	if (got != (size_t)avail)
		return eng_fail("fd %d: copied %zu of %d unread pipe bytes", f->fd, got, avail);
	return 0;
fail:
	close(tp[0]);
	close(tp[1]);
	return -1;
}

static int parse_epoll(struct eng_fd *f, const char *info)
{
	const char *p = info;

	while ((p = strstr(p, "tfd:"))) {
		int tfd;
		unsigned ev;
		unsigned long long data;
		struct eng_epitem *ne;
		if (sscanf(p, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) != 3)
			return eng_fail("fd %d: unreadable epoll fdinfo line", f->fd);
		ne = realloc(f->ep, (f->nep + 1) * sizeof(*ne));
		if (!ne)
			return eng_fail("out of memory");
		f->ep = ne;
		f->ep[f->nep].tfd = tfd;
		f->ep[f->nep].events = ev;
		f->ep[f->nep].data = data;
		f->nep++;
		p += 4;
	}
	return 0;
}

static int parse_timerfd(struct eng_fd *f, const char *info)
{
	const char *v;
	long long a, b;

	if (!(v = fdinfo_val(info, "clockid:")))
		return eng_fail("fd %d: timerfd fdinfo without clockid", f->fd);
	f->clockid = (int32_t)strtol(v, NULL, 10);
	if ((v = fdinfo_val(info, "ticks:")))
		f->ticks = strtoull(v, NULL, 10);
	if ((v = fdinfo_val(info, "it_value:")) && sscanf(v, " (%lld, %lld)", &a, &b) == 2) {
		f->val_sec = a;
		f->val_nsec = b;
	}
	if ((v = fdinfo_val(info, "it_interval:")) && sscanf(v, " (%lld, %lld)", &a, &b) == 2) {
		f->int_sec = a;
		f->int_nsec = b;
	}
	return 0;
}

static int set_desc(struct eng_fd *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_desc(struct eng_fd *f, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(f->desc);
	f->desc = eng_xstrdup(buf);
	return f->desc ? 0 : -1;
}

static void sockaddr_text(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, cap, "%s:%u", a, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, cap, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else if (ss->ss_family == AF_UNIX) {
		const struct sockaddr_un *su = (const void *)ss;
		snprintf(buf, cap, "%s%s", su->sun_path[0] ? "" : "@",
		         su->sun_path[0] ? su->sun_path : su->sun_path + 1);
	} else {
		snprintf(buf, cap, "-");
	}
}

static int classify_socket(struct engine_frozen *fz, struct eng_fd *f, int copy)
{
	int dom = 0, type = 0, proto = 0;
	socklen_t l = sizeof(int);
	struct sockaddr_storage la, pa;
	socklen_t ll = sizeof(la), pl = sizeof(pa);
	char ls[160], ps[160];

	getsockopt(copy, SOL_SOCKET, SO_DOMAIN, &dom, &l);
	l = sizeof(int);
	getsockopt(copy, SOL_SOCKET, SO_TYPE, &type, &l);
	l = sizeof(int);
	getsockopt(copy, SOL_SOCKET, SO_PROTOCOL, &proto, &l);
	f->sock_type = (uint32_t)type;
	memset(&la, 0, sizeof(la));
	memset(&pa, 0, sizeof(pa));
	getsockname(copy, (struct sockaddr *)&la, &ll);
	if (getpeername(copy, (struct sockaddr *)&pa, &pl) < 0)
		pa.ss_family = AF_UNSPEC;
	sockaddr_text(&la, ls, sizeof(ls));
	sockaddr_text(&pa, ps, sizeof(ps));
	switch (dom) {
	case AF_UNIX:
		f->kind = FD_UNIX;      /* refined once all fds are known */
		return set_desc(f, "unix %s socket %s -> %s",
		                type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : "seqpacket",
		                ls, ps);
	case AF_INET:
	case AF_INET6:
		f->kind = FD_EXTERNAL;
		return set_desc(f, "%s%s socket %s -> %s", proto == IPPROTO_TCP ? "tcp" :
		                proto == IPPROTO_UDP ? "udp" : "ip", dom == AF_INET6 ? "6" : "", ls, ps);
	case AF_NETLINK:
		return eng_fail("pid %d: fd %d: netlink socket: not supported", fz->pid, f->fd);
	case AF_PACKET:
		return eng_fail("pid %d: fd %d: packet socket: not supported", fz->pid, f->fd);
	default:
		return eng_fail("pid %d: fd %d: socket of family %d: not supported", fz->pid, f->fd, dom);
	}
}

static int classify(struct engine_frozen *fz, struct eng_fd *f, const char *info)
{
	const char *link = f->path;
	const char *v;

	if (link[0] == '/') {
		size_t l = strlen(link);
		if (l > 10 && !strcmp(link + l - 10, " (deleted)")) {
			f->kind = FD_EXTERNAL;
			return set_desc(f, "deleted file %.*s", (int)(l - 10), link);
		}
		if (S_ISREG(f->mode) || S_ISDIR(f->mode) || S_ISBLK(f->mode) || S_ISLNK(f->mode)) {
			f->kind = FD_FILE;
			return 0;
		}
		if (S_ISCHR(f->mode)) {
			unsigned maj = major(f->dev), min = minor(f->dev);
			/* dev holds st_rdev for devices */
			if (maj == 1 && (min == 3 || min == 5 || min == 7 || min == 8 || min == 9)) {
				f->kind = FD_FILE;
				return 0;
			}
			f->kind = FD_EXTERNAL;
			return set_desc(f, "device %s", link);
		}
		if (S_ISFIFO(f->mode)) {
			f->kind = FD_EXTERNAL;
			return set_desc(f, "fifo %s", link);
		}
		f->kind = FD_EXTERNAL;
		return set_desc(f, "%s", link);
	}
	if (!strncmp(link, "pipe:", 5)) {
		f->kind = FD_PIPE;      /* refined once all fds are known */
		return 0;
	}
	if (!strncmp(link, "socket:", 7)) {
		int copy = eng_pidfd_getfd(fz->pidfd, f->fd), rc;
		if (copy < 0)
			return eng_fail_errno("pid %d: pidfd_getfd(fd %d)", fz->pid, f->fd);
		rc = classify_socket(fz, f, copy);
		close(copy);
		if (rc == 0 && (v = fdinfo_val(info, "scm_fds:")) && strtol(v, NULL, 10) > 0)
			return eng_fail("pid %d: fd %d: unix socket with file descriptors in flight: "
			                "not supported", fz->pid, f->fd);
		return rc;
	}
	if (!strcmp(link, "anon_inode:[eventfd]")) {
		f->kind = FD_EVENTFD;
		if ((v = fdinfo_val(info, "eventfd-count:")))
			f->count = strtoull(v, NULL, 16);
		if ((v = fdinfo_val(info, "eventfd-semaphore:")))
			f->semaphore = (uint32_t)strtoul(v, NULL, 10);
		return 0;
	}
	if (!strcmp(link, "anon_inode:[eventpoll]")) {
		f->kind = FD_EPOLL;
		return parse_epoll(f, info);
	}
	if (!strcmp(link, "anon_inode:[timerfd]")) {
		f->kind = FD_TIMERFD;
		return parse_timerfd(f, info);
	}
	if (!strcmp(link, "anon_inode:[signalfd]")) {
		f->kind = FD_SIGNALFD;
		if (!(v = fdinfo_val(info, "sigmask:")))
			return eng_fail("fd %d: signalfd fdinfo without sigmask", f->fd);
		f->sigmask = strtoull(v, NULL, 16);
		return 0;
	}
	if (!strncmp(link, "anon_inode:", 11))
		return eng_fail("pid %d: fd %d: %s: not supported", fz->pid, f->fd, link + 11);
	return eng_fail("pid %d: fd %d: %s: not supported", fz->pid, f->fd, link);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int list_fds(pid_t pid, int **out, uint32_t *n)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int *v = NULL;
	uint32_t cnt = 0, cap = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	if (!(d = opendir(path)))
		return eng_fail_errno("opendir %s", path);
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (cnt == cap) {
			int *nv = realloc(v, (cap ? cap * 2 : 64) * sizeof(*v));
			if (!nv) {
				closedir(d);
				free(v);
				return eng_fail("out of memory");
			}
			v = nv;
			cap = cap ? cap * 2 : 64;
		}
		v[cnt++] = atoi(de->d_name);
	}
	closedir(d);
	qsort(v, cnt, sizeof(*v), cmp_int);
	*out = v;
	*n = cnt;
	return 0;
}

int eng_capture_fds(struct engine_frozen *fz, struct engine_image *img)
{
	pid_t pid = fz->pid;
	int *nums = NULL;
	uint32_t n = 0;
	char path[96], info[65536], lnk[ENG_MAX_PATH];

	if (list_fds(pid, &nums, &n) < 0)
		return -1;
	if (n > ENG_MAX_FDS) {
		free(nums);
		return eng_fail("pid %d: too many fds (%u)", pid, n);
	}
	img->fds = eng_xcalloc(n, sizeof(*img->fds));
	if (!img->fds) {
		free(nums);
		return -1;
	}
	img->nfds = n;
	for (uint32_t i = 0; i < n; i++) {
		struct eng_fd *f = &img->fds[i];
		struct stat st;
		const char *v;

		f->fd = nums[i];
		f->same_as = -1;
		f->peer = -1;
		f->src = -1;
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, f->fd);
		if (eng_readlink(path, lnk, sizeof(lnk)) < 0 || !(f->path = eng_xstrdup(lnk)))
			goto fail;
		if (stat(path, &st) == 0) {
			f->mode = st.st_mode;
			f->dev = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
			f->ino = st.st_ino;
			f->size = (uint64_t)st.st_size;
			f->mtime = st.st_mtim.tv_sec;
		}
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, f->fd);
		if (eng_read_file(path, info, sizeof(info)) < 0)
			goto fail;
		if ((v = fdinfo_val(info, "pos:")))
			f->pos = strtoull(v, NULL, 10);
		if ((v = fdinfo_val(info, "flags:")))
			f->flags = (uint32_t)strtoul(v, NULL, 8);
		if (classify(fz, f, info) < 0)
			goto fail;
	}
	free(nums);
	nums = NULL;

	/* dups: same open file description */
	for (uint32_t i = 0; i < n; i++) {
		struct eng_fd *f = &img->fds[i];
		for (uint32_t j = 0; j < i; j++) {
			struct eng_fd *o = &img->fds[j];
			int r;
			if (o->same_as >= 0 || o->ino != f->ino || o->dev != f->dev || o->kind != f->kind ||
			    strcmp(o->path, f->path))
				continue;
			r = eng_kcmp_file(pid, o->fd, f->fd);
			if (r < 0)
				goto fail;
			if (r == 0) {
				f->same_as = (int32_t)j;
				break;
			}
		}
	}
	/* pipes: both ends inside? */
	for (uint32_t i = 0; i < n; i++) {
		struct eng_fd *f = &img->fds[i];
		if (f->kind != FD_PIPE || f->same_as >= 0 || f->peer >= 0)
			continue;
		for (uint32_t j = 0; j < n; j++) {
			struct eng_fd *o = &img->fds[j];
			if (j != i && o->kind == FD_PIPE && o->same_as < 0 && o->ino == f->ino &&
			    (o->flags & O_ACCMODE) != (f->flags & O_ACCMODE) && o->peer < 0) {
				f->peer = (int32_t)j;
				o->peer = (int32_t)i;
				break;
			}
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		struct eng_fd *f = &img->fds[i];
		int copy;
		if (f->kind != FD_PIPE || f->same_as >= 0)
			continue;
		if (f->peer < 0) {
			f->kind = FD_EXTERNAL;
			if (set_desc(f, "%s %s end (other end outside the process)", f->path,
			             (f->flags & O_ACCMODE) == O_RDONLY ? "read" : "write") < 0)
				goto fail;
			continue;
		}
		copy = eng_pidfd_getfd(fz->pidfd, f->fd);
		if (copy < 0) {
			eng_fail_errno("pid %d: pidfd_getfd(fd %d)", pid, f->fd);
			goto fail;
		}
		f->pipe_size = (uint32_t)fcntl(copy, F_GETPIPE_SZ);
		if ((f->flags & O_ACCMODE) == O_RDONLY && peek_pipe(copy, f) < 0) {
			close(copy);
			goto fail;
		}
		close(copy);
	}
	/* unix sockets: socketpair with both ends inside? */
	for (uint32_t i = 0; i < n; i++) {
		struct eng_fd *f = &img->fds[i];
		uint64_t peer = 0;
		uint32_t state = 0;
		int copy;
		if (f->kind != FD_UNIX || f->same_as >= 0)
			continue;
		if (eng_unix_peer(pid, f->ino, &peer, &state) < 0)
			goto fail;
		for (uint32_t j = 0; peer && j < n; j++) {
			if (img->fds[j].kind == FD_UNIX && img->fds[j].ino == peer &&
			    img->fds[j].same_as < 0) {
				f->peer = (int32_t)j;
				break;
			}
		}
		if (f->peer < 0) {
			f->kind = FD_EXTERNAL;
			continue;
		}
		copy = eng_pidfd_getfd(fz->pidfd, f->fd);
		if (copy < 0) {
			eng_fail_errno("pid %d: pidfd_getfd(fd %d)", pid, f->fd);
			goto fail;
		}
		if (peek_socket(copy, f->sock_type, f) < 0) {
			close(copy);
			goto fail;
		}
		close(copy);
	}
	/* dups of external/pipe entries follow their original's kind */
	for (uint32_t i = 0; i < n; i++) {
		struct eng_fd *f = &img->fds[i];
		if (f->same_as >= 0) {
			f->kind = img->fds[f->same_as].kind;
			f->peer = -1;
			if (img->fds[f->same_as].desc && !f->desc &&
			    !(f->desc = eng_xstrdup(img->fds[f->same_as].desc)))
				goto fail;
		}
	}
	/* epoll targets must be descriptors of the process */
	for (uint32_t i = 0; i < n; i++) {
		struct eng_fd *f = &img->fds[i];
		for (uint32_t k = 0; f->kind == FD_EPOLL && k < f->nep; k++) {
			bool found = false;
			for (uint32_t j = 0; j < n && !found; j++)
				found = img->fds[j].fd == f->ep[k].tfd;
			if (!found) {
				eng_fail("pid %d: fd %d: epoll watches fd %d which is closed: not supported",
				         pid, f->fd, f->ep[k].tfd);
				goto fail;
			}
		}
	}
	return 0;
fail:
	free(nums);
	return eng_wrap("capture descriptors of pid %d", pid);
}

/* ---------------------------------------------------------------- restore */

int eng_fds_handover(struct engine_image *img, int pidfd, bool keep_files)
{
	for (uint32_t i = 0; i < img->nfds; i++) {
		struct eng_fd *f = &img->fds[i];
		if (f->same_as >= 0 || f->src >= 0)
			continue;
		if (f->kind != FD_EXTERNAL && !(keep_files && f->kind == FD_FILE))
			continue;
		f->src = eng_pidfd_getfd(pidfd, f->fd);
		if (f->src < 0)
			return eng_fail_errno("pidfd_getfd(fd %d)", f->fd);
		fcntl(f->src, F_SETFD, FD_CLOEXEC);
	}
	img->handover = true;
	return 0;
}

void eng_fds_unprepare(struct engine_image *img)
{
	for (uint32_t i = 0; i < img->nfds; i++)
		eng_close(&img->fds[i].src);
}

static int requeue(int wr, const struct eng_fd *f)
{
	size_t off = 0;

	if (!f->datalen)
		return 0;
	if (f->kind == FD_UNIX) {
		/* every queued skb is charged to the sender with its overhead */
		uint64_t msgs = f->sock_type == SOCK_STREAM ? 1 : f->datalen / 4;
		uint64_t want = (uint64_t)f->datalen * 2 + msgs * 2048 + 65536;
		int sz = want > (1u << 30) ? (1 << 30) : (int)want;
		if (setsockopt(wr, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(wr, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	} else if (fcntl(wr, F_SETPIPE_SZ, f->pipe_size > f->datalen ? f->pipe_size : f->datalen) < 0) {
		return eng_fail_errno("fd %d: set pipe size %u", f->fd, f->pipe_size);
	}
	if (f->kind == FD_UNIX && f->sock_type != SOCK_STREAM) {
		while (off + 4 <= f->datalen) {
			uint32_t l;
			memcpy(&l, f->data + off, 4);
			if (l > f->datalen - off - 4)
				return eng_fail("fd %d: corrupt datagram queue", f->fd);
			if (send(wr, f->data + off + 4, l, MSG_DONTWAIT) != (ssize_t)l)
				return eng_fail_errno("fd %d: requeue a datagram of %u bytes", f->fd, l);
			off += 4 + l;
		}
		return 0;
	}
	while (off < f->datalen) {
		ssize_t n = write(wr, f->data + off, f->datalen - off);
		if (n <= 0)
			return eng_fail_errno("fd %d: requeue %u unread bytes", f->fd, f->datalen);
		off += (size_t)n;
	}
	return 0;
}

static int set_status_flags(int fd, uint32_t flags)
{
	int keep = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;
	int cur = fcntl(fd, F_GETFL);

	if (cur < 0)
		return eng_fail_errno("fcntl(F_GETFL)");
	if ((cur & keep) != ((int)flags & keep) &&
	    fcntl(fd, F_SETFL, (cur & ~keep) | ((int)flags & keep)) < 0)
		return eng_fail_errno("fcntl(F_SETFL, %#x)", flags);
	return 0;
}

static int prepare_one(struct engine_image *img, struct eng_fd *f, bool external_null)
{
	int nb = f->flags & O_NONBLOCK ? 1 : 0;

	switch (f->kind) {
	case FD_FILE: {
		int fl = (int)f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
		char what[32];
		snprintf(what, sizeof(what), "fd %d", f->fd);
		/* with the process's own rights, no symlink followed (asuser.c) */
		f->src = eng_open_as(img, what, f->path, fl, f->mode);
		if (f->src < 0)
			return -1;
		if (!(f->flags & O_PATH) && (S_ISREG(f->mode) || S_ISDIR(f->mode) || S_ISBLK(f->mode)) &&
		    lseek(f->src, (off_t)f->pos, SEEK_SET) < 0)
			return eng_fail_errno("fd %d: seek %s to %" PRIu64, f->fd, f->path, f->pos);
		return 0;
	}
	case FD_PIPE: {
		int p[2];
		struct eng_fd *rd, *wr;
		if (f->src >= 0)
			return 0;            /* made with its peer */
		if (f->peer < 0 || (uint32_t)f->peer >= img->nfds)
			return eng_fail("fd %d: pipe without peer", f->fd);
		rd = (f->flags & O_ACCMODE) == O_RDONLY ? f : &img->fds[f->peer];
		wr = rd == f ? &img->fds[f->peer] : f;
		if (pipe2(p, O_CLOEXEC) < 0)
			return eng_fail_errno("fd %d: pipe2", f->fd);
		rd->src = p[0];
		wr->src = p[1];
		if (rd->pipe_size && fcntl(p[1], F_SETPIPE_SZ, rd->pipe_size) < 0)
			eng_debug("fd %d: keep default pipe size", f->fd);
		if (requeue(p[1], rd) < 0)
			return -1;
		if (set_status_flags(p[0], rd->flags) < 0 || set_status_flags(p[1], wr->flags) < 0)
			return eng_wrap("fd %d", f->fd);
		return 0;
	}
	case FD_UNIX: {
		int sv[2];
		struct eng_fd *o;
		if (f->src >= 0)
			return 0;
		if (f->peer < 0 || (uint32_t)f->peer >= img->nfds)
			return eng_fail("fd %d: socketpair without peer", f->fd);
		o = &img->fds[f->peer];
		if (socketpair(AF_UNIX, (int)f->sock_type | SOCK_CLOEXEC, 0, sv) < 0)
			return eng_fail_errno("fd %d: socketpair", f->fd);
		f->src = sv[0];
		o->src = sv[1];
		/* bytes queued for f are sent from its peer, and back */
		if (requeue(sv[1], f) < 0 || requeue(sv[0], o) < 0)
			return -1;
		if (set_status_flags(sv[0], f->flags) < 0 || set_status_flags(sv[1], o->flags) < 0)
			return eng_wrap("fd %d", f->fd);
		return 0;
	}
	case FD_EVENTFD: {
		int fl = EFD_CLOEXEC | (nb ? EFD_NONBLOCK : 0) | (f->semaphore ? EFD_SEMAPHORE : 0);
		f->src = eventfd(0, fl);
		if (f->src < 0)
			return eng_fail_errno("fd %d: eventfd", f->fd);
		if (f->count && write(f->src, &f->count, 8) != 8)
			return eng_fail_errno("fd %d: set eventfd count %" PRIu64, f->fd, f->count);
		return 0;
	}
	case FD_TIMERFD: {
		struct itimerspec its = { { f->int_sec, f->int_nsec }, { f->val_sec, f->val_nsec } };
		/* an interval timer that has expired (ticks not read yet) shows
		 * 0 remaining: its next expiry is one interval away */
		if (!f->val_sec && !f->val_nsec && (f->int_sec || f->int_nsec)) {
			its.it_value.tv_sec = f->int_sec;
			its.it_value.tv_nsec = f->int_nsec;
		}
		f->src = timerfd_create(f->clockid, TFD_CLOEXEC | (nb ? TFD_NONBLOCK : 0));
		if (f->src < 0)
			return eng_fail_errno("fd %d: timerfd_create(clock %d)", f->fd, f->clockid);
		if ((its.it_value.tv_sec || its.it_value.tv_nsec) &&
		    timerfd_settime(f->src, 0, &its, NULL) < 0)
			return eng_fail_errno("fd %d: timerfd_settime", f->fd);
		if (f->ticks && ioctl(f->src, TFD_IOC_SET_TICKS, &f->ticks) < 0)
			return eng_fail_errno("fd %d: timerfd set %" PRIu64 " ticks", f->fd, f->ticks);
		return 0;
	}
	case FD_SIGNALFD: {
		sigset_t m;
		sigemptyset(&m);
		for (int s = 1; s <= ENG_NSIG; s++)
			if (f->sigmask & (1ULL << (s - 1)))
				sigaddset(&m, s);
		f->src = signalfd(-1, &m, SFD_CLOEXEC | (nb ? SFD_NONBLOCK : 0));
		if (f->src < 0)
			return eng_fail_errno("fd %d: signalfd", f->fd);
		return 0;
	}
	case FD_EPOLL:
		f->src = epoll_create1(EPOLL_CLOEXEC);
		if (f->src < 0)
			return eng_fail_errno("fd %d: epoll_create1", f->fd);
		return 0;
	case FD_EXTERNAL:
		if (!external_null)
			return eng_fail("fd %d: %s: leads outside the process and no original object "
			                "is at hand (use reincarnate on the same host, or "
			                "--external-null)", f->fd, f->desc ? f->desc : f->path);
		f->src = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (f->src < 0)
			return eng_fail_errno("fd %d: open /dev/null", f->fd);
		return 0;
	default:
		return eng_fail("fd %d: unknown kind %u", f->fd, f->kind);
	}
}

int engine_image_open_fd(struct engine_image *img, int fdnum)
{
	for (uint32_t i = 0; i < img->nfds; i++) {
		struct eng_fd *f = &img->fds[i];
		int mine;
		if (f->fd != fdnum || f->same_as >= 0)
			continue;
		if (f->kind != FD_FILE)
			return eng_fail("pid %d: fd %d is a %s, not a file", img->pid, fdnum,
			                eng_fd_kind_name(f->kind));
		if (f->src < 0 && prepare_one(img, f, false) < 0) {
			eng_close(&f->src);
			return -1;
		}
		mine = fcntl(f->src, F_DUPFD_CLOEXEC, 3);
		if (mine < 0)
			return eng_fail_errno("pid %d: fd %d: dup of %s", img->pid, fdnum, f->path);
		return mine;
	}
	return eng_fail("pid %d has no fd %d", img->pid, fdnum);
}

int eng_fds_prepare(struct engine_image *img, bool external_null)
{
	for (uint32_t i = 0; i < img->nfds; i++) {
		struct eng_fd *f = &img->fds[i];
		if (f->same_as >= 0 || f->src >= 0)
			continue;
		if (prepare_one(img, f, external_null) < 0) {
			eng_fds_unprepare(img);
			return eng_wrap("prepare descriptors");
		}
	}
	return 0;
}

/* In the puppet: every source is already at helper_base + k (moved by the
 * caller); dup it to its number with its close-on-exec flag, then fill the
 * epoll interest lists with the final numbers. */
int eng_fds_install(struct engine_image *img, int helper_base)
{
	(void)helper_base;
	for (uint32_t i = 0; i < img->nfds; i++) {
		struct eng_fd *f = &img->fds[i];
		int from = f->same_as >= 0 ? img->fds[f->same_as].fd : f->src;
		if (from < 0)
			return eng_fail("fd %d: nothing to install", f->fd);
		if (dup3(from, f->fd, (f->flags & O_CLOEXEC) ? O_CLOEXEC : 0) < 0)
			return eng_fail_errno("dup3(%d, fd %d)", from, f->fd);
	}
	for (uint32_t i = 0; i < img->nfds; i++) {
		struct eng_fd *f = &img->fds[i];
		if (f->kind != FD_EPOLL || f->same_as >= 0)
			continue;
		for (uint32_t k = 0; k < f->nep; k++) {
			struct epoll_event ev = { .events = f->ep[k].events, .data.u64 = f->ep[k].data };
			if (epoll_ctl(f->fd, EPOLL_CTL_ADD, f->ep[k].tfd, &ev) < 0)
				return eng_fail_errno("fd %d: epoll_ctl(ADD fd %d, events %#x)", f->fd,
				                      f->ep[k].tfd, f->ep[k].events);
		}
	}
	return 0;
}
