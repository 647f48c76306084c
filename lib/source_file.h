/*
 * File and stdin source: JSON lines, one message per line; a message's
 * position is its line number (from 1).  For demos and tests.
 */
#ifndef SL_SOURCE_FILE_H
#define SL_SOURCE_FILE_H

#include "source.h"

struct sl_source_file_conf {
    const char *path;         /* file to read; NULL or "-" for stdin */
    size_t max_message_bytes; /* longer lines are dead-lettered, not read */
    int batch;                /* lines pushed per poll, >= 1 */
};

/*
 * A source reading 'conf->path' (copied) into 'q'.  Returns NULL and fills
 * errstr when the file cannot be opened.  Main thread.
 */
struct sl_source *sl_source_file_new(const struct sl_source_file_conf *conf,
                                     struct sl_queue *q, char *errstr,
                                     size_t errstr_size);

/* Lines read so far, and the highest line acked in order.  Any thread. */
int64_t sl_source_file_committed(struct sl_source *src);

#endif
