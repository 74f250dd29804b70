/*
 * fuzz_image.c -- libFuzzer harness: the engine's image parser
 * (migrd/engine/image.c, eng_image_parse), which reads what a source
 * daemon streams to the destination.  The first byte chooses how it reads:
 * from memory (as `engine_image_check` does) or from a descriptor (as a
 * move does, here a memfd holding the rest of the input).  Whatever the
 * bytes, the parser must refuse them or return an image that frees clean.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migrd/engine/engine.h"
#include "migrd/engine/engine_int.h"

static void quiet(int level, const char *line) { (void)level, (void)line; }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    engine_set_log(0, quiet);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct engine_image *img = NULL;
    uint64_t bytes = 0;
    if (size < 1)
        return 0;
    int from_fd = data[0] & 1;
    data++, size--;
    int rc;
    if (!from_fd) {
        rc = eng_image_parse(-1, data, size, NULL, &img, &bytes);
    } else {
        int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
        if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET) < 0)
            abort();
        rc = eng_image_parse(fd, NULL, 0, NULL, &img, &bytes);
        close(fd);
    }
    if (rc == 0)
        eng_image_free(img);
    return 0;
}
