/*
 * migrate_lazy.h -- the move's side of a lazy move (migrd/pager does the
 * paging): the list of pages left at the source on the stream, the page
 * store at the source and the fault service at the destination started on
 * the acknowledged move's connection, and the port's frames lent to them.
 */
#ifndef MIGRD_MIGRATE_LAZY_H
#define MIGRD_MIGRATE_LAZY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct move;
struct engine_image;
struct engine_frozen;
struct mrecv_frame;
struct pager_svc;

/* Source, after the capture: leave the pages that are not being touched
 * out of img and send their list (LAZY_DIR frames) on fd.  0 (*away_pages
 * set), or -1 with why. */
struct engine_pages;
struct mlazy_dir {
    struct engine_pages *away; /* malloc'ed */
    uint32_t n;
    uint64_t pages;
};
int mlazy_send_dir(int fd, struct engine_image *img, struct mlazy_dir *dir, char *why, size_t wl);
/* Source, acknowledged: fz becomes the page store served on fd (both are
 * its now, and dir's list); with push, the pages not asked for are sent
 * too; fz is killed when the store ends.  0, or -1 with why (the caller
 * still owns fz and fd; dir's list is freed either way). */
int mlazy_keep(struct move *d, struct engine_frozen *fz, int fd, const char *dest, struct mlazy_dir *dir,
               bool push, char *why, size_t wl);
/* Destination, before the restore: the service of the pages listed in the
 * stream's LAZY_DIR frames; *svc NULL when the move is not lazy.  0, or -1
 * with why. */
int mlazy_service(const struct engine_image *img, const struct mrecv_frame *frames, const char *source,
                  bool prefetch, struct pager_svc **svc, char *why, size_t wl);
/* Destination, acknowledged: serve the faults on fd (the service's now). */
void mlazy_serve(struct move *d, struct pager_svc *svc, int fd, pid_t pid);

#endif
