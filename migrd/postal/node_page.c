/*
 * node_page.c -- the node page: one page of shared memory per migrd, mapped
 * read-only by every registered process (common/mbox.h, struct node_shared).
 *
 * Read-only for them is the kernel's word, not theirs: once migrd has its
 * own writable mapping, the memfd is sealed with F_SEAL_FUTURE_WRITE, so
 * no one who is handed the descriptor can map it writable, mprotect a
 * mapping writable or write() to it; migrd never reads the page back.
 */
#include "office.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migrd/util/log.h"

int node_page_create(struct postal *d)
{
    int fd = memfd_create("migr-node", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, MBOX_PAGE) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
        log_error("creating the node page: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    void *p = mmap(NULL, MBOX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        log_error("mapping the node page (fd %d): %s", fd, strerror(errno));
        close(fd);
        return -1;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0) {
        log_error("sealing the node page (fd %d) against writers: %s", fd, strerror(errno));
        munmap(p, MBOX_PAGE);
        close(fd);
        return -1;
    }
    d->node_fd = fd;
    d->node_sh = p;
    d->node_sh->version = 1;
    d->node_sh->magic = NODE_PAGE_MAGIC;
    return 0;
}

void node_page_free(struct postal *d)
{
    if (!d->node_sh)
        return;
    munmap(d->node_sh, MBOX_PAGE);
    close(d->node_fd);
    d->node_sh = NULL;
}
