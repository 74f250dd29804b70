/*
 * node_mem.h -- how much memory this node can still give a process that
 * moves in: the least of the host's MemAvailable and the room left in
 * every memory cgroup (v1 or v2) from migrd's own up to the root, since
 * a restored process is charged to migrd's cgroup (a virtual node, a
 * batch system's allocation) and would be OOM-killed past its limit.
 */
#ifndef MIGRD_MOVE_NODE_MEM_H
#define MIGRD_MOVE_NODE_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Bytes available; `bound` names what bounds them ("the host", "memory
 * cgroup /migr-vc/n2"). */
uint64_t node_mem_available(char *bound, size_t len);

#endif
